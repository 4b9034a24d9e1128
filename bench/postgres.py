"""PostgreSQL figures: appends, commands over TCP through a PostgreSQL-backed server, and consumer replay.

Every measurement runs against the machine's PostgreSQL (``EVENTO_BENCH_POSTGRES``, default
``postgresql://postgres@127.0.0.1:5432/postgres``), in a database created for it and dropped afterwards; ours and
the baseline share the server, its settings (``fsync``, ``synchronous_commit`` are read back into the details)
and the table layout.

* ``pg_append_ratio``: :class:`PostgresEventStore` (CPES) appends issued concurrently in bursts of 500, so group
  commit writes each burst in one transaction; against raw psycopg ``executemany`` of the same rows into the same
  table, one transaction per burst of the same size. ratio = ours / raw (issue target ≥ 0.5).
* ``tcp_command_throughput_pg``: the TodoList command mix from 64 concurrent callers, over TCP, to an ``evento
  server --store postgresql://…`` process (bundles in this process, as in :mod:`bench.tcp`); against the
  ``eventsourcing`` library's ``Application.save`` on the same PostgreSQL (``eventsourcing.postgres``), the better
  of a synchronous loop and 32 threads. ratio = ours / baseline (issue target ≥ 5).
* ``pg_replay_events_per_s``: a no-op projector (memory checkpoints) catching up on 100,000 stored events through
  an in-process server on the PostgreSQL store, from start to head; against one raw ``SELECT`` of the same rows
  and columns, fetched whole (the better of psycopg's text and binary formats). ratio = ours / raw (target ≥ 0.3).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from eventsourcing.application import Application

from bench.command_throughput import _drive, eventsourcing_saves
from bench.common import Figure, RunConfig, Stopwatch, best
from bench.store_append import _bursts, _requests, appends_per_second
from evento import Bundle, event_handler, projector
from evento.consumer_stores import MemoryConsumerStateStore
from evento.demo.todolist.payloads import TodoListCreatedEvent
from evento.event_stores.base import EVENT_COLUMNS, AppendRequest, encode_metadata
from evento.event_stores.postgres import PostgresEventStore
from evento.server import EventoServer

__all__ = ["FIGURES", "run"]

FIGURES = ("pg_append_ratio", "tcp_command_throughput_pg", "pg_replay_events_per_s")
ADMIN_URL = os.environ.get("EVENTO_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
CALLERS = 64
ES_THREADS = 32
BURST = 500

_RAW_INSERT = (
    "INSERT INTO es_events (sequence_number, aggregate_id, aggregate_version, context, event_name, message_id,"
    " command_id, timestamp, payload, metadata, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


@contextlib.contextmanager
def _database() -> Iterator[str]:
    name = f"evento_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlunsplit(urlsplit(ADMIN_URL)._replace(path="/" + name))
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _settings(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        names = ("server_version", "fsync", "synchronous_commit", "wal_sync_method", "shared_buffers")
        return {name: str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in names}  # type: ignore[index]


async def _start_store(url: str) -> PostgresEventStore:
    store = PostgresEventStore(url)
    await store.start()
    return store


async def _create_schema(url: str) -> None:
    """The tables exactly as our store creates them, so both sides write the same layout."""
    await (await _start_store(url)).stop()


# --- pg_append_ratio ------------------------------------------------------------------------------------------------


def _raw_append(url: str, warmup: list[AppendRequest], timed: list[AppendRequest]) -> float:
    asyncio.run(_create_schema(url))
    created_at = 1_700_000_000_000
    numbered = list(enumerate([*warmup, *timed], start=1))

    def row(n: int, r: AppendRequest) -> tuple[Any, ...]:
        e = r.event
        return (n, r.aggregate_id, r.aggregate_version, e.context, e.payload_name, e.message_id, None, e.timestamp,
                e.payload, encode_metadata(e.metadata), created_at)  # fmt: skip

    rows = [row(n, r) for n, r in numbered]
    warm_rows, timed_rows = rows[: len(warmup)], rows[len(warmup) :]
    with psycopg.connect(url) as conn:

        def write(batch_rows: list[tuple[Any, ...]]) -> None:
            for first in range(0, len(batch_rows), BURST):
                with conn.transaction(), conn.cursor() as cursor:
                    cursor.executemany(_RAW_INSERT, batch_rows[first : first + BURST])

        write(warm_rows)
        with Stopwatch() as sw:
            write(timed_rows)
        stored = conn.execute("SELECT COUNT(*) FROM es_events").fetchone()[0]  # type: ignore[index]
    if stored != len(rows):
        raise AssertionError(f"the raw table holds {stored} rows, expected {len(rows)}")
    return len(timed) / sw.seconds


# --- tcp_command_throughput_pg --------------------------------------------------------------------------------------


def _eventsourcing_app(url: str) -> Application[Any]:
    parts = urlsplit(url)
    return Application(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": parts.path.lstrip("/"),
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": parts.username or "postgres",
            "POSTGRES_PASSWORD": parts.password or "",
            "POSTGRES_POOL_SIZE": str(ES_THREADS),
        }
    )


async def _tcp_commands(bus: str, directory: Path, commands: int) -> float:
    from bench.tcp import _Session

    async with _Session(bus, directory, with_query=False) as invoker:
        await _drive(invoker, 5 * CALLERS, CALLERS)
        with Stopwatch() as sw:
            await _drive(invoker, commands, CALLERS)
    return commands / sw.seconds


# --- pg_replay_events_per_s -----------------------------------------------------------------------------------------


@projector(version=1)
class _NoOpProjector:
    """Handles the events the replay reads and does nothing with them: the cost measured is delivery."""

    @event_handler
    def on_created(self, event: TodoListCreatedEvent) -> None:
        pass


async def _fill(url: str, events: int) -> None:
    store = await _start_store(url)
    try:
        for chunk in _bursts(_requests(events), BURST * 4):
            await asyncio.gather(*(store.append(r) for r in chunk))
    finally:
        await store.stop()


async def _ours_replay(url: str, events: int) -> float:
    server = EventoServer(PostgresEventStore(url))
    await server.start()
    bundle = Bundle("replay", components=[_NoOpProjector], consumer_store=MemoryConsumerStateStore())
    try:
        with Stopwatch() as sw:
            await bundle.start(server)
            await bundle.wait_for_head(timeout=600)
    finally:
        await bundle.stop()
        await server.stop()
    return events / sw.seconds


def _raw_replay(url: str, events: int, *, binary: bool) -> float:
    with psycopg.connect(url) as conn, Stopwatch() as sw:
        sql = f"SELECT {EVENT_COLUMNS} FROM es_events ORDER BY sequence_number"
        rows = conn.execute(sql, binary=binary).fetchall()
    if len(rows) != events:
        raise AssertionError(f"raw SELECT read {len(rows)} rows, expected {events}")
    return events / sw.seconds


# --- the figures ----------------------------------------------------------------------------------------------------


def run(config: RunConfig, figures: frozenset[str] = frozenset(FIGURES)) -> list[Figure]:
    trials = 1 if config.quick else 3
    details: dict[str, Any] = {}
    out: list[Figure] = []
    with _database() as url:
        details["postgresql"] = _settings(url)
    if "pg_append_ratio" in figures:
        events = 5_000 if config.quick else 20_000
        ours, raw = [], []
        for _ in range(trials):
            warmup, timed = _requests(BURST), _requests(events)
            with _database() as url:
                ours.append(asyncio.run(appends_per_second(PostgresEventStore(url), warmup, timed, BURST)))
            with _database() as url:
                raw.append(_raw_append(url, warmup, timed))
        details["append"] = {"events": events, "burst": BURST, "ours_trials": [round(x) for x in ours],
                             "raw_executemany_trials": [round(x) for x in raw]}  # fmt: skip
        out.append(Figure.compare("pg_append_ratio", best(ours), "events/s", "raw_psycopg_executemany", best(raw)))
    if "tcp_command_throughput_pg" in figures:
        from bench.tcp import _evento_server

        commands, saves = (1_000, 500) if config.quick else (8_000, 1_500)
        ours, loop, threads = [], [], []
        for trial in range(trials):
            with _database() as url, _evento_server(config.scratch(f"pg-server-{trial}"), "--store", url) as bus:
                ours.append(asyncio.run(_tcp_commands(bus, config.scratch(f"pg-bundles-{trial}"), commands)))
            with _database() as url:
                loop.append(eventsourcing_saves(_eventsourcing_app(url), 50, saves))
            with _database() as url:
                threads.append(eventsourcing_saves(_eventsourcing_app(url), 50, saves, ES_THREADS))
        details["tcp_commands"] = {
            "commands": commands,
            "callers": CALLERS,
            "ours_trials_cmd_per_s": [round(x) for x in ours],
            "eventsourcing_saves": saves,
            "eventsourcing_loop_trials": [round(x) for x in loop],
            f"eventsourcing_{ES_THREADS}_threads_trials": [round(x) for x in threads],
        }
        baseline = max(best(loop), best(threads))
        out.append(Figure.compare("tcp_command_throughput_pg", best(ours), "cmd/s", "eventsourcing_save_pg", baseline))
    if "pg_replay_events_per_s" in figures:
        events = 20_000 if config.quick else 100_000
        ours, raw_text, raw_binary = [], [], []
        with _database() as url:
            asyncio.run(_fill(url, events))
            for _ in range(trials):
                ours.append(asyncio.run(_ours_replay(url, events)))
                raw_text.append(_raw_replay(url, events, binary=False))
                raw_binary.append(_raw_replay(url, events, binary=True))
        raw = raw_text + raw_binary  # the driver's best, whichever result format gave it
        details["replay"] = {"events": events, "ours_trials": [round(x) for x in ours],
                             "raw_select_text_trials": [round(x) for x in raw_text],
                             "raw_select_binary_trials": [round(x) for x in raw_binary]}  # fmt: skip
        out.append(Figure.compare("pg_replay_events_per_s", best(ours), "events/s", "raw_select", best(raw)))
    config.details["postgres"] = details
    return out
