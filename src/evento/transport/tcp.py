"""TCP transport: the server's bus listener and the bundle's connector, over the frames of :mod:`wire`.

Both ends share :class:`Connection`: one reader task, serialised writes, requests matched to responses by
correlation id, heartbeats that close a silent peer. The server authenticates each connection's ``Hello``
(shared token, constant-time compare) before the bundle is attached to the registry. Requests are exactly-once
(:class:`~evento.transport.replies.ReplyCache`): the server answers a command resent with the same correlation id
from its cache, and keeps the reply of any request whose caller lost its connection meanwhile until the caller
reconnects and asks again; a bundle answers a service command it already handled (or is handling), by command id,
with that first run's reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from evento.discovery import BundleRegistration, NodeInfo
from evento.errors import ConnectionLostError, EventoError, Failure, RequestTimeoutError, TooManyPendingRequestsError
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
from evento.server.registry import Node
from evento.server.server import EventoServer
from evento.transport.base import BundleEndpoint
from evento.transport.replies import ReplyCache
from evento.transport.wire import (
    DEFAULT_MAX_FRAME,
    PROTOCOL_VERSION,
    FrameDecoder,
    Hello,
    Message,
    Notification,
    Ping,
    Pong,
    ProtocolError,
    Register,
    Reject,
    Request,
    RequestBody,
    Response,
    ResponseBody,
    SetEnabled,
    Welcome,
    encode_frames,
)

__all__ = ["BusServer", "ConnectionLostError", "HandshakeRejectedError", "TcpConnector", "parse_address"]

log = logging.getLogger(__name__)

_HIGH_WATER = 1024 * 1024  # bytes buffered before a sender waits for the socket


class HandshakeRejectedError(EventoError):
    """The server refused the bundle's Hello (wrong token, protocol version)."""


def parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


class Connection:
    """A framed, full-duplex message connection."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        name: str,
        max_frame: int = DEFAULT_MAX_FRAME,
        max_in_flight: int = 2048,
        ping_interval: float = 15.0,
        idle_timeout: float = 45.0,
    ) -> None:
        self.name = name
        self._reader = reader
        self._writer = writer
        self._decoder = FrameDecoder(max_frame)
        self._max_frame = max_frame
        self._inbox: list[Message] = []
        self._out: list[bytes] = []  # frames posted during this pass of the event loop, written at its end
        self._out_bytes = 0
        self._batching = False  # a frame was written during this pass: later ones wait for the pass to end
        self._loop = asyncio.get_running_loop()
        self._drain_lock = asyncio.Lock()
        self._last_read = time.monotonic()
        self.pending: dict[str, asyncio.Future[Response]] = {}
        self.max_in_flight = max_in_flight
        self.ping_interval = ping_interval
        self.idle_timeout = idle_timeout
        self.closed = asyncio.Event()

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
                        task = self._loop.create_task(self._answer(on_request, message))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                    elif isinstance(message, Notification):
                        await on_notification(message)
                    elif isinstance(message, Ping):
                        self.post(Pong(message.sequence))
                    elif not isinstance(message, Pong):
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

    async def _ping(self) -> None:
        """Ping the peer when we have been quiet, and close the connection when the peer has been silent too long
        (one timer per connection rather than one per read)."""
        sequence = 0
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
                sequence += 1
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self.send(Ping(sequence))

    async def close(self) -> None:
        if self.closed.is_set():
            return
        self._flush()  # what was posted last (a Reject, a final reply) still goes out
        self.closed.set()
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
        body = await self.connection.request(message, timeout)
        return body  # type: ignore[return-value]

    def notify(self, message: EventsAppended) -> None:
        self.connection.post(Notification(message))


class BusServer:
    """Accepts bundle connections for an :class:`EventoServer` (the ``--bus-port`` listener)."""

    def __init__(
        self,
        server: EventoServer,
        host: str = "127.0.0.1",
        port: int = 3030,
        *,
        auth_token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        handshake_timeout: float = 5.0,
        ping_interval: float = 15.0,
        idle_timeout: float = 45.0,
        command_replies: int = 50_000,
        command_reply_ttl: float = 300.0,
        command_reply_bytes: int = 128 * 1024 * 1024,
        parked_replies: int = 1024,
        parked_reply_ttl: float = 30.0,
        parked_reply_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self.server = server
        self.host, self.port = host, port
        self.auth_token = auth_token or ""
        self.ssl_context = ssl_context
        self.handshake_timeout = handshake_timeout
        self.ping_interval, self.idle_timeout = ping_interval, idle_timeout
        self._listener: asyncio.Server | None = None
        self._connections: set[Connection] = set()
        # Commands by correlation id: a resend gets the first answer, never a second run.
        self._commands: ReplyCache[str, Response] = ReplyCache(
            command_replies, command_reply_ttl, max_weight=command_reply_bytes
        )
        # Other requests by (caller instance, correlation id): only while in flight, and parked for a while when
        # the caller's connection dropped meanwhile, so its resend after reconnecting gets this reply.
        self._replies: ReplyCache[tuple[str, str], Response] = ReplyCache(
            parked_replies, parked_reply_ttl, max_weight=parked_reply_bytes
        )

    async def start(self) -> None:
        self._listener = await asyncio.start_server(self._accept, self.host, self.port, ssl=self.ssl_context)
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
        connection = Connection(
            reader, writer, name=str(peername), ping_interval=self.ping_interval, idle_timeout=self.idle_timeout
        )
        self._connections.add(connection)
        node: Node | None = None
        try:
            hello = await asyncio.wait_for(connection.receive(), self.handshake_timeout)
            reason = self._refusal(hello)
            if reason is not None:
                log.warning("refused connection from %s: %s", peername, reason[1])
                await connection.send(Reject(*reason))
                return
            assert isinstance(hello, Hello)
            info = NodeInfo(hello.bundle_id, hello.bundle_version, hello.instance_id)
            connection.name = str(info)
            node = self.server.attach(_TcpPeer(info, connection))
            await connection.send(Welcome(PROTOCOL_VERSION, self.server.server_id))
            await connection.run(
                lambda request: self._on_request(node, connection, request), lambda n: self._on_notify(node, n)
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

    def _refusal(self, hello: Message) -> tuple[str, str] | None:
        if not isinstance(hello, Hello):
            return "PROTOCOL", f"expected Hello, got {type(hello).__name__}"
        if hello.protocol_version != PROTOCOL_VERSION:
            return (
                "PROTOCOL_VERSION",
                f"protocol {hello.protocol_version} unsupported (server speaks {PROTOCOL_VERSION})",
            )
        if self.auth_token and not hmac.compare_digest(hello.auth_token.encode(), self.auth_token.encode()):
            return "AUTH_FAILED", "missing or wrong auth token" if hello.auth_token else "missing auth token"
        return None

    async def _on_request(self, node: Node, connection: Connection, request: Request) -> Response:
        body = request.body
        timeout = request.timeout_ms / 1000

        def run() -> Awaitable[Response]:
            return _respond(request.correlation_id, self.server.handle(node, body, timeout))  # type: ignore[arg-type]

        if isinstance(body, SendCommand):
            try:
                return await self._commands.run_once(request.correlation_id, run)
            finally:
                self._commands.settle(request.correlation_id, keep=True, weigh=_weight)
        # Queries and fetches are safe to repeat and their answers can be large: kept only for a caller who lost
        # its connection before the answer was ready.
        key = (node.info.instance_id, request.correlation_id)
        try:
            return await self._replies.run_once(key, run, ttl=max(timeout, self._replies.ttl))
        finally:
            self._replies.settle(key, keep=connection.closed.is_set(), weigh=_weight)

    async def _on_notify(self, node: Node, notification: Notification) -> None:
        body = notification.body
        if isinstance(body, Register):
            self.server.register(node, body.registration)
        elif isinstance(body, SetEnabled):
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


class _TcpLink:
    """A bundle's connection to a server, re-established with backoff whenever it drops."""

    def __init__(
        self,
        connector: TcpConnector,
        address: str,
        endpoint: BundleEndpoint,
        handled: ReplyCache[str, Response],
    ) -> None:
        self._connector = connector
        self.address = address
        self._endpoint = endpoint
        self._handled = handled
        self._connection: Connection | None = None
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
        answer = await asyncio.wait_for(connection.receive(), self._connector.connect_timeout)
        if isinstance(answer, Reject):
            await connection.close()
            raise HandshakeRejectedError(f"{self.address} rejected {info}: {answer.code}: {answer.reason}")
        if not isinstance(answer, Welcome):
            await connection.close()
            raise ProtocolError(f"expected Welcome, got {type(answer).__name__}")
        if self._registration is not None:
            await connection.send(Notification(Register(self._registration)))
        if self._enabled:
            await connection.send(Notification(SetEnabled(True)))
        self._connection = connection
        self._connected.set()

    async def _supervise(self) -> None:
        delay = 0.0
        while not self._closing:
            connection = self._connection
            if connection is not None:
                with contextlib.suppress(Exception):
                    await connection.run(self._on_request, self._on_notification)
                self._connected.clear()
                self._connection = None
                if self._closing:
                    return
                log.warning("lost connection to %s; reconnecting", self.address)
                delay = 0.0
            delay = min(self._connector.max_backoff, max(self._connector.base_backoff, delay * 2))
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            try:
                await self._connect_once()
                log.info("reconnected to %s", self.address)
            except HandshakeRejectedError as exc:
                log.error("%s", exc)
            except (OSError, TimeoutError, ProtocolError, ConnectionError) as exc:
                log.debug("reconnect to %s failed: %s", self.address, exc)

    async def _on_request(self, request: Request) -> Response:
        body = request.body

        def run() -> Awaitable[Response]:
            return _respond(request.correlation_id, self._endpoint.handle_request(body))  # type: ignore[arg-type]

        if not isinstance(body, ServiceCommandRequest):
            # A query has no side effect to repeat (and its answer may be large); an aggregate is a pure function
            # of the story it is sent, and the server stores one event per command id whatever it runs.
            return await run()
        # A service command (side effects) runs once per command id: a server forwarding a caller's resend sends it
        # under a correlation id of its own, so the command's id is what identifies it; the first run's reply
        # answers the duplicate under the duplicate's correlation id.
        first = await self._handled.run_once(body.command.message_id, run)
        if first.correlation_id == request.correlation_id:
            return first
        return Response(request.correlation_id, first.body, first.failure)

    async def _on_notification(self, notification: Notification) -> None:
        if isinstance(notification.body, EventsAppended):
            self._endpoint.on_notification(notification.body)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

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
        self._registration = registration
        if self._connection is not None:
            await self._connection.send(Notification(Register(registration)))

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
        await asyncio.gather(*(link.register(registration) for link in self.links))

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
        handled: ReplyCache[str, Response] = ReplyCache(self.handled_replies, self.handled_reply_ttl)
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
