"""Consumer engine behaviours that batching must not change: a bad event in a group, and wake-ups while a batch
is being handled (the next batch is fetched ahead); an event no consumer kind can decode, which must not stop
it for ever; and a fetch the server never answers, given up after the bundle's request timeout.

No ``from __future__ import annotations`` here: a handler's payload class defined inside a test must resolve
when the handler is read.
"""

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import evento.payloads
from evento import (
    Bundle,
    CommandGateway,
    ConsumerSettings,
    DomainEvent,
    SagaState,
    event_handler,
    observer,
    projector,
    saga,
    saga_event_handler,
)
from evento.consumer_stores import MemoryConsumerStateStore, SQLiteConsumerStateStore
from evento.event_stores import AppendRequest
from evento.messages import EventMessage, new_message_id, now_ms
from evento.server import EventoServer
from tests.helpers import wait_until
from tests.ticks import Tick, Ticked


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
async def test_an_event_that_does_not_decode_is_dead_lettered_and_the_rest_projected(
    server: EventoServer, ticks: CommandGateway, tmp_path: Path, store_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader's view of ``Ticked`` refuses n == 3 (as a stricter schema would): that event goes to the dead
    event queue after its retries, and every other event is projected, whether or not the store groups events."""
    for n in range(6):
        await ticks.send(Tick(n=n))

    # Defining the class below registers it for "Ticked" payloads: the other tests get the real one back.
    monkeypatch.setitem(evento.payloads._registry, "Ticked", Ticked)

    class StrictTicked(DomainEvent):
        n: int

        def __post_init__(self) -> None:
            if self.n == 3:
                raise ValueError("n == 3 is not a valid Ticked")

    StrictTicked.__name__ = "Ticked"  # the same event, read through a stricter class
    seen: list[int] = []

    @projector(version=1)
    class Counter:
        @event_handler(retry=1, retry_delay=0.01)
        def on_ticked(self, event: StrictTicked) -> None:
            seen.append(event.n)

    store = MemoryConsumerStateStore() if store_kind == "memory" else SQLiteConsumerStateStore(tmp_path / "c.db")
    reader = Bundle("counter", components=[Counter], consumer_store=store)
    await reader.start(server)
    try:
        await reader.wait_for_head(10)
        engine = next(iter(reader.consumers.values()))
        dead = await store.dead_events(engine.consumer_id)
        assert [d.event.sequence_number for d in dead] == [4]  # n == 3 is the fourth event
        assert "n == 3" in dead[0].error
        assert seen == [0, 1, 2, 4, 5]
        assert (await engine.describe()).checkpoint == await server.store.head()
    finally:
        await reader.stop()


async def test_events_appended_while_a_batch_is_handled_are_not_left_for_the_idle_poll(
    server: EventoServer, ticks: CommandGateway
) -> None:
    """While a projector works through a full batch, the next one is fetched ahead. Events appended meanwhile
    wake the projector; it must not end its cycle on the batch fetched before them and sleep until the idle poll
    (30 s here): they are projected as soon as the work allows."""
    for n in range(60):
        await ticks.send(Tick(n=n))
    seen: dict[int, float] = {}

    @projector(version=1)
    class Slow:
        @event_handler
        def on_ticked(self, event: Ticked) -> None:
            time.sleep(0.01)  # the handler's work
            seen[event.n] = time.monotonic()

    reader = Bundle(
        "slow",
        components=[Slow],
        consumer_store=MemoryConsumerStateStore(),
        consumer_settings=ConsumerSettings(fetch_size=50, idle_poll=30.0, commit_group=1),
    )
    await reader.start(server)
    try:
        await wait_until(lambda: len(seen) >= 10, 10, what="the first batch under way")
        for n in range(60, 65):
            await ticks.send(Tick(n=n))
        appended = time.monotonic()
        await wait_until(lambda: 64 in seen, 10, what="the late events projected")
        assert seen[64] - appended < 5.0, f"projected {seen[64] - appended:.1f}s after the append"
    finally:
        await reader.stop()


# --- an event stored before the server checked events, that no consumer can decode -----------------------------


@dataclass
class Seen:
    ticks: list[int] = field(default_factory=list)


@projector(version=1)
class TickProjector:
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    @event_handler(retry_delay=0.01)  # retry forever (the default) for a failing handler
    def on_ticked(self, event: Ticked) -> None:
        self.seen.ticks.append(event.n)


class TickSagaState(SagaState):
    n: int = 0


@saga(version=1)
class TickSaga:
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    @saga_event_handler(init=True, association_property="n", retry_delay=0.01)
    def on_ticked(self, event: Ticked, state: TickSagaState | None) -> TickSagaState:
        self.seen.ticks.append(event.n)
        started = TickSagaState(n=event.n)
        started.set_association("n", str(event.n))
        return started


@observer(version=1)
class TickObserver:
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    @event_handler(retry_delay=0.01)
    async def on_ticked(self, event: Ticked) -> None:
        self.seen.ticks.append(event.n)


@pytest.mark.parametrize("component", [TickProjector, TickSaga, TickObserver], ids=["projector", "saga", "observer"])
async def test_an_event_that_never_decodes_is_dead_lettered_after_the_decode_retries(
    server: EventoServer, ticks: CommandGateway, component: type[Any]
) -> None:
    """A ``Ticked`` whose ``n`` is a string, written straight into the store (as the server stored such events
    before it checked them): its bytes never change, so however the handler retries (forever here), every
    consumer kind parks it after ``decode_retries`` retries and consumes the events after it."""
    seen = Seen()
    reader = Bundle(
        "reader",
        components=[component],
        injector={Seen: seen}.get,
        consumer_settings=ConsumerSettings(decode_retries=2, error_delay=0.05),
    )
    await reader.start(server)
    try:
        await reader.wait_for_head(10)
        undecodable = EventMessage(
            payload_name="Ticked", payload=b'{"n": "three"}', message_id=new_message_id(), metadata={},
            timestamp=now_ms(), context="default",
        )  # fmt: skip
        bad = await server.store.append(AppendRequest(undecodable, "tick-bad", 1))
        await ticks.send(Tick(n=7))
        (engine,) = reader.consumers.values()

        async def parked() -> list[int]:
            return [dead.event.sequence_number for dead in await engine.dead_events()]

        await wait_until(lambda: _equals(parked(), [bad.sequence_number]), 10, what="the undecodable event parked")
        await wait_until(lambda: seen.ticks == [7], 10, what="the next event consumed")
        (dead,) = await engine.dead_events()
        assert "does not decode" in dead.error
        assert "$.n" in dead.error
        if component is not TickObserver:  # an observer's checkpoint moves on submit, not in order
            await wait_until(
                lambda: _equals(_checkpoint(engine), bad.sequence_number + 1), 10, what="the checkpoint past both"
            )
    finally:
        await reader.stop()


async def _equals(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def _checkpoint(engine: Any) -> int | None:
    checkpoint: int | None = (await engine.describe()).checkpoint
    return checkpoint


# --- a fetch the server never answers ----------------------------------------------------------------------------


async def test_a_fetch_never_answered_is_given_up_after_the_bundles_request_timeout(
    server: EventoServer, ticks: CommandGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The projector's first fetch gets no answer (a store read that hangs): the engine gives it up after
    ``Bundle(request_timeout=)``, not after a fixed 30 s, fetches again and projects the event.

    No real store can be made to hang on demand here, so the server's first read is held on an event; the
    server, its SQLite store and the bundle are the real ones."""
    await ticks.send(Tick(n=1))
    read, release = server.store.fetch, asyncio.Event()
    reads = 0

    async def first_read_hangs(*args: Any) -> Any:
        nonlocal reads
        reads += 1
        if reads == 1:
            await release.wait()
        return await read(*args)

    monkeypatch.setattr(server.store, "fetch", first_read_hangs)
    seen = Seen()
    reader = Bundle(
        "reader",
        components=[TickProjector],
        injector={Seen: seen}.get,
        consumer_settings=ConsumerSettings(error_delay=0.05),
        request_timeout=0.5,
    )
    await reader.start(server)
    try:
        await wait_until(lambda: seen.ticks == [1], 10, what="the event projected after the unanswered fetch")
    finally:
        release.set()  # the abandoned read ends, so nothing is left pending
        await reader.stop()
