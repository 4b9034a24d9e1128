"""The consumer state store contract: checkpoints, consumer locks, saga state, dead event queues, dedupe.

Every backend implements :class:`ConsumerStateStore` and passes the same contract suite
(:mod:`evento.testing.consumer_store_cases`).
Methods are coroutines; SQL backends run their blocking drivers off the event loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import msgspec

from evento.errors import ConcurrentCheckpointError, ConsumerStoreError
from evento.messages import StoredEvent

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "Checkpoint",
    "ConsumerStateStore",
    "DeadEvent",
    "ErrorState",
    "ProjectionTransactionAbortedError",
    "SagaInstance",
]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The last sequence number a consumer finished, and the row version for optimistic commits."""

    sequence_number: int
    version: int


@dataclass(frozen=True, slots=True)
class ErrorState:
    """The errors a consumer's handlers recorded: how many, the last message, and when the first and the last
    were recorded (milliseconds since the epoch)."""

    in_error: bool
    error_count: int
    message: str | None
    first_error_at: int | None
    last_error_at: int | None


@dataclass(frozen=True, slots=True)
class DeadEvent:
    """An event a consumer gave up on, with why; ``retry`` marks it for the next dead-queue replay."""

    consumer_id: str
    event: StoredEvent
    error: str
    retry: bool
    dead_at: int


@dataclass(frozen=True, slots=True)
class SagaInstance:
    """One stored saga instance: ``state`` is its encoded saga state, found again by its associations."""

    id: str
    saga_name: str
    state: bytes


class ProjectionTransactionAbortedError(ConsumerStoreError):
    """The transaction of :meth:`ConsumerStateStore.commit_with` ended inside ``work`` (which returned normally):
    a database error was caught and swallowed there, or ``work`` committed or rolled back itself.

    The checkpoint did not advance, so the event is handled again; a handler that catches database errors must
    re-raise them instead.
    """


T = TypeVar("T")

# How many compare-and-set rounds the default set_checkpoint makes before it gives up on a busy consumer.
_SET_CHECKPOINT_ATTEMPTS = 20

_event_encoder = msgspec.msgpack.Encoder()
_event_decoder = msgspec.msgpack.Decoder(StoredEvent)


def encode_event(event: StoredEvent) -> bytes:
    return _event_encoder.encode(event)


def decode_event(data: bytes) -> StoredEvent:
    return _event_decoder.decode(data)


class ConsumerStateStore(ABC):
    """Where projectors, sagas and observers keep their progress and state."""

    #: Which SQL the connection handed to :meth:`commit_with` speaks: "memory", "sqlite", "postgresql" or "mysql"
    #: for the stores of this package; a store of another package keeps "custom" unless it names its own.
    dialect: ClassVar[str] = "custom"
    #: Whether :meth:`commit_with` is available (a store backed by a transactional database).
    supports_transactions: ClassVar[bool] = False
    #: Whether what the store keeps outlives the process. A durable store has each checkpoint committed after
    #: every event, so at most one event is redelivered after a crash; a store that is not (memory) lets the
    #: consumer engine commit groups of events at once, since no restart can see the difference. True unless a
    #: store says otherwise: a store wrongly taken for durable only commits more often than it needs to.
    durable: ClassVar[bool] = True

    async def start(self) -> None:
        """Open connections and apply migrations."""

    async def stop(self) -> None:
        """Release connections and held locks."""

    # --- checkpoints -------------------------------------------------------------------------------------------

    @abstractmethod
    async def read_checkpoint(self, consumer_id: str) -> Checkpoint | None:
        """The consumer's checkpoint, or ``None`` if it never ran."""

    @abstractmethod
    async def seed_checkpoint(self, consumer_id: str, sequence_number: int) -> Checkpoint:
        """Create the checkpoint at ``sequence_number`` unless one exists; return the one that is stored."""

    @abstractmethod
    async def commit_checkpoint(self, consumer_id: str, sequence_number: int, expected_version: int) -> Checkpoint:
        """Advance the checkpoint if its version is still ``expected_version``; clears the error state.

        Raises :class:`~evento.errors.ConcurrentCheckpointError` otherwise.
        """

    async def commit_with(
        self, consumer_id: str, sequence_number: int, expected_version: int, work: Callable[[Any], T]
    ) -> tuple[T, Checkpoint]:
        """Run ``work(conn)`` and advance the checkpoint in ONE database transaction: exactly-once projections.

        ``conn`` is the store's own DB-API connection (of the store's driver, see :attr:`dialect`) with the
        transaction open; ``work`` runs on the store's worker thread, may create and write its own tables, and
        must not commit or roll back. The checkpoint is checked first, so on a stale version ``work`` does not
        run, nothing is written and :class:`~evento.errors.ConcurrentCheckpointError` is raised.

        ``work`` must not swallow database errors (``try: INSERT ... except UniqueViolation: pass``): on
        PostgreSQL any error aborts the whole transaction, and on MySQL/MariaDB a deadlock rolls it back, after
        which further statements run outside it. The transaction is checked after ``work`` returns; if it is no
        longer the one that advanced the checkpoint, it is rolled back and
        :class:`ProjectionTransactionAbortedError` is raised: the checkpoint is unchanged (but on MySQL, statements
        ``work`` ran after the swallowed error were committed on their own).

        What happens when ``work`` raises, the transaction being rolled back and the checkpoint unchanged each
        time:

        - an error of the store's driver meaning the database aborted the transaction to break a deadlock (or a
          serialisation failure): the whole call, ``work`` included, runs again in a new transaction, up to a few
          times, then :class:`~evento.errors.ConsumerStoreUnavailableError` is raised. So ``work`` may run more
          than once and must have no effect outside the transaction;
        - an error of the driver meaning the database is unreachable or its connection broke:
          :class:`~evento.errors.ConsumerStoreUnavailableError` (transient), chained to it;
        - any other exception, driver errors included: raised unchanged (the same object).

        On MySQL/MariaDB a DDL statement (``CREATE TABLE``) commits implicitly: create read-model tables in a
        call of their own (or before the consumer starts), not in the same call as writes that must roll back.
        Stores without transactions (``supports_transactions`` false) raise :class:`NotImplementedError`.
        """
        raise NotImplementedError(f"the {self.dialect} consumer state store has no transactions to share")

    @abstractmethod
    async def reset(self, consumer_id: str) -> None:
        """Forget the checkpoint (and errors), so the consumer starts again as if new (replay)."""

    async def set_checkpoint(self, consumer_id: str, sequence_number: int) -> Checkpoint:
        """Move the checkpoint to ``sequence_number`` whatever it is now, clearing the error state: the consumer's
        next event is the first one after it (an operator's replay, or a skip forward). Returns the new checkpoint.

        The version moves on, so an instance still holding the old checkpoint fails its next commit
        (:class:`~evento.errors.ConcurrentCheckpointError`) and reads the new one instead of overwriting it. This
        default is built on :meth:`read_checkpoint` and :meth:`commit_checkpoint` (a compare-and-set, tried again
        while a consumer commits in between); the stores of this package do it in one statement.
        """
        for _ in range(_SET_CHECKPOINT_ATTEMPTS):
            current = await self.read_checkpoint(consumer_id)
            try:
                return await self.commit_checkpoint(consumer_id, sequence_number, current.version if current else 0)
            except ConcurrentCheckpointError:
                continue
        raise ConcurrentCheckpointError(
            f"the checkpoint of {consumer_id} kept moving: {_SET_CHECKPOINT_ATTEMPTS} attempts to set it failed"
        )

    # --- consumer lock -----------------------------------------------------------------------------------------

    @abstractmethod
    async def try_lock(self, consumer_id: str, owner: str, lease_seconds: float) -> bool:
        """Take or renew the consumer lock for ``owner``; false when someone else holds a live lease."""

    @abstractmethod
    async def unlock(self, consumer_id: str, owner: str) -> None:
        """Release the lock if ``owner`` holds it."""

    # --- enabled flag and error state --------------------------------------------------------------------------

    @abstractmethod
    async def is_enabled(self, consumer_id: str) -> bool: ...

    @abstractmethod
    async def set_enabled(self, consumer_id: str, enabled: bool) -> None: ...

    @abstractmethod
    async def record_error(self, consumer_id: str, message: str) -> None: ...

    @abstractmethod
    async def error_state(self, consumer_id: str) -> ErrorState: ...

    # --- dead event queue --------------------------------------------------------------------------------------

    @abstractmethod
    async def add_dead_event(self, consumer_id: str, event: StoredEvent, error: str) -> None: ...

    async def dead_letter(self, consumer_id: str, event: StoredEvent, error: str, expected_version: int) -> Checkpoint:
        """Park ``event`` in the dead event queue and move the checkpoint past it, as one step where the store
        can (SQL stores: one transaction), so a crash cannot leave the event both parked and due again.

        Raises :class:`~evento.errors.ConcurrentCheckpointError` (parking nothing) when the version moved.
        """
        checkpoint = await self.commit_checkpoint(consumer_id, event.sequence_number, expected_version)
        await self.add_dead_event(consumer_id, event, error)
        return checkpoint

    @abstractmethod
    async def dead_events(self, consumer_id: str, *, retriable_only: bool = False) -> list[DeadEvent]:
        """The consumer's dead events in sequence order."""

    @abstractmethod
    async def set_dead_event_retry(self, consumer_id: str, sequence_number: int, retry: bool) -> bool:
        """Flag a dead event for retry; false if there is no such entry."""

    @abstractmethod
    async def remove_dead_event(self, consumer_id: str, sequence_number: int) -> bool: ...

    # --- sagas -------------------------------------------------------------------------------------------------

    @abstractmethod
    async def find_saga(self, saga_name: str, association: str, value: str) -> SagaInstance | None:
        """The saga instance whose association ``association`` equals ``value``."""

    @abstractmethod
    async def save_saga(self, instance: SagaInstance, associations: dict[str, str]) -> None:
        """Insert or update an instance and replace its associations."""

    @abstractmethod
    async def delete_saga(self, instance_id: str) -> None: ...

    # --- observer dedupe ---------------------------------------------------------------------------------------

    @abstractmethod
    async def try_claim(self, consumer_id: str, sequence_number: int) -> bool:
        """Claim an event for processing; false if it was already claimed (observer effectively-once)."""

    @abstractmethod
    async def release_claim(self, consumer_id: str, sequence_number: int) -> None: ...
