"""The two sides of a bundle-server connection, whatever carries it (in-process calls or TCP).

The server sees each connected bundle instance as a :class:`BundlePeer`; a bundle sees the server as a
:class:`ServerLink`. Transports implement these and nothing else, so the broker code is the same for all. What a
transport needs from each end is written here too (:class:`BundleEndpoint`, :class:`ServerEndpoint`), so the
transport package depends on neither the bundle nor the server: they depend on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from evento.discovery import BundleRegistration, NodeInfo
    from evento.messages import BundleRequest, BundleResponse, EventsAppended, ServerRequest, ServerResponse

__all__ = ["BundleEndpoint", "BundlePeer", "Connector", "ServerEndpoint", "ServerLink"]

NodeT = TypeVar("NodeT")


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


class ServerEndpoint(Protocol[NodeT]):
    """What a server offers its transports (:class:`~evento.server.server.EventoServer` is one): each connected
    bundle instance is attached as a :class:`BundlePeer` and named afterwards by the handle ``attach`` returns."""

    def attach(self, peer: BundlePeer) -> NodeT:
        """A bundle instance connected; raises a :class:`~evento.errors.RegistrationError` while it is attached."""
        ...

    def detach(self, node: NodeT) -> None: ...

    def register(self, node: NodeT, registration: BundleRegistration) -> None:
        """Route what the instance declares; raises a :class:`~evento.errors.RegistrationError` when refused."""
        ...

    def set_enabled(self, node: NodeT, enabled: bool) -> None: ...

    async def handle(self, node: NodeT, request: ServerRequest, timeout: float) -> ServerResponse:
        """Handle one request of the instance; raises the error its caller should see."""
        ...
