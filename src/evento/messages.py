"""Message envelopes and the closed set of requests that flow between bundles and the server.

Payloads travel as JSON bytes inside envelopes, so the server routes and stores them without knowing user
classes. Envelopes are msgspec structs: the in-process transport hands them over as objects, the TCP transport
encodes them with msgpack. The request and response types below are the whole protocol between a bundle and the
server; each side dispatches on the type with a map, so adding one never touches the handling of the others.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from evento.discovery import NodeInfo

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "CAUSATION_ID",
    "CORRELATION_ID",
    "Accepted",
    "AdminDone",
    "AdminRequest",
    "AdminResponse",
    "AggregateCommandRequest",
    "AggregateCommandResponse",
    "CommandMessage",
    "CommandResult",
    "ConsumeDeadQueue",
    "ConsumerStatusResult",
    "ConsumerStatusView",
    "ConsumerTelemetry",
    "DeadEventView",
    "DeadEventsResult",
    "DeleteDeadEvent",
    "EventBatch",
    "EventMessage",
    "EventsAppended",
    "FetchEvents",
    "GetConsumerStatus",
    "GetHead",
    "HandledMessage",
    "HandlerTelemetry",
    "Head",
    "ListDeadEvents",
    "Metadata",
    "QueryMessage",
    "QueryRequest",
    "QueryResult",
    "ReportTelemetry",
    "ResetConsumer",
    "ScalingSignal",
    "SendCommand",
    "SendQuery",
    "ServiceCommandRequest",
    "ServiceCommandResponse",
    "SetConsumerEnabled",
    "SetDeadEventRetry",
    "StopInstance",
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


# Message ids are random 128-bit values (32 hex digits). They cross processes as correlation ids and command ids, and
# the server and bundles deduplicate by them, so nobody may be able to guess the next one: a per-process prefix and
# a counter (what we had) let any peer that saw one event's metadata predict, and pre-empt, the ids a bundle would
# use next. Reading the OS random source for every id costs a system call; one read serves _BATCH ids instead
# (measured on our 2-core machine: about 0.2 us an id, against 0.6 us for os.urandom(16).hex() and 3 us for
# uuid4). ``next`` on a list iterator is atomic under the GIL, so threads never share an id; two threads that
# refill at once just each use a fresh batch.
_BATCH = 256
_ids: Iterator[str] = iter(())


def _refill() -> str:
    global _ids
    data = os.urandom(16 * _BATCH).hex()
    batch = iter([data[start : start + 32] for start in range(0, 32 * _BATCH, 32)])
    _ids = batch
    return next(batch)


def _forget_batch() -> None:
    global _ids
    _ids = iter(())


os.register_at_fork(after_in_child=_forget_batch)  # a forked child must not hand out its parent's next ids


def new_message_id() -> str:
    """A new random 128-bit id (32 hex digits), unguessable by other processes."""
    return next(_ids, None) or _refill()


def now_ms() -> int:
    """The wall clock in milliseconds since the epoch, the unit of every message timestamp."""
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
    """A query to route to a projection that handles it."""

    query: QueryMessage


class FetchEvents(msgspec.Struct, frozen=True, tag=True):
    """Events of ``context`` (``"*"``: every context) after sequence number ``after``, at most ``limit`` (the server
    caps it)."""

    context: str
    after: int
    limit: int


class GetHead(msgspec.Struct, frozen=True, tag=True):
    """Ask for the highest committed sequence number."""


class CommandResult(msgspec.Struct, frozen=True, tag=True):
    """The stored event a command produced, or ``None`` for a service command that returned nothing."""

    event: StoredEvent | None


class QueryResult(msgspec.Struct, frozen=True, tag=True):
    """A query's response, as JSON bytes."""

    payload: bytes


class EventBatch(msgspec.Struct, frozen=True, tag=True):
    """The events a :class:`FetchEvents` asked for, in sequence order."""

    events: list[StoredEvent]


class Head(msgspec.Struct, frozen=True, tag=True):
    """The highest committed sequence number (0 when the store is empty)."""

    sequence_number: int


# --- server -> bundle -------------------------------------------------------------------------------------------


class AggregateCommandRequest(msgspec.Struct, frozen=True, tag=True):
    """A domain command decorated with the aggregate's story: the snapshot and the events after it."""

    command: CommandMessage
    snapshot: bytes | None
    snapshot_version: int
    events: list[StoredEvent]


class AggregateCommandResponse(msgspec.Struct, frozen=True, tag=True):
    """The event the aggregate's handler produced, with a new snapshot when one was due, and whether the aggregate
    is deleted now."""

    event: EventMessage
    snapshot: bytes | None
    deleted: bool


class ServiceCommandRequest(msgspec.Struct, frozen=True, tag=True):
    """A service command for its handler. ``caller`` is the bundle instance that sent it, as the server
    authenticated it: a bundle runs a service command once per (caller, command id), so no other caller can
    pre-empt (or replay) a command by sending one with the same id."""

    command: CommandMessage
    caller: NodeInfo | None = None


class ServiceCommandResponse(msgspec.Struct, frozen=True, tag=True):
    """The event a service's handler produced, or ``None`` when it returned nothing."""

    event: EventMessage | None


class QueryRequest(msgspec.Struct, frozen=True, tag=True):
    """A query for a projection of this bundle."""

    query: QueryMessage


class EventsAppended(msgspec.Struct, frozen=True, tag=True):
    """Pushed to bundles after each commit so consumers fetch at once instead of polling."""

    head: int


# --- telemetry: bundle -> server, one report per interval ---------------------------------------------------


class HandlerTelemetry(msgspec.Struct, frozen=True, kw_only=True):
    """What one handler did during one reporting interval, over the invocations the capture rate sampled.

    Times are in milliseconds. ``sends`` counts, by payload type, the commands and queries the sampled invocations
    sent (what AST analysis may have missed shows up here). ``arrivals`` counts every invocation, sampled or not, so
    the server can tell the arrival rate."""

    component: str
    component_kind: str
    handler_kind: str
    payload: str
    count: int
    total_ms: float
    min_ms: float
    max_ms: float
    last_ms: float
    arrivals: int
    sends: dict[str, int] = {}


class ConsumerTelemetry(msgspec.Struct, frozen=True, kw_only=True):
    """A consumer's position as its engine saw it at the end of the interval (for lag and dead-event gauges), and
    its load over the interval: ``events`` consumed (checkpoint committed past them) and ``busy_ms``, the time its
    consumption took from taking an event (or group) to its checkpoint committed, handlers included and waits
    (for new events, retry delays, observer slots) left out. The server derives a consumer's overhead per event
    from it (busy less its handlers' time); ``component`` names whose handlers those are. Defaults keep reports
    of older bundles readable."""

    consumer_id: str
    checkpoint: int | None
    dead_events: int
    enabled: bool
    holds_lock: bool
    error_count: int = 0
    component: str = ""
    events: int = 0
    busy_ms: float = 0.0


class ReportTelemetry(msgspec.Struct, frozen=True, tag=True):
    """A bundle instance's telemetry for the interval ``[started, ended)`` (epoch milliseconds)."""

    started: int
    ended: int
    handlers: list[HandlerTelemetry]
    consumers: list[ConsumerTelemetry] = []


class ScalingSignal(msgspec.Struct, frozen=True, tag=True):
    """A bundle instance's autoscaling protocol speaking: ``suffering`` (more work than it should take: start
    another instance) or bored (too little: this one may go). The server knows who sent it; answered with
    :class:`Accepted`."""

    suffering: bool


class Accepted(msgspec.Struct, frozen=True, tag=True):
    """The server took a request that has nothing to answer (a telemetry report, a scaling signal)."""


# --- consumer administration: server -> bundle (the admin channel) ---------------------------------------------


class DeadEventView(msgspec.Struct, frozen=True, kw_only=True):
    """One event parked in a consumer's dead event queue."""

    event: StoredEvent
    error: str
    retry: bool
    dead_at: int


class ConsumerStatusView(msgspec.Struct, frozen=True, kw_only=True):
    """A consumer as the bundle instance that runs it sees it. ``holds_lock``: this instance is the one consuming
    (the others wait for the consumer's lock)."""

    consumer_id: str
    component: str
    component_kind: str
    context: str
    checkpoint: int | None
    head: int
    head_reached: bool
    enabled: bool
    holds_lock: bool
    error_count: int
    error_message: str | None
    error_since: int | None
    last_error_at: int | None
    dead_events: int
    in_flight: int


class GetConsumerStatus(msgspec.Struct, frozen=True, tag=True):
    """Ask for a consumer's status as this instance sees it."""

    consumer_id: str


class ListDeadEvents(msgspec.Struct, frozen=True, tag=True):
    """Ask for the events in a consumer's dead event queue."""

    consumer_id: str


class SetDeadEventRetry(msgspec.Struct, frozen=True, tag=True):
    """Flag (or unflag) a dead event for the next consumption of the dead queue."""

    consumer_id: str
    sequence_number: int
    retry: bool


class DeleteDeadEvent(msgspec.Struct, frozen=True, tag=True):
    """Drop a dead event for good."""

    consumer_id: str
    sequence_number: int


class ConsumeDeadQueue(msgspec.Struct, frozen=True, tag=True):
    """Reprocess the dead events flagged for retry."""

    consumer_id: str


class ResetConsumer(msgspec.Struct, frozen=True, tag=True):
    """Replay from ``from_sequence_number``: the consumer's next event is the first one after it (0: from the
    start)."""

    consumer_id: str
    from_sequence_number: int


class SetConsumerEnabled(msgspec.Struct, frozen=True, tag=True):
    """Start (enabled) or pause (disabled) a consumer."""

    consumer_id: str
    enabled: bool


class ConsumerStatusResult(msgspec.Struct, frozen=True, tag=True):
    """The answer to :class:`GetConsumerStatus`."""

    status: ConsumerStatusView


class DeadEventsResult(msgspec.Struct, frozen=True, tag=True):
    """The answer to :class:`ListDeadEvents`."""

    events: list[DeadEventView]


class AdminDone(msgspec.Struct, frozen=True, tag=True):
    """An admin action's outcome: ``changed`` whether it found what it acted on, ``count`` how many events it
    handled (consume dead queue)."""

    changed: bool
    count: int = 0


class StopInstance(msgspec.Struct, frozen=True, tag=True):
    """Server -> bundle: leave gracefully. The instance stops taking work, finishes what it holds, releases its
    consumer locks and disconnects; it answers :class:`AdminDone` at once and leaves right after. ``grace_ms`` is
    how long the server waits before it kills the process."""

    grace_ms: int


AdminRequest = (
    GetConsumerStatus
    | ListDeadEvents
    | SetDeadEventRetry
    | DeleteDeadEvent
    | ConsumeDeadQueue
    | ResetConsumer
    | SetConsumerEnabled
)
AdminResponse = ConsumerStatusResult | DeadEventsResult | AdminDone

ServerRequest = SendCommand | SendQuery | FetchEvents | GetHead | ReportTelemetry | ScalingSignal
ServerResponse = CommandResult | QueryResult | EventBatch | Head | Accepted
BundleRequest = AggregateCommandRequest | ServiceCommandRequest | QueryRequest | AdminRequest | StopInstance
BundleResponse = AggregateCommandResponse | ServiceCommandResponse | QueryResult | AdminResponse


def metadata_of(message: Any) -> Metadata:
    return Metadata(message.metadata)
