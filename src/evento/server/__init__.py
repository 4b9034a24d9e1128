"""The Evento Server: the registry of connected bundles, the command broker and the bus and HTTP listeners.

The event stores it keeps events in are their own layer, :mod:`evento.event_stores`.
"""

from evento.server.broker import CommandBroker, StoryCache
from evento.server.registry import Registry
from evento.server.server import EventoServer

__all__ = ["CommandBroker", "EventoServer", "Registry", "StoryCache"]
