"""Message envelopes and the closed set of requests that flow between bundles and the server.

Payloads travel as JSON bytes inside envelopes, so the server routes and stores them without knowing user
classes. Envelopes are msgspec structs: the in-process transport hands them over as objects, the TCP transport
encodes them with msgpack. The request and response types below are the whole protocol between a bundle and the
server; each side dispatches on the type with a map, so adding one never touches the handling of the others.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from typing import Any, Protocol

import msgspec

__all__ = [
    "CAUSATION_ID",
    "CORRELATION_ID",
    "AggregateCommandRequest",
    "AggregateCommandResponse",
    "CommandMessage",
    "CommandResult",
    "EventBatch",
    "EventMessage",
    "EventsAppended",
    "FetchEvents",
    "GetHead",
    "HandledMessage",
    "Head",
    "Metadata",
    "QueryMessage",
    "QueryRequest",
    "QueryResult",
    "SendCommand",
    "SendQuery",
    "ServiceCommandRequest",
    "ServiceCommandResponse",
    "StoredEvent",
    "new_message_id",
    "now_ms",
]

CORRELATION_ID = "correlation_id"
CAUSATION_ID = "causation_id"


class HandledMessage(Protocol):
    """The message a handler is handling: what the messages it sends correlate to."""

    @property
    def message_id(self) -> str: ...

    @property
    def metadata(self) -> dict[str, str]: ...


class Metadata(dict[str, str]):
    """String key/value pairs travelling with a message (user, correlation and causation ids, trace headers)."""


# Message ids: a random 64-bit prefix per process and a counter. Unique like uuid4 for our purposes (a process
# never repeats one, two processes collide with probability 2^-64) at a fraction of the cost: uuid4 reads the
# OS random source on every call, and a command creates several ids.
_ID_PREFIX = uuid.uuid4().hex[:16]
_id_counter = itertools.count(1)


def _new_id_prefix() -> None:
    global _ID_PREFIX, _id_counter
    _ID_PREFIX, _id_counter = uuid.uuid4().hex[:16], itertools.count(1)


os.register_at_fork(after_in_child=_new_id_prefix)  # a forked child must not repeat its parent's ids


def new_message_id() -> str:
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Envelope(msgspec.Struct, frozen=True, kw_only=True):
    payload_name: str
    payload: bytes
    message_id: str
    metadata: dict[str, str]
    timestamp: int


class CommandMessage(_Envelope, frozen=True, kw_only=True):
    """A command on its way to its handler. ``domain`` tells aggregate commands from service commands."""

    domain: bool
    aggregate_id: str | None
    lock_id: str | None
    invalidate_caches: bool = False
    invalidate_snapshot: bool = False


class QueryMessage(_Envelope, frozen=True, kw_only=True):
    """A query on its way to a projection."""


class EventMessage(_Envelope, frozen=True, kw_only=True):
    """An event produced by a handler, before the store gives it a sequence number."""

    context: str


class StoredEvent(msgspec.Struct, frozen=True):
    """An event as the store keeps it and consumers receive it (the original's ``PublishedEvent``).

    Positional construction is allowed (stores build thousands per fetch); the field order is the contract."""

    sequence_number: int
    aggregate_id: str | None
    aggregate_version: int | None
    event_name: str
    context: str
    payload: bytes
    metadata: dict[str, str]
    message_id: str
    timestamp: int


# --- bundle -> server -------------------------------------------------------------------------------------------


class SendCommand(msgspec.Struct, frozen=True, tag=True):
    """``resent`` marks a retry after a lost connection: the server first looks for the event this command
    (by its message id) already produced, so a command that ran before the connection dropped runs once."""

    command: CommandMessage
    resent: bool = False


class SendQuery(msgspec.Struct, frozen=True, tag=True):
    query: QueryMessage


class FetchEvents(msgspec.Struct, frozen=True, tag=True):
    context: str
    after: int
    limit: int


class GetHead(msgspec.Struct, frozen=True, tag=True):
    pass


class CommandResult(msgspec.Struct, frozen=True, tag=True):
    """The stored event a command produced, or ``None`` for a service command that returned nothing."""

    event: StoredEvent | None


class QueryResult(msgspec.Struct, frozen=True, tag=True):
    payload: bytes


class EventBatch(msgspec.Struct, frozen=True, tag=True):
    events: list[StoredEvent]


class Head(msgspec.Struct, frozen=True, tag=True):
    sequence_number: int


# --- server -> bundle -------------------------------------------------------------------------------------------


class AggregateCommandRequest(msgspec.Struct, frozen=True, tag=True):
    """A domain command decorated with the aggregate's story: the snapshot and the events after it."""

    command: CommandMessage
    snapshot: bytes | None
    snapshot_version: int
    events: list[StoredEvent]


class AggregateCommandResponse(msgspec.Struct, frozen=True, tag=True):
    event: EventMessage
    snapshot: bytes | None
    deleted: bool


class ServiceCommandRequest(msgspec.Struct, frozen=True, tag=True):
    command: CommandMessage


class ServiceCommandResponse(msgspec.Struct, frozen=True, tag=True):
    event: EventMessage | None


class QueryRequest(msgspec.Struct, frozen=True, tag=True):
    query: QueryMessage


class EventsAppended(msgspec.Struct, frozen=True, tag=True):
    """Pushed to bundles after each commit so consumers fetch at once instead of polling."""

    head: int


ServerRequest = SendCommand | SendQuery | FetchEvents | GetHead
ServerResponse = CommandResult | QueryResult | EventBatch | Head
BundleRequest = AggregateCommandRequest | ServiceCommandRequest | QueryRequest
BundleResponse = AggregateCommandResponse | ServiceCommandResponse | QueryResult


def metadata_of(message: Any) -> Metadata:
    return Metadata(message.metadata)
