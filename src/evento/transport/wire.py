"""The wire protocol: typed messages in length-prefixed frames, chunked above the frame limit.

A frame is a 4-byte big-endian length followed by that many bytes of body. The body's first byte says what it
holds: ``0x00`` a whole message (msgpack), ``0x01`` a chunk of a large message (16-byte stream id, 1-byte
"last" flag, data). Chunks of one stream are reassembled and the message decoded when the last one arrives, so a
message has no size limit while no frame exceeds ``max_frame``. Nothing is ever unpickled: every body decodes
into one of the message types below or the connection is closed with a :class:`ProtocolError`.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator

import msgspec

from evento.discovery import BundleRegistration
from evento.errors import EventoError, Failure
from evento.messages import (
    AggregateCommandRequest,
    AggregateCommandResponse,
    CommandResult,
    EventBatch,
    EventsAppended,
    FetchEvents,
    GetHead,
    Head,
    QueryRequest,
    QueryResult,
    SendCommand,
    SendQuery,
    ServiceCommandRequest,
    ServiceCommandResponse,
)

__all__ = [
    "DEFAULT_MAX_FRAME",
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
    "Reject",
    "Request",
    "RequestBody",
    "Response",
    "ResponseBody",
    "SetEnabled",
    "Welcome",
    "encode_frames",
]

PROTOCOL_VERSION = 1
DEFAULT_MAX_FRAME = 16 * 1024 * 1024
_FULL = 0
_CHUNK = 1
_HEADER = struct.Struct(">I")
_CHUNK_HEADER = 1 + 16 + 1
MAX_OPEN_STREAMS = 64


class ProtocolError(EventoError):
    """A peer sent bytes that are not a valid frame or message; the connection is closed."""


class Hello(msgspec.Struct, frozen=True, tag="hello"):
    protocol_version: int
    bundle_id: str
    bundle_version: int
    instance_id: str
    auth_token: str = ""


class Welcome(msgspec.Struct, frozen=True, tag="welcome"):
    protocol_version: int
    server_id: str


class Reject(msgspec.Struct, frozen=True, tag="reject"):
    code: str  # PROTOCOL_VERSION | AUTH_FAILED | INTERNAL
    reason: str


class Ping(msgspec.Struct, frozen=True, tag="ping"):
    sequence: int


class Pong(msgspec.Struct, frozen=True, tag="pong"):
    sequence: int


RequestBody = (
    SendCommand | SendQuery | FetchEvents | GetHead | AggregateCommandRequest | ServiceCommandRequest | QueryRequest
)
ResponseBody = CommandResult | QueryResult | EventBatch | Head | AggregateCommandResponse | ServiceCommandResponse


class Request(msgspec.Struct, frozen=True, tag="request"):
    """A request either way; the same ``correlation_id`` resent means the same request (exactly-once)."""

    correlation_id: str
    body: RequestBody
    timeout_ms: int


class Response(msgspec.Struct, frozen=True, tag="response"):
    correlation_id: str
    body: ResponseBody | None = None
    failure: Failure | None = None


class Register(msgspec.Struct, frozen=True, tag="register"):
    registration: BundleRegistration


class SetEnabled(msgspec.Struct, frozen=True, tag="enabled"):
    enabled: bool


class Notification(msgspec.Struct, frozen=True, tag="notification"):
    body: Register | SetEnabled | EventsAppended


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

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME, max_message: int = 1024 * 1024 * 1024) -> None:
        if max_frame <= _CHUNK_HEADER:
            raise ValueError(f"max_frame must be above {_CHUNK_HEADER} bytes, got {max_frame}")
        self.max_frame = max_frame
        self.max_message = max_message
        self._buffer = bytearray()
        self._streams: dict[bytes, bytearray] = {}

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
        if len(frame) < _CHUNK_HEADER:
            raise ProtocolError(f"chunk frame of {len(frame)} bytes is shorter than its header")
        stream, last = frame[1:17], frame[17]
        if last not in (0, 1):
            raise ProtocolError("invalid chunk flag")
        if stream not in self._streams and len(self._streams) >= MAX_OPEN_STREAMS:
            raise ProtocolError("too many chunked messages in progress")
        buffer = self._streams.setdefault(stream, bytearray())
        buffer += frame[_CHUNK_HEADER:]
        # The bound is on everything buffered, not per stream: open streams cannot multiply it.
        if sum(len(b) for b in self._streams.values()) > self.max_message:
            raise ProtocolError(f"chunked message above {self.max_message} bytes")
        if not last:
            return None
        del self._streams[stream]
        return _decode(bytes(buffer))


def _decode(body: bytes) -> Message:
    try:
        message: Message = _decoder.decode(body)
    except (msgspec.DecodeError, ValueError, RecursionError) as exc:
        # DecodeError covers ValidationError; invalid UTF-8 raises UnicodeDecodeError (a ValueError); values nested
        # deep in ``object``-typed fields raise RecursionError. All mean the same: a hostile or broken peer.
        raise ProtocolError(f"undecodable message: {exc}") from None
    return message
