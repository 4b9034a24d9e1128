"""Consumer state stores: where projectors, sagas and observers keep checkpoints, locks and state.

:func:`open_consumer_store` opens any backend from a configuration string. The PostgreSQL and MySQL/MariaDB
stores live in ``evento.consumer_stores.postgres`` and ``evento.consumer_stores.mysql``; they are not imported
here, so their drivers stay optional extras.
"""

from evento.consumer_stores.base import (
    Checkpoint,
    ConsumerStateStore,
    DeadEvent,
    ErrorState,
    ProjectionTransactionAbortedError,
    SagaInstance,
)
from evento.consumer_stores.factory import open_consumer_store
from evento.consumer_stores.memory import MemoryConsumerStateStore
from evento.consumer_stores.sqlite import SQLiteConsumerStateStore

__all__ = [
    "Checkpoint",
    "ConsumerStateStore",
    "DeadEvent",
    "ErrorState",
    "MemoryConsumerStateStore",
    "ProjectionTransactionAbortedError",
    "SQLiteConsumerStateStore",
    "SagaInstance",
    "open_consumer_store",
]
