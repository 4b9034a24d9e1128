"""Consumer state stores: where projectors, sagas and observers keep checkpoints, locks and state."""

from evento.consumer_stores.base import Checkpoint, ConsumerStateStore, DeadEvent, ErrorState, SagaInstance
from evento.consumer_stores.memory import MemoryConsumerStateStore
from evento.consumer_stores.sqlite import SQLiteConsumerStateStore

__all__ = [
    "Checkpoint",
    "ConsumerStateStore",
    "DeadEvent",
    "ErrorState",
    "MemoryConsumerStateStore",
    "SQLiteConsumerStateStore",
    "SagaInstance",
]
