"""The outbox: what code running in a bundle needs from it to reach the server.

Gateways (commands and queries a handler sends), consumer engines (fetching events, taking consumer locks), call
contexts (gateways made on demand for a handler) and the :mod:`evento.testing` fixtures use a bundle only through
this contract. A :class:`~evento.Bundle` provides it with
:class:`~evento.bundle.outbox.BundleOutbox`, which sends over its server link; a test fixture provides the same
class with a stand-in server, so handlers run on the real code paths.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import asyncio

    from evento.messages import HandledMessage, Metadata, ServerRequest, ServerResponse

__all__ = ["Outbox"]


class Outbox(Protocol):
    """The way out of a bundle: requests to the server, the metadata they carry, and who sends them."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop requests run on (``None`` before the bundle starts); plain ``def`` handlers on worker
        threads hand their requests to it."""
        ...

    @property
    def owner(self) -> str:
        """This bundle instance's name as the holder of consumer locks (``bundle_id/instance_id``)."""
        ...

    async def request(self, message: ServerRequest, timeout: float) -> ServerResponse:
        """Send a request to the server and wait at most ``timeout`` seconds for its answer."""
        ...

    def correlate(self, metadata: Metadata | None, handled: HandledMessage | None) -> dict[str, str]:
        """The metadata of a message sent while handling ``handled`` (``None``: the root of a new chain)."""
        ...
