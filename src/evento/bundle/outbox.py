"""The bundle's :class:`~evento.outbox.Outbox`: requests over its server link, metadata by its tracing agent.

One implementation for the bundle and for the :mod:`evento.testing` fixtures, which connect it to a stand-in
server instead of a link.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from evento.messages import HandledMessage, Metadata, ServerRequest, ServerResponse

if TYPE_CHECKING:
    import asyncio

    from evento.bundle.tracing import TracingAgent
    from evento.discovery import NodeInfo

__all__ = ["BundleOutbox", "Send"]

#: How requests reach a server: a :class:`~evento.transport.base.ServerLink`'s ``request``, or a stand-in's.
Send = Callable[[ServerRequest, float], Awaitable[ServerResponse]]


class BundleOutbox:
    """The :class:`~evento.outbox.Outbox` of one bundle instance.

    It sends nothing until :meth:`connect` gives it the loop and the way to the server, and refuses again after
    :meth:`disconnect`.
    """

    def __init__(self, info: NodeInfo, tracing_agent: TracingAgent) -> None:
        self.info = info
        self.owner = f"{info.bundle_id}/{info.instance_id}"
        self.tracing_agent = tracing_agent
        self.loop: asyncio.AbstractEventLoop | None = None
        self._send: Send | None = None

    def connect(self, send: Send, loop: asyncio.AbstractEventLoop) -> None:
        """Send requests through ``send``, run on ``loop``."""
        self._send = send
        self.loop = loop

    def disconnect(self) -> None:
        """Refuse requests from now on. The loop stays known, so a sync gateway call still finds it (and fails
        with "not started" from :meth:`request`, like any other request)."""
        self._send = None

    async def request(self, message: ServerRequest, timeout: float) -> ServerResponse:
        if self._send is None:
            raise RuntimeError(f"bundle {self.info.bundle_id} is not started")
        return await self._send(message, timeout)

    def correlate(self, metadata: Metadata | None, handled: HandledMessage | None) -> dict[str, str]:
        return self.tracing_agent.correlate(metadata, handled)
