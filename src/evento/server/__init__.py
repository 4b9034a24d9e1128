"""The Evento Server: the registry of connected bundles, the command broker, the query router and the bus and HTTP
listeners.

The event stores it keeps events in are their own layer, :mod:`evento.event_stores`.
"""

from evento.server.broker import CommandBroker
from evento.server.locks import LockManager
from evento.server.queries import QueryRouter
from evento.server.registry import Registry
from evento.server.server import EventoServer
from evento.server.story_cache import StoryCache

__all__ = ["CommandBroker", "EventoServer", "LockManager", "QueryRouter", "Registry", "StoryCache"]
