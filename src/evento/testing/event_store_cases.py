"""The contract every event store passes, written once: :class:`EventStoreCases`.

Evento runs it against SQLite and PostgreSQL (CPES and APES); another backend proves itself by running it too:
subclass :class:`EventStoreCases` in a test module and define ``create_store``.

Needs pytest and pytest-asyncio (in ``asyncio_mode = "auto"``), which are not dependencies of Evento itself:
install them with the ``dev`` extra or your own test requirements.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import msgspec
import pytest

from evento.event_stores.base import AppendRequest, EventFilter, EventStore, VersionConflictError
from evento.messages import EventMessage, StoredEvent

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["EventStoreCases", "StoreOpener", "aggregate_event", "all_events", "event", "fetch_until"]

#: Opens a started store on the test's storage (stopped by the fixture at the end of the test).
StoreOpener = Callable[[], Awaitable[EventStore]]

_ids = itertools.count(1)


def event(name: str = "OrderPlaced", *, context: str = "default", body: bytes = b"{}") -> EventMessage:
    """A new event of ``name`` in ``context``, with a unique message id, correlation id and timestamp."""
    n = next(_ids)
    return EventMessage(
        payload_name=name,
        payload=body,
        message_id=f"event-{n}",
        metadata={"user": "alice", "correlation_id": f"c-{n}"},
        timestamp=1_700_000_000_000 + n,
        context=context,
    )


def aggregate_event(aggregate_id: str, version: int, *, snapshot: bytes | None = None, **kw: object) -> AppendRequest:
    """An append of a new :func:`event` as version ``version`` of ``aggregate_id`` (with ``snapshot`` if given)."""
    return AppendRequest(event(**kw), aggregate_id, version, snapshot)  # type: ignore[arg-type]


async def fetch_until(store: EventStore, count: int, context: str = "*") -> list[StoredEvent]:
    """Fetch until ``count`` events are readable (APES shows events only after its fetch delay)."""
    found: list[StoredEvent] = []

    async def enough() -> bool:
        nonlocal found
        found = await all_events(store, context)
        return len(found) >= count

    await _wait_until(enough, f"{count} events readable")
    return found


async def _wait_until(condition: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result if isinstance(result, bool) else await result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {what}")
        await asyncio.sleep(0.01)


async def all_events(store: EventStore, context: str = "*") -> list[StoredEvent]:
    """Every event of ``context`` (``"*"``: all) readable now, fetched 100 at a time."""
    events: list[StoredEvent] = []
    after = 0
    while True:
        batch = await store.fetch(context, after, 100)
        if not batch:
            return events
        events += batch
        after = batch[-1].sequence_number


class EventStoreCases:
    """The contract every :class:`EventStore` passes. Subclass it in a test module, under a name pytest collects
    (``Test...``), and say how to make your store::

        class TestMyStore(EventStoreCases):
            def create_store(self, storage: Path) -> EventStore:
                return MyEventStore(storage / "events")

    Each case opens stores with the ``open_store`` fixture (a :data:`StoreOpener`; every store it started is
    stopped after the case). Opening twice gives two stores on the same data: a restart for a store one server
    owns, two servers of a cluster for a shared one.
    """

    def create_store(self, storage: Path) -> EventStore:
        """A new store, not started, over this test's ``storage`` (a fresh directory per test); called again with
        the same ``storage``, it must return a store on the same data."""
        raise NotImplementedError("an EventStoreCases subclass says how to make its store: define create_store")

    @pytest.fixture
    async def open_store(self, tmp_path: Path) -> AsyncIterator[StoreOpener]:
        opened: list[EventStore] = []

        async def open_one() -> EventStore:
            store = self.create_store(tmp_path)
            await store.start()
            opened.append(store)
            return store

        try:
            yield open_one
        finally:
            for store in opened:
                await store.stop()

    # --- appends ------------------------------------------------------------------------------------------------------

    async def test_empty_store(self, open_store: StoreOpener) -> None:
        store = await open_store()
        assert await store.head() == 0
        assert await store.count_events() == 0
        assert await store.fetch("*", 0, 10) == []
        story = await store.load_story("nobody")
        assert not story.exists
        assert story.version == 0

    async def test_append_returns_the_stored_event(self, open_store: StoreOpener) -> None:
        store = await open_store()
        request = aggregate_event("order-1", 1, body=b'{"n": 1}')
        stored = await store.append(request)
        assert stored.sequence_number > 0
        assert (stored.aggregate_id, stored.aggregate_version) == ("order-1", 1)
        assert stored.payload == b'{"n": 1}'
        assert stored.metadata == request.event.metadata
        assert (stored.event_name, stored.context) == ("OrderPlaced", "default")
        assert stored.message_id == request.event.message_id
        assert await fetch_until(store, 1) == [stored]

        async def head_reached() -> bool:
            # APES publishes a head once its events are fetch_delay old, by a timer that can fire just after a
            # fetch saw them by the clock.
            return await store.head() == stored.sequence_number

        await _wait_until(head_reached, "the head at the stored event")
        assert await store.count_events() == 1

    async def test_sequence_numbers_increase_in_append_order(self, open_store: StoreOpener) -> None:
        store = await open_store()
        stored = [await store.append(aggregate_event(f"order-{n}", 1)) for n in range(5)]
        numbers = [event.sequence_number for event in stored]
        assert numbers == sorted(numbers)
        assert len(set(numbers)) == 5
        assert await fetch_until(store, 5) == stored

    async def test_concurrent_appends_are_all_stored_once(self, open_store: StoreOpener) -> None:
        store = await open_store()
        stored = await asyncio.gather(*(store.append(aggregate_event(f"order-{n}", 1)) for n in range(300)))
        fetched = await fetch_until(store, 300)
        assert sorted(e.sequence_number for e in stored) == [e.sequence_number for e in fetched]
        assert {e.message_id for e in fetched} == {e.message_id for e in stored}
        assert await store.count_events() == 300

    async def test_listener_hears_the_new_head(self, open_store: StoreOpener) -> None:
        store = await open_store()
        heads: list[int] = []
        store.add_listener(heads.append)
        stored = await store.append(aggregate_event("order-1", 1))
        await _wait_until(lambda: stored.sequence_number in heads, "listener called", timeout=5)
        store.remove_listener(heads.append)

    async def test_service_events_need_no_aggregate_version(self, open_store: StoreOpener) -> None:
        store = await open_store()
        first = await store.append(AppendRequest(event("MailSent"), "mailer"))
        second = await store.append(AppendRequest(event("MailSent"), "mailer"))
        third = await store.append(AppendRequest(event("Tick"), None))
        assert first.aggregate_version is None
        assert third.aggregate_id is None
        assert len({first.sequence_number, second.sequence_number, third.sequence_number}) == 3

    # --- per-aggregate order and exactly-once -------------------------------------------------------------------------

    async def test_duplicate_aggregate_version_is_refused(self, open_store: StoreOpener) -> None:
        store = await open_store()
        first = await store.append(aggregate_event("order-1", 1))
        with pytest.raises(VersionConflictError):
            await store.append(aggregate_event("order-1", 1))
        story = await store.load_story("order-1")
        assert story.events == [first]
        assert await store.count_events() == 1

    async def test_conflict_in_a_batch_fails_only_its_append(self, open_store: StoreOpener) -> None:
        store = await open_store()
        await store.append(aggregate_event("order-1", 1))
        results = await asyncio.gather(
            *(store.append(aggregate_event(f"other-{n}", 1)) for n in range(10)),
            store.append(aggregate_event("order-1", 1)),
            *(store.append(aggregate_event(f"more-{n}", 1)) for n in range(10)),
            return_exceptions=True,
        )
        failures = [result for result in results if isinstance(result, BaseException)]
        assert len(failures) == 1
        assert isinstance(failures[0], VersionConflictError)
        assert await store.count_events() == 21

    async def test_command_produces_one_event(self, open_store: StoreOpener) -> None:
        store = await open_store()
        request = AppendRequest(event(), "order-1", 1, command_id="command-42")
        stored = await store.append(request)
        assert await store.find_by_command("command-42") == stored
        assert await store.find_by_command("command-43") is None
        with pytest.raises(VersionConflictError):
            await store.append(AppendRequest(event(), "order-2", 1, command_id="command-42"))
        assert await store.count_events() == 1

    # --- stories ------------------------------------------------------------------------------------------------------

    async def test_story_is_the_aggregate_events_in_version_order(self, open_store: StoreOpener) -> None:
        store = await open_store()
        mine = []
        for version in range(1, 4):
            mine.append(await store.append(aggregate_event("order-1", version)))
            await store.append(aggregate_event(f"noise-{version}", 1))
        story = await store.load_story("order-1")
        assert story.events == mine
        assert story.version == 3
        assert story.snapshot is None

    async def test_story_starts_at_the_latest_snapshot(self, open_store: StoreOpener) -> None:
        store = await open_store()
        await store.append(aggregate_event("order-1", 1))
        await store.append(aggregate_event("order-1", 2, snapshot=b"state@2"))
        third = await store.append(aggregate_event("order-1", 3))
        story = await store.load_story("order-1")
        assert (story.snapshot, story.snapshot_version, story.events, story.version) == (b"state@2", 2, [third], 3)
        await store.append(aggregate_event("order-1", 4, snapshot=b"state@4"))
        story = await store.load_story("order-1")
        assert (story.snapshot, story.snapshot_version, story.events) == (b"state@4", 4, [])
        full = await store.load_story("order-1", use_snapshot=False)
        assert full.snapshot is None
        assert [e.aggregate_version for e in full.events] == [1, 2, 3, 4]

    async def test_deleted_aggregate_keeps_its_events_for_consumers(self, open_store: StoreOpener) -> None:
        store = await open_store()
        await store.append(aggregate_event("order-1", 1, snapshot=b"s1"))
        await store.append(AppendRequest(event("OrderDeleted"), "order-1", 2, delete_aggregate=True))
        story = await store.load_story("order-1")
        assert story.deleted
        assert story.exists
        assert story.events == []
        assert [e.event_name for e in await fetch_until(store, 2)] == ["OrderPlaced", "OrderDeleted"]

    # --- fetch --------------------------------------------------------------------------------------------------------

    async def test_fetch_by_context_after_and_limit(self, open_store: StoreOpener) -> None:
        store = await open_store()
        shop = [await store.append(AppendRequest(event(context="shop"), None)) for _ in range(5)]
        await store.append(AppendRequest(event(context="billing"), None))
        await fetch_until(store, 6)
        assert await store.fetch("shop", 0, 100) == shop
        assert await store.fetch("shop", shop[1].sequence_number, 2) == shop[2:4]
        assert len(await store.fetch("*", 0, 100)) == 6
        assert await store.fetch("nowhere", 0, 100) == []

    async def test_large_payloads_round_trip(self, open_store: StoreOpener) -> None:
        store = await open_store()
        body = bytes(range(256)) * 4096  # 1 MiB, every byte value
        stored = await store.append(AppendRequest(event(body=body), "blob", 1))
        (fetched,) = await fetch_until(store, 1)
        assert fetched.payload == body == stored.payload

    # --- browsing (the event browser of the server's API) --------------------------------------------------------

    async def _browse(self, store: EventStore, offset: int = 0, limit: int = 100, **where: object) -> list[int]:
        events, total = await store.browse_events(EventFilter(**where), offset, limit)  # type: ignore[arg-type]
        assert total >= len(events)
        return [stored.sequence_number for stored in events]

    async def test_browse_filters_each_condition(self, open_store: StoreOpener) -> None:
        store = await open_store()
        added = [
            await store.append(aggregate_event("list-1", 1, name="ListCreated", context="todo", body=b'{"n":"Milk"}')),
            await store.append(aggregate_event("list-1", 2, name="TodoAdded", context="todo", body=b'{"t":"50%_off"}')),
            await store.append(
                aggregate_event("list-2", 1, name="ListCreated", context="todo", body=b'{"t":"50Xaoff"}')
            ),
            await store.append(AppendRequest(event("Notified", context="mail", body=b'{"to":"bob"}'), None)),
        ]
        seq = [stored.sequence_number for stored in added]
        assert await self._browse(store) == seq
        assert await self._browse(store, descending=True) == seq[::-1]
        assert await self._browse(store, aggregate_id="list-1") == seq[:2]
        assert await self._browse(store, event_name="ListCreated") == [seq[0], seq[2]]
        assert await self._browse(store, context="mail") == [seq[3]]
        assert await self._browse(store, from_sequence=seq[1], to_sequence=seq[2]) == seq[1:3]
        assert await self._browse(store, from_ms=added[1].timestamp, to_ms=added[2].timestamp) == seq[1:3]
        # A literal substring: % and _ are characters, not wildcards; letters match in either case.
        assert await self._browse(store, text="50%_off") == [seq[1]]
        assert await self._browse(store, text="0%") == [seq[1]]
        assert await self._browse(store, text="milk") == [seq[0]]
        assert await self._browse(store, text='"t":"50') == seq[1:3]
        assert await self._browse(store, text="nothing like it") == []
        assert await self._browse(store, aggregate_id="list-1", event_name="TodoAdded", text="off") == [seq[1]]

    async def test_browse_pages_count_every_match(self, open_store: StoreOpener) -> None:
        store = await open_store()
        seq = [(await store.append(aggregate_event("cart", v, context="shop"))).sequence_number for v in range(1, 8)]
        await store.append(AppendRequest(event(context="else"), None))
        page, total = await store.browse_events(EventFilter(context="shop"), 2, 3)
        assert ([e.sequence_number for e in page], total) == (seq[2:5], 7)
        page, total = await store.browse_events(EventFilter(context="shop", descending=True), 6, 3)
        assert ([e.sequence_number for e in page], total) == ([seq[0]], 7)
        assert await store.browse_events(EventFilter(context="shop"), 7, 3) == ([], 7)

    async def test_one_event_a_snapshot_and_the_counts(self, open_store: StoreOpener) -> None:
        store = await open_store()
        assert (await store.count_aggregates(), await store.recent_timestamps(5)) == (0, [])
        first = await store.append(aggregate_event("order-1", 1, body=b'{"a":1}'))
        second = await store.append(aggregate_event("order-1", 2, snapshot=b"state-2"))
        third = await store.append(aggregate_event("order-2", 1))
        await store.append(AppendRequest(event(), None))
        assert await store.event(first.sequence_number) == first
        assert await store.event(third.sequence_number + 10**6) is None
        snapshot = await store.snapshot("order-1")
        assert snapshot is not None
        assert (snapshot.state, snapshot.aggregate_version, snapshot.sequence_number, snapshot.deleted) == (
            b"state-2",
            2,
            second.sequence_number,
            False,
        )
        assert await store.snapshot("order-2") is None
        assert await store.count_aggregates() == 2
        assert await store.recent_timestamps(2) == [e.timestamp for e in await fetch_until(store, 4)][::-1][:2]

    async def test_events_counted_per_time_bucket(self, open_store: StoreOpener) -> None:
        store = await open_store()
        base = 1_800_000_000_000
        assert await store.count_by_time(base, base + 60_000, 10_000) == {}
        # Offsets (ms after base) of the events: two in the first bucket (its start included), none in the
        # second, three in the third, one exactly at the range's end (excluded) and one before its start.
        offsets = [0, 9_999, 20_000, 25_000, 29_999, 60_000, -1]
        for offset in offsets:
            message = event()
            await store.append(AppendRequest(msgspec.structs.replace(message, timestamp=base + offset), None))
        await fetch_until(store, len(offsets))
        assert await store.count_by_time(base, base + 60_000, 10_000) == {base: 2, base + 20_000: 3}
        # Buckets start at from_ms, not at a multiple of the interval.
        assert await store.count_by_time(base + 5_000, base + 65_000, 30_000) == {base + 5_000: 4, base + 35_000: 1}
        assert await store.count_by_time(base + 60_000, base, 10_000) == {}

    # --- durability and sharing ---------------------------------------------------------------------------------------

    async def test_a_new_store_on_the_same_data_sees_everything(self, open_store: StoreOpener) -> None:
        first = await open_store()
        stored = [await first.append(aggregate_event("order-1", version)) for version in (1, 2)]
        await first.stop()
        second = await open_store()
        assert await second.head() == stored[-1].sequence_number
        assert (await second.load_story("order-1")).events == stored
        assert await fetch_until(second, 2) == stored
        later = await second.append(aggregate_event("order-1", 3))
        assert later.sequence_number > stored[-1].sequence_number
