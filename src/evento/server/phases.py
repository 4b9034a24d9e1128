"""The command broker's and the query router's telemetry, in memory: the phases of each aggregate command (lock,
retrieve, compute, publish) and the server's own stations (gateway, query gateway, event store), counted on the event
loop with no lock and no I/O, and taken once per flush interval by :class:`~evento.server.telemetry.TelemetryStore`.
"""

from __future__ import annotations

import random
from time import perf_counter_ns
from typing import TYPE_CHECKING

from evento.messages import HandlerTelemetry, now_ms

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "EVENT_STORE",
    "GATEWAY",
    "PHASES",
    "QUERY_GATEWAY",
    "SERVER_COMPONENT",
    "BrokerPhases",
    "CommandPhases",
    "PhaseClock",
    "Spread",
]

#: The component naming the server's stations.
SERVER_COMPONENT = "EventoServer"
GATEWAY = "gateway"
QUERY_GATEWAY = "query_gateway"
EVENT_STORE = "event_store"
#: An aggregate command's phases, as the phase rows name them.
PHASES = ("total", "lock", "retrieve", "compute", "publish")


class Spread:
    """Count, sum, min and max of one measure (nanoseconds)."""

    __slots__ = ("count", "maximum", "minimum", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0
        self.minimum = 0
        self.maximum = 0

    def add(self, value: int) -> None:
        if self.count == 0 or value < self.minimum:
            self.minimum = value
        if value > self.maximum:
            self.maximum = value
        self.count += 1
        self.total += value

    def mean_ms(self) -> float:
        return self.total / self.count / 1e6 if self.count else 0.0


class CommandPhases:
    """The phases of one aggregate command type since the last flush."""

    __slots__ = ("compute", "lock", "publish", "retrieve", "total")

    def __init__(self) -> None:
        self.total = Spread()
        self.lock = Spread()
        self.retrieve = Spread()
        self.compute = Spread()
        self.publish = Spread()


class PhaseClock:
    """The phases of one command being timed (nanoseconds), filled in by the broker as it goes."""

    __slots__ = ("aggregate", "compute", "lock", "publish", "retrieve", "start")

    def __init__(self) -> None:
        self.start = perf_counter_ns()
        #: Routed to an aggregate (its phases are kept per command type), not to a service.
        self.aggregate = False
        self.lock = 0
        self.retrieve = 0
        self.compute = 0
        self.publish = 0


class BrokerPhases:
    """The command broker's telemetry, kept in memory on the event loop (no lock, no I/O on the command path) and
    taken by :class:`TelemetryStore` once per flush interval.

    Every command counts as an arrival; ``capture_rate`` of them are timed phase by phase (:meth:`begin` answers a
    :class:`PhaseClock` or ``None``). A timed command costs one tuple appended; the statistics are made from them
    when they are taken. Every append is counted and timed for the metrics (``on_append``).
    """

    def __init__(self, capture_rate: float = 1.0) -> None:
        self.capture_rate = capture_rate
        self.enabled = capture_rate > 0
        self._always = capture_rate >= 1.0
        self._random = random.random
        # (aggregate command type or None for a service command, total, lock, retrieve, compute, publish) in ns.
        self._timed: list[tuple[str | None, int, int, int, int, int]] = []
        self._append_times: list[int] = []
        self._query_times: list[int] = []
        self.query_arrivals = 0
        self.command_arrivals = 0
        self.appends = 0
        self._since = now_ms()
        #: Called with each append's latency in seconds (the metrics' histogram), when set.
        self.on_append: Callable[[float], None] | None = None

    def begin(self) -> PhaseClock | None:
        """A command arrives: its clock if it is timed."""
        self.command_arrivals += 1
        if self.enabled and (self._always or self._random() < self.capture_rate):
            return PhaseClock()
        return None

    def begin_query(self) -> bool:
        """A query arrives: whether its routing is timed."""
        self.query_arrivals += 1
        return self.enabled and (self._always or self._random() < self.capture_rate)

    def queried(self, own_ns: int) -> None:
        """A timed query's routing took ``own_ns`` (its round trip to the projection left out)."""
        self._query_times.append(own_ns)

    def appended(self, started_ns: int, clock: PhaseClock | None) -> None:
        """An append the broker waited for since ``started_ns`` ended."""
        elapsed = perf_counter_ns() - started_ns
        self.appends += 1
        if clock is not None:
            clock.publish += elapsed
            self._append_times.append(elapsed)
        on_append = self.on_append
        if on_append is not None:
            on_append(elapsed / 1e9)

    def end(self, clock: PhaseClock, payload: str) -> None:
        """A timed command ended (answered or failed)."""
        total = perf_counter_ns() - clock.start
        self._timed.append(
            (payload if clock.aggregate else None, total, clock.lock, clock.retrieve, clock.compute, clock.publish)
        )

    def take(self) -> tuple[int, int, dict[str, CommandPhases], list[HandlerTelemetry]]:
        """The interval since the last take (epoch ms), the phases per aggregate command type, and the server's
        stations as handler telemetry; starts a new interval."""
        since, until = self._since, now_ms()
        self._since = until
        timed, self._timed = self._timed, []
        append_times, self._append_times = self._append_times, []
        query_times, self._query_times = self._query_times, []
        queries, self.query_arrivals = self.query_arrivals, 0
        arrivals, self.command_arrivals = self.command_arrivals, 0
        appends, self.appends = self.appends, 0
        commands: dict[str, CommandPhases] = {}
        gateway, event_store, query_gateway = Spread(), Spread(), Spread()
        for payload, total, lock, retrieve, compute, publish in timed:
            # The broker's own work: what is left of the command once the waits (lock, bundle, append) are out.
            gateway.add(max(0, total - lock - compute - publish))
            if payload is None:
                continue
            phases = commands.get(payload)
            if phases is None:
                phases = commands[payload] = CommandPhases()
            phases.total.add(total)
            phases.lock.add(lock)
            phases.retrieve.add(retrieve)
            phases.compute.add(compute)
            phases.publish.add(publish)
        for elapsed in append_times:
            event_store.add(elapsed)
        for elapsed in query_times:
            query_gateway.add(elapsed)
        stations = [
            _station(GATEWAY, gateway, arrivals),
            _station(EVENT_STORE, event_store, appends),
            _station(QUERY_GATEWAY, query_gateway, queries),
        ]
        return since, until, commands, [s for s in stations if s.arrivals or s.count]


def _station(name: str, spread: Spread, arrivals: int) -> HandlerTelemetry:
    return HandlerTelemetry(
        component=SERVER_COMPONENT,
        component_kind="Server",
        handler_kind=name,
        payload=name,
        count=spread.count,
        total_ms=spread.total / 1e6,
        min_ms=spread.minimum / 1e6,
        max_ms=spread.maximum / 1e6,
        last_ms=spread.mean_ms(),
        arrivals=arrivals,
    )
