"""The autoscaling protocol, bundle side: the thread-count protocol's counters (a clock of the test's own, no
sleeps), and the signals travelling from a real bundle's handler executions to an in-process server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from evento import Bundle, CommandGateway, ServiceCommand, command_handler, event_handler, projector, service
from evento.bundle.autoscaling import AutoscalingProtocol, ThreadCountAutoscalingProtocol
from evento.discovery import NodeInfo
from evento.messages import AdminDone, StopInstance
from evento.server import EventoServer
from tests.ticks import Tick, Ticked


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def protocol(**kwargs: Any) -> tuple[ThreadCountAutoscalingProtocol, list[bool], Clock]:
    clock = Clock()
    settings: dict[str, Any] = {
        "max_thread_count": 2,
        "min_thread_count": 1,
        "max_overflow_count": 3,
        "max_underflow_count": 2,
        "bored_timeout": 10.0,
    }
    settings.update(kwargs)
    made = ThreadCountAutoscalingProtocol(**settings, clock=clock)
    signals: list[bool] = []
    made.bind(signals.append)
    return made, signals, clock


# --- the thread-count protocol's counters -------------------------------------------------------------------------


def test_consecutive_overflows_send_one_suffering_signal_then_count_again() -> None:
    scaling, signals, _ = protocol()
    scaling.arrival()
    scaling.arrival()  # 2 in flight: at the bound, no overflow
    assert (scaling.overflow_count, signals) == (0, [])
    scaling.arrival()  # 3 > 2
    scaling.arrival()  # 4
    assert (scaling.thread_count, scaling.overflow_count, signals) == (4, 2, [])
    scaling.arrival()  # the third consecutive overflow
    assert (scaling.overflow_count, signals) == (0, [True])
    for _ in range(3):  # load that lasts keeps reminding the server, once per max_overflow_count overflows
        scaling.arrival()
    assert signals == [True, True]
    assert scaling.suffering_signals == 2


def test_only_an_arrival_within_the_bound_ends_an_overflow_run() -> None:
    scaling, signals, _ = protocol()
    for _ in range(4):
        scaling.arrival()  # 3 and 4 overflow
    assert scaling.overflow_count == 2
    scaling.departure()
    scaling.departure()  # 2 in flight: departures leave the run as it is
    scaling.arrival()  # 3 > 2: the run's third overflow
    assert (scaling.overflow_count, signals) == (0, [True])
    scaling.departure()
    scaling.departure()  # 1 in flight
    scaling.arrival()  # 2: within the bound
    assert scaling.overflow_count == 0
    scaling.arrival()
    scaling.arrival()  # two overflows: not yet three in a row
    assert signals == [True]


def test_short_spikes_never_suffer() -> None:
    scaling, signals, _ = protocol()
    for _ in range(20):
        for _ in range(4):
            scaling.arrival()  # overflows at 3 and 4
        for _ in range(3):
            scaling.departure()
        scaling.departure()
    assert signals == []  # each spike is a run of two overflows, ended by the next spike's first arrival


def test_consecutive_underflows_send_one_bored_signal_then_count_again() -> None:
    scaling, signals, _ = protocol()
    scaling.arrival()
    scaling.departure()  # 0 < 1: an underflow
    assert (scaling.underflow_count, signals) == (1, [])
    scaling.arrival()
    scaling.departure()  # the second in a row
    assert (scaling.underflow_count, signals) == (0, [False])
    scaling.arrival()
    scaling.departure()
    scaling.arrival()
    scaling.departure()
    assert signals == [False, False]
    assert scaling.bored_signals == 2


def test_a_departure_within_the_bound_ends_an_underflow_run() -> None:
    scaling, signals, _ = protocol()
    scaling.arrival()
    scaling.departure()  # underflow 1
    scaling.arrival()
    scaling.arrival()
    scaling.departure()  # 1 in flight: within the bound
    assert scaling.underflow_count == 0
    scaling.departure()  # 0: the run starts again at 1
    assert (scaling.underflow_count, signals) == (1, [])


def test_overflow_resets_the_underflow_run_and_the_reverse() -> None:
    scaling, signals, _ = protocol(max_underflow_count=3)
    scaling.arrival()
    scaling.departure()
    scaling.arrival()
    scaling.departure()  # underflows: 2
    for _ in range(3):
        scaling.arrival()  # 3 in flight: an overflow
    assert (scaling.overflow_count, scaling.underflow_count) == (1, 0)
    for _ in range(3):
        scaling.departure()  # 0 in flight: an underflow
    assert (scaling.overflow_count, scaling.underflow_count) == (0, 1)
    assert signals == []


def test_bored_timeout_signals_an_idle_instance_once_per_timeout() -> None:
    scaling, signals, clock = protocol()
    scaling.check()
    clock.now += 9.9
    scaling.check()
    assert signals == []
    clock.now += 0.1  # ten seconds without a departure
    scaling.check()
    assert signals == [False]
    scaling.check()
    clock.now += 5
    scaling.check()
    assert signals == [False]  # once per timeout, not per check
    clock.now += 5
    scaling.check()
    assert signals == [False, False]


def test_a_departure_restarts_the_bored_timeout() -> None:
    scaling, signals, clock = protocol(max_underflow_count=100)
    clock.now += 8
    scaling.arrival()
    scaling.departure()
    clock.now += 8
    scaling.check()
    assert signals == []
    clock.now += 2
    scaling.check()
    assert signals == [False]


def test_a_busy_instance_is_never_bored_by_the_timeout() -> None:
    scaling, signals, clock = protocol()
    scaling.arrival()
    scaling.arrival()  # 2 in flight, above min_thread_count=1: long handlers, not idleness
    clock.now += 60
    scaling.check()
    assert signals == []


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="min_thread_count"):
        ThreadCountAutoscalingProtocol(max_thread_count=1, min_thread_count=2)
    with pytest.raises(ValueError, match="bored_timeout"):
        ThreadCountAutoscalingProtocol(max_thread_count=1, bored_timeout=0)


def test_signals_before_binding_are_counted_and_dropped() -> None:
    scaling = ThreadCountAutoscalingProtocol(max_thread_count=1, max_overflow_count=1)
    scaling.arrival()
    scaling.arrival()
    assert scaling.suffering_signals == 1


# --- a real bundle: every handler execution arrives and departs -------------------------------------------------


class Counting(AutoscalingProtocol):
    """A protocol that records arrivals, departures and the most in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals = 0
        self.departures = 0
        self.in_flight = 0
        self.peak = 0

    def arrival(self) -> None:
        self.arrivals += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)

    def departure(self) -> None:
        self.departures += 1
        self.in_flight -= 1


class Slow(ServiceCommand):
    n: int


@service()
class SlowService:
    gate: asyncio.Event  # set by the test, on its own loop

    @command_handler
    async def slow(self, command: Slow) -> None:
        await SlowService.gate.wait()


@projector(version=1)
class TickCounter:
    def __init__(self) -> None:
        self.seen: list[int] = []

    @event_handler()
    def on(self, event: Ticked) -> None:
        self.seen.append(event.n)


async def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def test_commands_suffer_and_idleness_bores_through_the_server(server: EventoServer) -> None:
    """Concurrent slow commands take the in-flight count above the maximum: the server hears ``suffering`` from
    that instance; once they finish, departures below the minimum make it ``bored``."""
    heard: list[tuple[NodeInfo, bool]] = []
    server.scaling_listeners.append(lambda node, suffering: heard.append((node, suffering)))
    scaling = ThreadCountAutoscalingProtocol(
        max_thread_count=2, min_thread_count=1, max_overflow_count=2, max_underflow_count=3, bored_timeout=60
    )
    SlowService.gate = asyncio.Event()
    bundle = Bundle("slow", components=[SlowService], autoscaling=scaling)
    caller = Bundle("caller", components=[TickCounter])
    await bundle.start(server)
    await caller.start(server)
    try:
        gateway, _ = caller.gateways(None)
        sends = [asyncio.create_task(gateway.send(Slow(n=n))) for n in range(4)]
        await wait_for(lambda: heard)
        assert heard == [(bundle.info, True)]
        assert scaling.thread_count == 4
        SlowService.gate.set()
        await asyncio.gather(*sends)
        # departures at 3, 2, 1 (within the bound), 0: one underflow; two more single commands make three.
        await gateway.send(Slow(n=5))
        await gateway.send(Slow(n=6))
        await wait_for(lambda: len(heard) == 2)
        assert heard[1] == (bundle.info, False)
    finally:
        await caller.stop()
        await bundle.stop()


async def test_consumers_arrive_and_depart_around_each_event(server: EventoServer, ticks: CommandGateway) -> None:
    scaling = Counting()
    bundle = Bundle("counter", components=[TickCounter], autoscaling=scaling)
    await bundle.start(server)
    try:
        for n in range(5):
            await ticks.send(Tick(n=n))
        counter = next(instance for _, instance in bundle.components)
        await wait_for(lambda: len(counter.seen) == 5)
        await wait_for(lambda: scaling.departures == scaling.arrivals)
        assert 1 <= scaling.arrivals <= 5  # an event each, or a group of them handled in one hop
        assert scaling.in_flight == 0
    finally:
        await bundle.stop()


async def test_no_protocol_no_signals(server: EventoServer, ticks: CommandGateway) -> None:
    heard: list[bool] = []
    server.scaling_listeners.append(lambda node, suffering: heard.append(suffering))
    for n in range(3):
        await ticks.send(Tick(n=n))
    assert heard == []


async def test_the_server_asks_an_instance_to_leave(server: EventoServer) -> None:
    bundle = Bundle("counter", components=[TickCounter])
    await bundle.start(server)
    try:
        node = next(node for node in server.registry.nodes if node.info == bundle.info)
        assert await node.peer.request(StopInstance(grace_ms=1000), 5.0) == AdminDone(True)
        assert bundle.leave_requested.is_set()
    finally:
        await bundle.stop()
