"""The TCP wire protocol: every message type round-trips, large messages are chunked under the frame limit and
reassembled (also interleaved), the byte stream may be split anywhere, and hostile input only ever ends in a
:class:`ProtocolError` (the caller then closes the connection), never in another exception or a non-message."""

from __future__ import annotations

import itertools
import math
import struct
from collections.abc import Iterable
from typing import Any, get_args

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evento.discovery import (
    BundleRegistration,
    ComponentKind,
    ConsumerInfo,
    HandlerInfo,
    HandlerKind,
    NodeInfo,
    PayloadInfo,
)
from evento.errors import Failure
from evento.messages import (
    Accepted,
    AdminDone,
    AggregateCommandRequest,
    AggregateCommandResponse,
    CommandMessage,
    CommandResult,
    ConsumeDeadQueue,
    ConsumerStatusResult,
    ConsumerStatusView,
    ConsumerTelemetry,
    DeadEventsResult,
    DeadEventView,
    DeleteDeadEvent,
    EventBatch,
    EventMessage,
    EventsAppended,
    FetchEvents,
    GetConsumerStatus,
    GetHead,
    HandlerTelemetry,
    Head,
    ListDeadEvents,
    QueryMessage,
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
    StoredEvent,
)
from evento.transport.wire import (
    DEFAULT_MAX_FRAME,
    MAX_OPEN_STREAMS,
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

MESSAGE_TYPES: tuple[type, ...] = get_args(Message)
CHUNK_HEADER = 1 + 16 + 1  # kind, stream id, last flag
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
TEXT = st.text(st.characters(codec="utf-8"), max_size=20)

# Bounded so the whole module runs in a few seconds; no example database is written.
FUZZ = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- sample values -----------------------------------------------------------------------------------------------

DOMAIN_COMMAND = CommandMessage(
    payload_name="OpenAccount",
    payload=b'{"owner":"ada"}',
    message_id="m-1",
    metadata={"correlation_id": "c-1", "user": "ada", "ünïcode": "✓"},
    timestamp=1_700_000_000_000,
    domain=True,
    aggregate_id="account-1",
    lock_id="account-1",
    invalidate_caches=True,
    invalidate_snapshot=True,
)
SERVICE_COMMAND = CommandMessage(
    payload_name="SendEmail",
    payload=b"{}",
    message_id="m-2",
    metadata={},
    timestamp=0,
    domain=False,
    aggregate_id=None,
    lock_id=None,
)
QUERY = QueryMessage(
    payload_name="AccountById", payload=b'{"id":"account-1"}', message_id="m-3", metadata={"u": "v"}, timestamp=1
)
EVENT = EventMessage(
    payload_name="AccountOpened", payload=b'{"owner":"ada"}', message_id="m-4", metadata={}, timestamp=2, context="eu"
)
STORED = StoredEvent(
    sequence_number=42,
    aggregate_id="account-1",
    aggregate_version=3,
    event_name="AccountOpened",
    context="eu",
    payload=b'{"owner":"ada"}',
    metadata={"correlation_id": "c-1"},
    message_id="m-5",
    timestamp=3,
)
STORED_SERVICE = StoredEvent(
    sequence_number=43,
    aggregate_id=None,
    aggregate_version=None,
    event_name="EmailSent",
    context="default",
    payload=b"",
    metadata={},
    message_id="m-6",
    timestamp=4,
)
HANDLER = HandlerInfo(
    component="Account",
    component_kind=ComponentKind.AGGREGATE,
    handler_kind=HandlerKind.AGGREGATE_COMMAND,
    payload="OpenAccount",
    payload_kind="DomainCommand",
    handler_name="open",
    return_type="AccountOpened",
    return_is_multiple=True,
    association_property="account_id",
    init=True,
    source_file="bank.py",
    line=12,
    invoked_commands={"SendEmail": "ServiceCommand"},
    invoked_queries={"AccountById": "Single"},
    description="Opens an account.",
)
REGISTRATION = BundleRegistration(
    bundle_id="bank",
    bundle_version=2,
    description="The bank.",
    handlers=[HANDLER, HandlerInfo(**{**msgspec.structs.asdict(HANDLER), "handler_kind": HandlerKind.EVENT_SOURCING})],
    payloads=[
        PayloadInfo(
            name="OpenAccount",
            kind="DomainCommand",
            json_schema={"type": "object", "properties": {"owner": {"type": "string"}}, "required": ["owner"]},
            domain="bank",
            line=3,
        )
    ],
    consumers=[
        ConsumerInfo(
            consumer_id="bank:Ledger", component="Ledger", component_kind=ComponentKind.PROJECTOR, context="eu"
        )
    ],
)

REQUEST_BODIES: list[Any] = [
    SendCommand(DOMAIN_COMMAND),
    SendCommand(SERVICE_COMMAND),
    SendQuery(QUERY),
    FetchEvents(context="eu", after=41, limit=100),
    GetHead(),
    Register(REGISTRATION),
    Register(BundleRegistration(bundle_id="empty", bundle_version=0)),
    AggregateCommandRequest(command=DOMAIN_COMMAND, snapshot=b'{"balance":10}', snapshot_version=2, events=[STORED]),
    AggregateCommandRequest(command=DOMAIN_COMMAND, snapshot=None, snapshot_version=0, events=[]),
    ServiceCommandRequest(SERVICE_COMMAND),
    ServiceCommandRequest(SERVICE_COMMAND, caller=NodeInfo("web", 1, "replica-1")),
    QueryRequest(QUERY),
    ReportTelemetry(
        started=1_700_000_000_000,
        ended=1_700_000_005_000,
        handlers=[
            HandlerTelemetry(
                component="Account",
                component_kind="Aggregate",
                handler_kind="AggregateCommandHandler",
                payload="Deposit",
                count=3,
                total_ms=4.5,
                min_ms=1.0,
                max_ms=2.0,
                last_ms=1.5,
                arrivals=6,
                sends={"Notify": 3},
            )
        ],
        consumers=[ConsumerTelemetry(consumer_id="c", checkpoint=None, dead_events=0, enabled=True, holds_lock=False)],
    ),
    ReportTelemetry(
        started=0,
        ended=1000,
        handlers=[],
        consumers=[
            ConsumerTelemetry(
                consumer_id="q_Ledger_1_default",
                checkpoint=40,
                dead_events=0,
                enabled=True,
                holds_lock=True,
                component="Ledger",
                events=12,
                busy_ms=61.5,
            )
        ],
    ),
    ReportTelemetry(started=0, ended=0, handlers=[]),
    GetConsumerStatus("bank_Ledger_1_default"),
    ListDeadEvents("bank_Ledger_1_default"),
    SetDeadEventRetry("bank_Ledger_1_default", 41, True),
    DeleteDeadEvent("bank_Ledger_1_default", 41),
    ConsumeDeadQueue("bank_Ledger_1_default"),
    ResetConsumer("bank_Ledger_1_default", 0),
    SetConsumerEnabled("bank_Ledger_1_default", False),
    ScalingSignal(suffering=True),
    ScalingSignal(suffering=False),
    StopInstance(grace_ms=10_000),
]
RESPONSE_BODIES: list[Any] = [
    CommandResult(STORED),
    CommandResult(None),
    QueryResult(b'[{"id":"account-1"}]'),
    QueryResult(b""),
    EventBatch([STORED, STORED_SERVICE]),
    EventBatch([]),
    Head(2**63 - 1),
    Registered(),
    AggregateCommandResponse(event=EVENT, snapshot=b"{}", deleted=False),
    AggregateCommandResponse(event=EVENT, snapshot=None, deleted=True),
    ServiceCommandResponse(EVENT),
    ServiceCommandResponse(None),
    Accepted(),
    ConsumerStatusResult(
        ConsumerStatusView(
            consumer_id="bank_Ledger_1_default",
            component="Ledger",
            component_kind="Projector",
            context="default",
            checkpoint=None,
            head=7,
            head_reached=False,
            enabled=True,
            holds_lock=True,
            error_count=1,
            error_message="boom",
            error_since=1,
            last_error_at=2,
            dead_events=1,
            in_flight=0,
        )
    ),
    DeadEventsResult([DeadEventView(event=STORED, error="x", retry=False, dead_at=4)]),
    DeadEventsResult([]),
    AdminDone(True, 3),
]
MESSAGES: list[Any] = [
    Hello(protocol_version=PROTOCOL_VERSION, bundle_id="bank", bundle_version=2, instance_id="i-1"),
    Hello(protocol_version=PROTOCOL_VERSION, bundle_id="bank", bundle_version=2, instance_id="i-1", auth_token="s3"),
    Welcome(protocol_version=PROTOCOL_VERSION, server_id="server-1"),
    Reject(code="PROTOCOL_VERSION", reason="expected 1, got 2"),
    Ping(0),
    Ping(2**63 - 1),
    Pong(-1),
    *(Request(correlation_id=f"r-{i}", body=body, timeout_ms=30_000) for i, body in enumerate(REQUEST_BODIES)),
    *(Response(correlation_id=f"s-{i}", body=body) for i, body in enumerate(RESPONSE_BODIES)),
    Response(correlation_id="f-1", failure=Failure("bank.errors:Overdrawn", "balance 0 < 10", "Traceback ...")),
    Response(correlation_id="f-2", failure=Failure("builtins:ValueError", "")),
    Response(correlation_id="empty"),
    Notification(SetEnabled(True)),
    Notification(SetEnabled(False)),
    Notification(EventsAppended(head=7)),
]


def _id(message: Any) -> str:
    body = getattr(message, "body", None) or getattr(message, "failure", None)
    return type(message).__name__ + (f"-{type(body).__name__}" if body is not None else "")


# --- helpers -----------------------------------------------------------------------------------------------------


def raw_frame(body: bytes) -> bytes:
    """A frame as the protocol defines it: 4-byte big-endian length, then the body."""
    return struct.pack(">I", len(body)) + body


def full_frame(payload: bytes) -> bytes:
    return raw_frame(b"\x00" + payload)


def chunk_frame(stream: bytes, last: int, data: bytes) -> bytes:
    return raw_frame(b"\x01" + stream + bytes((last,)) + data)


def declared_length(frame: bytes) -> int:
    (length,) = struct.unpack_from(">I", frame)
    return length


def frames_of(messages: Iterable[Any], max_frame: int) -> list[bytes]:
    return [frame for message in messages for frame in encode_frames(message, max_frame)]


def big_response(size: int) -> Response:
    return Response(correlation_id="big", body=QueryResult(payload=b"x" * size))


def feed_checked(decoder: FrameDecoder, data: bytes) -> list[Any] | None:
    """Feed ``data``; ``None`` if the decoder raised :class:`ProtocolError`, else the messages, all of which must be
    instances of the message types. Any other exception propagates and fails the test."""
    try:
        messages = decoder.feed(data)
    except ProtocolError:
        return None
    assert isinstance(messages, list)
    for message in messages:
        assert isinstance(message, MESSAGE_TYPES), message
    return messages


# --- strategies --------------------------------------------------------------------------------------------------

generated_messages = st.one_of(
    st.sampled_from(MESSAGES),
    st.builds(Ping, INT64),
    st.builds(Pong, INT64),
    st.builds(Reject, TEXT, TEXT),
    st.builds(Hello, INT64, TEXT, INT64, TEXT, TEXT),
    st.builds(Welcome, INT64, TEXT),
    st.builds(Response, TEXT, st.builds(QueryResult, st.binary(max_size=1500))),
    st.builds(Request, TEXT, st.builds(FetchEvents, TEXT, INT64, INT64), INT64),
    st.builds(Notification, st.builds(EventsAppended, INT64)),
)
max_frames = st.one_of(st.integers(min_value=CHUNK_HEADER + 1, max_value=300), st.just(DEFAULT_MAX_FRAME))


def _tags_and_fields() -> tuple[list[str], list[str]]:
    types = {*MESSAGE_TYPES, *get_args(RequestBody), *get_args(ResponseBody), SetEnabled, EventsAppended}
    types |= {Failure, BundleRegistration, HandlerInfo, PayloadInfo, ConsumerInfo, CommandMessage, StoredEvent}
    types |= {EventMessage, QueryMessage, NodeInfo}
    tags = sorted({str(t.__struct_config__.tag) for t in types if t.__struct_config__.tag is not None})
    fields = sorted({f.encode_name for t in types for f in msgspec.structs.fields(t)})
    return tags, fields


TAGS, FIELD_NAMES = _tags_and_fields()
msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | TEXT
    | st.sampled_from(TAGS)
    | st.binary(max_size=16),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(FIELD_NAMES) | TEXT, children, max_size=4)
        | st.builds(
            lambda tag, fields: {**fields, "type": tag},
            st.sampled_from(TAGS),
            st.dictionaries(st.sampled_from(FIELD_NAMES), children, max_size=6),
        )
    ),
    max_leaves=25,
)
"""Message-shaped msgpack: maps with real tags and field names holding arbitrary values, to reach validation."""


# --- 1. round trips ----------------------------------------------------------------------------------------------


def test_samples_cover_every_message_and_body_type() -> None:
    """The samples below exercise every top-level message, request body, response body and notification body."""
    assert {type(m) for m in MESSAGES} == set(MESSAGE_TYPES)
    assert {type(b) for b in REQUEST_BODIES} == set(get_args(RequestBody))
    assert {type(b) for b in RESPONSE_BODIES} == set(get_args(ResponseBody))
    notification_bodies = {type(m.body) for m in MESSAGES if isinstance(m, Notification)}
    assert notification_bodies == {SetEnabled, EventsAppended}
    assert any(isinstance(m, Response) and m.failure is not None for m in MESSAGES)


@pytest.mark.parametrize("message", MESSAGES, ids=[_id(m) for m in MESSAGES])
def test_round_trip(message: Any) -> None:
    """Each message encodes to one full frame and decodes to an equal value of the same types."""
    frames = list(encode_frames(message))
    assert len(frames) == 1
    assert declared_length(frames[0]) == len(frames[0]) - 4
    decoded = FrameDecoder().feed(frames[0])
    assert decoded == [message]
    assert type(decoded[0]) is type(message)
    body = getattr(message, "body", None)
    if body is not None:
        assert type(getattr(decoded[0], "body", None)) is type(body)


def test_registration_decodes_enums_as_enums() -> None:
    """Discovery enums come back as enum members, not bare strings."""
    [decoded] = FrameDecoder().feed(b"".join(encode_frames(Request("r", Register(REGISTRATION), 1))))
    assert isinstance(decoded, Request)
    assert isinstance(decoded.body, Register)
    handler = decoded.body.registration.handlers[0]
    assert handler.component_kind is ComponentKind.AGGREGATE
    assert handler.handler_kind is HandlerKind.AGGREGATE_COMMAND
    assert decoded.body.registration.consumers[0].component_kind is ComponentKind.PROJECTOR


def test_full_frame_layout() -> None:
    """A whole message is ``length, 0x00, msgpack`` with the tag in a ``type`` field: the format other peers read."""
    [frame] = encode_frames(Ping(5))
    assert frame[4] == 0
    assert declared_length(frame) == len(frame) - 4
    assert msgspec.msgpack.decode(frame[5:]) == {"type": "ping", "sequence": 5}
    assert FrameDecoder().feed(full_frame(msgspec.msgpack.encode({"type": "pong", "sequence": 6}))) == [Pong(6)]


def test_many_messages_in_one_read_and_byte_by_byte() -> None:
    """All messages of one read come out in order; a stream fed a byte at a time yields the same messages."""
    stream = b"".join(frames_of(MESSAGES, DEFAULT_MAX_FRAME))
    assert FrameDecoder().feed(stream) == MESSAGES
    decoder = FrameDecoder()
    out: list[Any] = []
    for i in range(len(stream)):
        out += decoder.feed(stream[i : i + 1])
    assert out == MESSAGES


# --- 2. chunking -------------------------------------------------------------------------------------------------


def test_50_mb_message_chunked_at_default_limit() -> None:
    """A 50 MB message crosses in ~16 MiB chunks, none above the limit, and reassembles to an equal value."""
    message = big_response(50_000_000)
    body_size = len(msgspec.msgpack.encode(message))
    frames = list(encode_frames(message))
    assert len(frames) == math.ceil(body_size / (DEFAULT_MAX_FRAME - CHUNK_HEADER)) == 3
    assert all(declared_length(f) == len(f) - 4 <= DEFAULT_MAX_FRAME for f in frames)
    decoder = FrameDecoder()
    out: list[Any] = []
    for frame in frames:  # a realistic socket read size
        for start in range(0, len(frame), 4 * 1024 * 1024):
            out += decoder.feed(frame[start : start + 4 * 1024 * 1024])
    assert out == [message]


def test_chunks_at_small_limit() -> None:
    """At a 4096-byte limit a ~200 KB message is ~50 chunk frames of one stream id, the last flagged; it round-trips."""
    message = big_response(200_000)
    frames = list(encode_frames(message, 4096))
    assert len(frames) == math.ceil(len(msgspec.msgpack.encode(message)) / (4096 - CHUNK_HEADER))
    assert all(declared_length(f) == len(f) - 4 <= 4096 for f in frames)
    assert all(f[4] == 1 for f in frames)
    assert len({f[5:21] for f in frames}) == 1
    assert [f[21] for f in frames] == [0] * (len(frames) - 1) + [1]
    assert FrameDecoder(max_frame=4096).feed(b"".join(frames)) == [message]


def test_frame_limit_boundary() -> None:
    """A message whose frame is exactly the limit goes whole; one byte over and it is chunked."""
    message = big_response(1000)
    exact = len(msgspec.msgpack.encode(message)) + 1
    [whole] = encode_frames(message, exact)
    assert declared_length(whole) == exact
    assert whole[4] == 0
    assert FrameDecoder(max_frame=exact).feed(whole) == [message]
    chunked = list(encode_frames(message, exact - 1))
    assert len(chunked) == 2
    assert all(f[4] == 1 and declared_length(f) <= exact - 1 for f in chunked)
    assert FrameDecoder(max_frame=exact - 1).feed(b"".join(chunked)) == [message]


def test_each_chunked_message_gets_its_own_stream() -> None:
    """Two encodings of the same message use different stream ids, so they can interleave."""
    first = list(encode_frames(big_response(1000), 100))
    second = list(encode_frames(big_response(1000), 100))
    assert first[0][5:21] != second[0][5:21]


@FUZZ
@given(order=st.permutations([0] * 12 + [1] * 9 + [2] * 3))
def test_interleaved_streams_reassemble(order: list[int]) -> None:
    """Chunks of two streams and whole frames in any interleaving (each stream in order) reassemble; each message
    comes out when its last frame arrives."""
    messages: list[Message] = [big_response(2000), Response("other", QueryResult(bytes(range(256)) * 6)), Ping(1)]
    frames = [list(encode_frames(m, 200)) for m in messages[:2]] + [[next(encode_frames(Ping(1), 200))] * 3]
    assert [len(f) for f in frames] == [12, 9, 3]
    positions = [0, 0, 0]
    decoder = FrameDecoder(max_frame=200)
    out: list[Any] = []
    expected: list[Any] = []
    for source in order:
        out += decoder.feed(frames[source][positions[source]])
        positions[source] += 1
        if source == 2 or positions[source] == len(frames[source]):
            expected.append(messages[source])
    assert out == expected


def test_completed_streams_free_their_slot() -> None:
    """Far more than ``MAX_OPEN_STREAMS`` chunked messages in sequence decode: a finished stream is forgotten."""
    messages = [big_response(100 + i) for i in range(MAX_OPEN_STREAMS * 2)]
    assert FrameDecoder(max_frame=64).feed(b"".join(frames_of(messages, 64))) == messages


# --- 3. byte-stream splitting ------------------------------------------------------------------------------------


@FUZZ
@given(messages=st.lists(generated_messages, min_size=1, max_size=6), max_frame=max_frames, data=st.data())
def test_split_anywhere(messages: list[Any], max_frame: int, data: st.DataObject) -> None:
    """Feeding the frames cut at arbitrary points yields the same messages, in order."""
    stream = b"".join(frames_of(messages, max_frame))
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=30)))
    decoder = FrameDecoder(max_frame=max_frame)
    out: list[Any] = []
    for start, end in itertools.pairwise([0, *cuts, len(stream)]):
        out += decoder.feed(stream[start:end])
    assert out == messages


# --- 4. truncation and fuzzing -----------------------------------------------------------------------------------


@FUZZ
@given(messages=st.lists(generated_messages, min_size=1, max_size=4), max_frame=max_frames, data=st.data())
def test_valid_prefix_waits(messages: list[Any], max_frame: int, data: st.DataObject) -> None:
    """A truncated valid stream never raises: it yields exactly the messages whose last frame is complete, and
    the rest arrives with the remaining bytes."""
    per_message = [list(encode_frames(m, max_frame)) for m in messages]
    stream = b"".join(b"".join(frames) for frames in per_message)
    cut = data.draw(st.integers(min_value=0, max_value=len(stream) - 1))
    ends = list(itertools.accumulate(sum(len(f) for f in frames) for frames in per_message))
    complete = [m for m, end in zip(messages, ends, strict=True) if end <= cut]
    decoder = FrameDecoder(max_frame=max_frame)
    assert decoder.feed(stream[:cut]) == complete
    assert decoder.feed(stream[cut:]) == messages[len(complete) :]


@FUZZ
@given(data=st.binary(max_size=2000), max_frame=max_frames)
def test_random_bytes(data: bytes, max_frame: int) -> None:
    """Arbitrary bytes give messages or a ProtocolError, nothing else."""
    feed_checked(FrameDecoder(max_frame=max_frame, max_message=10_000), data)


@FUZZ
@given(bodies=st.lists(st.tuples(st.integers(0, 3), st.binary(max_size=300)), min_size=1, max_size=8))
def test_random_frame_bodies(bodies: list[tuple[int, bytes]]) -> None:
    """Well-framed bodies of any kind (full, chunk, unknown) with random content: messages or ProtocolError."""
    decoder = FrameDecoder(max_frame=400, max_message=1000)
    for kind, body in bodies:
        if feed_checked(decoder, raw_frame(bytes((kind,)) + body)) is None:
            return


@FUZZ
@given(value=msgpack_values, chunked=st.booleans())
def test_message_shaped_msgpack(value: Any, chunked: bool) -> None:
    """Msgpack maps with real tags and field names but arbitrary values: a message of the right type or a
    ProtocolError; never a validation error, KeyError, TypeError or the like."""
    body = msgspec.msgpack.encode(value)
    data = chunk_frame(b"s" * 16, 1, body) if chunked else full_frame(body)
    feed_checked(FrameDecoder(), data)


@FUZZ
@given(
    messages=st.lists(generated_messages, min_size=1, max_size=4),
    max_frame=max_frames,
    data=st.data(),
)
def test_flipped_bytes(messages: list[Any], max_frame: int, data: st.DataObject) -> None:
    """Valid frames with some bytes changed: messages or a ProtocolError, fed whole or in pieces."""
    stream = bytearray(b"".join(frames_of(messages, max_frame)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(stream) - 1), st.integers(1, 255)), min_size=1, max_size=5))
    for index, mask in flips:
        stream[index] ^= mask
    step = data.draw(st.integers(min_value=1, max_value=len(stream)))
    decoder = FrameDecoder(max_frame=max_frame, max_message=100_000)
    for start in range(0, len(stream), step):
        if feed_checked(decoder, bytes(stream[start : start + step])) is None:
            return


@FUZZ
@given(max_frame=max_frames, data=st.data())
def test_oversized_length_rejected_from_header(max_frame: int, data: st.DataObject) -> None:
    """A length above the limit is refused as soon as the 4-byte header is in, without waiting for the body."""
    length = data.draw(st.integers(min_value=max_frame + 1, max_value=2**32 - 1))
    with pytest.raises(ProtocolError):
        FrameDecoder(max_frame=max_frame).feed(struct.pack(">I", length))


def test_zero_length_frame() -> None:
    """An empty frame has no kind byte: ProtocolError."""
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(b"\x00\x00\x00\x00")


@FUZZ
@given(kind=st.integers(2, 255), body=st.binary(max_size=64))
def test_unknown_frame_kind(kind: int, body: bytes) -> None:
    """Only kinds 0 and 1 exist."""
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(raw_frame(bytes((kind,)) + body))


@pytest.mark.parametrize("size", range(1, CHUNK_HEADER))
def test_chunk_frame_shorter_than_its_header(size: int) -> None:
    """A chunk frame without room for stream id and flag: ProtocolError."""
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(raw_frame(b"\x01" + b"\x00" * (size - 1)))


@FUZZ
@given(flag=st.integers(2, 255))
def test_bad_chunk_flag(flag: int) -> None:
    """The last-chunk flag is 0 or 1."""
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(chunk_frame(b"s" * 16, flag, b"data"))


def test_too_many_open_streams() -> None:
    """``MAX_OPEN_STREAMS`` unfinished streams are allowed and may continue; one more new stream is refused."""
    decoder = FrameDecoder()
    streams = [i.to_bytes(16, "big") for i in range(MAX_OPEN_STREAMS)]
    assert decoder.feed(b"".join(chunk_frame(s, 0, b"\x91") for s in streams)) == []
    assert decoder.feed(chunk_frame(streams[0], 0, b"")) == []
    with pytest.raises(ProtocolError):
        decoder.feed(chunk_frame(b"\xff" * 16, 0, b"\x91"))


def test_finishing_a_stream_makes_room() -> None:
    """With all stream slots taken, finishing one lets a new stream open."""
    decoder = FrameDecoder()
    streams = [i.to_bytes(16, "big") for i in range(MAX_OPEN_STREAMS)]
    decoder.feed(b"".join(chunk_frame(s, 0, b"") for s in streams))
    assert decoder.feed(chunk_frame(streams[0], 1, msgspec.msgpack.encode(Ping(3)))) == [Ping(3)]
    assert decoder.feed(chunk_frame(b"\xff" * 16, 1, msgspec.msgpack.encode(Ping(4)))) == [Ping(4)]


def test_chunked_message_limit() -> None:
    """A chunked message of exactly ``max_message`` bytes passes; one byte more is refused, and a stream over the
    limit is refused as soon as it passes it, before its last chunk."""
    message = big_response(5000)
    size = len(msgspec.msgpack.encode(message))
    frames = list(encode_frames(message, 512))
    assert FrameDecoder(max_frame=512, max_message=size).feed(b"".join(frames)) == [message]
    with pytest.raises(ProtocolError):
        FrameDecoder(max_frame=512, max_message=size - 1).feed(b"".join(frames))
    with pytest.raises(ProtocolError):
        FrameDecoder(max_frame=512, max_message=1000).feed(b"".join(frames[:3]))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xc1",
        msgspec.msgpack.encode(1),
        msgspec.msgpack.encode([]),
        msgspec.msgpack.encode({}),
        msgspec.msgpack.encode({"type": "nope"}),
        msgspec.msgpack.encode({"type": "ping"}),
        msgspec.msgpack.encode({"type": "ping", "sequence": "1"}),
        msgspec.msgpack.encode(EventsAppended(1)),  # a body type is not a top-level message
        msgspec.msgpack.encode({"type": "request", "correlation_id": "c", "body": {"type": "Head"}, "timeout_ms": 1}),
        msgspec.msgpack.encode(Ping(1)) + b"\x00",  # trailing bytes
        msgspec.msgpack.encode(Ping(1))[:-1],  # truncated inside the frame
    ],
    ids=lambda b: repr(b[:24]),
)
@pytest.mark.parametrize("chunked", [False, True])
def test_undecodable_bodies(body: bytes, chunked: bool) -> None:
    """Bodies that are not exactly one valid message, whole or as a finished stream: ProtocolError."""
    data = chunk_frame(b"s" * 16, 1, body) if chunked else full_frame(body)
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(data)


# --- 5. garbage before or among valid frames ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [b"\x00\x00\x00\x00", b"\x00\x00\x00\x01\x07", full_frame(b"\xc1"), chunk_frame(b"s" * 16, 9, b""), b"\xff" * 4],
    ids=["zero-length", "unknown-kind", "bad-msgpack", "bad-flag", "oversized"],
)
@pytest.mark.parametrize("split", [False, True])
def test_garbage_then_valid_frames(garbage: bytes, split: bool) -> None:
    """Valid frames after garbage do not rescue the stream: the decoder raises ProtocolError (the connection is
    closed; no resynchronisation is attempted)."""
    valid = b"".join(frames_of([Ping(1), big_response(500)], 128))
    decoder = FrameDecoder(max_frame=128)
    pieces = [garbage, valid] if split else [garbage + valid]
    with pytest.raises(ProtocolError):
        [decoder.feed(piece) for piece in pieces]


# --- regressions: inputs that escaped as exceptions other than ProtocolError --------------------------------------


def _registration_body(json_schema_value: bytes) -> bytes:
    """A Register request whose ``json_schema`` (typed ``object``) holds the msgpack ``json_schema_value``."""
    registration = BundleRegistration(
        bundle_id="b", bundle_version=1, payloads=[PayloadInfo(name="n", kind="k", json_schema={"a": 1})]
    )
    body = msgspec.msgpack.encode(Request("r", Register(registration), 1))
    marker = b"\x81\xa1a\x01"  # {"a": 1}
    assert body.count(marker) == 1
    return body.replace(marker, b"\x81\xa1a" + json_schema_value)


@pytest.mark.parametrize("chunked", [False, True])
def test_deeply_nested_value_is_a_protocol_error(chunked: bool) -> None:
    """A 100 KB body nesting arrays 100,000 deep in an ``object``-typed field is a ProtocolError, not the
    RecursionError msgspec raises."""
    body = _registration_body(b"\x91" * 100_000 + b"\x01")
    data = chunk_frame(b"s" * 16, 1, body) if chunked else full_frame(body)
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(data)


@pytest.mark.parametrize(
    "body",
    [
        msgspec.msgpack.encode(Ping(1)).replace(b"ping", b"p\xffng"),
        msgspec.msgpack.encode(Reject("ab", "cd")).replace(b"ab", b"a\xff"),
        msgspec.msgpack.encode(Request("c", SendQuery(QUERY), 1)).replace(b"AccountById", b"AccountBy\xc3("),
        _registration_body(b"\xa2\xe8e"),
    ],
    ids=["tag", "str-field", "nested-str-field", "object-field"],
)
def test_invalid_utf8_is_a_protocol_error(body: bytes) -> None:
    """Invalid UTF-8 in a string is a ProtocolError, not the UnicodeDecodeError msgspec raises."""
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(full_frame(body))


@pytest.mark.parametrize("max_frame", [1, 10, CHUNK_HEADER - 1, CHUNK_HEADER])
def test_frame_limit_without_room_for_data_is_refused(max_frame: int) -> None:
    """A limit that cannot hold a chunk header plus data is refused with ValueError, instead of silently yielding
    no frames at all (below 18) or failing inside ``range`` (at 18)."""
    with pytest.raises(ValueError, match="max_frame must be above"):
        list(encode_frames(big_response(100), max_frame))


# --- before the handshake: one small whole frame -------------------------------------------------------------------


def test_a_decoder_limited_for_the_handshake_refuses_chunks_and_large_frames_before_buffering_them() -> None:
    """What a server reads before the Hello is judged: whole frames up to the limit only. A chunk frame is refused
    as it arrives and an oversized frame as soon as its header is read, so the decoder never holds more than one
    frame of the limit; :meth:`FrameDecoder.limit` lifts the restriction after the handshake."""
    hello = next(encode_frames(MESSAGES[1]))
    decoder = FrameDecoder(64 * 1024, 0, chunks=False)
    partial = full_frame(b"\x00" * (64 * 1024 - 1))
    assert decoder.feed(partial[:-10]) == []
    assert 0 < decoder.buffered <= 64 * 1024 + 4
    with pytest.raises(ProtocolError, match="before the handshake"):
        FrameDecoder(64 * 1024, 0, chunks=False).feed(chunk_frame(b"s" * 16, 0, b"x" * 100))
    with pytest.raises(ProtocolError, match="limit 65536"):
        FrameDecoder(64 * 1024, 0, chunks=False).feed(struct.pack(">I", 64 * 1024 + 1))
    opened = FrameDecoder(64 * 1024, 0, chunks=False)
    assert opened.feed(hello) == [MESSAGES[1]]
    opened.limit(512, 100_000, chunks=True)
    message = big_response(5000)
    assert opened.feed(b"".join(encode_frames(message, 512))) == [message]
    assert opened.buffered == 0
