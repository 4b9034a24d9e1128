"""A framed, full-duplex message connection over the frames of :mod:`~evento.transport.wire`: what both ends of
the TCP bus share (the server's listener, :mod:`evento.server.bus`, and the bundle's connector,
:mod:`evento.transport.connector`).

One reader task, serialised writes, requests matched to responses by correlation id, heartbeats that close a
silent peer, and bounds on the requests in flight either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from evento.errors import ConnectionLostError, Failure, RequestTimeoutError, TooManyPendingRequestsError
from evento.messages import new_message_id
from evento.transport.wire import (
    DEFAULT_MAX_FRAME,
    DEFAULT_MAX_MESSAGE,
    FrameDecoder,
    Message,
    Notification,
    Ping,
    Pong,
    ProtocolError,
    Request,
    RequestBody,
    Response,
    ResponseBody,
    encode_frames,
)

__all__ = ["IDLE_TIMEOUT", "PING_INTERVAL", "Connection", "FrameObserver", "respond"]

log = logging.getLogger(__name__)

#: Seconds of quiet after which a connection pings its peer (the default of both ends).
PING_INTERVAL = 15.0
#: Seconds of silence from the peer after which a connection is closed (the default of both ends).
IDLE_TIMEOUT = 45.0

_HIGH_WATER = 1024 * 1024  # bytes buffered before a sender waits for the socket

#: Called with every message a connection sends and the bytes of its frames, headers included (e.g. to measure
#: request sizes); it runs on the send path, so it must be quick and must not raise.
FrameObserver = Callable[[Message, int], None]


class Connection:
    """A framed, full-duplex message connection.

    ``max_in_flight`` bounds the requests this side has sent and awaits; ``max_handling`` (0: no bound) the peer's
    requests being handled at once: one more is answered at once with :class:`TooManyPendingRequestsError` (it did
    not run) instead of being queued without bound. ``max_message`` bounds the bytes of unfinished chunked messages.
    ``on_send`` sees every message sent and the size of its frames.
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
        ping_interval: float = PING_INTERVAL,
        idle_timeout: float = IDLE_TIMEOUT,
        on_send: FrameObserver | None = None,
    ) -> None:
        self.name = name
        self._on_send = on_send
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
        if self._on_send is not None:
            self._on_send(message, sum(len(frame) for frame in frames))
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


async def respond(correlation_id: str, work: Awaitable[Any]) -> Response:
    """The response to the request ``correlation_id``: what ``work`` returns, or the error it raises as a failure
    (the peer sees the error class again)."""
    try:
        return Response(correlation_id, body=await work)
    except Exception as exc:
        return Response(correlation_id, failure=Failure.from_exception(exc))
