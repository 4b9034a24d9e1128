"""``embedded_command_throughput_sqlite``: TodoList commands per second through the gateway, embedded on SQLite.

Ours: an :class:`~evento.server.EventoServer` on a :class:`~evento.server.SQLiteEventStore` (WAL,
``synchronous=FULL``: every acknowledged command's event is on disk) with the TodoList write path started in
process — the ``todolist-command`` bundle (the aggregate) and the ``todolist-web`` bundle whose invoker sends the
commands. 32 asyncio callers each create a list and add four todos to it, over and over; a command counts when
the invoker call returns, i.e. when its event is committed. A warm-up round runs first and the number of stored
events is checked afterwards. The same load is also run against the whole TodoList system (projector, saga and
observer bundles consuming alongside, on the same two cores) as ``embedded_command_throughput_sqlite_full_system``.

Baseline ``eventsourcing_save_sqlite``: the ``eventsourcing`` library's ``Application.save`` of a new one-event
aggregate, ``PERSISTENCE_MODULE=eventsourcing.sqlite`` with ``SQLITE_DBNAME`` a file on the same disk. Its
SQLite settings (read back from its own connection and recorded in the details) are WAL and SQLite's default
``synchronous`` (FULL on this build), one transaction and one commit per ``save``. It is measured in its natural
mode (a synchronous loop) and with 32 threads sharing the application; the better of the two is the baseline.

Trials alternate between the contenders on fresh files; the best trial of each is kept. ratio = ours / baseline.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from bench.common import Figure, RunConfig, Stopwatch, best
from evento.demo.todolist.invoker import TodoListInvoker
from evento.demo.todolist.system import TodoListSystem
from evento.event_stores import SQLiteEventStore
from evento.server import EventoServer

__all__ = ["FIGURES", "run"]

FIGURES = ("embedded_command_throughput_sqlite", "embedded_command_throughput_sqlite_full_system")
CALLERS = 32
TODOS_PER_LIST = 4  # a list holds at most five todos


# --- ours ------------------------------------------------------------------------------------------------------


async def _caller(invoker: TodoListInvoker, quota: int, caller: int) -> None:
    """Send ``quota`` commands: create a list, add todos to it, start a new list when it is full."""
    sent = 0
    user = f"user-{caller}"
    while sent < quota:
        identifier = await invoker.create_todo_list(f"list of {user} #{sent}", user)
        sent += 1
        for todo in range(min(TODOS_PER_LIST, quota - sent)):
            await invoker.add_todo(identifier, f"todo {todo} of {identifier}", user)
            sent += 1


async def _drive(invoker: TodoListInvoker, commands: int, callers: int) -> None:
    quotas = [commands // callers + (1 if i < commands % callers else 0) for i in range(callers)]
    await asyncio.gather(*(_caller(invoker, quota, i) for i, quota in enumerate(quotas)))


async def _evento(directory: Path, warmup: int, commands: int, *, full_system: bool) -> float:
    server = EventoServer(SQLiteEventStore(directory / "events.db"))
    await server.start()
    system = TodoListSystem(directory, service_delay=0.0)
    bundles = system.bundles if full_system else [system.command, system.web]
    started = []
    try:
        for bundle in bundles:
            await bundle.start(server)
            started.append(bundle)
        invoker = system.invoker()
        await _drive(invoker, warmup, CALLERS)
        with Stopwatch() as sw:
            await _drive(invoker, commands, CALLERS)
        stored = await server.store.count_events()
    finally:
        for bundle in reversed(started):
            await bundle.stop()
        await server.stop()
    if stored < warmup + commands:  # the full system's saga may add service events of its own
        raise AssertionError(f"{stored} events stored for {warmup + commands} commands")
    return commands / sw.seconds


# --- the eventsourcing library ----------------------------------------------------------------------------------


class BenchNote(Aggregate):
    """A one-event aggregate: created, never changed."""

    @event("Created")
    def __init__(self, name: str) -> None:
        self.name = name


def _application(db: Path) -> Application[UUID]:
    return Application(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(db)})


def eventsourcing_sqlite_settings(db: Path) -> dict[str, Any]:
    """The pragmas ``eventsourcing`` runs its SQLite connections with, read back from one of its connections."""
    app = _application(db)
    try:
        recorder: Any = app.recorder
        datastore = recorder.datastore
        with datastore.transaction(commit=False) as cursor:
            cursor.execute("PRAGMA journal_mode")
            journal_mode = cursor.fetchone()[0]
            cursor.execute("PRAGMA synchronous")
            synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(cursor.fetchone()[0], "?")
            cursor.execute("PRAGMA busy_timeout")
            busy_timeout = cursor.fetchone()[0]
        pool = datastore.pool
        return {
            "journal_mode": journal_mode,
            "synchronous": synchronous,
            "busy_timeout_ms": busy_timeout,
            "transaction": "BEGIN (deferred) ... COMMIT per save; writers serialised by the pool's writer lock",
            "pool_size": getattr(pool, "pool_size", None),
            "max_overflow": getattr(pool, "max_overflow", None),
        }
    finally:
        app.close()


def eventsourcing_saves(app: Application[Any], warmup: int, saves: int, threads: int = 1) -> float:
    """Saves/s of one-event aggregates through ``app`` (closed afterwards): a plain loop on this thread when
    ``threads`` is 1, else that many threads started together."""
    try:
        for i in range(warmup):
            app.save(BenchNote(name=f"warm-up {i}"))
        if threads == 1:
            with Stopwatch() as sw:
                for i in range(saves):
                    app.save(BenchNote(name=f"note {i}"))
        else:
            gate = threading.Barrier(threads + 1)

            def worker(quota: int, worker_id: int) -> None:
                gate.wait()
                for i in range(quota):
                    app.save(BenchNote(name=f"note {worker_id}-{i}"))

            quotas = [saves // threads + (1 if i < saves % threads else 0) for i in range(threads)]
            with ThreadPoolExecutor(threads) as pool:
                futures = [pool.submit(worker, quota, i) for i, quota in enumerate(quotas)]
                gate.wait()
                with Stopwatch() as sw:
                    for future in futures:
                        future.result()
        stored = app.recorder.max_notification_id()
    finally:
        app.close()
    if stored != warmup + saves:
        raise AssertionError(f"eventsourcing stored {stored} events, expected {warmup + saves}")
    return saves / sw.seconds


def _eventsourcing_loop(db: Path, warmup: int, saves: int) -> float:
    return eventsourcing_saves(_application(db), warmup, saves)


def _eventsourcing_threads(db: Path, warmup: int, saves: int, threads: int) -> float:
    return eventsourcing_saves(_application(db), warmup, saves, threads)


# --- the figure -------------------------------------------------------------------------------------------------


def run(config: RunConfig, figures: frozenset[str] = frozenset(FIGURES)) -> list[Figure]:
    commands = 1_000 if config.quick else 4_000
    saves = 1_000 if config.quick else 3_000
    warmup = 5 * CALLERS
    trials = 1 if config.quick else 3
    write_path: list[float] = []
    full_system: list[float] = []
    es_loop: list[float] = []
    es_threads: list[float] = []
    settings = eventsourcing_sqlite_settings(config.scratch("es-settings") / "es.db")
    for trial in range(trials):
        if "embedded_command_throughput_sqlite" in figures:
            directory = config.scratch(f"commands-{trial}")
            write_path.append(asyncio.run(_evento(directory, warmup, commands, full_system=False)))
        if "embedded_command_throughput_sqlite_full_system" in figures:
            directory = config.scratch(f"commands-full-{trial}")
            full_system.append(asyncio.run(_evento(directory, warmup, commands, full_system=True)))
        es_loop.append(_eventsourcing_loop(config.scratch(f"es-loop-{trial}") / "es.db", warmup, saves))
        es_threads.append(
            _eventsourcing_threads(config.scratch(f"es-threads-{trial}") / "es.db", warmup, saves, CALLERS)
        )
    loop_best, threads_best = best(es_loop), best(es_threads)
    baseline = max(loop_best, threads_best)
    config.details["embedded_command_throughput_sqlite"] = {
        "commands": commands,
        "callers": CALLERS,
        "workload": f"create a list, add {TODOS_PER_LIST} todos, repeat (per caller)",
        "ours_write_path_trials_cmd_per_s": [round(x) for x in write_path],
        "ours_full_system_trials_cmd_per_s": [round(x) for x in full_system],
        "eventsourcing_saves": saves,
        "eventsourcing_loop_trials_saves_per_s": [round(x) for x in es_loop],
        "eventsourcing_32_threads_trials_saves_per_s": [round(x) for x in es_threads],
        "eventsourcing_baseline_mode": "synchronous loop" if loop_best >= threads_best else f"{CALLERS} threads",
        "eventsourcing_sqlite_settings": settings,
    }
    results = []
    if write_path:
        results.append(
            Figure.compare(
                "embedded_command_throughput_sqlite", best(write_path), "cmd/s", "eventsourcing_save_sqlite", baseline
            )
        )
    if full_system:
        results.append(
            Figure.compare(
                "embedded_command_throughput_sqlite_full_system",
                best(full_system),
                "cmd/s",
                "eventsourcing_save_sqlite",
                baseline,
            )
        )
    return results
