"""The two sides of a bundle-server connection, whatever carries it (in-process calls or TCP).

The server sees each connected bundle instance as a :class:`BundlePeer`; a bundle sees the server as a
:class:`ServerLink`. Transports implement these and nothing else, so the broker code is the same for all.
"""

from __future__ import annotations

from typing import Protocol

from evento.discovery import BundleRegistration, NodeInfo
from evento.messages import BundleRequest, BundleResponse, EventsAppended, ServerRequest, ServerResponse

__all__ = ["BundleEndpoint", "BundlePeer", "Connector", "ServerLink"]


class BundlePeer(Protocol):
    """How the server reaches one bundle instance."""

    info: NodeInfo

    async def request(self, message: BundleRequest, timeout: float) -> BundleResponse:
        """Ask the instance to handle a command or query; raises the handler's error."""
        ...

    def notify(self, message: EventsAppended) -> None:
        """Fire-and-forget notification (never blocks the server)."""
        ...


class ServerLink(Protocol):
    """How a bundle instance reaches the server."""

    async def request(self, message: ServerRequest, timeout: float) -> ServerResponse:
        """Send a request; raises the remote error, or RequestTimeoutError when the deadline passes."""
        ...

    async def register(self, registration: BundleRegistration) -> None: ...

    async def set_enabled(self, enabled: bool) -> None: ...

    async def close(self) -> None: ...


class BundleEndpoint(Protocol):
    """What a bundle offers its transport: handling of server requests and notifications."""

    info: NodeInfo

    async def handle_request(self, message: BundleRequest) -> BundleResponse: ...

    def on_notification(self, message: EventsAppended) -> None: ...


class Connector(Protocol):
    """Opens a :class:`ServerLink` for a bundle (in-process or over TCP)."""

    async def connect(self, endpoint: BundleEndpoint) -> ServerLink: ...
