"""The wire protocol: typed messages in length-prefixed frames, chunked above the frame limit.

A frame is a 4-byte big-endian length followed by that many bytes of body. The body's first byte says what it
holds: ``0x00`` a whole message (msgpack), ``0x01`` a chunk of a large message (16-byte stream id, 1-byte
"last" flag, data). Chunks of one stream are reassembled and the message decoded when the last one arrives, so a
message is bounded by ``max_message`` (all of a connection's unfinished chunked messages together) while no frame
exceeds ``max_frame``. Nothing is ever unpickled: every body decodes into one of the message types below or the
connection is closed with a :class:`ProtocolError`.

Before the handshake completes, a server's decoder takes only small whole frames (:meth:`FrameDecoder.limit` with
``chunks=False``): a peer that has not authenticated cannot make it buffer more than one ``Hello``.
"""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING

import msgspec

from evento.discovery import BundleRegistration
from evento.errors import EventoError, Failure
from evento.messages import (
    Accepted,
    AdminDone,
    AggregateCommandRequest,
    AggregateCommandResponse,
    CommandResult,
    ConsumeDeadQueue,
    ConsumerStatusResult,
    DeadEventsResult,
    DeleteDeadEvent,
    EventBatch,
    EventsAppended,
    FetchEvents,
    GetConsumerStatus,
    GetHead,
    Head,
    ListDeadEvents,
    QueryRequest,
    QueryResult,
    ReportTelemetry,
    ResetConsumer,
    ScalingSignal,
    SendCommand,
    SendQuery,
    ServiceCommandRequest,
    ServiceCommandResponse,
    SetConsumerEnabled,
    SetDeadEventRetry,
    StopInstance,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "DEFAULT_MAX_FRAME",
    "DEFAULT_MAX_MESSAGE",
    "MAX_OPEN_STREAMS",
    "PROTOCOL_VERSION",
    "FrameDecoder",
    "Hello",
    "Message",
    "Notification",
    "Ping",
    "Pong",
    "ProtocolError",
    "Register",
    "Registered",
    "Reject",
    "Request",
    "RequestBody",
    "Response",
    "ResponseBody",
    "SetEnabled",
    "Welcome",
    "encode_frames",
]

PROTOCOL_VERSION = 2  # 2: Register is a request (refused registrations are answered), service commands name a caller
DEFAULT_MAX_FRAME = 16 * 1024 * 1024
DEFAULT_MAX_MESSAGE = 1024 * 1024 * 1024
_FULL = 0
_CHUNK = 1
_HEADER = struct.Struct(">I")
_CHUNK_HEADER = 1 + 16 + 1
MAX_OPEN_STREAMS = 64


class ProtocolError(EventoError):
    """A peer sent bytes that are not a valid frame or message; the connection is closed."""


class Hello(msgspec.Struct, frozen=True, tag="hello"):
    """A bundle instance's first message on a connection: who it is, its protocol version and its token."""

    protocol_version: int
    bundle_id: str
    bundle_version: int
    instance_id: str
    auth_token: str = ""


class Welcome(msgspec.Struct, frozen=True, tag="welcome"):
    """The server's acceptance of a :class:`Hello`."""

    protocol_version: int
    server_id: str


class Reject(msgspec.Struct, frozen=True, tag="reject"):
    """The server's refusal of a ``Hello``; the connection is closed after it."""

    code: str  # PROTOCOL | PROTOCOL_VERSION | AUTH_FAILED | DUPLICATE_INSTANCE
    reason: str


class Ping(msgspec.Struct, frozen=True, tag="ping"):
    """A liveness probe; the peer answers :class:`Pong` with the same ``sequence``."""

    sequence: int


class Pong(msgspec.Struct, frozen=True, tag="pong"):
    """The answer to the :class:`Ping` of ``sequence``."""

    sequence: int


class Register(msgspec.Struct, frozen=True, tag="register"):
    """A bundle's discovery metadata, sent as a request: a refused registration is answered with the error."""

    registration: BundleRegistration


class Registered(msgspec.Struct, frozen=True, tag="registered"):
    """The answer to an accepted :class:`Register`."""


RequestBody = (
    SendCommand
    | SendQuery
    | FetchEvents
    | GetHead
    | Register
    | AggregateCommandRequest
    | ServiceCommandRequest
    | QueryRequest
    | ReportTelemetry
    | GetConsumerStatus
    | ListDeadEvents
    | SetDeadEventRetry
    | DeleteDeadEvent
    | ConsumeDeadQueue
    | ResetConsumer
    | SetConsumerEnabled
    | ScalingSignal
    | StopInstance
)
ResponseBody = (
    CommandResult
    | QueryResult
    | EventBatch
    | Head
    | Registered
    | AggregateCommandResponse
    | ServiceCommandResponse
    | Accepted
    | ConsumerStatusResult
    | DeadEventsResult
    | AdminDone
)


class Request(msgspec.Struct, frozen=True, tag="request"):
    """A request either way; the same ``correlation_id`` resent means the same request (exactly-once)."""

    correlation_id: str
    body: RequestBody
    timeout_ms: int


class Response(msgspec.Struct, frozen=True, tag="response"):
    """The answer to the :class:`Request` of ``correlation_id``: its ``body``, or the ``failure`` to raise."""

    correlation_id: str
    body: ResponseBody | None = None
    failure: Failure | None = None


class SetEnabled(msgspec.Struct, frozen=True, tag="enabled"):
    """A bundle instance telling the server whether to route requests to it (enabled once started, disabled on stop)."""

    enabled: bool


class Notification(msgspec.Struct, frozen=True, tag="notification"):
    """A one-way message, not answered: :class:`SetEnabled` to the server, :class:`EventsAppended` to bundles."""

    body: SetEnabled | EventsAppended


Message = Hello | Welcome | Reject | Ping | Pong | Request | Response | Notification

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)


def encode_frames(message: Message, max_frame: int = DEFAULT_MAX_FRAME) -> Iterator[bytes]:
    """The frames carrying ``message``: one, or a chunked stream when it is larger than ``max_frame``."""
    if max_frame <= _CHUNK_HEADER:
        raise ValueError(f"max_frame must be above {_CHUNK_HEADER} bytes, got {max_frame}")
    body = _encoder.encode(message)
    if len(body) + 1 <= max_frame:
        yield _HEADER.pack(len(body) + 1) + bytes((_FULL,)) + body
        return
    stream = os.urandom(16)
    room = max_frame - _CHUNK_HEADER
    view = memoryview(body)
    for start in range(0, len(body), room):
        last = start + room >= len(body)
        piece = view[start : start + room]
        yield _HEADER.pack(len(piece) + _CHUNK_HEADER) + bytes((_CHUNK,)) + stream + bytes((last,)) + piece


class FrameDecoder:
    """Turns a byte stream into messages. Feed it what the socket read; it raises :class:`ProtocolError` on the
    first invalid frame (the caller then closes the connection)."""

    def __init__(
        self, max_frame: int = DEFAULT_MAX_FRAME, max_message: int = DEFAULT_MAX_MESSAGE, *, chunks: bool = True
    ) -> None:
        if max_frame <= _CHUNK_HEADER:
            raise ValueError(f"max_frame must be above {_CHUNK_HEADER} bytes, got {max_frame}")
        self.max_frame = max_frame
        self.max_message = max_message
        self.chunks = chunks
        self._buffer = bytearray()
        self._streams: dict[bytes, bytearray] = {}
        self._streamed = 0  # bytes held by unfinished chunked messages

    def limit(self, max_frame: int, max_message: int, *, chunks: bool) -> None:
        """Change the limits for what comes next (a server raises them once the peer has authenticated)."""
        if max_frame <= _CHUNK_HEADER:
            raise ValueError(f"max_frame must be above {_CHUNK_HEADER} bytes, got {max_frame}")
        self.max_frame, self.max_message, self.chunks = max_frame, max_message, chunks

    @property
    def buffered(self) -> int:
        """Bytes held for messages not complete yet (a partial frame and unfinished chunked messages)."""
        return len(self._buffer) + self._streamed

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        messages: list[Message] = []
        while len(self._buffer) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self._buffer)
            if length == 0 or length > self.max_frame:
                raise ProtocolError(f"frame of {length} bytes (limit {self.max_frame})")
            if len(self._buffer) < _HEADER.size + length:
                break
            frame = bytes(self._buffer[_HEADER.size : _HEADER.size + length])
            del self._buffer[: _HEADER.size + length]
            message = self._frame(frame)
            if message is not None:
                messages.append(message)
        return messages

    def _frame(self, frame: bytes) -> Message | None:
        kind = frame[0]
        if kind == _FULL:
            return _decode(frame[1:])
        if kind != _CHUNK:
            raise ProtocolError(f"unknown frame kind {kind}")
        if not self.chunks:
            raise ProtocolError("chunked frame before the handshake completed")
        if len(frame) < _CHUNK_HEADER:
            raise ProtocolError(f"chunk frame of {len(frame)} bytes is shorter than its header")
        stream, last = frame[1:17], frame[17]
        if last not in (0, 1):
            raise ProtocolError("invalid chunk flag")
        if stream not in self._streams and len(self._streams) >= MAX_OPEN_STREAMS:
            raise ProtocolError("too many chunked messages in progress")
        # The bound is on everything buffered, not per stream: open streams cannot multiply it.
        self._streamed += len(frame) - _CHUNK_HEADER
        if self._streamed > self.max_message:
            raise ProtocolError(f"chunked message above {self.max_message} bytes")
        buffer = self._streams.setdefault(stream, bytearray())
        buffer += memoryview(frame)[_CHUNK_HEADER:]
        if not last:
            return None
        del self._streams[stream]
        self._streamed -= len(buffer)
        return _decode(bytes(buffer))


def _decode(body: bytes) -> Message:
    try:
        message: Message = _decoder.decode(body)
    except (msgspec.DecodeError, ValueError, RecursionError) as exc:
        # DecodeError covers ValidationError; invalid UTF-8 raises UnicodeDecodeError (a ValueError); values nested
        # deep in ``object``-typed fields raise RecursionError. All mean the same: a hostile or broken peer.
        raise ProtocolError(f"undecodable message: {exc}") from None
    return message
