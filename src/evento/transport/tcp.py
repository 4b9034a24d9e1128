"""TCP transport: the server's bus listener and the bundle's connector, over the frames of :mod:`wire`.

Both ends share :class:`Connection`: one reader task, serialised writes, requests matched to responses by
correlation id, heartbeats that close a silent peer. The server admits a connection in steps, each bounded: until
its ``Hello`` is judged the connection counts against a cap of unauthenticated connections and may send one small
whole frame within a short deadline; the token must allow the bundle id it names (:class:`BusCredentials`); and
the (bundle id, instance id) must not belong to a live connection (a present one that does not answer a ping in
time is closed and replaced). Only then does the bundle attach to the registry, and its connection gets the full
frame and reassembly limits plus a cap on the requests it may have handled at once.

Everything a peer does is scoped to that identity. Requests are exactly-once per identity
(:class:`~evento.transport.replies.ReplyCache`): the server answers a command resent by the same bundle instance
with the same correlation id from its cache, and keeps the reply of any request whose caller lost its connection
meanwhile until the caller reconnects and asks again; a bundle answers a service command it already handled (or is
handling) for the same caller, by command id, with that first run's reply. Correlation and command ids are random
128-bit values (:func:`~evento.messages.new_message_id`), so no peer can guess another's next one either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from evento.discovery import BundleRegistration, NodeInfo
from evento.errors import (
    ConnectionLostError,
    EventoError,
    Failure,
    RegistrationError,
    RequestTimeoutError,
    TooManyPendingRequestsError,
)
from evento.messages import (
    BundleRequest,
    BundleResponse,
    CommandResult,
    EventBatch,
    EventsAppended,
    QueryResult,
    SendCommand,
    ServerRequest,
    ServerResponse,
    ServiceCommandRequest,
    new_message_id,
)
from evento.server.registry import DuplicateInstanceError, Node
from evento.server.server import EventoServer, caller
from evento.transport.base import BundleEndpoint
from evento.transport.credentials import BusCredentials
from evento.transport.replies import ReplyCache
from evento.transport.wire import (
    DEFAULT_MAX_FRAME,
    DEFAULT_MAX_MESSAGE,
    PROTOCOL_VERSION,
    FrameDecoder,
    Hello,
    Message,
    Notification,
    Ping,
    Pong,
    ProtocolError,
    Register,
    Registered,
    Reject,
    Request,
    RequestBody,
    Response,
    ResponseBody,
    SetEnabled,
    Welcome,
    encode_frames,
)

__all__ = [
    "BusCredentials",
    "BusServer",
    "BusSettings",
    "ConnectionLostError",
    "HandshakeRejectedError",
    "TcpConnector",
    "parse_address",
]

log = logging.getLogger(__name__)

_HIGH_WATER = 1024 * 1024  # bytes buffered before a sender waits for the socket
_MAX_ID_LENGTH = 256  # characters of a bundle id or instance id in a Hello


class HandshakeRejectedError(EventoError):
    """The server refused the bundle's Hello; ``code`` says why (``AUTH_FAILED``, ``DUPLICATE_INSTANCE``,
    ``PROTOCOL_VERSION``, ``PROTOCOL``)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


def parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


class Connection:
    """A framed, full-duplex message connection.

    ``max_in_flight`` bounds the requests this side has sent and awaits; ``max_handling`` (0: no bound) the peer's
    requests being handled at once: one more is answered at once with :class:`TooManyPendingRequestsError` (it did
    not run) instead of being queued without bound. ``max_message`` bounds the bytes of unfinished chunked messages.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        name: str,
        max_frame: int = DEFAULT_MAX_FRAME,
        max_message: int = DEFAULT_MAX_MESSAGE,
        max_in_flight: int = 2048,
        max_handling: int = 0,
        ping_interval: float = 15.0,
        idle_timeout: float = 45.0,
    ) -> None:
        self.name = name
        self._reader = reader
        self._writer = writer
        self._decoder = FrameDecoder(max_frame, max_message)
        self._max_frame = max_frame
        self._max_message = max_message
        self._inbox: list[Message] = []
        self._out: list[bytes] = []  # frames posted during this pass of the event loop, written at its end
        self._out_bytes = 0
        self._batching = False  # a frame was written during this pass: later ones wait for the pass to end
        self._loop = asyncio.get_running_loop()
        self._drain_lock = asyncio.Lock()
        self._last_read = time.monotonic()
        self.pending: dict[str, asyncio.Future[Response]] = {}
        self.max_in_flight = max_in_flight
        self.max_handling = max_handling
        self.ping_interval = ping_interval
        self.idle_timeout = idle_timeout
        self.closed = asyncio.Event()
        self._ping_sequence = 0
        self._probes: dict[int, asyncio.Future[bool]] = {}  # by ping sequence: resolved by the pong (or close)

    def restrict(self, max_frame: int) -> None:
        """Until :meth:`unrestrict`, accept only whole frames of at most ``max_frame`` bytes, no chunks: what a server
        reads before the peer has authenticated."""
        self._decoder.limit(max_frame, 0, chunks=False)

    def unrestrict(self) -> None:
        """Back to the limits the connection was made with (the peer has authenticated)."""
        self._decoder.limit(self._max_frame, self._max_message, chunks=True)

    @property
    def queued(self) -> int:
        """Messages read from the socket and not yet received."""
        return len(self._inbox)

    async def send(self, message: Message) -> None:
        """Send ``message``; waits only while the socket is backed up."""
        self.post(message)
        if self._out_bytes > _HIGH_WATER:
            self._flush()
        if self._writer.transport.get_write_buffer_size() > _HIGH_WATER:
            async with self._drain_lock:
                await self._writer.drain()

    def post(self, message: Message) -> None:
        """Queue ``message`` without waiting (dropped if the connection is closed).

        The first message of a pass of the event loop is written at once (no added latency); the ones posted after
        it in the same pass leave together in one socket write when the pass ends. Under load many replies and
        requests share a connection, and a send system call per frame was the largest single cost of a command.
        The frames of one message are queued together, so messages never interleave.
        """
        if self.closed.is_set():
            return
        frames = list(encode_frames(message, self._max_frame))
        if self._batching:
            self._out += frames
            self._out_bytes += sum(len(frame) for frame in frames)
            return
        self._batching = True
        self._loop.call_soon(self._end_pass)
        self._write(frames)

    def _end_pass(self) -> None:
        self._batching = False
        self._flush()

    def _flush(self) -> None:
        out, self._out, self._out_bytes = self._out, [], 0
        if out:
            self._write(out)

    def _write(self, frames: list[bytes]) -> None:
        if not self.closed.is_set():
            # A peer that is gone shows up at the reader, which fails whatever waits on this connection.
            with contextlib.suppress(ConnectionError, RuntimeError):
                self._writer.writelines(frames)

    async def receive(self) -> Message:
        """The next message (raises ProtocolError, ConnectionLostError on EOF, TimeoutError when idle too long)."""
        await self._fill()
        return self._inbox.pop(0)

    async def _fill(self) -> None:
        while not self._inbox:
            data = await self._reader.read(65536)
            self._last_read = time.monotonic()
            if not data:
                raise ConnectionLostError(f"{self.name}: connection closed by peer")
            self._inbox.extend(self._decoder.feed(data))

    async def request(self, body: RequestBody, timeout: float, correlation_id: str | None = None) -> ResponseBody:
        if self.closed.is_set():
            raise ConnectionLostError(f"connection to {self.name} is closed; nothing sent")
        if self.max_in_flight and len(self.pending) >= self.max_in_flight:
            raise TooManyPendingRequestsError(f"{len(self.pending)} requests in flight to {self.name}; nothing sent")
        correlation_id = correlation_id or new_message_id()
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.pending[correlation_id] = future
        try:
            try:
                await self.send(Request(correlation_id, body, max(1, int(timeout * 1000))))
            except (ConnectionError, RuntimeError) as exc:  # the peer is gone and the reader has not noticed yet
                raise ConnectionLostError(f"connection to {self.name} lost: {exc}") from exc
            async with asyncio.timeout(timeout):
                response = await future
        except TimeoutError:
            raise RequestTimeoutError(
                f"{type(body).__name__} to {self.name} timed out after {timeout:g}s; its outcome is unknown"
            ) from None
        finally:
            self.pending.pop(correlation_id, None)
            if future.done() and not future.cancelled():
                future.exception()  # run() may have failed it while our send failed: mark it seen
        if response.failure is not None:
            raise response.failure.to_exception()
        assert response.body is not None
        return response.body

    async def run(
        self,
        on_request: Callable[[Request], Awaitable[Response]],
        on_notification: Callable[[Notification], Awaitable[None]],
    ) -> None:
        """Read until the connection ends; answers pings, resolves responses, dispatches the rest."""
        pinger = asyncio.create_task(self._ping())
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                await self._fill()
                batch, self._inbox = self._inbox, []
                for message in batch:  # everything one read brought, without a loop pass per message
                    if isinstance(message, Response):
                        future = self.pending.get(message.correlation_id)
                        if future is not None and not future.done():
                            future.set_result(message)
                    elif isinstance(message, Request):
                        if self.max_handling and len(tasks) >= self.max_handling:
                            self.post(self._refuse(message))
                            continue
                        task = self._loop.create_task(self._answer(on_request, message))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                    elif isinstance(message, Notification):
                        await on_notification(message)
                    elif isinstance(message, Ping):
                        self.post(Pong(message.sequence))
                    elif isinstance(message, Pong):
                        probe = self._probes.get(message.sequence)
                        if probe is not None and not probe.done():
                            probe.set_result(True)
                    else:
                        raise ProtocolError(f"unexpected {type(message).__name__} after the handshake")
        finally:
            pinger.cancel()
            await self.close()
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(ConnectionLostError(f"connection to {self.name} lost"))

    async def _answer(self, on_request: Callable[[Request], Awaitable[Response]], request: Request) -> None:
        response = await on_request(request)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.send(response)

    def _refuse(self, request: Request) -> Response:
        error = TooManyPendingRequestsError(
            f"{self.max_handling} requests of {self.name} are being handled; this {type(request.body).__name__}"
            " did not run, retrying later is safe"
        )
        return Response(request.correlation_id, failure=Failure.from_exception(error))

    async def probe(self, timeout: float) -> bool:
        """Whether the peer answers a ping within ``timeout`` seconds (:meth:`run` must be reading)."""
        if self.closed.is_set():
            return False
        self._ping_sequence += 1
        sequence = self._ping_sequence
        answered: asyncio.Future[bool] = self._loop.create_future()
        self._probes[sequence] = answered
        try:
            self.post(Ping(sequence))
            async with asyncio.timeout(timeout):
                return await answered
        except TimeoutError:
            return False
        finally:
            self._probes.pop(sequence, None)

    async def _ping(self) -> None:
        """Ping the peer when we have been quiet, and close the connection when the peer has been silent too long
        (one timer per connection rather than one per read)."""
        interval = min(self.ping_interval, self.idle_timeout / 3)
        last_ping = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            if now - self._last_read > self.idle_timeout:
                log.warning("%s silent for %.1fs; closing the connection", self.name, now - self._last_read)
                await self.close()
                return
            if now - last_ping >= self.ping_interval:
                last_ping = now
                self._ping_sequence += 1
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self.send(Ping(self._ping_sequence))

    async def close(self) -> None:
        if self.closed.is_set():
            return
        self._flush()  # what was posted last (a Reject, a final reply) still goes out
        self.closed.set()
        for probe in self._probes.values():
            if not probe.done():
                probe.set_result(False)
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()


async def _respond(correlation_id: str, work: Awaitable[Any]) -> Response:
    try:
        return Response(correlation_id, body=await work)
    except Exception as exc:
        return Response(correlation_id, failure=Failure.from_exception(exc))


# --- server side --------------------------------------------------------------------------------------------------


class _TcpPeer:
    """The server's view of a bundle instance connected over TCP."""

    def __init__(self, info: NodeInfo, connection: Connection) -> None:
        self.info = info
        self.connection = connection

    async def request(self, message: BundleRequest, timeout: float) -> BundleResponse:
        if self.connection.closed.is_set():
            raise ConnectionLostError(f"instance {self.info} has left")
        if type(message) is ServiceCommandRequest:
            # The handler runs a service command once per (caller, command id): name who sent it.
            message = ServiceCommandRequest(message.command, caller.get())
        body = await self.connection.request(message, timeout)
        return body  # type: ignore[return-value]

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
    ping_interval: float = 15.0
    idle_timeout: float = 45.0
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

    async def start(self) -> None:
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
            # Every request task of this connection starts from this context: the server knows who asked.
            caller.set(info)
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
            return _respond(request.correlation_id, self.server.handle(node, body, timeout))  # type: ignore[arg-type]

        key = (identity, request.correlation_id)
        if type(body) is SendCommand:
            try:
                return await self._commands.run_once(key, run)
            finally:
                self._commands.settle(key, keep=True, weigh=_weight)
        if type(body) is Register:
            return self._register(node, request.correlation_id, body.registration)
        # Queries and fetches are safe to repeat and their answers can be large: kept only for a caller who lost
        # its connection before the answer was ready.
        try:
            return await self._replies.run_once(key, run, ttl=max(timeout, self._replies.ttl))
        finally:
            self._replies.settle(key, keep=connection.closed.is_set(), weigh=_weight)

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


# --- bundle side --------------------------------------------------------------------------------------------------


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
        host, port = parse_address(self.address)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=self._connector.ssl_context), self._connector.connect_timeout
        )
        info = self._endpoint.info
        connection = Connection(
            reader,
            writer,
            name=self.address,
            ping_interval=self._connector.ping_interval,
            idle_timeout=self._connector.idle_timeout,
        )
        await connection.send(
            Hello(PROTOCOL_VERSION, info.bundle_id, info.bundle_version, info.instance_id, self._connector.auth_token)
        )
        try:
            answer = await asyncio.wait_for(connection.receive(), self._connector.connect_timeout)
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
                await connection.request(Register(registration), self._connector.connect_timeout)
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
            delay = min(self._connector.max_backoff, max(self._connector.base_backoff, delay * 2))
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
            return _respond(request.correlation_id, self._endpoint.handle_request(body))  # type: ignore[arg-type]

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
        body = await connection.request(message, timeout, correlation_id)
        return body  # type: ignore[return-value]

    async def register(self, registration: BundleRegistration) -> None:
        """Register on the current connection (raising the server's refusal), and on every later one."""
        self._registration = registration
        if self._connection is not None:
            await self._connection.request(Register(registration), self._connector.connect_timeout)

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
    requests go to any connected server.
    """

    def __init__(
        self,
        addresses: str | Sequence[str],
        *,
        auth_token: str = "",
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout: float = 5.0,
        base_backoff: float = 0.1,
        max_backoff: float = 30.0,
        ping_interval: float = 15.0,
        idle_timeout: float = 45.0,
        handled_replies: int = 10_000,
        handled_reply_ttl: float = 300.0,
    ) -> None:
        self.addresses = [addresses] if isinstance(addresses, str) else list(addresses)
        if not self.addresses:
            raise ValueError("a connector needs at least one server address")
        for address in self.addresses:
            parse_address(address)
        self.auth_token = auth_token
        self.ssl_context = ssl_context
        self.connect_timeout = connect_timeout
        self.base_backoff, self.max_backoff = base_backoff, max_backoff
        self.ping_interval, self.idle_timeout = ping_interval, idle_timeout
        self.handled_replies, self.handled_reply_ttl = handled_replies, handled_reply_ttl

    async def connect(self, endpoint: BundleEndpoint) -> _ServerLinks:
        # One cache for the bundle's links to every server: it is the bundle that must not run a command twice.
        handled: ReplyCache[_HandledKey, Response] = ReplyCache(self.handled_replies, self.handled_reply_ttl)
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
