"""The server side of the TCP bus: :class:`BusServer`, the ``--bus-port`` listener, admits bundle connections and
hands their requests to an :class:`~evento.server.server.EventoServer`.

The server admits a connection in steps, each bounded: until its ``Hello`` is judged the connection counts against a
cap of unauthenticated connections and may send one small whole frame within a short deadline; the token must allow
the bundle id it names (:class:`~evento.server.bus_credentials.BusCredentials`); and the (bundle id, instance id)
must not belong to a live connection (a present one that does not answer a ping in time is closed and replaced).
Only then does the bundle attach to the registry, and its connection gets the full frame and reassembly limits plus
a cap on the requests it may have handled at once.

Everything a peer does is scoped to that identity. Requests are exactly-once per identity
(:class:`~evento.transport.replies.ReplyCache`): the server answers a command resent by the same bundle instance
with the same correlation id from its cache, and keeps the reply of any request whose caller lost its connection
meanwhile until the caller reconnects and asks again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evento.discovery import BundleRegistration, NodeInfo
from evento.errors import ConnectionLostError, Failure, RegistrationError
from evento.messages import (
    BundleRequest,
    BundleResponse,
    CommandResult,
    EventBatch,
    EventsAppended,
    QueryResult,
    SendCommand,
)
from evento.server.bus_credentials import BusCredentials
from evento.server.registry import DuplicateInstanceError, Node
from evento.transport.connection import IDLE_TIMEOUT, PING_INTERVAL, Connection, respond
from evento.transport.replies import ReplyCache
from evento.transport.wire import (
    DEFAULT_MAX_FRAME,
    PROTOCOL_VERSION,
    Hello,
    Message,
    Notification,
    ProtocolError,
    Register,
    Registered,
    Reject,
    Request,
    Response,
    SetEnabled,
    Welcome,
)

if TYPE_CHECKING:
    import ssl
    from collections.abc import Awaitable, Mapping, Sequence

    from evento.server.server import EventoServer

__all__ = ["BusServer", "BusSettings"]

log = logging.getLogger(__name__)

_MAX_ID_LENGTH = 256  # characters of a bundle id or instance id in a Hello


class _TcpPeer:
    """The server's view of a bundle instance connected over TCP."""

    def __init__(self, info: NodeInfo, connection: Connection) -> None:
        self.info = info
        self.connection = connection

    async def request(self, message: BundleRequest, timeout: float) -> BundleResponse:
        if self.connection.closed.is_set():
            raise ConnectionLostError(f"instance {self.info} has left")
        return await self.connection.request(message, timeout)  # type: ignore[return-value]

    def notify(self, message: EventsAppended) -> None:
        self.connection.post(Notification(message))


@dataclass(frozen=True)
class BusSettings:
    """Limits and timeouts of the bus listener (:class:`BusServer`)."""

    #: Seconds a new connection has to send its Hello.
    handshake_timeout: float = 5.0
    #: The one frame a connection may send before the Welcome (its Hello): whole, and at most this many bytes.
    hello_max_bytes: int = 64 * 1024
    #: Connections still in their handshake; one more is closed at once, before anything is read from it.
    max_unauthenticated: int = 64
    #: Seconds a connected instance has to answer a ping when a newcomer claims its (bundle id, instance id): if it
    #: does, the newcomer is refused (DUPLICATE_INSTANCE); if not, its connection is closed and the newcomer admitted.
    liveness_timeout: float = 2.0
    #: Largest frame once authenticated (larger messages are chunked).
    max_frame: int = DEFAULT_MAX_FRAME
    #: Bytes of unfinished chunked messages one connection may make the server hold.
    max_message: int = 256 * 1024 * 1024
    #: Requests of one connection handled at once; one more is refused with TooManyPendingRequestsError.
    max_concurrent_requests: int = 1024
    ping_interval: float = PING_INTERVAL
    idle_timeout: float = IDLE_TIMEOUT
    #: Command replies kept for resends: how many, how long, how many bytes in all.
    command_replies: int = 50_000
    command_reply_ttl: float = 300.0
    command_reply_bytes: int = 128 * 1024 * 1024
    #: Replies kept for a caller whose connection dropped while its request was in flight.
    parked_replies: int = 1024
    parked_reply_ttl: float = 30.0
    parked_reply_bytes: int = 256 * 1024 * 1024


#: A peer's identity on the bus: (bundle id, instance id). The bundle id is what its token allows; the instance id
#: tells replicas of one bundle apart (they share a token) and belongs to one live connection at a time. So a bundle
#: resending after a reconnect (same instance) finds its earlier replies, while another bundle, or another replica
#: of the same one, cannot reach them. With the shared ``--auth-token`` any holder may claim any bundle id: the
#: identity then separates peers but does not authenticate the bundle id.
_Identity = tuple[str, str]


class BusServer:
    """Accepts bundle connections for an :class:`EventoServer` (the ``--bus-port`` listener).

    ``auth_token`` lets its holders register as any bundle; each token of ``bus_tokens`` only as the bundle ids it
    lists (see :class:`BusCredentials`). With neither, any peer that reaches the port may join.
    """

    def __init__(
        self,
        server: EventoServer,
        host: str = "127.0.0.1",
        port: int = 3030,
        *,
        auth_token: str | None = None,
        bus_tokens: Mapping[str, Sequence[str]] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        settings: BusSettings | None = None,
    ) -> None:
        self.server = server
        self.host, self.port = host, port
        self.credentials = BusCredentials(auth_token or "", bus_tokens)
        self.ssl_context = ssl_context
        self.settings = settings = settings or BusSettings()
        self._listener: asyncio.Server | None = None
        self._connections: set[Connection] = set()
        self._unauthenticated = 0
        self._admitting: set[_Identity] = set()  # identities whose admission awaits a liveness probe
        self._cap_warned = 0.0
        self._in_flight = 0  # requests being handled, for the metrics
        # Commands by (caller identity, correlation id): a resend by the same caller gets the first answer, never a
        # second run, and no other peer can pre-fill or read an entry of it.
        self._commands: ReplyCache[tuple[_Identity, str], Response] = ReplyCache(
            settings.command_replies, settings.command_reply_ttl, max_weight=settings.command_reply_bytes
        )
        # Other requests by (caller identity, correlation id): only while in flight, and parked for a while when the
        # caller's connection dropped meanwhile, so its resend after reconnecting gets this reply.
        self._replies: ReplyCache[tuple[_Identity, str], Response] = ReplyCache(
            settings.parked_replies, settings.parked_reply_ttl, max_weight=settings.parked_reply_bytes
        )

    @property
    def unauthenticated(self) -> int:
        """Connections in their handshake right now (capped by ``settings.max_unauthenticated``)."""
        return self._unauthenticated

    @property
    def connection_count(self) -> int:
        """Open connections, in their handshake or admitted (``evento_bus_connections``)."""
        return len(self._connections)

    @property
    def requests_in_flight(self) -> int:
        """Requests of bundles being handled now (``evento_bus_requests_in_flight``)."""
        return self._in_flight

    async def start(self) -> None:
        self.server.metrics.watch_bus(self)
        self._listener = await asyncio.start_server(
            self._accept,
            self.host,
            self.port,
            ssl=self.ssl_context,
            ssl_handshake_timeout=self.settings.handshake_timeout if self.ssl_context else None,
        )
        self.port = self._listener.sockets[0].getsockname()[1]
        log.info("bus listening on %s:%d%s", self.host, self.port, " (TLS)" if self.ssl_context else "")

    async def stop(self) -> None:
        self.server.metrics.unwatch_bus(self)
        if self._listener is not None:
            self._listener.close()
        for connection in list(self._connections):
            await connection.close()
        if self._listener is not None:
            await self._listener.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        if self._unauthenticated >= self.settings.max_unauthenticated:
            self._refuse_excess(writer, peername)
            return
        settings = self.settings
        connection = Connection(
            reader,
            writer,
            name=str(peername),
            max_frame=settings.max_frame,
            max_message=settings.max_message,
            max_handling=settings.max_concurrent_requests,
            ping_interval=settings.ping_interval,
            idle_timeout=settings.idle_timeout,
        )
        connection.restrict(settings.hello_max_bytes)
        self._connections.add(connection)
        node: Node | None = None
        try:
            self._unauthenticated += 1
            try:
                info = await asyncio.wait_for(self._authenticate(connection, peername), settings.handshake_timeout)
            finally:
                self._unauthenticated -= 1
            if info is None:
                return
            node = attached = await self._admit(info, connection)
            if attached is None:
                return
            connection.name = str(info)
            connection.unrestrict()
            await connection.send(Welcome(PROTOCOL_VERSION, self.server.server_id))
            identity = (info.bundle_id, info.instance_id)
            await connection.run(
                lambda request: self._on_request(identity, attached, connection, request),
                lambda notification: self._on_notify(attached, notification),
            )
        except ConnectionLostError:
            log.info("%s disconnected", connection.name)
        except (ProtocolError, TimeoutError, ConnectionError) as exc:
            log.warning("closing connection from %s: %s", peername, exc)
        except Exception:
            log.exception("connection from %s failed", peername)
        finally:
            if node is not None:
                self.server.detach(node)
            await connection.close()
            self._connections.discard(connection)

    def _refuse_excess(self, writer: asyncio.StreamWriter, peername: object) -> None:
        """Close a connection beyond the cap of unauthenticated ones at once (one warning per 10 s, not per peer)."""
        writer.transport.abort()
        now = time.monotonic()
        if now - self._cap_warned > 10.0:
            self._cap_warned = now
            log.warning(
                "%d connections are in their handshake (the cap); closing new ones at once, e.g. from %s",
                self._unauthenticated,
                peername,
            )

    async def _authenticate(self, connection: Connection, peername: object) -> NodeInfo | None:
        """The identity a Hello proves, or ``None`` after answering a refusal with a Reject."""
        hello = await connection.receive()
        if connection.queued:
            raise ProtocolError("frames after the Hello before the Welcome")
        refusal = self._refusal(hello)
        if refusal is not None:
            log.warning("refused connection from %s: %s", peername, refusal[1])
            await connection.send(Reject(*refusal))
            return None
        assert isinstance(hello, Hello)
        return NodeInfo(hello.bundle_id, hello.bundle_version, hello.instance_id)

    def _refusal(self, hello: Message) -> tuple[str, str] | None:
        if not isinstance(hello, Hello):
            return "PROTOCOL", f"expected Hello, got {type(hello).__name__}"
        if hello.protocol_version != PROTOCOL_VERSION:
            return (
                "PROTOCOL_VERSION",
                f"protocol {hello.protocol_version} unsupported (server speaks {PROTOCOL_VERSION})",
            )
        for what, value in (("bundle id", hello.bundle_id), ("instance id", hello.instance_id)):
            if not 0 < len(value) <= _MAX_ID_LENGTH:
                return "PROTOCOL", f"the {what} must have 1 to {_MAX_ID_LENGTH} characters"
        reason = self.credentials.refusal(hello.auth_token, hello.bundle_id)
        return None if reason is None else ("AUTH_FAILED", reason)

    async def _admit(self, info: NodeInfo, connection: Connection) -> Node | None:
        """Attach the authenticated instance, or refuse it (DUPLICATE_INSTANCE) while another live connection holds
        its (bundle id, instance id). A holder that does not answer a ping within ``liveness_timeout`` is taken for
        dead (a half-open connection, a process killed without a FIN) and closed, so a bundle that reconnects is
        not locked out by its own previous connection, while a second process with the same ids is refused."""
        identity = (info.bundle_id, info.instance_id)
        if identity in self._admitting:
            await self._refuse_duplicate(connection, info, "another connection with these ids is being admitted")
            return None
        self._admitting.add(identity)
        try:
            present = self.server.registry.node(*identity)
            if present is not None:
                if await self._alive(present):
                    await self._refuse_duplicate(connection, info, "it is connected and answers pings")
                    return None
                log.warning(
                    "%s did not answer a ping within %gs; closing it for the newcomer with the same ids",
                    present.info,
                    self.settings.liveness_timeout,
                )
                self.server.detach(present)
                if isinstance(present.peer, _TcpPeer):
                    await present.peer.connection.close()
            try:
                return self.server.attach(_TcpPeer(info, connection))
            except DuplicateInstanceError as exc:  # attached meanwhile through another transport
                await self._refuse_duplicate(connection, info, str(exc))
                return None
        finally:
            self._admitting.discard(identity)

    async def _alive(self, node: Node) -> bool:
        peer = node.peer
        if not isinstance(peer, _TcpPeer):
            return True  # in this process: alive as long as it is attached
        return await peer.connection.probe(self.settings.liveness_timeout)

    async def _refuse_duplicate(self, connection: Connection, info: NodeInfo, why: str) -> None:
        reason = (
            f"instance {info.instance_id!r} of bundle {info.bundle_id!r} is already connected ({why});"
            " give each process its own instance id"
        )
        log.warning("refused connection of %s: %s", info, reason)
        await connection.send(Reject("DUPLICATE_INSTANCE", reason))

    async def _on_request(self, identity: _Identity, node: Node, connection: Connection, request: Request) -> Response:
        body = request.body
        timeout = request.timeout_ms / 1000

        def run() -> Awaitable[Response]:
            return respond(request.correlation_id, self.server.handle(node, body, timeout))  # type: ignore[arg-type]

        key = (identity, request.correlation_id)
        if type(body) is Register:
            return self._register(node, request.correlation_id, body.registration)
        self._in_flight += 1
        try:
            if type(body) is SendCommand:
                try:
                    return await self._commands.run_once(key, run)
                finally:
                    self._commands.settle(key, keep=True, weigh=_weight)
            # Queries and fetches are safe to repeat and their answers can be large: kept only for a caller who
            # lost its connection before the answer was ready.
            try:
                return await self._replies.run_once(key, run, ttl=max(timeout, self._replies.ttl))
            finally:
                self._replies.settle(key, keep=connection.closed.is_set(), weigh=_weight)
        finally:
            self._in_flight -= 1

    def _register(self, node: Node, correlation_id: str, registration: BundleRegistration) -> Response:
        try:
            self.server.register(node, registration)
        except RegistrationError as exc:  # logged by the server; the bundle sees it as the answer
            return Response(correlation_id, failure=Failure.from_exception(exc))
        return Response(correlation_id, Registered())

    async def _on_notify(self, node: Node, notification: Notification) -> None:
        body = notification.body
        if isinstance(body, SetEnabled):
            self.server.set_enabled(node, body.enabled)


def _weight(response: Response) -> int:
    """Roughly what a kept reply holds in memory: its payload bytes."""
    body = response.body
    if isinstance(body, QueryResult):
        return len(body.payload)
    if isinstance(body, EventBatch):
        return sum(len(event.payload) + 200 for event in body.events)
    if isinstance(body, CommandResult) and body.event is not None:
        return len(body.event.payload) + 200
    return 200
