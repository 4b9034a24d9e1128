"""``embedded_projection_latency_p50_ms`` / ``_p99_ms``: from the event store's commit to a projector handler done.

A tiny aggregate of the benchmark's own (``BenchPingAggregate``: one command, one event per new aggregate) and a
projector (``BenchPingProjector``) whose ``async`` handler does nothing but record ``time.perf_counter()`` and
the event's sequence number. The commit time is taken on the store's writer thread right after ``COMMIT``
returns (the event is durable), by :class:`CommitClockSQLiteEventStore`, a subclass of the SQLite store that
wraps its writer-thread hook (``_on_writer``, an internal of ``SQLiteEventStore``: if it is renamed this
benchmark fails loudly rather than measuring from a later point). Samples are correlated by sequence number; the
driver waits on the aggregate id. Each sample is ``handler done − commit``, so it includes the hand-over from
the writer thread back to the event loop, the "events appended" notification, the consumer's cycle (lock,
checkpoint, fetch on a reader thread) and the handler call.

Commands go one at a time at a modest rate: send, wait for the projector, pause a few milliseconds so the
consumer is idle again, repeat — the latency of an unloaded system, not a queue. The projector runs in its own
bundle with a :class:`~evento.consumer_stores.sqlite.SQLiteConsumerStateStore` (durable checkpoints, as the
TodoList query bundle deploys it); the same measurement with the in-memory consumer state store (the
``Bundle`` default) is reported as ``…_memory_checkpoints`` figures.

Baseline ``target``: 10 ms, ratio = value / 10 (below 1 meets the target).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench.common import Figure, RunConfig, percentile
from evento import (
    AggregateState,
    Bundle,
    DomainCommand,
    DomainEvent,
    SequenceNumber,
    aggregate,
    aggregate_command_handler,
    domain,
    event_handler,
    event_sourcing_handler,
    projector,
)
from evento.consumer_stores.base import ConsumerStateStore
from evento.consumer_stores.memory import MemoryConsumerStateStore
from evento.consumer_stores.sqlite import SQLiteConsumerStateStore
from evento.event_stores import SQLiteEventStore
from evento.event_stores.base import AppendRequest
from evento.messages import StoredEvent
from evento.server import EventoServer

__all__ = ["FIGURES", "run"]

FIGURES = (
    "embedded_projection_latency_p50_ms",
    "embedded_projection_latency_p99_ms",
    "embedded_projection_latency_p50_ms_memory_checkpoints",
    "embedded_projection_latency_p99_ms_memory_checkpoints",
)
T = TypeVar("T")
TARGET_MS = 10.0
PAUSE = 0.003  # between samples, so the consumer is idle when the next event arrives


@domain("EventoBench")
class BenchPingCommand(DomainCommand):
    """Create a ping aggregate."""

    identifier: str

    @property
    def aggregate_id(self) -> str:
        return self.identifier


@domain("EventoBench")
class BenchPingedEvent(DomainEvent):
    """A ping aggregate was created."""

    identifier: str


class BenchPingState(AggregateState):
    """Nothing to remember."""


@aggregate()
class BenchPingAggregate:
    """One command, one event."""

    @aggregate_command_handler(init=True)
    def ping(self, command: BenchPingCommand) -> BenchPingedEvent:
        return BenchPingedEvent(identifier=command.identifier)

    @event_sourcing_handler
    def on_pinged(self, event: BenchPingedEvent) -> BenchPingState:
        return BenchPingState()


@dataclass
class LatencyProbe:
    """Commit times by sequence number (from the store) and handler-done times (from the projector)."""

    committed: dict[int, float] = field(default_factory=dict)
    handled: dict[int, float] = field(default_factory=dict)
    waiting: dict[str, asyncio.Future[int]] = field(default_factory=dict)

    def on_handled(self, identifier: str, sequence_number: int) -> None:
        self.handled[sequence_number] = time.perf_counter()
        future = self.waiting.pop(identifier, None)
        if future is not None and not future.done():
            future.set_result(sequence_number)

    def expect(self, identifier: str) -> asyncio.Future[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.waiting[identifier] = future
        return future


class CommitClockSQLiteEventStore(SQLiteEventStore):
    """The SQLite event store, noting on its writer thread when each batch's ``COMMIT`` returned."""

    def __init__(self, path: Path, probe: LatencyProbe) -> None:
        super().__init__(path)
        self.probe = probe
        self._finished: float | None = None

    async def _on_writer(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def timed(conn: sqlite3.Connection) -> T:
            result = fn(conn)
            self._finished = time.perf_counter()
            return result

        return await super()._on_writer(timed)

    async def _write_batch(self, requests: Sequence[AppendRequest]) -> list[StoredEvent]:
        self._finished = None
        stored = await super()._write_batch(requests)
        if self._finished is None:
            raise RuntimeError("SQLiteEventStore no longer writes through _on_writer: update the commit clock")
        for event in stored:
            self.probe.committed[event.sequence_number] = self._finished
        return stored


@projector(version=1)
class BenchPingProjector:
    """Records when each ping event has been handled."""

    def __init__(self, probe: LatencyProbe) -> None:
        self.probe = probe

    @event_handler
    async def on_pinged(self, event: BenchPingedEvent, sequence_number: SequenceNumber) -> None:
        self.probe.on_handled(event.identifier, int(sequence_number))


async def _measure(directory: Path, consumer_store: ConsumerStateStore, warmup: int, samples: int) -> list[float]:
    """Latencies in milliseconds, one per sample."""
    probe = LatencyProbe()
    provided: dict[Any, Any] = {LatencyProbe: probe}
    server = EventoServer(CommitClockSQLiteEventStore(directory / "events.db", probe))
    command = Bundle("bench-latency-command", components=[BenchPingAggregate])
    query = Bundle(
        "bench-latency-query", components=[BenchPingProjector], consumer_store=consumer_store, injector=provided.get
    )
    await server.start()
    started: list[Bundle] = []
    latencies: list[float] = []
    try:
        for bundle in (command, query):
            await bundle.start(server)
            started.append(bundle)
        await query.wait_for_head()
        commands, _ = command.gateways(None)
        for i in range(warmup + samples):
            identifier = f"PING_{uuid.uuid4().hex}"
            handled = probe.expect(identifier)
            await commands.send(BenchPingCommand(identifier=identifier))
            sequence_number = await asyncio.wait_for(handled, 10.0)
            if i >= warmup:
                latencies.append((probe.handled[sequence_number] - probe.committed[sequence_number]) * 1000.0)
            await asyncio.sleep(PAUSE)
    finally:
        for bundle in reversed(started):
            await bundle.stop()
        await server.stop()
    return latencies


def run(config: RunConfig, figures: frozenset[str] = frozenset(FIGURES)) -> list[Figure]:
    samples = 100 if config.quick else 500
    warmup = 20
    variants: dict[str, Callable[[Path], ConsumerStateStore]] = {
        "": lambda directory: SQLiteConsumerStateStore(directory / "consumers.db"),
        "_memory_checkpoints": lambda directory: MemoryConsumerStateStore(),
    }
    results: list[Figure] = []
    details: dict[str, Any] = {"samples": samples, "pause_between_samples_ms": PAUSE * 1000}
    for suffix, make_store in variants.items():
        names = (f"embedded_projection_latency_p50_ms{suffix}", f"embedded_projection_latency_p99_ms{suffix}")
        if not figures.intersection(names):
            continue
        directory = config.scratch(f"latency{suffix or '_sqlite_checkpoints'}")
        latencies = asyncio.run(_measure(directory, make_store(directory), warmup, samples))
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        details[f"consumer_store{suffix or '_sqlite_checkpoints'}"] = {
            "p50_ms": round(p50, 3),
            "p90_ms": round(percentile(latencies, 90), 3),
            "p99_ms": round(p99, 3),
            "max_ms": round(max(latencies), 3),
        }
        for name, value in zip(names, (p50, p99), strict=True):
            if name in figures:
                results.append(Figure.compare(name, value, "ms", "target", TARGET_MS))
    config.details["embedded_projection_latency"] = details
    return results
