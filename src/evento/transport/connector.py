"""The bundle side of the TCP bus: :class:`TcpConnector` links a bundle to one or more servers.

Each link is a :class:`~evento.transport.connection.Connection` that shakes hands (``Hello`` with the bundle's
identity and token, answered by ``Welcome`` or ``Reject``), registers the bundle, and is re-established with
backoff whenever it drops, registering and enabling again. A bundle's requests go to any connected server; one
resent after a lost connection keeps its correlation id, so the server answers it from its cache instead of running
it twice. A bundle answers a service command it already handled (or is handling) for the same caller, by command
id, with that first run's reply. Correlation and command ids are random 128-bit values
(:func:`~evento.messages.new_message_id`), so no peer can guess another's next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from evento.discovery import BundleRegistration, NodeInfo
from evento.errors import ConnectionLostError, EventoError, RegistrationError, RequestTimeoutError
from evento.messages import (
    EventsAppended,
    SendCommand,
    ServerRequest,
    ServerResponse,
    ServiceCommandRequest,
    new_message_id,
)
from evento.transport.connection import IDLE_TIMEOUT, PING_INTERVAL, Connection, FrameObserver, respond
from evento.transport.replies import ReplyCache
from evento.transport.wire import (
    PROTOCOL_VERSION,
    Hello,
    Notification,
    ProtocolError,
    Register,
    Reject,
    Request,
    Response,
    SetEnabled,
    Welcome,
)

if TYPE_CHECKING:
    import ssl
    from collections.abc import Awaitable, Sequence

    from evento.transport.base import BundleEndpoint

__all__ = ["ConnectorSettings", "HandshakeRejectedError", "TcpConnector", "parse_address"]

log = logging.getLogger(__name__)


class HandshakeRejectedError(EventoError):
    """The server refused the bundle's Hello; ``code`` says why (``AUTH_FAILED``, ``DUPLICATE_INSTANCE``,
    ``PROTOCOL_VERSION``, ``PROTOCOL``)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (an IPv6 host in brackets) as a (host, port) pair; raises ValueError otherwise."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class ConnectorSettings:
    """Timeouts, backoff and caches of a bundle's links to servers (:class:`TcpConnector`)."""

    #: Seconds to open a connection, and to wait for the server's Welcome and for each answer to a registration.
    connect_timeout: float = 5.0
    #: Seconds before the first reconnect attempt; each failed attempt doubles the delay up to ``max_backoff``
    #: (every delay drawn within 20 % of it, so bundles that lost the same server do not return in step).
    base_backoff: float = 0.1
    max_backoff: float = 30.0
    ping_interval: float = PING_INTERVAL
    idle_timeout: float = IDLE_TIMEOUT
    #: Replies of the service commands this bundle handled, kept so a resend is answered, not run again: how many,
    #: and for how many seconds.
    handled_replies: int = 10_000
    handled_reply_ttl: float = 300.0


#: A service command handled by a bundle: (caller bundle id, caller instance id, command id).
_HandledKey = tuple[str, str, str]
_NOBODY = NodeInfo("", 0, "")  # the caller of a request from a server that names none


class _TcpLink:
    """A bundle's connection to a server, re-established with backoff whenever it drops."""

    def __init__(
        self,
        connector: TcpConnector,
        address: str,
        endpoint: BundleEndpoint,
        handled: ReplyCache[_HandledKey, Response],
    ) -> None:
        self._connector = connector
        self.address = address
        self._endpoint = endpoint
        self._handled = handled
        self._connection: Connection | None = None
        self._reader: asyncio.Task[None] | None = None  # the connection's read loop
        self._connected = asyncio.Event()
        self._registration: BundleRegistration | None = None
        self._enabled = False
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self._connect_once()
        self.start_supervising()

    def start_supervising(self) -> None:
        """Keep the connection up (reconnect with backoff) until closed."""
        self._supervisor = asyncio.create_task(self._supervise())

    async def _connect_once(self) -> None:
        """Connect, shake hands, and (on a reconnect) register and enable again; raises what failed."""
        settings = self._connector.settings
        host, port = parse_address(self.address)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=self._connector.ssl_context), settings.connect_timeout
        )
        info = self._endpoint.info
        connection = Connection(
            reader,
            writer,
            name=self.address,
            ping_interval=settings.ping_interval,
            idle_timeout=settings.idle_timeout,
            on_send=self._connector.on_send,
        )
        await connection.send(
            Hello(PROTOCOL_VERSION, info.bundle_id, info.bundle_version, info.instance_id, self._connector.auth_token)
        )
        try:
            answer = await asyncio.wait_for(connection.receive(), settings.connect_timeout)
        except BaseException:
            await connection.close()
            raise
        if isinstance(answer, Reject):
            await connection.close()
            raise HandshakeRejectedError(f"{self.address} rejected {info}: {answer.code}: {answer.reason}", answer.code)
        if not isinstance(answer, Welcome):
            await connection.close()
            raise ProtocolError(f"expected Welcome, got {type(answer).__name__}")
        read_loop = asyncio.create_task(self._read(connection))
        try:
            registration = self._registration
            while registration is not None:
                await connection.request(Register(registration), settings.connect_timeout)
                if self._registration is registration:
                    break
                registration = self._registration  # register() was called meanwhile: send the newer one
        except BaseException:
            await connection.close()
            await _finish(read_loop)
            raise
        if self._enabled:
            connection.post(Notification(SetEnabled(True)))
        self._connection, self._reader = connection, read_loop
        self._connected.set()

    async def _read(self, connection: Connection) -> None:
        try:
            await connection.run(self._on_request, self._on_notification)
        finally:
            # At once, in this task: a request woken by the connection's end must not pick this link again.
            if self._connection is connection:
                self._connected.clear()
                self._connection = None

    async def _supervise(self) -> None:
        delay = 0.0
        while not self._closing:
            read_loop = self._reader
            if read_loop is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(read_loop)
                self._connected.clear()
                self._connection = self._reader = None
                if self._closing:
                    return
                log.warning("lost connection to %s; reconnecting", self.address)
                delay = 0.0
            settings = self._connector.settings
            delay = min(settings.max_backoff, max(settings.base_backoff, delay * 2))
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            try:
                await self._connect_once()
                log.info("reconnected to %s", self.address)
            except (HandshakeRejectedError, RegistrationError) as exc:
                log.error("%s", exc)
            except (OSError, TimeoutError, ProtocolError, ConnectionError, EventoError) as exc:
                log.debug("reconnect to %s failed: %s", self.address, exc)

    async def _on_request(self, request: Request) -> Response:
        body = request.body

        def run() -> Awaitable[Response]:
            return respond(request.correlation_id, self._endpoint.handle_request(body))  # type: ignore[arg-type]

        if type(body) is not ServiceCommandRequest:
            # A query has no side effect to repeat (and its answer may be large); an aggregate is a pure function
            # of the story it is sent, and the server stores one event per command id whatever it runs.
            return await run()
        # A service command (side effects) runs once per caller and command id: a server forwarding a caller's
        # resend sends it under a correlation id of its own, so the command's id is what identifies it, and the
        # caller the server names scopes it, so another caller sending the same id can neither pre-empt nor replay
        # it. The first run's reply answers the duplicate under the duplicate's correlation id.
        sender = body.caller or _NOBODY
        key = (sender.bundle_id, sender.instance_id, body.command.message_id)
        first = await self._handled.run_once(key, run)
        if first.correlation_id == request.correlation_id:
            return first
        return Response(request.correlation_id, first.body, first.failure)

    async def _on_notification(self, notification: Notification) -> None:
        if isinstance(notification.body, EventsAppended):
            self._endpoint.on_notification(notification.body)

    @property
    def connected(self) -> bool:
        connection = self._connection
        return connection is not None and not connection.closed.is_set()

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def request_once(self, message: ServerRequest, timeout: float, correlation_id: str) -> ServerResponse:
        """One attempt on the current connection; ConnectionLostError when there is none or it drops."""
        connection = self._connection
        if connection is None:
            raise ConnectionLostError(f"not connected to {self.address}")
        return await connection.request(message, timeout, correlation_id)  # type: ignore[return-value]

    async def register(self, registration: BundleRegistration) -> None:
        """Register on the current connection (raising the server's refusal), and on every later one."""
        self._registration = registration
        if self._connection is not None:
            await self._connection.request(Register(registration), self._connector.settings.connect_timeout)

    async def set_enabled(self, enabled: bool) -> None:
        self._enabled = enabled
        if self._connection is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._connection.send(Notification(SetEnabled(enabled)))

    async def close(self) -> None:
        self._closing = True
        if self._connection is not None:
            await self._connection.close()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        if self._reader is not None:
            await _finish(self._reader)


async def _finish(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` if it still runs and wait for it, whatever it ends with."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


class _ServerLinks:
    """A bundle's links to one or more servers: requests go to a connected one, and move on when it drops.

    A request resent after a lost connection keeps its correlation id (the same server answers it from its dedupe
    cache) and a command is marked resent (any server finds the event it already produced in the shared store).
    """

    def __init__(self, links: list[_TcpLink]) -> None:
        self.links = links
        self._next = 0

    def _pick(self) -> _TcpLink | None:
        for offset in range(len(self.links)):
            link = self.links[(self._next + offset) % len(self.links)]
            if link.connected:
                self._next = (self._next + offset + 1) % len(self.links)
                return link
        return None

    async def request(self, message: ServerRequest, timeout: float) -> ServerResponse:
        deadline = time.monotonic() + timeout
        correlation_id = new_message_id()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RequestTimeoutError(f"{type(message).__name__} timed out after {timeout:g}s; outcome unknown")
            link = self._pick()
            if link is None:
                await self._wait_for_any(remaining, timeout)
                continue
            try:
                return await link.request_once(message, remaining, correlation_id)
            except ConnectionLostError:
                if isinstance(message, SendCommand):
                    message = msgspec.structs.replace(message, resent=True)

    async def _wait_for_any(self, remaining: float, timeout: float) -> None:
        waiters = [asyncio.ensure_future(link.wait_connected()) for link in self.links]
        try:
            done, _ = await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        if not done:
            addresses = ", ".join(link.address for link in self.links)
            raise RequestTimeoutError(f"no connection to {addresses} within {timeout:g}s")

    async def register(self, registration: BundleRegistration) -> None:
        """Register with every connected server; raises a server's refusal. A link whose connection drops meanwhile
        registers when it reconnects."""
        results = await asyncio.gather(*(link.register(registration) for link in self.links), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, ConnectionLostError):
                raise result

    async def set_enabled(self, enabled: bool) -> None:
        await asyncio.gather(*(link.set_enabled(enabled) for link in self.links))

    async def close(self) -> None:
        await asyncio.gather(*(link.close() for link in self.links))


class TcpConnector:
    """Connects bundles to servers over TCP: ``await bundle.start(TcpConnector("127.0.0.1:3030"))``.

    With several addresses (a cluster) the bundle connects to every server, so each can route to it, and its own
    requests go to any connected server. ``auth_token`` is presented in the handshake; ``ssl_context`` makes the
    connections TLS; ``on_send`` sees every message sent (see :data:`~evento.transport.connection.FrameObserver`).
    """

    def __init__(
        self,
        addresses: str | Sequence[str],
        *,
        auth_token: str = "",
        ssl_context: ssl.SSLContext | None = None,
        settings: ConnectorSettings | None = None,
        on_send: FrameObserver | None = None,
    ) -> None:
        self.addresses = [addresses] if isinstance(addresses, str) else list(addresses)
        if not self.addresses:
            raise ValueError("a connector needs at least one server address")
        for address in self.addresses:
            parse_address(address)
        self.auth_token = auth_token
        self.ssl_context = ssl_context
        self.settings = settings or ConnectorSettings()
        self.on_send = on_send

    async def connect(self, endpoint: BundleEndpoint) -> _ServerLinks:
        # One cache for the bundle's links to every server: it is the bundle that must not run a command twice.
        settings = self.settings
        handled: ReplyCache[_HandledKey, Response] = ReplyCache(settings.handled_replies, settings.handled_reply_ttl)
        links = [_TcpLink(self, address, endpoint, handled) for address in self.addresses]
        opened = await asyncio.gather(*(link.open() for link in links), return_exceptions=True)
        failures = [result for result in opened if isinstance(result, BaseException)]
        rejected = [f for f in failures if isinstance(f, HandshakeRejectedError)]
        if rejected or len(failures) == len(links):
            await asyncio.gather(*(link.close() for link in links))
            raise (rejected or failures)[0]
        for link, result in zip(links, opened, strict=True):
            if isinstance(result, BaseException):
                log.warning("%s unreachable at start (%s); will keep trying", link.address, result)
                link.start_supervising()
        return _ServerLinks(links)
