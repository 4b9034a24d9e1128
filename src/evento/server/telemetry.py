"""The telemetry store: per-handler statistics and time buckets from the bundles' reports, and the server's own
phases, in the event store's database (purged after a TTL).

Bundles ship one :class:`~evento.messages.ReportTelemetry` per interval (see :mod:`evento.bundle.telemetry`);
:meth:`TelemetryStore.record` folds it into the tables, in one transaction, with upserts that compute in SQL, so
servers of a cluster sharing one PostgreSQL can record reports of the same handler at the same time:

* ``evento_telemetry_handler``: per (bundle, component, handler kind, payload) the sampled count, total, min, max
  and last service time, the arrivals, and the **aged mean** as the original keeps it (reference §4.5):
  ``aged = 0.67 · new + 0.33 · old``, applied once per report with the report's mean as ``new`` (a report is the
  bundle's own aggregate of its interval; applying the rule per sample would age a busy handler's mean within
  milliseconds and an idle one's never, so the report is the unit).
* ``evento_telemetry_rate``: the **arrival rate** per handler and bundle instance (arrivals ÷ the report's interval,
  aged by the same rule, and aged towards 0 by every report of the instance that did not see the handler). A
  handler's arrival rate is the sum over the instances that reported recently: replicas add up, and an instance
  that left stops counting.
* ``evento_telemetry_send``: the **invocation probability** per handler and sent payload — the mean number of sends
  of that payload per handling — as the original's EWMA with α = 0.33 (``p = 0.67 · old + 0.33 · new``, ``new``
  the report's sends ÷ its sampled handlings, 0 when a report's handlings sent none of it).
* ``evento_telemetry_bucket``: one row per handler per report (count, arrivals, mean, min, max), the time series
  :meth:`TelemetryStore.series` buckets; purged after ``ttl_days``.
* ``evento_telemetry_phase``: the command broker's phases of aggregate commands (lock, retrieve, compute — the
  bundle's round trip —, publish — the append — and the total), aggregated in memory by
  :class:`~evento.server.phases.BrokerPhases` and written once per ``flush_interval`` per command type; purged
  after ``ttl_days``.
* ``evento_telemetry_consumer``: each consumer's last reported position (the instance holding its lock wins).
* ``evento_telemetry_overhead``: per (bundle, consumer component) the **overhead per event** of its consumption
  beyond its handlers — thread hops, the checkpoint commit, a saga's state, an observer's claim: the component's
  consumers' busy time less its handlers' time, over the events they consumed (never below 0). Reports are pooled
  until they hold ``OVERHEAD_POOL`` events, and each pool's ratio is aged in by the same rule as the mean (a report
  of a handful of events must not weigh as much as a full one). The performance model adds it to the service time
  of the component's handler stations (:meth:`TelemetryStore.consumer_overheads`).

The server's own stations for the performance model are kept as handlers of the pseudo-bundle ``""`` (no bundle
may have a blank id): ``gateway`` — the broker's own work per command, its total less the lock wait, the bundle's
round trip and the append —, ``query_gateway`` — the query router's own work per query, its round trip to the
projection left out — and ``event_store`` — the append of one event as the broker waits for it (group commit
included). Framing and the TCP socket are in none of them: they are measured from the broker (and router) in.
:meth:`TelemetryStore.server_stations` answers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evento.discovery import HandlerKind
from evento.errors import EventoError
from evento.messages import ConsumerTelemetry, ReportTelemetry, now_ms
from evento.server.phases import PHASES, BrokerPhases, Spread

if TYPE_CHECKING:
    from collections.abc import Callable

    from evento.discovery import NodeInfo
    from evento.server.metrics import ServerMetrics
    from evento.server.registry import Registry
    from evento.storage.database import Cursor, Database

__all__ = [
    "CONSUMER_KINDS",
    "OVERHEAD_POOL",
    "SERVER_BUNDLE",
    "Aggregation",
    "HandlerSeries",
    "HandlerStats",
    "PhasePoint",
    "PhaseSeries",
    "SeriesPoint",
    "TelemetrySettings",
    "TelemetryStore",
    "overheads_of",
]

log = logging.getLogger(__name__)

#: The bundle id the server's own stations are kept under (a bundle's id is never blank).
SERVER_BUNDLE = ""

#: Weight of the newest value in the aged mean and the arrival rate (reference §4.5: 0.67 · new + 0.33 · old).
AGE_NEW = 0.67
#: Weight of the newest value in the invocation probability's EWMA (reference §4.5: α = 0.33).
PROBABILITY_NEW = 0.33
#: An instance whose last report is older than this many of its intervals (plus a grace) no longer adds its rate.
STALE_INTERVALS = 3
STALE_GRACE_MS = 5_000
#: Most buckets one series may have (the API refuses a wider range or a finer interval).
MAX_BUCKETS = 10_000

_DAY_MS = 86_400_000

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS evento_telemetry_handler (
        bundle_id TEXT NOT NULL,
        component TEXT NOT NULL,
        handler_kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        component_kind TEXT NOT NULL,
        samples BIGINT NOT NULL,
        total_ms DOUBLE PRECISION NOT NULL,
        aged_mean_ms DOUBLE PRECISION NOT NULL,
        min_ms DOUBLE PRECISION NOT NULL,
        max_ms DOUBLE PRECISION NOT NULL,
        last_ms DOUBLE PRECISION NOT NULL,
        arrivals BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        PRIMARY KEY (bundle_id, component, handler_kind, payload)
    )""",
    """CREATE TABLE IF NOT EXISTS evento_telemetry_rate (
        bundle_id TEXT NOT NULL,
        component TEXT NOT NULL,
        handler_kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        rate DOUBLE PRECISION NOT NULL,
        interval_ms BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        PRIMARY KEY (bundle_id, component, handler_kind, payload, instance_id)
    )""",
    """CREATE TABLE IF NOT EXISTS evento_telemetry_send (
        bundle_id TEXT NOT NULL,
        component TEXT NOT NULL,
        handler_kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        sent TEXT NOT NULL,
        probability DOUBLE PRECISION NOT NULL,
        sends BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        PRIMARY KEY (bundle_id, component, handler_kind, payload, sent)
    )""",
    """CREATE TABLE IF NOT EXISTS evento_telemetry_bucket (
        bundle_id TEXT NOT NULL,
        component TEXT NOT NULL,
        handler_kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        started_ms BIGINT NOT NULL,
        ended_ms BIGINT NOT NULL,
        samples BIGINT NOT NULL,
        arrivals BIGINT NOT NULL,
        mean_ms DOUBLE PRECISION NOT NULL,
        min_ms DOUBLE PRECISION NOT NULL,
        max_ms DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS evento_telemetry_bucket_component"
    " ON evento_telemetry_bucket (bundle_id, component, ended_ms)",
    "CREATE INDEX IF NOT EXISTS evento_telemetry_bucket_ended ON evento_telemetry_bucket (ended_ms)",
    """CREATE TABLE IF NOT EXISTS evento_telemetry_phase (
        server_id TEXT NOT NULL,
        bundle_id TEXT NOT NULL,
        component TEXT NOT NULL,
        payload TEXT NOT NULL,
        started_ms BIGINT NOT NULL,
        ended_ms BIGINT NOT NULL,
        samples BIGINT NOT NULL,
        total_mean DOUBLE PRECISION NOT NULL,
        total_min DOUBLE PRECISION NOT NULL,
        total_max DOUBLE PRECISION NOT NULL,
        lock_mean DOUBLE PRECISION NOT NULL,
        lock_min DOUBLE PRECISION NOT NULL,
        lock_max DOUBLE PRECISION NOT NULL,
        retrieve_mean DOUBLE PRECISION NOT NULL,
        retrieve_min DOUBLE PRECISION NOT NULL,
        retrieve_max DOUBLE PRECISION NOT NULL,
        compute_mean DOUBLE PRECISION NOT NULL,
        compute_min DOUBLE PRECISION NOT NULL,
        compute_max DOUBLE PRECISION NOT NULL,
        publish_mean DOUBLE PRECISION NOT NULL,
        publish_min DOUBLE PRECISION NOT NULL,
        publish_max DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS evento_telemetry_phase_component"
    " ON evento_telemetry_phase (bundle_id, component, ended_ms)",
    "CREATE INDEX IF NOT EXISTS evento_telemetry_phase_ended ON evento_telemetry_phase (ended_ms)",
    """CREATE TABLE IF NOT EXISTS evento_telemetry_consumer (
        consumer_id TEXT PRIMARY KEY,
        bundle_id TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        checkpoint BIGINT,
        dead_events BIGINT NOT NULL,
        enabled INTEGER NOT NULL,
        holds_lock INTEGER NOT NULL,
        error_count BIGINT NOT NULL,
        interval_ms BIGINT NOT NULL,
        received_ms BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS evento_telemetry_overhead (
        bundle_id TEXT NOT NULL,
        component TEXT NOT NULL,
        overhead_ms DOUBLE PRECISION NOT NULL,
        events BIGINT NOT NULL,
        pending_ms DOUBLE PRECISION NOT NULL,
        pending_events BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        PRIMARY KEY (bundle_id, component)
    )""",
]

# The statements of record(); the arithmetic of the aged values is done by the database, on the row it locks.
_UPSERT_HANDLER = """
INSERT INTO evento_telemetry_handler (bundle_id, component, handler_kind, payload, component_kind, samples, total_ms,
    aged_mean_ms, min_ms, max_ms, last_ms, arrivals, updated_ms)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (bundle_id, component, handler_kind, payload) DO UPDATE SET
    component_kind = excluded.component_kind,
    aged_mean_ms = CASE
        WHEN excluded.samples = 0 THEN evento_telemetry_handler.aged_mean_ms
        WHEN evento_telemetry_handler.samples = 0 THEN excluded.aged_mean_ms
        ELSE 0.67 * excluded.aged_mean_ms + 0.33 * evento_telemetry_handler.aged_mean_ms END,
    min_ms = CASE
        WHEN excluded.samples = 0 THEN evento_telemetry_handler.min_ms
        WHEN evento_telemetry_handler.samples = 0 OR excluded.min_ms < evento_telemetry_handler.min_ms
            THEN excluded.min_ms
        ELSE evento_telemetry_handler.min_ms END,
    max_ms = CASE
        WHEN excluded.max_ms > evento_telemetry_handler.max_ms THEN excluded.max_ms
        ELSE evento_telemetry_handler.max_ms END,
    last_ms = CASE WHEN excluded.samples = 0 THEN evento_telemetry_handler.last_ms ELSE excluded.last_ms END,
    samples = evento_telemetry_handler.samples + excluded.samples,
    total_ms = evento_telemetry_handler.total_ms + excluded.total_ms,
    arrivals = evento_telemetry_handler.arrivals + excluded.arrivals,
    updated_ms = excluded.updated_ms
"""

_UPSERT_RATE = """
INSERT INTO evento_telemetry_rate (bundle_id, component, handler_kind, payload, instance_id, rate, interval_ms,
    updated_ms)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (bundle_id, component, handler_kind, payload, instance_id) DO UPDATE SET
    rate = 0.67 * excluded.rate + 0.33 * evento_telemetry_rate.rate,
    interval_ms = excluded.interval_ms,
    updated_ms = excluded.updated_ms
"""

# An instance's report that did not see a handler it saw before: no arrivals in that interval.
_DECAY_RATES = """
UPDATE evento_telemetry_rate SET rate = 0.33 * rate, interval_ms = ?, updated_ms = ?
WHERE bundle_id = ? AND instance_id = ? AND updated_ms < ?
"""

_UPSERT_SEND = """
INSERT INTO evento_telemetry_send (bundle_id, component, handler_kind, payload, sent, probability, sends, updated_ms)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (bundle_id, component, handler_kind, payload, sent) DO UPDATE SET
    probability = 0.33 * excluded.probability + 0.67 * evento_telemetry_send.probability,
    sends = evento_telemetry_send.sends + excluded.sends,
    updated_ms = excluded.updated_ms
"""

# A report whose sampled handlings sent none of a payload the handler sent before: 0 for that payload.
_DECAY_SENDS = """
UPDATE evento_telemetry_send SET probability = 0.67 * probability, updated_ms = ?
WHERE bundle_id = ? AND component = ? AND handler_kind = ? AND payload = ? AND updated_ms < ?
"""

_INSERT_BUCKET = """
INSERT INTO evento_telemetry_bucket (bundle_id, component, handler_kind, payload, instance_id, started_ms, ended_ms,
    samples, arrivals, mean_ms, min_ms, max_ms)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

_UPSERT_CONSUMER = """
INSERT INTO evento_telemetry_consumer (consumer_id, bundle_id, instance_id, checkpoint, dead_events, enabled,
    holds_lock, error_count, interval_ms, received_ms)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (consumer_id) DO UPDATE SET
    bundle_id = excluded.bundle_id,
    instance_id = excluded.instance_id,
    checkpoint = excluded.checkpoint,
    dead_events = excluded.dead_events,
    enabled = excluded.enabled,
    holds_lock = excluded.holds_lock,
    error_count = excluded.error_count,
    interval_ms = excluded.interval_ms,
    received_ms = excluded.received_ms
WHERE excluded.holds_lock = 1 OR evento_telemetry_consumer.holds_lock = 0
    OR evento_telemetry_consumer.instance_id = excluded.instance_id OR evento_telemetry_consumer.received_ms < ?
"""

# A report's overhead (busy less handler time, and its events) is pooled first; the pool is aged into the overhead
# once it holds OVERHEAD_POOL events. One report with a handful of events (the last one of a bundle stopping, one
# flushed right after another) would otherwise weigh as much as a full one, and one slow commit in it would swing
# the aged value by milliseconds.
_POOL_OVERHEAD = """
INSERT INTO evento_telemetry_overhead (bundle_id, component, overhead_ms, events, pending_ms, pending_events,
    updated_ms)
VALUES (?, ?, 0.0, 0, ?, ?, ?)
ON CONFLICT (bundle_id, component) DO UPDATE SET
    pending_ms = evento_telemetry_overhead.pending_ms + excluded.pending_ms,
    pending_events = evento_telemetry_overhead.pending_events + excluded.pending_events,
    updated_ms = excluded.updated_ms
"""

# SET expressions all see the row as it was: the pool's ratio (never below 0) aged in, then the pool emptied.
_AGE_OVERHEAD = """
UPDATE evento_telemetry_overhead SET
    overhead_ms = CASE WHEN events = 0 THEN {ratio} ELSE 0.67 * {ratio} + 0.33 * overhead_ms END,
    events = events + pending_events,
    pending_ms = 0.0,
    pending_events = 0
WHERE bundle_id = ? AND component = ? AND pending_events >= ?
""".format(ratio="(CASE WHEN pending_ms > 0 THEN pending_ms / pending_events ELSE 0.0 END)")

#: Events a consumer component's pooled reports must hold before their overhead per event is aged in.
OVERHEAD_POOL = 32

#: The component kinds whose handlers run in consumer engines (their reports carry busy time).
CONSUMER_KINDS = frozenset({"Projector", "Saga", "Observer"})


def overheads_of(report: ReportTelemetry) -> dict[str, tuple[float, int]]:
    """Per consumer component of ``report``, its overhead in ms and the events consumed.

    The overhead is the busy time of the component's consumers less its handlers' time (possibly below 0 in one
    report: a handling timed in it may be committed in the next). A component whose handlings were all sampled out
    is left out (there is no handler time to subtract), as is one that consumed nothing."""
    # A component consumes in one engine per context; its handlers' telemetry covers all of them.
    busy: dict[str, tuple[float, int]] = {}
    for c in report.consumers:
        if c.events > 0 and c.component:
            busy_ms, events = busy.get(c.component, (0.0, 0))
            busy[c.component] = (busy_ms + c.busy_ms, events + c.events)
    handled: dict[str, float] = {}
    unknown: set[str] = set()
    for h in report.handlers:
        if h.component not in busy or h.component_kind not in CONSUMER_KINDS or h.arrivals <= 0:
            continue
        if h.count <= 0:
            unknown.add(h.component)
            continue
        # Sampled below a capture rate of 1: every arrival took the sampled mean.
        handled[h.component] = handled.get(h.component, 0.0) + h.total_ms * max(h.arrivals, h.count) / h.count
    return {
        component: (busy_ms - handled.get(component, 0.0), events)
        for component, (busy_ms, events) in busy.items()
        if component not in unknown
    }


class Aggregation(enum.StrEnum):
    """How the service times of a time bucket are combined: their mean, their maximum or their minimum."""

    AVG = "AVG"
    MAX = "MAX"
    MIN = "MIN"


@dataclass(frozen=True)
class TelemetrySettings:
    """``capture_rate``: the share of aggregate commands whose phases the command broker times
    (``--telemetry-rate``; bundles sample their own handlers by their own
    :class:`~evento.bundle.telemetry.TelemetryOptions`); ``ttl_days``: how long time buckets are kept
    (``--telemetry-ttl-days``); ``flush_interval``: seconds between writes of the broker's phases;
    ``purge_interval``: seconds between purges of expired buckets."""

    capture_rate: float = 1.0
    ttl_days: float = 365.0
    flush_interval: float = 5.0
    purge_interval: float = 3600.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.capture_rate <= 1.0:
            raise ValueError(f"the telemetry capture rate must be between 0 and 1, not {self.capture_rate}")
        if not self.ttl_days > 0:
            raise ValueError(f"the telemetry TTL must be a positive number of days, not {self.ttl_days}")
        if not (self.flush_interval > 0 and self.purge_interval > 0):
            raise ValueError("the telemetry flush and purge intervals must be positive")


@dataclass(frozen=True)
class HandlerStats:
    """What telemetry knows of one handler (times in milliseconds): ``count`` sampled handlings, their ``mean_ms``,
    aged mean, min, max and last; ``arrival_rate_per_s`` summed over the instances reporting it; and per sent
    payload the mean number of sends per handling (``invocation_probability``)."""

    bundle_id: str
    component: str
    component_kind: str
    handler_kind: str
    payload: str
    count: int
    mean_ms: float
    aged_mean_ms: float
    min_ms: float
    max_ms: float
    last_ms: float
    arrival_rate_per_s: float
    invocation_probability: dict[str, float]
    updated_ms: int
    #: Every handling seen, sampled or not.
    arrivals: int = 0

    @property
    def handler_id(self) -> str:
        """The catalog's handler id (``bundle:component:payload``)."""
        return f"{self.bundle_id}:{self.component}:{self.payload}"


@dataclass(frozen=True)
class SeriesPoint:
    """One time bucket from ``start_ms``: ``hits`` handlings (every arrival), and the service time of the sampled
    ones combined as asked (``None`` when none was sampled)."""

    start_ms: int
    hits: int
    service_time_ms: float | None


@dataclass(frozen=True)
class HandlerSeries:
    """The time buckets of one handler of a component."""

    component_kind: str
    handler_kind: str
    payload: str
    points: tuple[SeriesPoint, ...]


@dataclass(frozen=True)
class PhasePoint:
    """One time bucket of an aggregate command's phases (ms, combined as asked; ``None`` without samples)."""

    start_ms: int
    hits: int
    total_ms: float | None
    lock_ms: float | None
    retrieve_ms: float | None
    compute_ms: float | None
    publish_ms: float | None


@dataclass(frozen=True)
class PhaseSeries:
    """The broker's phases of one aggregate command type over time."""

    payload: str
    points: tuple[PhasePoint, ...]


# --- the store ---------------------------------------------------------------------------------------------------


class TelemetryStore:
    """Per-handler statistics and time buckets of one server (shared with every server of its cluster).

    ``registry`` names the bundle and component handling an aggregate command type, for the phase rows;
    ``metrics`` is fed every report.
    """

    def __init__(
        self,
        database: Database,
        settings: TelemetrySettings | None = None,
        *,
        server_id: str = "",
        metrics: ServerMetrics | None = None,
        registry: Registry | None = None,
    ) -> None:
        self.database = database
        self.settings = settings = settings or TelemetrySettings()
        self.server_id = server_id
        self.metrics = metrics
        self.registry = registry
        self.phases = BrokerPhases(settings.capture_rate)
        if metrics is not None:
            self.phases.on_append = metrics.observe_append
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the tables (once, even when servers of a cluster start together), purge what expired, and start
        the periodic flush of the broker's phases and the periodic purge."""
        await self.database.transaction(self._create_tables)
        await self.purge()
        self._tasks = [
            asyncio.create_task(self._every(self.settings.flush_interval, self.flush), name="evento-telemetry-flush"),
            asyncio.create_task(self._every(self.settings.purge_interval, self.purge), name="evento-telemetry-purge"),
        ]

    def _create_tables(self, cursor: Cursor) -> None:
        if self.database.dialect == "postgres":
            # Concurrent CREATE TABLE IF NOT EXISTS can collide on PostgreSQL's catalog: one server at a time.
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('evento_telemetry_schema'))")
        for statement in _SCHEMA:
            cursor.execute(statement)

    async def stop(self) -> None:
        """Stop the periodic tasks and write the broker's last phases."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(EventoError):
            await self.flush()

    async def _every(self, seconds: float, work: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await work()
            except EventoError as exc:  # the database is down for a while: the next round tries again
                log.warning("telemetry %s failed: %s", getattr(work, "__name__", "task"), exc)

    # --- writing ---------------------------------------------------------------------------------------------

    async def record(self, info: NodeInfo, report: ReportTelemetry) -> None:
        """Fold one bundle instance's report into the statistics, the buckets and the consumer positions."""
        now = now_ms()
        if self.metrics is not None:
            self.metrics.record_report(info, report, now)
        await self.database.transaction(
            lambda cursor: self._record(cursor, info.bundle_id, info.instance_id, report, now)
        )

    def _record(self, cursor: Cursor, bundle_id: str, instance_id: str, report: ReportTelemetry, now: int) -> None:
        interval_ms = max(1, report.ended - report.started)
        # Rows in key order: two servers recording reports of the same handlers lock them in the same order (on
        # PostgreSQL, two transactions taking row locks in different orders can deadlock).
        handlers = sorted(
            (h for h in report.handlers if h.arrivals > 0 or h.count > 0),
            key=lambda h: (h.component, h.handler_kind, h.payload),
        )
        handler_rows: list[tuple[Any, ...]] = []
        rate_rows: list[tuple[Any, ...]] = []
        send_rows: list[tuple[Any, ...]] = []
        decayed_sends: list[tuple[Any, ...]] = []
        bucket_rows: list[tuple[Any, ...]] = []
        for h in handlers:
            key = (bundle_id, h.component, h.handler_kind, h.payload)
            mean = h.total_ms / h.count if h.count else 0.0
            handler_rows.append(
                (*key, h.component_kind, h.count, h.total_ms, mean, h.min_ms, h.max_ms, h.last_ms, h.arrivals, now)
            )
            rate_rows.append((*key, instance_id, h.arrivals * 1000.0 / interval_ms, interval_ms, now))
            bucket_rows.append(
                (*key, instance_id, report.started, report.ended, h.count, h.arrivals, mean, h.min_ms, h.max_ms)
            )
            if h.count > 0:
                send_rows.extend((*key, sent, n / h.count, n, now) for sent, n in sorted(h.sends.items()) if n > 0)
                decayed_sends.append((now, *key, now))
        cursor.executemany(_UPSERT_HANDLER, handler_rows)
        cursor.executemany(_UPSERT_RATE, rate_rows)
        cursor.execute(_DECAY_RATES, (interval_ms, now, bundle_id, instance_id, now))
        cursor.executemany(_UPSERT_SEND, send_rows)
        cursor.executemany(_DECAY_SENDS, decayed_sends)
        cursor.executemany(_INSERT_BUCKET, bucket_rows)
        overheads = sorted(overheads_of(report).items())
        cursor.executemany(
            _POOL_OVERHEAD, [(bundle_id, component, excess, events, now) for component, (excess, events) in overheads]
        )
        cursor.executemany(_AGE_OVERHEAD, [(bundle_id, component, OVERHEAD_POOL) for component, _ in overheads])
        stale = now - STALE_INTERVALS * interval_ms - STALE_GRACE_MS
        cursor.executemany(
            _UPSERT_CONSUMER,
            [
                (
                    c.consumer_id,
                    bundle_id,
                    instance_id,
                    c.checkpoint,
                    c.dead_events,
                    int(c.enabled),
                    int(c.holds_lock),
                    c.error_count,
                    interval_ms,
                    now,
                    stale,
                )
                for c in sorted(report.consumers, key=lambda c: c.consumer_id)
            ],
        )

    async def flush(self) -> None:
        """Write the broker's phases and the server's stations collected since the last flush."""
        since, until, commands, stations = self.phases.take()
        if not commands and not stations:
            return
        phase_rows = []
        for payload, phases in sorted(commands.items()):
            bundle_id, component = self._owner(payload)
            values: list[Any] = [self.server_id, bundle_id, component, payload, since, until, phases.total.count]
            for name in PHASES:
                spread: Spread = getattr(phases, name)
                values += [spread.mean_ms(), spread.minimum / 1e6, spread.maximum / 1e6]
            phase_rows.append(tuple(values))
        report = ReportTelemetry(since, until, stations)
        columns = ", ".join(f"{p}_{a}" for p in PHASES for a in ("mean", "min", "max"))
        placeholders = ", ".join("?" for _ in range(7 + 3 * len(PHASES)))
        insert_phase = (
            "INSERT INTO evento_telemetry_phase (server_id, bundle_id, component, payload, started_ms, ended_ms,"
            f" samples, {columns}) VALUES ({placeholders})"
        )
        now = now_ms()

        def write(cursor: Cursor) -> None:
            cursor.executemany(insert_phase, phase_rows)
            self._record(cursor, SERVER_BUNDLE, self.server_id, report, now)

        await self.database.transaction(write)

    def _owner(self, payload: str) -> tuple[str, str]:
        """The bundle and component whose aggregate handles commands of type ``payload`` (blank when no instance
        of it is connected any more)."""
        if self.registry is not None:
            for node in self.registry.nodes:
                registration = node.registration
                for handler in registration.handlers if registration is not None else ():
                    if handler.payload == payload and handler.handler_kind is HandlerKind.AGGREGATE_COMMAND:
                        return node.info.bundle_id, handler.component
        return "", ""

    async def purge(self) -> int:
        """Delete the time buckets (handlers and phases) older than the TTL, and arrival rates and consumer
        positions nobody reported for as long; the number of rows deleted."""
        cutoff = now_ms() - round(self.settings.ttl_days * _DAY_MS)

        def purge(cursor: Cursor) -> int:
            deleted = cursor.execute("DELETE FROM evento_telemetry_bucket WHERE ended_ms < ?", (cutoff,))
            deleted += cursor.execute("DELETE FROM evento_telemetry_phase WHERE ended_ms < ?", (cutoff,))
            deleted += cursor.execute("DELETE FROM evento_telemetry_rate WHERE updated_ms < ?", (cutoff,))
            deleted += cursor.execute("DELETE FROM evento_telemetry_consumer WHERE received_ms < ?", (cutoff,))
            deleted += cursor.execute("DELETE FROM evento_telemetry_overhead WHERE updated_ms < ?", (cutoff,))
            return deleted

        deleted = await self.database.transaction(purge)
        if deleted:
            log.info("telemetry purge deleted %d rows older than %g days", deleted, self.settings.ttl_days)
        return deleted

    # --- reading ---------------------------------------------------------------------------------------------

    async def handler_stats(self, bundle_id: str | None = None) -> list[HandlerStats]:
        """The statistics of every handler reported (of one bundle when ``bundle_id`` is given), the server's
        stations left out."""
        stats = await self._stats(bundle_id)
        return [s for s in stats if s.bundle_id != SERVER_BUNDLE]

    async def consumer_overheads(self, bundle_id: str | None = None) -> dict[tuple[str, str], float]:
        """Per (bundle, consumer component), the aged overhead per event (ms) of its consumption beyond its
        handlers: what a projector's, saga's or observer's handler station takes per event on top of the
        handler's own service time (of one bundle when ``bundle_id`` is given)."""
        where, params = ("WHERE bundle_id = ?", (bundle_id,)) if bundle_id is not None else ("", ())
        rows = await self.database.fetchall(
            "SELECT bundle_id, component, overhead_ms FROM evento_telemetry_overhead"
            f" {where} {'AND' if where else 'WHERE'} events > 0",
            params,
        )
        return {(row[0], row[1]): float(row[2]) for row in rows}

    async def server_stations(self) -> dict[str, HandlerStats]:
        """The server's own stations for the performance model: ``gateway`` (the broker's own time per command),
        ``query_gateway`` (the router's per query) and ``event_store`` (the append of one event), with every server
        of the cluster counted."""
        return {s.handler_kind: s for s in await self._stats(SERVER_BUNDLE)}

    async def _stats(self, bundle_id: str | None) -> list[HandlerStats]:
        now = now_ms()
        where, params = ("WHERE bundle_id = ?", (bundle_id,)) if bundle_id is not None else ("", ())

        def read(cursor: Cursor) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
            handlers = cursor.fetchall(
                "SELECT bundle_id, component, handler_kind, payload, component_kind, samples, total_ms, aged_mean_ms,"
                f" min_ms, max_ms, last_ms, arrivals, updated_ms FROM evento_telemetry_handler {where}"
                " ORDER BY bundle_id, component, handler_kind, payload",
                params,
            )
            rates = cursor.fetchall(
                "SELECT bundle_id, component, handler_kind, payload, SUM(rate) FROM evento_telemetry_rate"
                f" {where} {'AND' if where else 'WHERE'} updated_ms >= ? - ? * interval_ms - ?"
                " GROUP BY bundle_id, component, handler_kind, payload",
                (*params, now, STALE_INTERVALS, STALE_GRACE_MS),
            )
            sends = cursor.fetchall(
                "SELECT bundle_id, component, handler_kind, payload, sent, probability"
                f" FROM evento_telemetry_send {where}",
                params,
            )
            return handlers, rates, sends

        handlers, rates, sends = await self.database.transaction(read)
        rate_of = {tuple(row[:4]): float(row[4]) for row in rates}
        sent_by: dict[tuple[Any, ...], dict[str, float]] = {}
        for row in sends:
            sent_by.setdefault(tuple(row[:4]), {})[row[4]] = float(row[5])
        stats = []
        for row in handlers:
            key = tuple(row[:4])
            samples, total = int(row[5]), float(row[6])
            stats.append(
                HandlerStats(
                    bundle_id=row[0],
                    component=row[1],
                    component_kind=row[4],
                    handler_kind=row[2],
                    payload=row[3],
                    count=samples,
                    mean_ms=total / samples if samples else 0.0,
                    aged_mean_ms=float(row[7]),
                    min_ms=float(row[8]),
                    max_ms=float(row[9]),
                    last_ms=float(row[10]),
                    arrival_rate_per_s=rate_of.get(key, 0.0),
                    invocation_probability=sent_by.get(key, {}),
                    updated_ms=int(row[12]),
                    arrivals=int(row[11]),
                )
            )
        return stats

    async def series(
        self,
        bundle_id: str,
        component_id: str,
        aggregation: Aggregation | str = Aggregation.AVG,
        interval_s: int = 60,
        from_ms: int | None = None,
        to_ms: int | None = None,
    ) -> list[HandlerSeries]:
        """Time buckets of ``interval_s`` seconds over ``[from_ms, to_ms)`` (default: the last hour) for every
        handler of a component: hits, and service times combined by ``aggregation``. Buckets without a report are
        there too (0 hits). Raises :class:`ValueError` for a range or interval that makes no series."""
        aggregation = Aggregation(aggregation)
        start, width, slots = _window(interval_s, from_ms, to_ms)

        def read(cursor: Cursor) -> list[tuple[Any, ...]]:
            return cursor.fetchall(
                "SELECT component_kind, handler_kind, payload, slot, SUM(arrivals), SUM(samples),"
                " SUM(mean_ms * samples), MAX(max_ms), MIN(CASE WHEN samples > 0 THEN min_ms END) FROM ("
                "  SELECT COALESCE(h.component_kind, '') AS component_kind, b.handler_kind, b.payload, b.arrivals,"
                "   b.samples, b.mean_ms, b.max_ms, b.min_ms, (b.ended_ms - ?) / ? AS slot"
                "  FROM evento_telemetry_bucket b LEFT JOIN evento_telemetry_handler h ON h.bundle_id = b.bundle_id"
                "   AND h.component = b.component AND h.handler_kind = b.handler_kind AND h.payload = b.payload"
                "  WHERE b.bundle_id = ? AND b.component = ? AND b.ended_ms >= ? AND b.ended_ms < ?"
                " ) slotted GROUP BY component_kind, handler_kind, payload, slot",
                (start, width, bundle_id, component_id, start, start + width * slots),
            )

        rows = await self.database.transaction(read)
        by_handler: dict[tuple[str, str, str], dict[int, SeriesPoint]] = {}
        for kind, handler_kind, payload, slot, hits, samples, weighted, maximum, minimum in rows:
            samples = int(samples or 0)
            if aggregation is Aggregation.AVG:
                value = float(weighted) / samples if samples else None
            elif aggregation is Aggregation.MAX:
                value = float(maximum) if samples else None
            else:
                value = float(minimum) if samples and minimum is not None else None
            point = SeriesPoint(start + int(slot) * width, int(hits or 0), value)
            by_handler.setdefault((kind, handler_kind, payload), {})[int(slot)] = point
        return [
            HandlerSeries(
                kind,
                handler_kind,
                payload,
                tuple(points.get(n) or SeriesPoint(start + n * width, 0, None) for n in range(slots)),
            )
            for (kind, handler_kind, payload), points in sorted(by_handler.items())
        ]

    async def aggregate_phases(
        self,
        bundle_id: str,
        component_id: str,
        aggregation: Aggregation | str = Aggregation.AVG,
        interval_s: int = 60,
        from_ms: int | None = None,
        to_ms: int | None = None,
    ) -> list[PhaseSeries]:
        """The broker's phases (lock, retrieve, compute, publish and the total) of an aggregate's command types in
        time buckets, as :meth:`series` buckets handlers."""
        aggregation = Aggregation(aggregation)
        start, width, slots = _window(interval_s, from_ms, to_ms)
        if aggregation is Aggregation.AVG:
            combine = [f"SUM({p}_mean * samples)" for p in PHASES]
        elif aggregation is Aggregation.MAX:
            combine = [f"MAX({p}_max)" for p in PHASES]
        else:
            combine = [f"MIN({p}_min)" for p in PHASES]

        def read(cursor: Cursor) -> list[tuple[Any, ...]]:
            return cursor.fetchall(
                f"SELECT payload, slot, SUM(samples), {', '.join(combine)} FROM ("
                f"  SELECT payload, samples, {', '.join(f'{p}_mean, {p}_min, {p}_max' for p in PHASES)},"
                "   (ended_ms - ?) / ? AS slot FROM evento_telemetry_phase"
                "  WHERE bundle_id = ? AND component = ? AND ended_ms >= ? AND ended_ms < ? AND samples > 0"
                " ) slotted GROUP BY payload, slot",
                (start, width, bundle_id, component_id, start, start + width * slots),
            )

        rows = await self.database.transaction(read)
        by_payload: dict[str, dict[int, PhasePoint]] = {}
        for payload, slot, samples, *values in rows:
            count = int(samples or 0)
            if aggregation is Aggregation.AVG:
                combined = [float(v) / count if count else None for v in values]
            else:
                combined = [float(v) if v is not None else None for v in values]
            by_payload.setdefault(payload, {})[int(slot)] = PhasePoint(start + int(slot) * width, count, *combined)
        return [
            PhaseSeries(
                payload,
                tuple(
                    points.get(n) or PhasePoint(start + n * width, 0, None, None, None, None, None)
                    for n in range(slots)
                ),
            )
            for payload, points in sorted(by_payload.items())
        ]

    async def consumer_positions(self) -> dict[str, tuple[ConsumerTelemetry, int]]:
        """Each consumer's last reported position (from the instance holding its lock when it reported) with when
        it was received (epoch ms)."""
        rows = await self.database.fetchall(
            "SELECT consumer_id, checkpoint, dead_events, enabled, holds_lock, error_count, received_ms"
            " FROM evento_telemetry_consumer ORDER BY consumer_id"
        )
        return {
            row[0]: (
                ConsumerTelemetry(
                    consumer_id=row[0],
                    checkpoint=None if row[1] is None else int(row[1]),
                    dead_events=int(row[2]),
                    enabled=bool(row[3]),
                    holds_lock=bool(row[4]),
                    error_count=int(row[5]),
                ),
                int(row[6]),
            )
            for row in rows
        }


def _window(interval_s: int, from_ms: int | None, to_ms: int | None) -> tuple[int, int, int]:
    """The first bucket's start, the bucket width (ms) and the number of buckets covering ``[from_ms, to_ms)``."""
    if not (isinstance(interval_s, int) and interval_s > 0):
        raise ValueError(f"the interval must be a positive number of seconds, not {interval_s!r}")
    width = interval_s * 1000
    end = now_ms() if to_ms is None else to_ms
    start = end - 3_600_000 if from_ms is None else from_ms
    if start < 0 or end <= start:
        raise ValueError("the range must start at or after 0 and end after it starts")
    slots = math.ceil((end - start) / width)
    if slots > MAX_BUCKETS:
        raise ValueError(f"{slots} buckets asked for; at most {MAX_BUCKETS} (widen the interval or narrow the range)")
    return start, width, slots
