"""Prometheus metrics of one server (``GET /metrics``), in a registry of its own: several servers may live in one
process (tests, ``evento demo``), and each must expose only its own figures.

Exposed (the text format of ``prometheus_client``):

* ``evento_bus_connections`` / ``evento_bus_requests_in_flight``: TCP connections of the bus listener(s) and the
  requests they are handling right now;
* ``evento_handler_invocations_total{bundle,component,kind,handler}``: every handling the bundles reported (the
  handler label is the handled payload, as in the catalog's handler ids);
* ``evento_handler_service_seconds{bundle,component,kind,handler}``: the sampled service times, as a histogram
  whose ``_sum`` and ``_count`` are exact. The reports carry each interval's count, total, min and max, not each
  sample, so the histogram has only the ``+Inf`` bucket; ``evento_handler_service_seconds_max`` is the largest of
  the last report;
* ``evento_consumer_lag_events{consumer,bundle}`` (the head of the log less the consumer's checkpoint) and
  ``evento_consumer_dead_events{consumer,bundle}``, from the positions the bundles report; a consumer nobody
  reported for three of its intervals (and a minute) is left out;
* ``evento_event_store_appends_total`` and ``evento_event_store_append_seconds`` (histogram): the events the command
  broker appended and how long each append took to commit as the broker waited for it (group commit included).

Values are kept in plain Python objects on the event loop and turned into metric families only when scraped (a
custom collector), so the command path pays an integer increment and a bisect, not a metric library's lock.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from prometheus_client.metrics_core import Metric

    from evento.discovery import NodeInfo
    from evento.event_stores.base import EventStore
    from evento.messages import ReportTelemetry

__all__ = ["APPEND_BUCKETS", "BusGauge", "ServerMetrics"]

#: Upper bounds (seconds) of the append latency histogram: a group commit on a fast disk takes tens of µs to a
#: few ms; a stalled database seconds.
APPEND_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: A consumer position older than this many of its report intervals (and a minute) is no longer exposed.
_STALE_INTERVALS = 3
_STALE_GRACE_S = 60.0

_HANDLER_LABELS = ["bundle", "component", "kind", "handler"]
_CONSUMER_LABELS = ["consumer", "bundle"]


class BusGauge(Protocol):
    """What the metrics read of a bus listener: its connections and the requests it is handling."""

    @property
    def connection_count(self) -> int: ...

    @property
    def requests_in_flight(self) -> int: ...


class _HandlerFigures:
    __slots__ = ("arrivals", "last_max_s", "samples", "total_s")

    def __init__(self) -> None:
        self.arrivals = 0
        self.samples = 0
        self.total_s = 0.0
        self.last_max_s = 0.0


class _Position:
    __slots__ = ("bundle", "checkpoint", "dead_events", "expires", "holds_lock")

    def __init__(self, bundle: str, checkpoint: int | None, dead_events: int, holds_lock: bool, expires: float) -> None:
        self.bundle = bundle
        self.checkpoint = checkpoint
        self.dead_events = dead_events
        self.holds_lock = holds_lock
        self.expires = expires


class ServerMetrics(Collector):
    """The figures of one server and their Prometheus text (:meth:`render`)."""

    def __init__(self, store: EventStore | None = None) -> None:
        self.store = store
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self.buses: list[BusGauge] = []
        self.head = 0
        self._handlers: dict[tuple[str, str, str, str], _HandlerFigures] = {}
        self._positions: dict[str, _Position] = {}
        self.appends = 0
        self._append_counts = [0] * (len(APPEND_BUCKETS) + 1)
        self._append_sum = 0.0

    # --- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Follow the event store's head (for consumer lag)."""
        if self.store is not None:
            self.head = await self.store.head()
            self.store.add_listener(self._on_head)

    async def stop(self) -> None:
        if self.store is not None:
            self.store.remove_listener(self._on_head)

    def _on_head(self, head: int) -> None:
        self.head = head

    # --- fed by the server -----------------------------------------------------------------------------------

    def watch_bus(self, bus: BusGauge) -> None:
        """Expose a bus listener's connections and in-flight requests (until :meth:`unwatch_bus`)."""
        self.buses.append(bus)

    def unwatch_bus(self, bus: BusGauge) -> None:
        if bus in self.buses:
            self.buses.remove(bus)

    def observe_append(self, seconds: float) -> None:
        """One event appended by the broker, committed ``seconds`` after it asked."""
        self.appends += 1
        self._append_sum += seconds
        self._append_counts[bisect_left(APPEND_BUCKETS, seconds)] += 1

    def record_report(self, info: NodeInfo, report: ReportTelemetry, received_ms: int) -> None:
        """Count a bundle instance's telemetry report: its handlers' invocations and service times, its consumers'
        positions."""
        bundle = info.bundle_id
        for h in report.handlers:
            key = (bundle, h.component, h.handler_kind, h.payload)
            figures = self._handlers.get(key)
            if figures is None:
                figures = self._handlers[key] = _HandlerFigures()
            figures.arrivals += h.arrivals
            figures.samples += h.count
            figures.total_s += h.total_ms / 1000
            if h.count:
                figures.last_max_s = h.max_ms / 1000
        interval_s = max(0.001, (report.ended - report.started) / 1000)
        now = time.monotonic()
        expires = now + _STALE_INTERVALS * interval_s + _STALE_GRACE_S
        for c in report.consumers:
            present = self._positions.get(c.consumer_id)
            # The instance holding the consumer's lock is the one consuming: its position wins over a standby's.
            if present is None or c.holds_lock or not present.holds_lock or present.expires < now:
                self._positions[c.consumer_id] = _Position(bundle, c.checkpoint, c.dead_events, c.holds_lock, expires)

    # --- scraping --------------------------------------------------------------------------------------------

    def render(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)

    def collect(self) -> Iterable[Metric]:
        yield from self._bus()
        yield from self._handler_figures()
        yield from self._consumers()
        yield from self._event_store()

    def _bus(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "evento_bus_connections",
            "TCP connections to the bus listener",
            value=sum(bus.connection_count for bus in self.buses),
        )
        yield GaugeMetricFamily(
            "evento_bus_requests_in_flight",
            "Requests of bundles the bus is handling now",
            value=sum(bus.requests_in_flight for bus in self.buses),
        )

    def _handler_figures(self) -> Iterator[Metric]:
        invocations = CounterMetricFamily(
            "evento_handler_invocations", "Handlings reported by the bundles", labels=_HANDLER_LABELS
        )
        service = HistogramMetricFamily(
            "evento_handler_service_seconds", "Sampled service times of handlers", labels=_HANDLER_LABELS
        )
        maximum = GaugeMetricFamily(
            "evento_handler_service_seconds_max",
            "Largest sampled service time in a handler's last report",
            labels=_HANDLER_LABELS,
        )
        for labels, figures in sorted(self._handlers.items()):
            values = list(labels)
            invocations.add_metric(values, figures.arrivals)
            service.add_metric(values, [("+Inf", figures.samples)], sum_value=figures.total_s)
            maximum.add_metric(values, figures.last_max_s)
        yield invocations
        yield service
        yield maximum

    def _consumers(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "evento_consumer_lag_events", "Events a consumer has yet to handle (head less checkpoint)",
            labels=_CONSUMER_LABELS,
        )  # fmt: skip
        dead = GaugeMetricFamily(
            "evento_consumer_dead_events", "Events in a consumer's dead event queue", labels=_CONSUMER_LABELS
        )
        now = time.monotonic()
        for consumer_id, position in sorted(self._positions.items()):
            if position.expires < now:
                continue
            labels = [consumer_id, position.bundle]
            lag.add_metric(labels, max(0, self.head - (position.checkpoint or 0)))
            dead.add_metric(labels, position.dead_events)
        yield lag
        yield dead

    def _event_store(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "evento_event_store_appends", "Events appended by the command broker", value=self.appends
        )
        buckets: list[tuple[str, float]] = []
        cumulative = 0
        for bound, count in zip((*APPEND_BUCKETS, float("inf")), self._append_counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily(
            "evento_event_store_append_seconds",
            "Commit latency of an append as the broker waits for it (group commit included)",
            buckets=buckets,
            sum_value=self._append_sum,
        )
