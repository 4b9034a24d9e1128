"""The in-memory consumer state store: for tests, demos and consumers whose progress may be lost."""

from __future__ import annotations

import time

from evento.consumer_stores.base import Checkpoint, ConsumerStateStore, DeadEvent, ErrorState, SagaInstance
from evento.errors import ConcurrentCheckpointError
from evento.messages import StoredEvent, now_ms

__all__ = ["MemoryConsumerStateStore"]

_NO_ERROR = ErrorState(False, 0, None, None, None)


class MemoryConsumerStateStore(ConsumerStateStore):
    """Consumer state kept in dicts of this process.

    Every method finishes without awaiting, so each one is atomic with respect to the event loop: the
    optimistic checkpoint version and the lock lease behave as in the SQL backends with no locking of our own.
    """

    dialect = "memory"
    durable = False

    def __init__(self) -> None:
        self._checkpoints: dict[str, Checkpoint] = {}
        # consumer_id -> (owner, expiry on the monotonic clock): wall-clock jumps must not break a lease.
        self._locks: dict[str, tuple[str, float]] = {}
        # Locks taken through this instance, released on stop() as the contract asks.
        self._held: set[tuple[str, str]] = set()
        self._disabled: set[str] = set()
        self._errors: dict[str, ErrorState] = {}
        self._dead: dict[str, dict[int, DeadEvent]] = {}
        self._sagas: dict[str, SagaInstance] = {}
        self._saga_associations: dict[str, dict[str, str]] = {}
        # (saga_name, association, value) -> instance ids in insertion order (a dict as an ordered set), so
        # find_saga is a lookup, and deleting one of two instances sharing a value keeps the other findable.
        self._saga_index: dict[tuple[str, str, str], dict[str, None]] = {}
        self._claims: dict[str, set[int]] = {}

    async def stop(self) -> None:
        for consumer_id, owner in list(self._held):
            await self.unlock(consumer_id, owner)

    # --- checkpoints ----------------------------------------------------------------------------------------

    async def read_checkpoint(self, consumer_id: str) -> Checkpoint | None:
        return self._checkpoints.get(consumer_id)

    async def seed_checkpoint(self, consumer_id: str, sequence_number: int) -> Checkpoint:
        return self._checkpoints.setdefault(consumer_id, Checkpoint(sequence_number, 0))

    async def commit_checkpoint(self, consumer_id: str, sequence_number: int, expected_version: int) -> Checkpoint:
        current = self._checkpoints.get(consumer_id)
        # A consumer that never ran is at version 0, so its first commit needs no seed.
        version = current.version if current is not None else 0
        if version != expected_version:
            raise ConcurrentCheckpointError(
                f"checkpoint of {consumer_id} is at version {version}, expected {expected_version}"
            )
        checkpoint = Checkpoint(sequence_number, version + 1)
        self._checkpoints[consumer_id] = checkpoint
        self._errors.pop(consumer_id, None)
        return checkpoint

    async def reset(self, consumer_id: str) -> None:
        self._checkpoints.pop(consumer_id, None)
        self._errors.pop(consumer_id, None)

    async def set_checkpoint(self, consumer_id: str, sequence_number: int) -> Checkpoint:
        current = self._checkpoints.get(consumer_id)
        checkpoint = Checkpoint(sequence_number, (current.version if current is not None else 0) + 1)
        self._checkpoints[consumer_id] = checkpoint
        self._errors.pop(consumer_id, None)
        return checkpoint

    # --- consumer lock --------------------------------------------------------------------------------------

    async def try_lock(self, consumer_id: str, owner: str, lease_seconds: float) -> bool:
        now = time.monotonic()
        held = self._locks.get(consumer_id)
        if held is not None and held[0] != owner and held[1] > now:
            return False
        self._locks[consumer_id] = (owner, now + lease_seconds)
        self._held.add((consumer_id, owner))
        return True

    async def unlock(self, consumer_id: str, owner: str) -> None:
        self._held.discard((consumer_id, owner))
        held = self._locks.get(consumer_id)
        if held is not None and held[0] == owner:
            del self._locks[consumer_id]

    # --- enabled flag and error state -----------------------------------------------------------------------

    async def is_enabled(self, consumer_id: str) -> bool:
        return consumer_id not in self._disabled

    async def set_enabled(self, consumer_id: str, enabled: bool) -> None:
        if enabled:
            self._disabled.discard(consumer_id)
        else:
            self._disabled.add(consumer_id)

    async def record_error(self, consumer_id: str, message: str) -> None:
        now = now_ms()
        previous = self._errors.get(consumer_id, _NO_ERROR)
        first = previous.first_error_at if previous.in_error else now
        self._errors[consumer_id] = ErrorState(True, previous.error_count + 1, message, first, now)

    async def error_state(self, consumer_id: str) -> ErrorState:
        return self._errors.get(consumer_id, _NO_ERROR)

    # --- dead event queue -----------------------------------------------------------------------------------

    async def add_dead_event(self, consumer_id: str, event: StoredEvent, error: str) -> None:
        dead = DeadEvent(consumer_id, event, error, False, now_ms())
        self._dead.setdefault(consumer_id, {})[event.sequence_number] = dead

    async def dead_events(self, consumer_id: str, *, retriable_only: bool = False) -> list[DeadEvent]:
        queue = self._dead.get(consumer_id, {})
        return [queue[seq] for seq in sorted(queue) if queue[seq].retry or not retriable_only]

    async def set_dead_event_retry(self, consumer_id: str, sequence_number: int, retry: bool) -> bool:
        queue = self._dead.get(consumer_id, {})
        dead = queue.get(sequence_number)
        if dead is None:
            return False
        queue[sequence_number] = DeadEvent(dead.consumer_id, dead.event, dead.error, retry, dead.dead_at)
        return True

    async def remove_dead_event(self, consumer_id: str, sequence_number: int) -> bool:
        return self._dead.get(consumer_id, {}).pop(sequence_number, None) is not None

    # --- sagas ----------------------------------------------------------------------------------------------

    async def find_saga(self, saga_name: str, association: str, value: str) -> SagaInstance | None:
        ids = self._saga_index.get((saga_name, association, value))
        if not ids:
            return None
        return self._sagas[next(iter(ids))]

    async def save_saga(self, instance: SagaInstance, associations: dict[str, str]) -> None:
        self._unindex_saga(instance.id)
        self._sagas[instance.id] = instance
        self._saga_associations[instance.id] = dict(associations)
        for name, value in associations.items():
            self._saga_index.setdefault((instance.saga_name, name, value), {})[instance.id] = None

    async def delete_saga(self, instance_id: str) -> None:
        self._unindex_saga(instance_id)
        self._sagas.pop(instance_id, None)
        self._saga_associations.pop(instance_id, None)

    def _unindex_saga(self, instance_id: str) -> None:
        instance = self._sagas.get(instance_id)
        if instance is None:
            return
        for name, value in self._saga_associations.get(instance_id, {}).items():
            key = (instance.saga_name, name, value)
            ids = self._saga_index.get(key)
            if ids is not None:
                ids.pop(instance_id, None)
                if not ids:
                    del self._saga_index[key]

    # --- observer dedupe ------------------------------------------------------------------------------------

    async def try_claim(self, consumer_id: str, sequence_number: int) -> bool:
        claimed = self._claims.setdefault(consumer_id, set())
        if sequence_number in claimed:
            return False
        claimed.add(sequence_number)
        return True

    async def release_claim(self, consumer_id: str, sequence_number: int) -> None:
        self._claims.get(consumer_id, set()).discard(sequence_number)
