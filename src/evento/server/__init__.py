"""The Evento Server: message gateway, command broker, event store and registry."""

from evento.server.broker import CommandBroker, StoryCache
from evento.server.event_store import AppendRequest, EventStore, Story
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
]
