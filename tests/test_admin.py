"""The consumer admin channel (evento.server.admin → evento.bundle.admin), through the server's Python API, with
the bundles in process and over TCP: the status comes from the instance holding the consumer's lock, a poisoned
event is parked, listed, retried once its cause is fixed and deleted, a reset replays from a sequence number, a
disabled consumer lags and catches up when enabled again."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from evento import Bundle, CommandGateway, ConsumerSettings, SequenceNumber, event_handler, projector
from evento.consumer_stores import SQLiteConsumerStateStore
from evento.server import EventoServer
from evento.server.admin import ConsumerNotFoundError, ConsumerUnreachableError
from evento.server.bus import BusServer
from evento.transport.connector import TcpConnector
from tests.helpers import wait_until
from tests.ticks import Tick, Ticked, Ticker

CONSUMER = "tally_TickTally_1_*"


@dataclass
class Tally:
    """What one instance's projector handled (tick number per handling) and the ticks it fails on."""

    handled: list[int] = field(default_factory=list)
    poisoned: set[int] = field(default_factory=set)


@projector(version=1)
class TickTally:
    """Counts ticks; fails, with no retry, on the ticks its tally says are poisoned."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally

    @event_handler(retry=0)
    def on_ticked(self, event: Ticked, seq: SequenceNumber) -> None:
        if event.n in self.tally.poisoned:
            raise ValueError(f"tick {event.n} is poisoned")
        self.tally.handled.append(event.n)


@projector(version=1)
class StuckTally:
    """Counts ticks, retrying a poisoned one forever (the default policy): it stalls the consumer at that tick."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally

    @event_handler(retry_delay=0.02)
    def on_ticked(self, event: Ticked) -> None:
        if event.n in self.tally.poisoned:
            raise ValueError(f"tick {event.n} is poisoned")
        self.tally.handled.append(event.n)


@dataclass
class Rig:
    """A server with the ticker, and tally bundles started on it by :meth:`tally` (in process or over TCP)."""

    server: EventoServer
    ticks: CommandGateway
    connect: Callable[[Bundle], Awaitable[None]]
    directory: Path
    bundles: list[Bundle] = field(default_factory=list)

    async def tally(self, instance_id: str, tally: Tally, component: type = TickTally) -> Bundle:
        bundle = Bundle(
            "tally",
            components=[component],
            instance_id=instance_id,
            # One store file for every instance, as one database would be: the lock picks who consumes.
            consumer_store=SQLiteConsumerStateStore(self.directory / "tally.db"),
            injector=lambda annotation: tally if annotation is Tally else None,
            consumer_settings=ConsumerSettings(error_delay=0.05, lease_seconds=30),
        )
        await self.connect(bundle)
        self.bundles.append(bundle)
        return bundle

    async def tick(self, *numbers: int) -> None:
        for n in numbers:
            await self.ticks.send(Tick(n=n))


@pytest.fixture(params=["inprocess", "tcp"])
async def rig(request: pytest.FixtureRequest, server: EventoServer, tmp_path: Path) -> AsyncIterator[Rig]:
    bus: BusServer | None = None
    if request.param == "tcp":
        bus = BusServer(server, "127.0.0.1", 0)
        await bus.start()
        address = f"127.0.0.1:{bus.port}"

        async def connect(bundle: Bundle) -> None:
            await bundle.start(TcpConnector(address))
    else:

        async def connect(bundle: Bundle) -> None:
            await bundle.start(server)

    writer = Bundle("ticker", components=[Ticker])
    await connect(writer)
    rig = Rig(server, writer.gateways(None)[0], connect, tmp_path)
    try:
        yield rig
    finally:
        for bundle in reversed(rig.bundles):
            await bundle.stop()
        await writer.stop()
        if bus is not None:
            await bus.stop()


async def seq_of(server: EventoServer, n: int) -> int:
    """The sequence number of the event ``Tick(n)`` produced."""
    (event,) = [e for e in await server.store.fetch("*", 0, 10_000) if e.aggregate_id == f"tick-{n}"]
    return event.sequence_number


async def caught_up(server: EventoServer) -> Callable[[], Awaitable[bool]]:
    head = await server.store.head()

    async def check() -> bool:
        return (await server.admin.status(CONSUMER)).status.checkpoint == head

    return check


async def test_the_status_comes_from_the_instance_holding_the_lock(rig: Rig) -> None:
    tallies = [Tally(), Tally()]
    bundles = [await rig.tally(f"t-{n}", tally) for n, tally in enumerate(tallies)]
    await rig.tick(1, 2, 3)
    await wait_until(await caught_up(rig.server), 10, what="the tally caught up")

    (record,) = await rig.server.admin.consumers()
    assert (record.consumer_id, record.component, record.component_kind) == (CONSUMER, "TickTally", "Projector")
    assert (record.bundle_id, record.context, sorted(record.instances)) == ("tally", "*", ["t-0", "t-1"])
    found = await rig.server.admin.status(CONSUMER)
    holder = next(b for b in bundles if b.consumers[CONSUMER].holds_lock)
    assert found.instance_id == holder.info.instance_id
    assert found.server_id == rig.server.server_id
    status = found.status
    assert (status.holds_lock, status.enabled, status.head_reached) == (True, True, True)
    assert (status.checkpoint, status.head, found.lag) == (await rig.server.store.head(),) * 2 + (0,)
    assert (status.dead_events, status.error_count, status.in_flight) == (0, 0, 0)
    # Only the holder consumed.
    assert sorted(len(t.handled) for t in tallies) == [0, 3]


async def test_a_poisoned_event_is_parked_listed_retried_when_fixed_and_deleted(rig: Rig) -> None:
    tally = Tally(poisoned={2, 4})
    await rig.tally("t-0", tally)
    await rig.tick(1, 2, 3, 4, 5)
    admin = rig.server.admin

    async def parked() -> bool:
        return len(await admin.dead_events(CONSUMER)) == 2

    await wait_until(parked, 10, what="two dead events")
    await wait_until(await caught_up(rig.server), 10, what="the checkpoint past the poisoned ticks")
    seq2, seq4 = await seq_of(rig.server, 2), await seq_of(rig.server, 4)
    dead = await admin.dead_events(CONSUMER)
    assert [d.event.sequence_number for d in dead] == [seq2, seq4]
    assert [d.event.event_name for d in dead] == ["Ticked", "Ticked"]
    assert dead[0].error == "ValueError: tick 2 is poisoned"
    assert dead[0].retry is False
    status = (await admin.status(CONSUMER)).status
    assert status.dead_events == 2
    assert status.error_count == 0  # the checkpoint moved on past them: no error streak left
    assert sorted(tally.handled) == [1, 3, 5]

    # The cause of tick 2 is fixed, it is flagged and the queue consumed: handled, gone from the queue.
    assert await admin.set_dead_event_retry(CONSUMER, seq2, True)
    assert [d.retry for d in await admin.dead_events(CONSUMER)] == [True, False]
    tally.poisoned.discard(2)
    assert await admin.consume_dead_queue(CONSUMER) == 1
    assert [d.event.sequence_number for d in await admin.dead_events(CONSUMER)] == [seq4]
    assert sorted(tally.handled) == [1, 2, 3, 5]

    # Tick 4 is still poisoned: flagged and consumed, it fails and is parked again (not flagged).
    assert await admin.set_dead_event_retry(CONSUMER, seq4, True)
    assert await admin.consume_dead_queue(CONSUMER) == 0
    (again,) = await admin.dead_events(CONSUMER)
    assert (again.event.sequence_number, again.retry) == (seq4, False)

    # Given up on: deleted. Acting on a dead event that is not there says so.
    assert await admin.delete_dead_event(CONSUMER, seq4)
    assert await admin.dead_events(CONSUMER) == []
    assert not await admin.delete_dead_event(CONSUMER, seq4)
    assert not await admin.set_dead_event_retry(CONSUMER, seq4, True)
    assert sorted(tally.handled) == [1, 2, 3, 5]


async def test_a_reset_replays_the_events_after_its_sequence_number(rig: Rig) -> None:
    tally = Tally()
    await rig.tally("t-0", tally)
    await rig.tick(*range(10))
    await wait_until(await caught_up(rig.server), 10, what="the tally caught up")
    assert sorted(tally.handled) == list(range(10))
    from_seq = await seq_of(rig.server, 5)

    outcome = await rig.server.admin.reset(CONSUMER, from_seq)

    assert (outcome.consumer_id, outcome.from_sequence_number) == (CONSUMER, from_seq)
    assert outcome.head == await rig.server.store.head()
    await wait_until(lambda: len(tally.handled) == 14, 10, what="ticks 6 to 9 handled again")
    await wait_until(await caught_up(rig.server), 10, what="the replay reached the head")
    assert Counter(tally.handled) == Counter({n: 2 if n > 5 else 1 for n in range(10)})
    with pytest.raises(ValueError, match="never negative"):
        await rig.server.admin.reset(CONSUMER, -1)


async def test_a_disabled_consumer_lags_and_catches_up_once_enabled(rig: Rig) -> None:
    tally = Tally()
    await rig.tally("t-0", tally)
    await rig.tick(1)
    await wait_until(await caught_up(rig.server), 10, what="the tally caught up")
    admin = rig.server.admin

    paused = await admin.set_enabled(CONSUMER, False)
    assert paused.status.enabled is False
    await rig.tick(2, 3, 4)
    lagging = await admin.status(CONSUMER)
    assert (lagging.status.enabled, lagging.lag) == (False, 3)
    assert lagging.status.head == await rig.server.store.head()
    assert tally.handled == [1]

    resumed = await admin.set_enabled(CONSUMER, True)
    assert resumed.status.enabled is True
    await wait_until(await caught_up(rig.server), 10, what="the tally caught up after being enabled")
    assert (await admin.status(CONSUMER)).lag == 0
    assert tally.handled == [1, 2, 3, 4]


async def test_unknown_and_unreachable_consumers_are_told_apart(rig: Rig) -> None:
    admin = rig.server.admin
    with pytest.raises(ConsumerNotFoundError):
        await admin.status("nobody_Nothing_1_*")
    bundle = await rig.tally("t-0", Tally())
    await rig.server.catalog_settled()
    await bundle.stop()
    rig.bundles.remove(bundle)

    async def gone() -> bool:
        await rig.server.catalog_settled()
        return [(c.consumer_id, c.instances) for c in await admin.consumers()] == [(CONSUMER, ())]

    # Still declared (the catalog keeps offline bundles) but no instance runs it.
    await wait_until(gone, 10, what="the tally instance gone")
    with pytest.raises(ConsumerUnreachableError, match="no instance"):
        await admin.status(CONSUMER)
    with pytest.raises(ConsumerUnreachableError):
        await admin.consume_dead_queue(CONSUMER)


async def test_a_consumer_stuck_retrying_an_event_forever_can_be_paused_and_moved_past_it(rig: Rig) -> None:
    """Retrying forever holds the consumer at the event: the admin's actions do not wait for the retries to end
    (they never would), the event is left due, and a reset to its sequence number moves the consumer past it."""
    stuck = "tally_StuckTally_1_*"
    tally = Tally(poisoned={2})
    await rig.tally("t-0", tally, StuckTally)
    await rig.tick(1, 2, 3)
    admin = rig.server.admin

    async def stalled() -> bool:
        status = (await admin.status(stuck)).status
        return status.error_count >= 3 and status.in_flight == 1

    await wait_until(stalled, 10, what="the consumer retrying tick 2")
    status = (await admin.status(stuck)).status
    assert status.error_message == "ValueError: tick 2 is poisoned"
    assert status.checkpoint == await seq_of(rig.server, 1)
    assert status.error_since is not None
    assert status.last_error_at is not None

    paused = await admin.set_enabled(stuck, False)
    assert paused.status.enabled is False
    await wait_until(lambda: _idle(rig, stuck), 10, what="the retries given up while disabled")

    poisoned = await seq_of(rig.server, 2)
    await admin.reset(stuck, poisoned)  # the next event is the one after it
    await admin.set_enabled(stuck, True)
    head = await rig.server.store.head()

    async def past_it() -> bool:
        return (await admin.status(stuck)).status.checkpoint == head

    await wait_until(past_it, 10, what="the consumer past the poisoned tick")
    assert tally.handled == [1, 3]
    assert (await admin.status(stuck)).status.error_count == 0


def _idle(rig: Rig, consumer_id: str) -> bool:
    bundle = rig.bundles[-1]
    return bundle.consumers[consumer_id].in_flight == 0
