"""``sqlite_append_ratio``: the SQLite event store's group-committed appends against raw ``sqlite3``.

Ours: ``SQLiteEventStore.append(AppendRequest(...))`` called concurrently in bursts (``asyncio.gather`` of a
burst of appends, the next burst once the previous one is acknowledged), so the store's group commit writes
each burst in one transaction. Baseline: the same rows inserted with ``executemany`` into the same table (the
schema is created by ``SQLiteEventStore`` itself, so tables and indexes are identical) with the same pragmas
(WAL, ``synchronous=FULL``), one ``BEGIN IMMEDIATE … COMMIT`` per batch of the same size. The raw rows are
built before the clock starts, so the baseline is the ceiling the store could reach on this disk.

Trials alternate ours/raw on fresh files and the best of each is kept. value = our events/s,
ratio = ours / raw.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path

import msgspec

from bench.common import Figure, RunConfig, Stopwatch, best
from evento.event_stores import SQLiteEventStore
from evento.event_stores.base import AppendRequest, EventStore
from evento.messages import EventMessage, now_ms

__all__ = ["FIGURES", "run"]

FIGURES = ("sqlite_append_ratio",)

_INSERT = (
    "INSERT INTO es_events (aggregate_id, aggregate_version, context, event_name, message_id, timestamp, payload,"
    " metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_metadata_encoder = msgspec.msgpack.Encoder()


def _requests(count: int) -> list[AppendRequest]:
    """``count`` one-event aggregates with a TodoList-sized payload and correlation metadata."""
    run_id = uuid.uuid4().hex[:8]
    requests = []
    for i in range(count):
        identifier = f"TDLS_{run_id}_{i:07d}"
        payload = msgspec.json.encode({"identifier": identifier, "content": f"shopping list number {i}"})
        correlation = uuid.uuid4().hex
        event = EventMessage(
            payload_name="TodoListCreatedEvent",
            payload=payload,
            message_id=uuid.uuid4().hex,
            metadata={"user": "bench", "correlation_id": correlation, "causation_id": correlation},
            timestamp=now_ms(),
            context="default",
        )
        requests.append(AppendRequest(event, identifier, 1))
    return requests


def _row(request: AppendRequest, created_at: int) -> tuple[object, ...]:
    event = request.event
    return (
        request.aggregate_id,
        request.aggregate_version,
        event.context,
        event.payload_name,
        event.message_id,
        event.timestamp,
        event.payload,
        _metadata_encoder.encode(event.metadata),
        created_at,
    )


def _bursts(requests: list[AppendRequest], size: int) -> list[list[AppendRequest]]:
    return [requests[i : i + size] for i in range(0, len(requests), size)]


async def appends_per_second(
    store: EventStore, warmup: list[AppendRequest], timed: list[AppendRequest], burst: int
) -> float:
    """Appends/s into ``store`` (started here, stopped after), issued in concurrent bursts of ``burst``."""
    await store.start()
    try:
        for chunk in _bursts(warmup, burst):
            await asyncio.gather(*(store.append(r) for r in chunk))
        with Stopwatch() as sw:
            for chunk in _bursts(timed, burst):
                await asyncio.gather(*(store.append(r) for r in chunk))
        stored = await store.count_events()
    finally:
        await store.stop()
    if stored != len(warmup) + len(timed):
        raise AssertionError(f"the store holds {stored} events, expected {len(warmup) + len(timed)}")
    return len(timed) / sw.seconds


async def _create_schema(path: Path) -> None:
    store = SQLiteEventStore(path)
    await store.start()
    await store.stop()


def _raw(path: Path, warmup: list[AppendRequest], timed: list[AppendRequest], burst: int) -> float:
    asyncio.run(_create_schema(path))
    created_at = now_ms()
    warm_rows = [[_row(r, created_at) for r in chunk] for chunk in _bursts(warmup, burst)]
    timed_rows = [[_row(r, created_at) for r in chunk] for chunk in _bursts(timed, burst)]
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")

        def write(batches: list[list[tuple[object, ...]]]) -> None:
            for rows in batches:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_INSERT, rows)
                conn.execute("COMMIT")

        write(warm_rows)
        with Stopwatch() as sw:
            write(timed_rows)
        stored = conn.execute("SELECT COUNT(*) FROM es_events").fetchone()[0]
    finally:
        conn.close()
    if stored != len(warmup) + len(timed):
        raise AssertionError(f"the raw table holds {stored} rows, expected {len(warmup) + len(timed)}")
    return len(timed) / sw.seconds


def run(config: RunConfig, figures: frozenset[str] = frozenset(FIGURES)) -> list[Figure]:
    events = 4_000 if config.quick else 20_000
    burst = 500
    trials = 1 if config.quick else 3
    ours: list[float] = []
    raw: list[float] = []
    for trial in range(trials):
        warmup, timed = _requests(burst), _requests(events)
        store = SQLiteEventStore(config.scratch(f"append-ours-{trial}") / "events.db")
        ours.append(asyncio.run(appends_per_second(store, warmup, timed, burst)))
        raw.append(_raw(config.scratch(f"append-raw-{trial}") / "events.db", warmup, timed, burst))
    config.details["sqlite_append_ratio"] = {
        "events": events,
        "burst": burst,
        "pragmas": "journal_mode=WAL, synchronous=FULL (both sides)",
        "ours_trials_events_per_s": [round(x) for x in ours],
        "raw_trials_events_per_s": [round(x) for x in raw],
    }
    return [Figure.compare("sqlite_append_ratio", best(ours), "events/s", "raw_sqlite_executemany", best(raw))]
