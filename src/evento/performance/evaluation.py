"""Evaluating a network: operational analysis of an open queueing network (reference §5 "Performance evaluation").

Each source sends requests at ``1000 / inter-arrival ms`` per second; every edge carries its origin's throughput
times its invocation probability (how many requests of that kind one handling sends: 0.5, 1, 2, …). Stations
are infinite-server — the server's gateways and event store, command and query handlers, observers: they can be
replicated, so they carry whatever arrives — except a projector's or a saga's event handler, which one consumer
runs at a time (the holder of its consumer's lock): it has *one* server, so it completes at most ``servers /
service time`` requests per second. Above that it is a **bottleneck**: its throughput is capped at its capacity,
the stations after it see the capped rate, and its queue grows by the difference.

The handlers of one such consumer share its one server: after each pass the server is re-split among them in
proportion to the work they are offered, ``servers_h = λ_h·S_h / max(1, Σ λ·S)`` over the consumer's stations
(so when the consumer is not saturated each handler gets what it needs, and when it is each gets its share of a
fully busy server), and the rates are propagated again, until the shares move by less than ``1e-4`` in total or
after ten passes.

Outputs: per station the offered rate (workload), throughput, whether it is a bottleneck and which bottleneck
upstream limits it first (the *main* bottleneck), the queue growth, and its customers by Little's law (``L =
λ·S``, at most its servers for a one-consumer station); per bundle the concurrency ``Σ L``; per flow the
throughput at its main bottleneck (the original's "max throughput") and the source rate the flow sustains.

Instance counts: more instances of a bundle add servers only where servers can be added. Its infinite-server
stations already carry any rate, and its projectors and sagas keep one active consumer per context whatever the
number of instances (the others wait for the lock). So instance counts change no capacity in this model: they
divide a bundle's concurrency into the concurrency per instance — which is also the answer a what-if "three
instances of the query bundle" should give: the projector stays the bottleneck.

Units: service times in milliseconds, rates in requests per second (the original computed in requests per
millisecond).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from evento.performance.model import (
    Edge,
    HandlerStatistics,
    Network,
    ServerStationTimes,
    Source,
    Station,
    StationKind,
)

__all__ = [
    "DEFAULT_INTER_ARRIVAL_MS",
    "BundleLoad",
    "EdgeResult",
    "Evaluation",
    "FlowResult",
    "InvalidInputError",
    "PerformanceInputs",
    "Provenance",
    "StationResult",
    "WhatIf",
    "evaluate",
]

#: A source's inter-arrival time unless told otherwise: one request a second, as the original's flow page.
DEFAULT_INTER_ARRIVAL_MS = 1000.0
#: The re-split stops when the servers of all one-consumer stations moved by less than this in total …
TOLERANCE = 1e-4
#: … or after this many passes.
MAX_ITERATIONS = 10
#: A station is a bottleneck when offered more than its capacity by more than this share: when its consumer is
#: not saturated the re-split gives it exactly the servers its workload needs, and rounding must not make that
#: a bottleneck.
_RELATIVE_SLACK = 1e-9


_OVERFLOW = "the rates overflow: lower the invocation probabilities or the source rates"


class InvalidInputError(ValueError):
    """A what-if value out of range (a negative time, a zero inter-arrival time, …), or rates that overflow."""


class Provenance(enum.StrEnum):
    """Where a service time or an invocation probability comes from."""

    #: The telemetry's aged mean (a handler's) or the server's own measurement (a gateway's, the event store's).
    MEASURED = "measured"
    #: A what-if value.
    OVERRIDE = "override"
    #: No measurement: a consumer is assumed to take at least the time of the requests it sends, and 1 ms.
    ESTIMATE = "estimate"
    #: No measurement: no time, or one request per handling.
    DEFAULT = "default"


@dataclass(frozen=True)
class PerformanceInputs:
    """What the running system reports: per-handler statistics, the server's own stations, the number of online
    instances per bundle."""

    statistics: Sequence[HandlerStatistics] = ()
    server_stations: ServerStationTimes = field(default_factory=ServerStationTimes)
    instances: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class WhatIf:
    """Values to evaluate instead of the measured ones.

    ``service_times_ms``: handler id → mean service time, for every copy of the handler. ``invocation_probabilities``:
    handler id → payload → requests sent per handling. ``inter_arrival_ms``: source key (a handler id or a payload
    name) → time between two requests, and ``default_inter_arrival_ms`` for the other sources. ``instances``:
    bundle id → instance count. ``server_stations``: the server's station times (the ones not ``None``).
    Keys naming nothing in the network are ignored.
    """

    service_times_ms: Mapping[str, float] = field(default_factory=dict)
    invocation_probabilities: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    inter_arrival_ms: Mapping[str, float] = field(default_factory=dict)
    default_inter_arrival_ms: float = DEFAULT_INTER_ARRIVAL_MS
    instances: Mapping[str, int] = field(default_factory=dict)
    server_stations: ServerStationTimes = field(default_factory=ServerStationTimes)


@dataclass(frozen=True)
class StationResult:
    """One station evaluated. ``servers`` and ``capacity_per_s`` are ``None`` for an infinite-server station;
    ``main_bottleneck`` is the id of the first bottleneck upstream of it, if any."""

    station: Station
    service_time_ms: float
    service_time_provenance: Provenance
    servers: float | None
    capacity_per_s: float | None
    workload_per_s: float
    throughput_per_s: float
    bottleneck: bool
    main_bottleneck: int | None
    customers: float

    @property
    def queue_growth_per_s(self) -> float:
        """How fast its queue grows: what arrives minus what it completes."""
        return self.workload_per_s - self.throughput_per_s


@dataclass(frozen=True)
class EdgeResult:
    """One edge evaluated: its probability and the rate it carries (its origin's throughput × probability)."""

    edge: Edge
    probability: float
    probability_provenance: Provenance
    rate_per_s: float


@dataclass(frozen=True)
class FlowResult:
    """One flow (one source) evaluated.

    ``main_bottleneck``: of the bottlenecks with none upstream of them, the one that holds the flow back most (the
    smallest throughput ÷ workload); ``max_throughput_per_s`` the throughput there (the original's "max
    throughput", in requests of that station per second), ``None`` without a bottleneck. ``sustained_rate_per_s``:
    the source's requests per second the flow carries through it (the source rate when there is no bottleneck).
    ``saturation_rate_per_s``: the bottleneck law for this flow alone — the source rate at which its busiest
    one-consumer component is busy all the time, ``1 / max over consumers of Σ (visits × service time)``; ``None``
    when it passes no such station.
    """

    source: Source
    inter_arrival_ms: float
    workload_per_s: float
    main_bottleneck: int | None
    max_throughput_per_s: float | None
    sustained_rate_per_s: float
    saturation_rate_per_s: float | None


@dataclass(frozen=True)
class BundleLoad:
    """A bundle's concurrency: the customers of all its stations (``Σ L``), and per instance."""

    bundle_id: str
    customers: float
    instances: int
    customers_per_instance: float | None


@dataclass(frozen=True)
class Evaluation:
    """The evaluated network: stations, edges and flows in the network's order, bundles by id, the customers of
    the server's own stations, and how the re-split ended."""

    network: Network
    stations: list[StationResult]
    edges: list[EdgeResult]
    flows: list[FlowResult]
    bundles: list[BundleLoad]
    server_customers: float
    iterations: int
    converged: bool

    def station(self, station_id: int) -> StationResult:
        """The result of the station with this id."""
        for result in self.stations:
            if result.station.id == station_id:
                return result
        raise KeyError(station_id)

    def flow(self, key: str) -> FlowResult:
        """The result of the flow starting at the source with this key."""
        for result in self.flows:
            if result.source.key == key:
                return result
        raise KeyError(key)


def evaluate(network: Network, inputs: PerformanceInputs | None = None, what_if: WhatIf | None = None) -> Evaluation:
    """Evaluate ``network`` with the measurements of ``inputs`` and the overrides of ``what_if``.

    Raises :class:`InvalidInputError` for a what-if value out of range, or when the rates overflow.
    """
    return _Evaluator(network, inputs or PerformanceInputs(), what_if or WhatIf()).run()


@dataclass
class _Pass:
    """The rates of one propagation, by node id (sources included)."""

    workload: dict[int, float]
    throughput: dict[int, float]
    bottleneck: dict[int, bool]
    main_bottleneck: dict[int, int | None]


class _Evaluator:
    def __init__(self, network: Network, inputs: PerformanceInputs, what_if: WhatIf) -> None:
        _validate(what_if)
        self.network = network
        self.inputs = inputs
        self.what_if = what_if
        self.statistics = {s.handler_id: s for s in inputs.statistics}
        self.children: dict[int, list[Edge]] = {}
        for edge in network.edges:
            self.children.setdefault(edge.origin, []).append(edge)
        self.by_id = {station.id: station for station in network.stations}
        self.probabilities = [self._probability(edge) for edge in network.edges]
        # Every station has one edge into it (each path has its own copy of a station).
        self.into = {
            edge.target: probability for edge, (probability, _) in zip(network.edges, self.probabilities, strict=True)
        }
        self.times = {station.id: self._service_time(station) for station in network.stations}
        self.rates = {source.id: 1000.0 / self._inter_arrival(source) for source in network.sources}
        self.groups: dict[tuple[str, str], list[int]] = {}
        for station in network.stations:
            if station.one_active_consumer and station.handler is not None:
                key = (station.handler.bundle_id, station.handler.component)
                self.groups.setdefault(key, []).append(station.id)

    def run(self) -> Evaluation:
        servers = {i: 1.0 for ids in self.groups.values() for i in ids}
        iterations = 0
        while True:
            rates = self._propagate(servers)
            iterations += 1
            shares = self._resplit(rates)
            delta = sum(abs(shares[i] - servers[i]) for i in servers)
            servers = shares
            if delta < TOLERANCE or iterations >= MAX_ITERATIONS:
                break
        # Once more with the final shares, so that every figure reported agrees with the servers reported.
        rates = self._propagate(servers)
        return self._result(rates, servers, iterations, delta < TOLERANCE)

    # --- inputs --------------------------------------------------------------------------------------------

    def _inter_arrival(self, source: Source) -> float:
        return self.what_if.inter_arrival_ms.get(source.key, self.what_if.default_inter_arrival_ms)

    def _probability(self, edge: Edge) -> tuple[float, Provenance]:
        if edge.sender is None or edge.sent is None:
            return 1.0, Provenance.DEFAULT
        override = self.what_if.invocation_probabilities.get(edge.sender, {}).get(edge.sent)
        if override is not None:
            return override, Provenance.OVERRIDE
        stats = self.statistics.get(edge.sender)
        measured = stats.invocation_probability.get(edge.sent) if stats else None
        if measured is not None and math.isfinite(measured) and measured >= 0:
            return measured, Provenance.MEASURED
        # The handler's code sends it: once per handling until telemetry says how often.
        return 1.0, Provenance.DEFAULT

    def _measured_time(self, handler_id: str) -> tuple[float, Provenance] | None:
        override = self.what_if.service_times_ms.get(handler_id)
        if override is not None:
            return override, Provenance.OVERRIDE
        stats = self.statistics.get(handler_id)
        if stats is not None and stats.mean_service_ms is not None and _valid_time(stats.mean_service_ms):
            return stats.mean_service_ms, Provenance.MEASURED
        return None

    def _service_time(self, station: Station) -> tuple[float, Provenance]:
        if station.kind is StationKind.GATEWAY:
            field_name = "query_gateway_ms" if station.is_query else "gateway_ms"
            return self._server_time(field_name)
        if station.kind is StationKind.EVENT_STORE:
            return self._server_time("event_store_ms")
        if station.kind is StationKind.RESPONSE or station.handler is None:
            # The broker's time per command is all counted at its gateway station: the response is a waypoint.
            return 0.0, Provenance.DEFAULT
        known = self._measured_time(station.handler.handler_id)
        if known is not None:
            return known
        if station.kind is StationKind.CONSUMER:
            return self._estimate(station), Provenance.ESTIMATE
        return 0.0, Provenance.DEFAULT

    def _server_time(self, name: str) -> tuple[float, Provenance]:
        override: float | None = getattr(self.what_if.server_stations, name)
        if override is not None:
            return override, Provenance.OVERRIDE
        measured: float | None = getattr(self.inputs.server_stations, name)
        if measured is not None and _valid_time(measured):
            return measured, Provenance.MEASURED
        return 0.0, Provenance.DEFAULT

    def _estimate(self, station: Station) -> float:
        """A consumer nobody measured yet (as the original): it waits at least for the requests it sends — their
        handlers' measured times, times how many it sends — and takes at least a millisecond."""
        waited = 0.0
        for edge in self.children.get(station.id, ()):
            for hop in self.children.get(edge.target, ()):
                target = self.by_id[hop.target]
                if target.handler is not None and (known := self._measured_time(target.handler.handler_id)):
                    waited += self.into[edge.target] * known[0]
        return max(1.0, waited)

    # --- propagation ---------------------------------------------------------------------------------------

    def _propagate(self, servers: Mapping[int, float]) -> _Pass:
        rates = _Pass(dict(self.rates), dict(self.rates), {}, {})
        for edge, (probability, _) in zip(self.network.edges, self.probabilities, strict=True):
            origin, target = edge.origin, edge.target
            workload = rates.throughput[origin] * probability
            rates.workload[target] = workload
            capacity = _capacity(servers.get(target), self.times[target][0])
            if capacity is not None and workload > capacity * (1 + _RELATIVE_SLACK):
                rates.throughput[target] = capacity
                rates.bottleneck[target] = True
            else:
                rates.throughput[target] = workload
                rates.bottleneck[target] = False
            upstream = rates.main_bottleneck.get(origin)
            if upstream is None and rates.bottleneck.get(origin, False):
                upstream = origin
            rates.main_bottleneck[target] = upstream
        return rates

    def _resplit(self, rates: _Pass) -> dict[int, float]:
        """Each one-consumer station's share of its consumer's one server: its demand ``λ·S`` over the demand of
        all the consumer's stations, or all it needs while that total is below one server."""
        shares: dict[int, float] = {}
        for ids in self.groups.values():
            demands = {i: rates.workload[i] * self.times[i][0] / 1000.0 for i in ids}
            total = max(1.0, sum(demands.values()))
            shares.update({i: demand / total for i, demand in demands.items()})
        return shares

    # --- results -------------------------------------------------------------------------------------------

    def _result(self, rates: _Pass, servers: Mapping[int, float], iterations: int, converged: bool) -> Evaluation:
        stations = []
        for station in self.network.stations:
            time_ms, provenance = self.times[station.id]
            workload = rates.workload[station.id]
            share = servers.get(station.id)
            customers = workload * time_ms / 1000.0
            if share is not None:
                customers = min(share, customers)
            stations.append(
                StationResult(
                    station=station,
                    service_time_ms=time_ms,
                    service_time_provenance=provenance,
                    servers=share,
                    capacity_per_s=_capacity(share, time_ms),
                    workload_per_s=workload,
                    throughput_per_s=rates.throughput[station.id],
                    bottleneck=rates.bottleneck[station.id],
                    main_bottleneck=rates.main_bottleneck[station.id],
                    customers=customers,
                )
            )
        edges = [
            EdgeResult(edge, probability, provenance, rates.throughput[edge.origin] * probability)
            for edge, (probability, provenance) in zip(self.network.edges, self.probabilities, strict=True)
        ]
        for value in (*(r.workload_per_s for r in stations), *(r.customers for r in stations)):
            if not math.isfinite(value):
                raise InvalidInputError(_OVERFLOW)
        return Evaluation(
            network=self.network,
            stations=stations,
            edges=edges,
            flows=self._flows(stations),
            bundles=self._bundles(stations),
            server_customers=sum(r.customers for r in stations if r.station.bundle_id is None),
            iterations=iterations,
            converged=converged,
        )

    def _flows(self, stations: Sequence[StationResult]) -> list[FlowResult]:
        # Visits per source request at each station: the product of the probabilities on its path (one path
        # leads to each station, so one pass over the edges in order gives them all).
        visits: dict[int, float] = {source.id: 1.0 for source in self.network.sources}
        for edge, (probability, _) in zip(self.network.edges, self.probabilities, strict=True):
            visits[edge.target] = visits[edge.origin] * probability
        if not all(math.isfinite(v) for v in visits.values()):
            raise InvalidInputError(_OVERFLOW)
        by_flow: dict[str, list[StationResult]] = {}
        for result in stations:
            by_flow.setdefault(result.station.flow, []).append(result)
        return [self._flow(source, by_flow.get(source.key, []), visits) for source in self.network.sources]

    def _flow(self, source: Source, own: Sequence[StationResult], visits: Mapping[int, float]) -> FlowResult:
        rate = self.rates[source.id]
        first = [r for r in own if r.bottleneck and r.main_bottleneck is None]
        main = min(first, key=lambda r: r.throughput_per_s / r.workload_per_s, default=None)
        # The bottleneck law for this flow alone: its demand on each one-consumer component per source request.
        demand: dict[tuple[str, str], float] = {}
        for r in own:
            station = r.station
            if station.one_active_consumer and station.handler is not None:
                key = (station.handler.bundle_id, station.handler.component)
                demand[key] = demand.get(key, 0.0) + visits[station.id] * r.service_time_ms / 1000.0
        busiest = max(demand.values(), default=0.0)
        return FlowResult(
            source=source,
            inter_arrival_ms=1000.0 / rate,
            workload_per_s=rate,
            main_bottleneck=main.station.id if main else None,
            max_throughput_per_s=main.throughput_per_s if main else None,
            sustained_rate_per_s=rate * main.throughput_per_s / main.workload_per_s if main else rate,
            saturation_rate_per_s=1.0 / busiest if busiest > 0 else None,
        )

    def _bundles(self, stations: Sequence[StationResult]) -> list[BundleLoad]:
        customers: dict[str, float] = {}
        for result in stations:
            if result.station.bundle_id is not None:
                customers[result.station.bundle_id] = customers.get(result.station.bundle_id, 0.0) + result.customers
        loads = []
        for bundle_id in sorted(customers):
            count = self.what_if.instances.get(bundle_id, self.inputs.instances.get(bundle_id, 1))
            per_instance = customers[bundle_id] / count if count > 0 else None
            loads.append(BundleLoad(bundle_id, customers[bundle_id], count, per_instance))
        return loads


def _capacity(servers: float | None, time_ms: float) -> float | None:
    """Requests per second ``servers`` complete at ``time_ms`` each; ``None`` for no limit (infinite servers, or a
    station that takes no time)."""
    if servers is None or time_ms <= 0:
        return None
    return servers * 1000.0 / time_ms


def _valid_time(value: float) -> bool:
    return math.isfinite(value) and value >= 0


def _validate(what_if: WhatIf) -> None:
    for key, value in what_if.service_times_ms.items():
        if not _valid_time(value):
            raise InvalidInputError(f"the service time of {key} must be a finite number of ms, 0 or more")
    for key, payloads in what_if.invocation_probabilities.items():
        for payload, value in payloads.items():
            if not (math.isfinite(value) and value >= 0):
                raise InvalidInputError(f"the invocation probability of {payload} by {key} must be finite, 0 or more")
    for key, value in (*what_if.inter_arrival_ms.items(), ("the default", what_if.default_inter_arrival_ms)):
        if not (math.isfinite(value) and value > 0):
            raise InvalidInputError(f"the inter-arrival time of {key} must be a finite number of ms above 0")
    for key, count in what_if.instances.items():
        if count < 1:
            raise InvalidInputError(f"the instance count of {key} must be 1 or more")
    for name in ("gateway_ms", "event_store_ms", "query_gateway_ms"):
        value = getattr(what_if.server_stations, name)
        if value is not None and not _valid_time(value):
            raise InvalidInputError(f"the server's {name.removesuffix('_ms')} time must be a finite number of ms")
