"""The Evento Server: message gateway, command broker, event store and registry.

``PostgresEventStore`` lives in :mod:`evento.server.postgres_store` (it needs the ``postgres`` extra);
:func:`open_event_store` picks a backend from a ``--store`` value.
"""

from evento.server.broker import CommandBroker, StoryCache
from evento.server.event_store import AppendRequest, EventStore, Story, open_event_store
from evento.server.registry import Registry
from evento.server.server import EventoServer
from evento.server.sqlite_store import SQLiteEventStore

__all__ = [
    "AppendRequest",
    "CommandBroker",
    "EventStore",
    "EventoServer",
    "Registry",
    "SQLiteEventStore",
    "Story",
    "StoryCache",
    "open_event_store",
]
