"""``model_prediction_error``: how far the performance model's predicted maximum throughput is from a measured one.

A small system of the benchmark's own, in one process on an in-process server (SQLite event store): an aggregate
(``BenchModelAggregate``, one event per new aggregate) in one bundle, a projector (``BenchModelProjector``) whose
plain ``def`` handler takes about 4 ms per event (``time.sleep``) in a second bundle, and an invoker in a third.
The invoker is driven at ``DRIVE_RATE`` commands per second — above the projector's capacity of at most 1000/4 =
250 events per second — so the projector falls behind and works without pause.

Measured: the projector's sustained throughput, events handled per second over the span of the projector
bundle's last ``ALIGNED_REPORTS`` telemetry reports — the reports its aged means are made of (the machine's speed
drifts with whatever else runs on it, and the model's inputs describe the last second or so, not the whole run) —
which end after the drive, while the projector still works off its backlog (it must have work all through the
span). The backlog must also grow over the drive, from ``WARMUP`` seconds after its start, or the figure is
refused. The throughput over the whole drive is in the details too.

Predicted: what the model says, from what the system itself reported. The bundles report telemetry every
``TELEMETRY_INTERVAL`` seconds (the next periodic report of each is awaited before reading), the server keeps its
aged means, the catalog the handlers; :func:`evento.server.api.flows.measured_inputs` reads them as the flows API
does, the invoker handler's flow is evaluated with the measured command rate as its arrival rate, and the predicted
maximum throughput is the throughput at the flow's main bottleneck, which must be the projector. The
projector's station serves an event in its handler's aged mean plus the consumer's overhead per event (the busy
time of its consumption less the handler's, from the consumer engine's own telemetry): both are in the details.

Figures: ``|predicted ÷ measured − 1|``, baseline ``target`` 0.3 (ratio below 1 meets it), for two consumer
stores. ``model_prediction_error``: durable checkpoints in a SQLite consumer store, as the TodoList deploys its
projector — each event is handled alone and its checkpoint committed before the next (a few ms of fsync and two
thread hops per event, which only the consumer's overhead brings into the model).
``model_prediction_error_memory_checkpoints``: the in-memory store (the ``Bundle`` default), where a
projector's plain handlers run in groups with one checkpoint per group, so the handler's time is nearly all of
the consumer's.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import Figure, RunConfig
from evento import (
    AggregateState,
    Bundle,
    DomainCommand,
    DomainEvent,
    Invoker,
    aggregate,
    aggregate_command_handler,
    domain,
    event_handler,
    event_sourcing_handler,
    invocation_handler,
    invoker,
    projector,
)
from evento.bundle.telemetry import TelemetryOptions
from evento.consumer_stores.base import ConsumerStateStore
from evento.consumer_stores.memory import MemoryConsumerStateStore
from evento.consumer_stores.sqlite import SQLiteConsumerStateStore
from evento.event_stores import SQLiteEventStore
from evento.performance import Selection, SelectionKind, StationKind, WhatIf, build_network, evaluate
from evento.performance.model import handler_id
from evento.server import EventoServer
from evento.server.api.flows import measured_inputs, system_handlers

__all__ = ["FIGURES", "run"]

FIGURES = ("model_prediction_error", "model_prediction_error_memory_checkpoints")
TARGET = 0.3
HANDLER_SECONDS = 0.004
DRIVE_RATE = 400.0
WARMUP = 0.5
TELEMETRY_INTERVAL = 0.5
MAX_IN_FLIGHT = 64
#: The projector bundle's last reports whose span the throughput is measured over (0.67 + 0.22 of its aged means).
ALIGNED_REPORTS = 2
PROJECTOR_HANDLER = handler_id("bench-model-query", "BenchModelProjector", "BenchModelRegisteredEvent")


@domain("EventoBench")
class BenchModelCommand(DomainCommand):
    """Register one item (a new aggregate)."""

    identifier: str

    @property
    def aggregate_id(self) -> str:
        return self.identifier


@domain("EventoBench")
class BenchModelRegisteredEvent(DomainEvent):
    """An item was registered."""

    identifier: str


class BenchModelState(AggregateState):
    """Nothing to remember."""


@aggregate()
class BenchModelAggregate:
    """One command, one event."""

    @aggregate_command_handler(init=True)
    def register(self, command: BenchModelCommand) -> BenchModelRegisteredEvent:
        return BenchModelRegisteredEvent(identifier=command.identifier)

    @event_sourcing_handler
    def on_registered(self, event: BenchModelRegisteredEvent) -> BenchModelState:
        return BenchModelState()


@dataclass
class Handled:
    """When the projector finished each event (``perf_counter``), appended from its worker thread."""

    at: list[float] = field(default_factory=list)


@projector(version=1)
class BenchModelProjector:
    """Takes about ``HANDLER_SECONDS`` per event, as a projector writing to a slow read model would."""

    def __init__(self, handled: Handled) -> None:
        self.handled = handled

    @event_handler
    def on_registered(self, event: BenchModelRegisteredEvent) -> None:
        time.sleep(HANDLER_SECONDS)
        self.handled.at.append(time.perf_counter())


@invoker()
class BenchModelInvoker(Invoker):
    """The system's entry point: one command per call."""

    @invocation_handler
    async def register(self, identifier: str) -> None:
        await self.commands.send(BenchModelCommand(identifier=identifier))


@dataclass(frozen=True)
class Drive:
    """What the driver did: commands acknowledged, and when the drive started and ended (``perf_counter``)."""

    sent: int
    started: float
    ended: float
    acknowledged_at: list[float]

    @property
    def rate(self) -> float:
        return self.sent / (self.ended - self.started)


async def _drive(entry: BenchModelInvoker, rate: float, seconds: float) -> Drive:
    """Call the invoker ``rate`` times a second for ``seconds``, each call in its own task (at most
    ``MAX_IN_FLIGHT`` at once), and wait for every call."""
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    acknowledged: list[float] = []
    tasks: set[asyncio.Task[None]] = set()

    async def one() -> None:
        try:
            await entry.register(f"ITEM_{uuid.uuid4().hex}")
            acknowledged.append(time.perf_counter())
        finally:
            slots.release()

    started = time.perf_counter()
    n = 0
    while (now := time.perf_counter()) - started < seconds:
        due = started + n / rate
        if due > now:
            await asyncio.sleep(due - now)
        await slots.acquire()
        task = asyncio.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
    await asyncio.gather(*tasks)
    return Drive(len(acknowledged), started, time.perf_counter(), acknowledged)


async def _measure(directory: Path, consumer_store: ConsumerStateStore, seconds: float) -> dict[str, Any]:
    handled = Handled()
    server = EventoServer(SQLiteEventStore(directory / "events.db"))
    telemetry = TelemetryOptions(interval=TELEMETRY_INTERVAL)
    command = Bundle("bench-model-command", components=[BenchModelAggregate], telemetry=telemetry)
    query = Bundle(
        "bench-model-query",
        components=[BenchModelProjector],
        consumer_store=consumer_store,
        injector={Handled: handled}.get,
        telemetry=telemetry,
    )
    web = Bundle("bench-model-web", components=[BenchModelInvoker], telemetry=telemetry)
    bundles = [command, query, web]
    await server.start()
    started: list[Bundle] = []
    try:
        for bundle in bundles:
            await bundle.start(server)
            started.append(bundle)
        await query.wait_for_head()
        epoch = time.time() - time.perf_counter()  # perf_counter + epoch = epoch seconds, as reports are stamped
        drive = await _drive(web.invoker(BenchModelInvoker), DRIVE_RATE, seconds)

        def throughput(start: float, end: float) -> tuple[float, int, int]:
            """Events the projector finished per second over ``[start, end]``, and its backlog at both ends."""
            done = sum(start <= t <= end for t in handled.at)
            backlog_start = sum(t <= start for t in drive.acknowledged_at) - sum(t <= start for t in handled.at)
            backlog_end = sum(t <= end for t in drive.acknowledged_at) - sum(t <= end for t in handled.at)
            return done / (end - start), backlog_start, backlog_end

        # Measured over the whole drive: the backlog must grow, or the projector was not driven above capacity.
        drive_measured, backlog_start, backlog_end = throughput(drive.started + WARMUP, drive.ended)
        if not 0 < backlog_start < backlog_end:
            raise RuntimeError(
                f"the projector was not driven above its capacity (backlog {backlog_start} → {backlog_end})"
            )

        # Predicted: the model over what the system reported. Each bundle's next periodic report is awaited rather
        # than one flushed now: a flush right after a periodic report covers a few milliseconds, yet weighs as much
        # as a full interval in the aged means.
        sent = [bundle.telemetry.reports_sent for bundle in bundles]
        deadline = time.monotonic() + 20 * TELEMETRY_INTERVAL
        while any(b.telemetry.reports_sent <= n for b, n in zip(bundles, sent, strict=True)):
            if time.monotonic() > deadline:
                raise RuntimeError("the bundles sent no telemetry report within twenty intervals")
            await asyncio.sleep(TELEMETRY_INTERVAL / 10)
        await server.telemetry.flush()
        await server.catalog_settled()

        # Measured over the span of the projector bundle's last reports, the ones its aged values stand for: the
        # machine's speed drifts (other work on it), and a prediction from the last second compared with the mean
        # of four would measure the drift, not the model. The projector must have had work all through it.
        spans = await server.telemetry.database.fetchall(
            "SELECT DISTINCT started_ms, ended_ms FROM evento_telemetry_bucket WHERE bundle_id = ?"
            " ORDER BY ended_ms DESC LIMIT ?",
            ("bench-model-query", ALIGNED_REPORTS),
        )
        window_start = max(min(row[0] for row in spans) / 1000 - epoch, drive.started + WARMUP)
        window_end = max(row[1] for row in spans) / 1000 - epoch
        measured, aligned_start, aligned_end = throughput(window_start, window_end)
        if not (aligned_start > 0 and aligned_end > 0):
            raise RuntimeError(f"the projector ran out of work in the measured window ({aligned_start}, {aligned_end})")
        entry = handler_id("bench-model-web", "BenchModelInvoker", "BenchModelInvoker::register")
        network = build_network(await system_handlers(server), Selection(SelectionKind.HANDLER, entry))
        inputs = await measured_inputs(server)
        result = evaluate(network, inputs, WhatIf(default_inter_arrival_ms=1000.0 / drive.rate))
        (flow,) = result.flows
        if flow.main_bottleneck is None or flow.max_throughput_per_s is None:
            raise RuntimeError("the model found no bottleneck in the driven flow")
        bottleneck = result.station(flow.main_bottleneck)
        handler_ms = {
            s.handler_id: s.aged_mean_ms for s in await server.telemetry.handler_stats("bench-model-query")
        }.get(PROJECTOR_HANDLER)
        overhead_ms = (await server.telemetry.consumer_overheads()).get(("bench-model-query", "BenchModelProjector"))
        if bottleneck.station.kind is not StationKind.CONSUMER or bottleneck.station.handler is None:
            raise RuntimeError(f"the model's bottleneck is not the projector: {bottleneck.station}")
        return {
            "measured_per_s": measured,
            "measured_over_drive_per_s": drive_measured,
            "predicted_per_s": flow.max_throughput_per_s,
            "projector_service_time_ms": bottleneck.service_time_ms,
            "projector_service_time_provenance": bottleneck.service_time_provenance.value,
            "projector_handler_ms": handler_ms,
            "projector_overhead_ms": overhead_ms,
            "bottleneck": bottleneck.station.handler.handler_id,
            "command_rate_per_s": drive.rate,
            "commands": drive.sent,
            "window_s": window_end - window_start,
            "window_after_drive_start_s": window_start - drive.started,
            "backlog_at_window": [aligned_start, aligned_end],
            "backlog_over_drive": [backlog_start, backlog_end],
            "server_stations_ms": {
                "gateway": inputs.server_stations.gateway_ms,
                "event_store": inputs.server_stations.event_store_ms,
            },
        }
    finally:
        for bundle in reversed(started):
            await bundle.stop()
        await server.stop()


def run(config: RunConfig, figures: frozenset[str] = frozenset(FIGURES)) -> list[Figure]:
    seconds = 2.0 if config.quick else 4.0
    variants: dict[str, Callable[[Path], ConsumerStateStore]] = {
        "model_prediction_error": lambda directory: SQLiteConsumerStateStore(directory / "consumers.db"),
        "model_prediction_error_memory_checkpoints": lambda directory: MemoryConsumerStateStore(),
    }
    results: list[Figure] = []
    details: dict[str, Any] = {}
    for name, make_store in variants.items():
        if name not in figures:
            continue
        directory = config.scratch(name)
        found = asyncio.run(_measure(directory, make_store(directory), seconds))
        error = abs(found["predicted_per_s"] / found["measured_per_s"] - 1)
        found["error"] = error
        details[name] = {k: round(v, 3) if isinstance(v, float) else v for k, v in found.items()}
        results.append(Figure.compare(name, error, "ratio", "target", TARGET))
    config.details["model_prediction"] = details
    return results
