"""The admin channel, server side: consumer status and dead-event operations asked of the bundle instance that
runs a consumer (reference §4.2 consumer admin surface), in-process or over TCP, on this server or another of its
cluster.

(Skeleton: filled in by the admin work of issue 10.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evento.server.server import EventoServer

__all__ = ["ConsumerAdmin"]


class ConsumerAdmin:
    """Consumer administration across the instances connected to ``server`` (and, in a cluster, to the others)."""

    def __init__(self, server: EventoServer) -> None:
        self.server = server
