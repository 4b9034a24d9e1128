"""Event stores: where the server keeps every event and snapshot (the System State Store).

:class:`EventStore` holds the group commit and the notification of appends; each backend writes batches and reads
events. ``PostgresEventStore`` lives in :mod:`evento.event_stores.postgres` and is not imported here, so its
driver stays an optional extra; :func:`open_event_store` picks a backend from a ``--store`` value.
"""

from evento.event_stores.base import AppendRequest, EventStore, Story, VersionConflictError
from evento.event_stores.factory import open_event_store
from evento.event_stores.sqlite import SQLiteEventStore

__all__ = ["AppendRequest", "EventStore", "SQLiteEventStore", "Story", "VersionConflictError", "open_event_store"]
