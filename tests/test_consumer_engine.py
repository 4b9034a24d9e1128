"""Consumer engine behaviours that batching must not change: a bad event in a group, and wake-ups while a batch
is being handled (the next batch is fetched ahead).

No ``from __future__ import annotations`` here: a handler's payload class defined inside a test must resolve
when the handler is read.
"""

import time
from pathlib import Path

import pytest

import evento.payloads
from evento import (
    Bundle,
    CommandGateway,
    ConsumerSettings,
    DomainEvent,
    event_handler,
    projector,
)
from evento.consumer_stores import MemoryConsumerStateStore, SQLiteConsumerStateStore
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
