"""The contract every consumer state store passes, written once: :class:`ConsumerStoreCases`.

Evento runs it against each of its backends, and a store of another package (DynamoDB, Redis...) proves itself
by running it too: subclass :class:`ConsumerStoreCases` in a test module and define ``open_store``.

Needs pytest and pytest-asyncio (in ``asyncio_mode = "auto"``), which are not dependencies of Evento itself:
install them with the ``dev`` extra or your own test requirements.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import pytest

from evento.consumer_stores.base import (
    Checkpoint,
    ConsumerStateStore,
    ErrorState,
    ProjectionTransactionAbortedError,
    SagaInstance,
)
from evento.errors import ConcurrentCheckpointError
from evento.messages import StoredEvent

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

__all__ = ["ConsumerStoreCases", "make_event"]

NO_ERROR = ErrorState(False, 0, None, None, None)


def make_event(sequence_number: int, name: str = "OrderPlaced") -> StoredEvent:
    """A stored event numbered ``sequence_number``, as a consumer receives it."""
    return StoredEvent(
        sequence_number=sequence_number,
        aggregate_id=f"order-{sequence_number}",
        aggregate_version=1,
        event_name=name,
        context="shop",
        payload=b'{"n": %d}' % sequence_number,
        metadata={"user": "alice"},
        message_id=f"m{sequence_number}",
        timestamp=1_700_000_000_000 + sequence_number,
    )


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float = 2.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes: the deadline, not a sleep, decides."""
    deadline = time.monotonic() + timeout
    while True:
        if await condition():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.01)


# --- exactly-once projections: commit_with ----------------------------------------------------------------------------


def _placeholder(store: ConsumerStateStore) -> str:
    return "?" if store.dialect == "sqlite" else "%s"


def _transactional(store: ConsumerStateStore) -> None:
    if not store.supports_transactions:
        pytest.skip(f"the {store.dialect} backend has no transaction to share with a read model")


async def _create_read_model(store: ConsumerStateStore, consumer_id: str) -> Checkpoint:
    """Create the read model's table in a commit_with of its own (MySQL commits DDL implicitly)."""

    def create(conn: Any) -> None:
        cursor = conn.cursor()
        cursor.execute("CREATE TABLE IF NOT EXISTS todo_view (id VARCHAR(64) PRIMARY KEY, title TEXT NOT NULL)")
        cursor.close()

    _, checkpoint = await store.commit_with(consumer_id, 0, 0, create)
    return checkpoint


def _insert_todo(store: ConsumerStateStore, todo_id: str, title: str) -> Callable[[Any], int]:
    sql = f"INSERT INTO todo_view (id, title) VALUES ({_placeholder(store)}, {_placeholder(store)})"

    def insert(conn: Any) -> int:
        cursor = conn.cursor()
        cursor.execute(sql, (todo_id, title))
        count = int(cursor.rowcount)
        cursor.close()
        return count

    return insert


def _read_todos(conn: Any) -> list[tuple[str, str]]:
    cursor = conn.cursor()
    cursor.execute("SELECT id, title FROM todo_view ORDER BY id")
    rows = [(str(row[0]), str(row[1])) for row in cursor.fetchall()]
    cursor.close()
    return rows


class ConsumerStoreCases:
    """The contract every :class:`ConsumerStateStore` passes. Subclass it in a test module, under a name pytest
    collects (``Test...``), and say how to open your store::

        class TestDynamoStore(ConsumerStoreCases):
            def open_store(self, storage: Path) -> ConsumerStateStore:
                return DynamoConsumerStateStore(table=f"evento-{storage.name}")

    Each case gets a started store from the ``consumer_store`` fixture (stopped after it). Cases about what is
    kept across a restart run when the store says it is :attr:`~ConsumerStateStore.durable`; cases about
    :meth:`~ConsumerStateStore.commit_with` when it :attr:`~ConsumerStateStore.supports_transactions` (and speaks
    one of the dialects they know how to write to).
    """

    def open_store(self, storage: Path) -> ConsumerStateStore:
        """A new store, not started, over this test's ``storage`` (a fresh directory per test). The durability
        case calls it again with the same ``storage``: a durable store must then see what the first one wrote."""
        raise NotImplementedError("a ConsumerStoreCases subclass says how to open its store: define open_store")

    @pytest.fixture
    async def consumer_store(self, tmp_path: Path) -> AsyncIterator[ConsumerStateStore]:
        store = self.open_store(tmp_path)
        await store.start()
        try:
            yield store
        finally:
            await store.stop()  # stop() is idempotent: a case may already have stopped the store

    # --- checkpoints --------------------------------------------------------------------------------------------------

    async def test_checkpoint_absent_for_new_consumer(self, consumer_store: ConsumerStateStore) -> None:
        assert await consumer_store.read_checkpoint("projector") is None

    async def test_seed_creates_checkpoint(self, consumer_store: ConsumerStateStore) -> None:
        seeded = await consumer_store.seed_checkpoint("projector", 5)
        assert seeded == Checkpoint(5, 0)
        assert await consumer_store.read_checkpoint("projector") == seeded

    async def test_seed_twice_keeps_first(self, consumer_store: ConsumerStateStore) -> None:
        first = await consumer_store.seed_checkpoint("projector", 5)
        assert await consumer_store.seed_checkpoint("projector", 9) == first
        assert await consumer_store.read_checkpoint("projector") == first

    async def test_commit_with_current_version_advances(self, consumer_store: ConsumerStateStore) -> None:
        seeded = await consumer_store.seed_checkpoint("projector", 0)
        committed = await consumer_store.commit_checkpoint("projector", 10, seeded.version)
        assert committed == Checkpoint(10, seeded.version + 1)
        assert await consumer_store.read_checkpoint("projector") == committed
        again = await consumer_store.commit_checkpoint("projector", 20, committed.version)
        assert again == Checkpoint(20, committed.version + 1)

    async def test_commit_with_stale_version_raises(self, consumer_store: ConsumerStateStore) -> None:
        seeded = await consumer_store.seed_checkpoint("projector", 0)
        committed = await consumer_store.commit_checkpoint("projector", 10, seeded.version)
        with pytest.raises(ConcurrentCheckpointError):
            await consumer_store.commit_checkpoint("projector", 11, seeded.version)
        with pytest.raises(ConcurrentCheckpointError):
            await consumer_store.commit_checkpoint("projector", 11, committed.version + 5)
        assert await consumer_store.read_checkpoint("projector") == committed

    async def test_commit_without_seed_starts_at_version_zero(self, consumer_store: ConsumerStateStore) -> None:
        with pytest.raises(ConcurrentCheckpointError):
            await consumer_store.commit_checkpoint("projector", 3, 1)
        assert await consumer_store.read_checkpoint("projector") is None
        assert await consumer_store.commit_checkpoint("projector", 3, 0) == Checkpoint(3, 1)
        assert await consumer_store.read_checkpoint("projector") == Checkpoint(3, 1)

    async def test_commit_clears_error_state(self, consumer_store: ConsumerStateStore) -> None:
        seeded = await consumer_store.seed_checkpoint("projector", 0)
        await consumer_store.record_error("projector", "boom")
        assert (await consumer_store.error_state("projector")).in_error
        await consumer_store.commit_checkpoint("projector", 1, seeded.version)
        assert await consumer_store.error_state("projector") == NO_ERROR

    async def test_failed_commit_keeps_error_state(self, consumer_store: ConsumerStateStore) -> None:
        await consumer_store.seed_checkpoint("projector", 0)
        await consumer_store.record_error("projector", "boom")
        with pytest.raises(ConcurrentCheckpointError):
            await consumer_store.commit_checkpoint("projector", 1, 7)
        assert (await consumer_store.error_state("projector")).error_count == 1

    async def test_reset_forgets_checkpoint_and_errors_but_keeps_dead_events(
        self,
        consumer_store: ConsumerStateStore,
    ) -> None:
        seeded = await consumer_store.seed_checkpoint("projector", 0)
        await consumer_store.commit_checkpoint("projector", 10, seeded.version)
        await consumer_store.record_error("projector", "boom")
        await consumer_store.add_dead_event("projector", make_event(4), "bad payload")
        await consumer_store.set_enabled("projector", False)
        await consumer_store.seed_checkpoint("other", 7)

        await consumer_store.reset("projector")

        assert await consumer_store.read_checkpoint("projector") is None
        assert await consumer_store.error_state("projector") == NO_ERROR
        assert [dead.event.sequence_number for dead in await consumer_store.dead_events("projector")] == [4]
        # The enabled flag is the operator's decision, not progress: a replay does not switch a consumer back on.
        assert await consumer_store.is_enabled("projector") is False
        assert await consumer_store.read_checkpoint("other") == Checkpoint(7, 0)
        # After a reset the consumer starts as a new one: seeding works again and the version starts over.
        assert await consumer_store.seed_checkpoint("projector", 2) == Checkpoint(2, 0)
        assert await consumer_store.commit_checkpoint("projector", 3, 0) == Checkpoint(3, 1)

    async def test_reset_of_unknown_consumer_is_harmless(self, consumer_store: ConsumerStateStore) -> None:
        await consumer_store.reset("nobody")
        assert await consumer_store.read_checkpoint("nobody") is None

    async def test_set_checkpoint_moves_it_back_and_bumps_the_version(self, consumer_store: ConsumerStateStore) -> None:
        seeded = await consumer_store.seed_checkpoint("projector", 0)
        committed = await consumer_store.commit_checkpoint("projector", 10, seeded.version)
        await consumer_store.record_error("projector", "boom")
        await consumer_store.set_enabled("projector", False)

        moved = await consumer_store.set_checkpoint("projector", 4)

        assert moved.sequence_number == 4
        assert moved.version > committed.version
        assert await consumer_store.read_checkpoint("projector") == moved
        assert await consumer_store.error_state("projector") == NO_ERROR
        # The operator's enabled flag is kept, as by reset.
        assert await consumer_store.is_enabled("projector") is False
        # An instance still holding the old checkpoint cannot overwrite the new one: it must read it again.
        with pytest.raises(ConcurrentCheckpointError):
            await consumer_store.commit_checkpoint("projector", 11, committed.version)
        assert await consumer_store.commit_checkpoint("projector", 5, moved.version) == Checkpoint(5, moved.version + 1)

    async def test_set_checkpoint_of_a_new_or_reset_consumer(self, consumer_store: ConsumerStateStore) -> None:
        fresh = await consumer_store.set_checkpoint("fresh", 7)
        assert fresh.sequence_number == 7
        assert await consumer_store.read_checkpoint("fresh") == fresh
        seeded = await consumer_store.seed_checkpoint("replayed", 0)
        await consumer_store.commit_checkpoint("replayed", 3, seeded.version)
        await consumer_store.reset("replayed")
        moved = await consumer_store.set_checkpoint("replayed", 2)
        assert await consumer_store.read_checkpoint("replayed") == moved
        assert moved.sequence_number == 2
        # A seed after it keeps what was set, as for any checkpoint.
        assert await consumer_store.seed_checkpoint("replayed", 9) == moved

    async def test_concurrent_commits_with_same_version_only_one_wins(self, consumer_store: ConsumerStateStore) -> None:
        seeded = await consumer_store.seed_checkpoint("projector", 0)
        results = await asyncio.gather(
            *(consumer_store.commit_checkpoint("projector", n, seeded.version) for n in range(1, 21)),
            return_exceptions=True,
        )
        winners = [result for result in results if isinstance(result, Checkpoint)]
        losers = [result for result in results if isinstance(result, ConcurrentCheckpointError)]
        assert len(winners) == 1, results
        assert len(losers) == 19, results
        assert winners[0].version == seeded.version + 1
        assert await consumer_store.read_checkpoint("projector") == winners[0]

    # --- consumer lock ------------------------------------------------------------------------------------------------

    async def test_lock_is_exclusive_between_owners(self, consumer_store: ConsumerStateStore) -> None:
        assert await consumer_store.try_lock("projector", "a", 30)
        assert not await consumer_store.try_lock("projector", "b", 30)
        # Locks are per consumer.
        assert await consumer_store.try_lock("saga", "b", 30)

    async def test_lock_renewed_by_same_owner(self, consumer_store: ConsumerStateStore) -> None:
        assert await consumer_store.try_lock("projector", "a", 30)
        assert await consumer_store.try_lock("projector", "a", 30)
        assert not await consumer_store.try_lock("projector", "b", 30)

    async def test_renewal_extends_the_lease(self, consumer_store: ConsumerStateStore) -> None:
        assert await consumer_store.try_lock("projector", "a", 0.05)
        assert await consumer_store.try_lock("projector", "a", 30)
        # The short lease would be over by now; the renewed one is not.
        started = time.monotonic()
        while time.monotonic() - started < 0.15:
            assert not await consumer_store.try_lock("projector", "b", 30)
            await asyncio.sleep(0.01)

    async def test_lock_expires_after_lease(self, consumer_store: ConsumerStateStore) -> None:
        # Long enough that a loaded machine cannot let it lapse before the next statement; eventually() waits it out.
        assert await consumer_store.try_lock("projector", "a", 1.0)
        assert not await consumer_store.try_lock("projector", "b", 30)
        assert await eventually(lambda: consumer_store.try_lock("projector", "b", 30), timeout=10.0)
        # b now holds a live lease, so a cannot take it back.
        assert not await consumer_store.try_lock("projector", "a", 30)

    async def test_unlock_by_non_owner_is_ignored(self, consumer_store: ConsumerStateStore) -> None:
        assert await consumer_store.try_lock("projector", "a", 30)
        await consumer_store.unlock("projector", "b")
        assert not await consumer_store.try_lock("projector", "b", 30)
        await consumer_store.unlock("projector", "a")
        assert await consumer_store.try_lock("projector", "b", 30)

    async def test_unlock_without_lock_is_harmless(self, consumer_store: ConsumerStateStore) -> None:
        await consumer_store.unlock("projector", "a")
        assert await consumer_store.try_lock("projector", "a", 30)

    async def test_concurrent_lock_attempts_only_one_wins(self, consumer_store: ConsumerStateStore) -> None:
        results = await asyncio.gather(*(consumer_store.try_lock("projector", f"owner-{n}", 30) for n in range(20)))
        assert results.count(True) == 1

    # --- enabled flag and error state ---------------------------------------------------------------------------------

    async def test_enabled_by_default_and_toggles(self, consumer_store: ConsumerStateStore) -> None:
        assert await consumer_store.is_enabled("projector")
        await consumer_store.set_enabled("projector", False)
        assert not await consumer_store.is_enabled("projector")
        assert await consumer_store.is_enabled("other")
        await consumer_store.set_enabled("projector", True)
        assert await consumer_store.is_enabled("projector")

    async def test_disabling_keeps_checkpoint(self, consumer_store: ConsumerStateStore) -> None:
        seeded = await consumer_store.seed_checkpoint("projector", 4)
        await consumer_store.set_enabled("projector", False)
        assert await consumer_store.read_checkpoint("projector") == seeded

    async def test_enabled_flag_does_not_create_checkpoint(self, consumer_store: ConsumerStateStore) -> None:
        await consumer_store.set_enabled("projector", False)
        await consumer_store.record_error("projector", "boom")
        assert await consumer_store.read_checkpoint("projector") is None
        assert await consumer_store.seed_checkpoint("projector", 6) == Checkpoint(6, 0)

    async def test_error_state_of_unknown_consumer(self, consumer_store: ConsumerStateStore) -> None:
        assert await consumer_store.error_state("projector") == NO_ERROR

    async def test_error_state_counts_and_keeps_first_time(self, consumer_store: ConsumerStateStore) -> None:
        await consumer_store.record_error("projector", "first")
        first = await consumer_store.error_state("projector")
        assert first.in_error
        assert first.error_count == 1
        assert first.message == "first"
        assert first.first_error_at is not None
        assert first.first_error_at == first.last_error_at

        await consumer_store.record_error("projector", "second")
        second = await consumer_store.error_state("projector")
        assert second.error_count == 2
        assert second.message == "second"
        assert second.first_error_at == first.first_error_at
        assert second.last_error_at is not None
        assert second.last_error_at >= first.first_error_at
        assert await consumer_store.error_state("other") == NO_ERROR

    async def test_new_error_streak_after_commit_starts_over(self, consumer_store: ConsumerStateStore) -> None:
        await consumer_store.record_error("projector", "old")
        await consumer_store.record_error("projector", "old")
        await consumer_store.commit_checkpoint("projector", 1, 0)
        await consumer_store.record_error("projector", "new")
        state = await consumer_store.error_state("projector")
        assert state.error_count == 1
        assert state.message == "new"

    # --- dead event queue ---------------------------------------------------------------------------------------------

    async def test_dead_events_empty_for_unknown_consumer(self, consumer_store: ConsumerStateStore) -> None:
        assert await consumer_store.dead_events("projector") == []

    async def test_dead_events_listed_in_sequence_order(self, consumer_store: ConsumerStateStore) -> None:
        for seq in (3, 1, 2):
            await consumer_store.add_dead_event("projector", make_event(seq), f"error {seq}")
        await consumer_store.add_dead_event("other", make_event(9), "elsewhere")

        dead = await consumer_store.dead_events("projector")
        assert [entry.event.sequence_number for entry in dead] == [1, 2, 3]
        assert dead[0].event == make_event(1)
        assert dead[0].consumer_id == "projector"
        assert dead[0].error == "error 1"
        assert dead[0].retry is False
        assert dead[0].dead_at > 0

    async def test_dead_event_retry_flag(self, consumer_store: ConsumerStateStore) -> None:
        for seq in (1, 2, 3):
            await consumer_store.add_dead_event("projector", make_event(seq), "boom")
        assert await consumer_store.dead_events("projector", retriable_only=True) == []

        assert await consumer_store.set_dead_event_retry("projector", 2, True)
        retriable = await consumer_store.dead_events("projector", retriable_only=True)
        assert [(entry.event.sequence_number, entry.retry) for entry in retriable] == [(2, True)]

        assert await consumer_store.set_dead_event_retry("projector", 2, False)
        assert await consumer_store.dead_events("projector", retriable_only=True) == []
        assert len(await consumer_store.dead_events("projector")) == 3

    async def test_dead_event_retry_on_missing_entry(self, consumer_store: ConsumerStateStore) -> None:
        await consumer_store.add_dead_event("projector", make_event(1), "boom")
        assert not await consumer_store.set_dead_event_retry("projector", 99, True)
        assert not await consumer_store.set_dead_event_retry("other", 1, True)

    async def test_remove_dead_event(self, consumer_store: ConsumerStateStore) -> None:
        for seq in (1, 2):
            await consumer_store.add_dead_event("projector", make_event(seq), "boom")
        assert await consumer_store.remove_dead_event("projector", 1)
        assert not await consumer_store.remove_dead_event("projector", 1)
        assert not await consumer_store.remove_dead_event("other", 2)
        assert [entry.event.sequence_number for entry in await consumer_store.dead_events("projector")] == [2]

    async def test_dead_letter_parks_and_moves_the_checkpoint_past_the_event(
        self, consumer_store: ConsumerStateStore
    ) -> None:
        seeded = await consumer_store.seed_checkpoint("projector", 6)
        checkpoint = await consumer_store.dead_letter("projector", make_event(7), "boom", seeded.version)
        assert checkpoint == Checkpoint(7, seeded.version + 1)
        assert await consumer_store.read_checkpoint("projector") == checkpoint
        (parked,) = await consumer_store.dead_events("projector")
        assert (parked.event, parked.error, parked.retry) == (make_event(7), "boom", False)

    async def test_dead_letter_with_a_stale_version_parks_nothing(self, consumer_store: ConsumerStateStore) -> None:
        seeded = await consumer_store.seed_checkpoint("projector", 6)
        moved = await consumer_store.commit_checkpoint("projector", 7, seeded.version)
        with pytest.raises(ConcurrentCheckpointError):
            await consumer_store.dead_letter("projector", make_event(8), "boom", seeded.version)
        assert await consumer_store.dead_events("projector") == []
        assert await consumer_store.read_checkpoint("projector") == moved

    # --- sagas --------------------------------------------------------------------------------------------------------

    async def test_saga_save_and_find_by_association(self, consumer_store: ConsumerStateStore) -> None:
        instance = SagaInstance(id="s1", saga_name="OrderSaga", state=b"\x01state")
        await consumer_store.save_saga(instance, {"order_id": "o1", "customer_id": "c1"})

        assert await consumer_store.find_saga("OrderSaga", "order_id", "o1") == instance
        assert await consumer_store.find_saga("OrderSaga", "customer_id", "c1") == instance
        assert await consumer_store.find_saga("OrderSaga", "order_id", "o2") is None
        assert await consumer_store.find_saga("OrderSaga", "customer_id", "o1") is None
        assert await consumer_store.find_saga("PaymentSaga", "order_id", "o1") is None

    async def test_saga_update_replaces_state_and_associations(self, consumer_store: ConsumerStateStore) -> None:
        await consumer_store.save_saga(SagaInstance("s1", "OrderSaga", b"v1"), {"order_id": "o1", "customer_id": "c1"})
        updated = SagaInstance("s1", "OrderSaga", b"v2")
        await consumer_store.save_saga(updated, {"order_id": "o1", "payment_id": "p1"})

        assert await consumer_store.find_saga("OrderSaga", "order_id", "o1") == updated
        assert await consumer_store.find_saga("OrderSaga", "payment_id", "p1") == updated
        assert await consumer_store.find_saga("OrderSaga", "customer_id", "c1") is None

    async def test_saga_update_changes_association_value(self, consumer_store: ConsumerStateStore) -> None:
        await consumer_store.save_saga(SagaInstance("s1", "OrderSaga", b"v1"), {"order_id": "o1"})
        await consumer_store.save_saga(SagaInstance("s1", "OrderSaga", b"v2"), {"order_id": "o2"})
        assert await consumer_store.find_saga("OrderSaga", "order_id", "o1") is None
        assert await consumer_store.find_saga("OrderSaga", "order_id", "o2") == SagaInstance("s1", "OrderSaga", b"v2")

    async def test_saga_delete(self, consumer_store: ConsumerStateStore) -> None:
        await consumer_store.save_saga(SagaInstance("s1", "OrderSaga", b"v1"), {"order_id": "o1"})
        other = SagaInstance("s2", "OrderSaga", b"w1")
        await consumer_store.save_saga(other, {"order_id": "o2"})

        await consumer_store.delete_saga("s1")
        assert await consumer_store.find_saga("OrderSaga", "order_id", "o1") is None
        assert await consumer_store.find_saga("OrderSaga", "order_id", "o2") == other
        await consumer_store.delete_saga("s1")  # deleting again is harmless
        await consumer_store.delete_saga("never-saved")

    async def test_saga_deleted_instance_does_not_hide_another_with_same_value(
        self,
        consumer_store: ConsumerStateStore,
    ) -> None:
        first = SagaInstance("s1", "OrderSaga", b"a")
        second = SagaInstance("s2", "OrderSaga", b"b")
        await consumer_store.save_saga(first, {"customer_id": "c1"})
        await consumer_store.save_saga(second, {"customer_id": "c1"})
        assert await consumer_store.find_saga("OrderSaga", "customer_id", "c1") in (first, second)
        await consumer_store.delete_saga("s2")
        assert await consumer_store.find_saga("OrderSaga", "customer_id", "c1") == first

    async def test_saga_without_associations(self, consumer_store: ConsumerStateStore) -> None:
        await consumer_store.save_saga(SagaInstance("s1", "OrderSaga", b"v1"), {"order_id": "o1"})
        await consumer_store.save_saga(SagaInstance("s1", "OrderSaga", b"v2"), {})
        assert await consumer_store.find_saga("OrderSaga", "order_id", "o1") is None

    # --- observer dedupe ----------------------------------------------------------------------------------------------

    async def test_claim_once(self, consumer_store: ConsumerStateStore) -> None:
        assert await consumer_store.try_claim("observer", 1)
        assert not await consumer_store.try_claim("observer", 1)
        assert await consumer_store.try_claim("observer", 2)
        assert await consumer_store.try_claim("other", 1)

    async def test_release_then_reclaim(self, consumer_store: ConsumerStateStore) -> None:
        assert await consumer_store.try_claim("observer", 1)
        await consumer_store.release_claim("observer", 1)
        assert await consumer_store.try_claim("observer", 1)
        await consumer_store.release_claim("observer", 42)  # releasing an unclaimed event is harmless

    async def test_concurrent_claims_only_one_wins(self, consumer_store: ConsumerStateStore) -> None:
        results = await asyncio.gather(*(consumer_store.try_claim("observer", 7) for _ in range(20)))
        assert results.count(True) == 1

    async def test_commit_with_writes_read_model_and_checkpoint(self, consumer_store: ConsumerStateStore) -> None:
        _transactional(consumer_store)
        created = await _create_read_model(consumer_store, "projector")
        assert created == Checkpoint(0, 1)

        inserted, checkpoint = await consumer_store.commit_with(
            "projector", 5, created.version, _insert_todo(consumer_store, "t1", "buy milk")
        )
        assert (inserted, checkpoint) == (1, Checkpoint(5, created.version + 1))
        assert await consumer_store.read_checkpoint("projector") == checkpoint
        rows, after = await consumer_store.commit_with("projector", 6, checkpoint.version, _read_todos)
        assert rows == [("t1", "buy milk")]
        assert after == Checkpoint(6, checkpoint.version + 1)

    async def test_commit_with_clears_error_state(self, consumer_store: ConsumerStateStore) -> None:
        _transactional(consumer_store)
        created = await _create_read_model(consumer_store, "projector")
        await consumer_store.record_error("projector", "boom")
        await consumer_store.commit_with("projector", 1, created.version, _insert_todo(consumer_store, "t1", "a"))
        assert await consumer_store.error_state("projector") == NO_ERROR

    async def test_commit_with_stale_version_writes_nothing(self, consumer_store: ConsumerStateStore) -> None:
        _transactional(consumer_store)
        created = await _create_read_model(consumer_store, "projector")
        with pytest.raises(ConcurrentCheckpointError):
            await consumer_store.commit_with(
                "projector", 7, created.version - 1, _insert_todo(consumer_store, "t1", "a")
            )
        assert await consumer_store.read_checkpoint("projector") == created
        rows, _ = await consumer_store.commit_with("projector", 1, created.version, _read_todos)
        assert rows == []

    async def test_commit_with_failing_work_rolls_back(self, consumer_store: ConsumerStateStore) -> None:
        _transactional(consumer_store)
        created = await _create_read_model(consumer_store, "projector")
        insert = _insert_todo(consumer_store, "t1", "a")

        def insert_then_fail(conn: Any) -> None:
            insert(conn)
            raise RuntimeError("read model update failed")

        with pytest.raises(RuntimeError, match="read model update failed"):
            await consumer_store.commit_with("projector", 3, created.version, insert_then_fail)
        assert await consumer_store.read_checkpoint("projector") == created
        rows, _ = await consumer_store.commit_with("projector", 3, created.version, _read_todos)
        assert rows == []
        # The store stays usable after the rollback: the same commit succeeds once work does.
        assert await consumer_store.commit_with("projector", 4, created.version + 1, insert) == (
            1,
            Checkpoint(4, created.version + 2),
        )

    async def test_commit_with_whose_work_ended_the_transaction_commits_nothing(
        self, consumer_store: ConsumerStateStore
    ) -> None:
        """Work that returns after its transaction ended (rolled back here; the same as a database error it
        swallowed) is not reported as committed: the checkpoint stays put and the event will be handled again."""
        _transactional(consumer_store)
        created = await _create_read_model(consumer_store, "projector")
        insert = _insert_todo(consumer_store, "t1", "a")

        def insert_then_roll_back(conn: Any) -> None:
            insert(conn)
            cursor = conn.cursor()
            cursor.execute("ROLLBACK")
            cursor.close()

        with pytest.raises(ProjectionTransactionAbortedError, match="aborted inside the handler"):
            await consumer_store.commit_with("projector", 3, created.version, insert_then_roll_back)
        assert await consumer_store.read_checkpoint("projector") == created
        assert await consumer_store.commit_with("projector", 3, created.version, insert) == (
            1,
            Checkpoint(3, created.version + 1),
        )

    async def test_concurrent_commit_with_only_one_wins(self, consumer_store: ConsumerStateStore) -> None:
        _transactional(consumer_store)
        created = await _create_read_model(consumer_store, "projector")
        results = await asyncio.gather(
            *(
                consumer_store.commit_with("projector", n, created.version, _insert_todo(consumer_store, f"t{n}", "x"))
                for n in range(1, 11)
            ),
            return_exceptions=True,
        )
        winners = [result for result in results if isinstance(result, tuple)]
        losers = [result for result in results if isinstance(result, ConcurrentCheckpointError)]
        assert (len(winners), len(losers)) == (1, 9), results
        rows, _ = await consumer_store.commit_with("projector", 99, created.version + 1, _read_todos)
        assert len(rows) == 1

    async def test_commit_with_unsupported_raises(self, consumer_store: ConsumerStateStore) -> None:
        if consumer_store.supports_transactions:
            pytest.skip(f"the {consumer_store.dialect} backend supports commit_with")
        with pytest.raises(NotImplementedError):
            await consumer_store.commit_with("projector", 1, 0, lambda conn: None)
        assert await consumer_store.read_checkpoint("projector") is None

    # --- durability ---------------------------------------------------------------------------------------------------

    async def test_state_survives_restart(self, consumer_store: ConsumerStateStore, tmp_path: Path) -> None:
        if not consumer_store.durable:
            pytest.skip(f"{type(consumer_store).__name__} keeps nothing across restarts (durable is false)")
        seeded = await consumer_store.seed_checkpoint("projector", 0)
        committed = await consumer_store.commit_checkpoint("projector", 12, seeded.version)
        await consumer_store.set_enabled("projector", False)
        await consumer_store.record_error("saga", "boom")
        await consumer_store.add_dead_event("projector", make_event(5), "bad payload")
        await consumer_store.set_dead_event_retry("projector", 5, True)
        saga = SagaInstance("s1", "OrderSaga", b"state")
        await consumer_store.save_saga(saga, {"order_id": "o1"})
        await consumer_store.try_claim("observer", 3)
        assert await consumer_store.try_lock("projector", "a", 30)
        await consumer_store.stop()

        reopened = self.open_store(tmp_path)
        await reopened.start()
        try:
            assert await reopened.read_checkpoint("projector") == committed
            assert not await reopened.is_enabled("projector")
            error = await reopened.error_state("saga")
            assert (error.in_error, error.error_count, error.message) == (True, 1, "boom")
            [dead] = await reopened.dead_events("projector", retriable_only=True)
            assert (dead.event, dead.error) == (make_event(5), "bad payload")
            assert await reopened.find_saga("OrderSaga", "order_id", "o1") == saga
            assert not await reopened.try_claim("observer", 3)
            # stop() released the lock the old store held, so another owner takes it at once.
            assert await reopened.try_lock("projector", "b", 30)
            with pytest.raises(ConcurrentCheckpointError):
                await reopened.commit_checkpoint("projector", 13, seeded.version)
        finally:
            await reopened.stop()
