"""In-process transport: bundles and the server in one event loop, talking by direct calls.

Messages are handed over as objects (payloads are already bytes), and errors cross as :class:`Failure` exactly as
they would over TCP, so a system behaves the same embedded or distributed.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Generic, TypeVar

from evento.errors import Failure, RequestTimeoutError

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from evento.discovery import BundleRegistration, NodeInfo
    from evento.messages import (
        BundleRequest,
        BundleResponse,
        EventsAppended,
        ServerRequest,
        ServerResponse,
    )
    from evento.transport.base import BundleEndpoint, ServerEndpoint

__all__ = ["InProcessConnector"]

T = TypeVar("T")
NodeT = TypeVar("NodeT")


async def call_with_deadline(awaitable: Awaitable[T], timeout: float, what: str, *, detach: bool = True) -> T:
    """Await with a deadline and translate errors the way the wire does.

    With ``detach`` (a caller waiting on the server) the work is shielded: a timeout leaves it running and the
    outcome is indeterminate, exactly as when a TCP caller gives up. Without it (the server waiting on a bundle)
    the work is cancelled at the deadline: the server has already given up and will store nothing from it.
    """
    task = asyncio.ensure_future(awaitable) if detach else None
    try:
        async with asyncio.timeout(timeout):
            return await (asyncio.shield(task) if task is not None else awaitable)
    except TimeoutError:
        if task is not None:
            # The work goes on; when it ends, its outcome is consumed so asyncio does not report it as lost.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        raise RequestTimeoutError(f"{what} timed out after {timeout:g}s; its outcome is unknown") from None
    except Exception as exc:
        # The same translation the wire does: the caller sees the error class again, rebuilt from its name.
        raise Failure.from_exception(exc).to_exception() from None


class _InProcessPeer:
    """The server's view of a bundle in the same process."""

    def __init__(self, endpoint: BundleEndpoint) -> None:
        self.endpoint = endpoint
        self.info: NodeInfo = endpoint.info

    async def request(self, message: BundleRequest, timeout: float) -> BundleResponse:
        return await call_with_deadline(
            self.endpoint.handle_request(message), timeout, type(message).__name__, detach=False
        )

    def notify(self, message: EventsAppended) -> None:
        self.endpoint.on_notification(message)


class _InProcessLink(Generic[NodeT]):
    """A bundle's view of a server in the same process."""

    def __init__(self, server: ServerEndpoint[NodeT], node: NodeT) -> None:
        self._server = server
        self._node = node

    async def request(self, message: ServerRequest, timeout: float) -> ServerResponse:
        work = self._server.handle(self._node, message, timeout)
        return await call_with_deadline(work, timeout, _describe(message))

    async def register(self, registration: BundleRegistration) -> None:
        self._server.register(self._node, registration)

    async def set_enabled(self, enabled: bool) -> None:
        self._server.set_enabled(self._node, enabled)

    async def close(self) -> None:
        self._server.detach(self._node)


def _describe(message: ServerRequest) -> str:
    inner = getattr(message, "command", None) or getattr(message, "query", None)
    return inner.payload_name if inner is not None else type(message).__name__


class InProcessConnector(Generic[NodeT]):
    """Connects bundles to a server running in the same event loop (``Bundle.start(server)`` makes one)."""

    def __init__(self, server: ServerEndpoint[NodeT]) -> None:
        self.server = server

    async def connect(self, endpoint: BundleEndpoint) -> _InProcessLink[NodeT]:
        node = self.server.attach(_InProcessPeer(endpoint))
        return _InProcessLink(self.server, node)
