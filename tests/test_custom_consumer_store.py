"""A consumer state store from another package: it subclasses the ABC, implements the abstract methods and says
nothing about SQL dialects or transactions; the engine must run on it with the ABC's defaults.

No ``from __future__ import annotations`` here: handler payload classes must resolve when handlers are read.
"""

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from evento import (
    Bundle,
    CommandGateway,
    event_handler,
    projector,
)
from evento.consumer_stores import ConsumerStateStore, MemoryConsumerStateStore
from evento.server import EventoServer
from evento.testing.consumer_store_cases import ConsumerStoreCases
from tests.helpers import wait_until
from tests.ticks import Tick, Ticked


def _delegate(name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
    async def method(self: "VendorStore", *args: Any, **kwargs: Any) -> Any:
        return await getattr(self.inner, name)(*args, **kwargs)

    method.__name__ = name
    return method


class VendorStore(ConsumerStateStore):
    """What a third-party store looks like: every abstract method, no ``dialect``, no ``supports_transactions``,
    no ``durable`` (its storage here is a memory store, standing in for the vendor's database, which outlives the
    store objects opened on it: ``shelf``)."""

    def __init__(self, shelf: MemoryConsumerStateStore | None = None) -> None:
        self.inner = shelf if shelf is not None else MemoryConsumerStateStore()

    start = _delegate("start")
    stop = _delegate("stop")

    read_checkpoint = _delegate("read_checkpoint")
    seed_checkpoint = _delegate("seed_checkpoint")
    commit_checkpoint = _delegate("commit_checkpoint")
    reset = _delegate("reset")
    try_lock = _delegate("try_lock")
    unlock = _delegate("unlock")
    is_enabled = _delegate("is_enabled")
    set_enabled = _delegate("set_enabled")
    record_error = _delegate("record_error")
    error_state = _delegate("error_state")
    add_dead_event = _delegate("add_dead_event")
    dead_events = _delegate("dead_events")
    set_dead_event_retry = _delegate("set_dead_event_retry")
    remove_dead_event = _delegate("remove_dead_event")
    find_saga = _delegate("find_saga")
    save_saga = _delegate("save_saga")
    delete_saga = _delegate("delete_saga")
    try_claim = _delegate("try_claim")
    release_claim = _delegate("release_claim")


class TestVendorStoreContract(ConsumerStoreCases):
    """The whole contract suite Evento's own stores pass, run on the third-party store: what a vendor runs to
    prove a store (DynamoDB, Redis...) before an engine relies on it."""

    shelves: dict[Path, MemoryConsumerStateStore]

    def open_store(self, storage: Path) -> ConsumerStateStore:
        # Stores opened on the same storage share the vendor's "database", as after a restart.
        shelves = self.__dict__.setdefault("shelves", {})
        return VendorStore(shelves.setdefault(storage, MemoryConsumerStateStore()))


async def test_a_third_party_store_gets_the_abcs_defaults() -> None:
    store = VendorStore()
    assert (store.dialect, store.supports_transactions, store.durable) == ("custom", False, True)
    with pytest.raises(NotImplementedError, match="the custom consumer state store has no transactions"):
        await store.commit_with("projector", 1, 0, lambda conn: None)


async def test_a_projector_runs_on_a_third_party_store(server: EventoServer, ticks: CommandGateway) -> None:
    seen: list[int] = []

    @projector(version=1)
    class VendorCounter:
        @event_handler()
        def on_ticked(self, event: Ticked) -> None:
            seen.append(event.n)

    store = VendorStore()
    reader = Bundle("vendor-counter", components=[VendorCounter], consumer_store=store)
    await reader.start(server)
    try:
        for n in range(3):
            await ticks.send(Tick(n=n))
        await wait_until(lambda: len(seen) == 3, what="the three events projected")
        assert seen == [0, 1, 2]
        engine = next(iter(reader.consumers.values()))
        assert (await engine.describe()).checkpoint == await server.store.head()
    finally:
        await reader.stop()
