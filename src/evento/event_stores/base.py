"""The event store contract (the System State Store) and its group-commit machinery.

A store appends events with their snapshots, loads an aggregate's story, and serves consumers by sequence
number. Concurrent appends are group-committed: while one batch is being written, new appends queue up and go
together in the next transaction, so throughput grows with concurrency instead of paying one commit each.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from evento.errors import EventStoreError
from evento.messages import EventMessage, StoredEvent

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from evento.storage.database import Database

__all__ = ["AppendRequest", "EventFilter", "EventStore", "SnapshotRecord", "Story", "VersionConflictError"]

#: The columns every SQL backend selects to rebuild a :class:`StoredEvent` (see :func:`row_to_event`).
EVENT_COLUMNS = (
    "sequence_number, aggregate_id, aggregate_version, event_name, context, payload, metadata, message_id, timestamp"
)
_metadata_encoder = msgspec.msgpack.Encoder()
_metadata_decoder = msgspec.msgpack.Decoder(dict[str, str])


def encode_metadata(metadata: dict[str, str]) -> bytes:
    return _metadata_encoder.encode(metadata)


def row_to_event(row: Sequence[Any]) -> StoredEvent:
    """A :class:`StoredEvent` from a row of :data:`EVENT_COLUMNS` (the same order as its fields)."""
    return StoredEvent(row[0], row[1], row[2], row[3], row[4], bytes(row[5]), _metadata_decoder.decode(row[6]),
                       row[7], row[8])  # fmt: skip


def stored_events(requests: Sequence[AppendRequest], sequence_numbers: Sequence[int]) -> list[StoredEvent]:
    """The events a batch of appends becomes once given their sequence numbers."""
    return [
        StoredEvent(
            sequence_number=sequence_number,
            aggregate_id=request.aggregate_id,
            aggregate_version=request.aggregate_version,
            event_name=request.event.payload_name,
            context=request.event.context,
            payload=request.event.payload,
            metadata=request.event.metadata,
            message_id=request.event.message_id,
            timestamp=request.event.timestamp,
        )
        for request, sequence_number in zip(requests, sequence_numbers, strict=True)
    ]


log = logging.getLogger(__name__)


class VersionConflictError(EventStoreError):
    """Another append already stored this aggregate version (the per-aggregate order was broken)."""


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """One event to append, with what the command broker learnt about its aggregate.

    ``aggregate_version`` is the version this event gives its aggregate (``None`` for service events);
    ``snapshot`` replaces the aggregate's snapshot; ``delete_aggregate`` soft-deletes it after the append.
    """

    event: EventMessage
    aggregate_id: str | None
    aggregate_version: int | None = None
    snapshot: bytes | None = None
    delete_aggregate: bool = False
    command_id: str | None = None


@dataclass(slots=True)
class Story:
    """What an aggregate is made of: its snapshot and the events after it, in order."""

    snapshot: bytes | None = None
    snapshot_version: int = 0
    events: list[StoredEvent] = field(default_factory=list)
    deleted: bool = False

    @property
    def version(self) -> int:
        """The aggregate's current version (number of events it has)."""
        if self.events:
            last = self.events[-1].aggregate_version
            return last if last is not None else self.snapshot_version + len(self.events)
        return self.snapshot_version

    @property
    def exists(self) -> bool:
        return self.snapshot is not None or bool(self.events) or self.deleted


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events an event browser shows (every condition given must hold).

    ``text``: a literal, case-insensitive substring of the payload's JSON text (``%`` and ``_`` are no wildcards).
    Times are the events' timestamps in epoch milliseconds, bounds inclusive.
    """

    aggregate_id: str | None = None
    event_name: str | None = None
    context: str | None = None
    from_sequence: int | None = None
    to_sequence: int | None = None
    from_ms: int | None = None
    to_ms: int | None = None
    text: str | None = None
    descending: bool = False

    def where(self, payload_text: str) -> tuple[str, list[Any]]:
        """The SQL condition (``?`` placeholders) and its parameters; ``payload_text`` is the backend's expression
        for the payload as text compared case-insensitively with ``LIKE … ESCAPE '\\'``."""
        conditions: list[str] = []
        params: list[Any] = []
        for column, operator, value in (
            ("aggregate_id", "=", self.aggregate_id),
            ("event_name", "=", self.event_name),
            ("context", "=", self.context),
            ("sequence_number", ">=", self.from_sequence),
            ("sequence_number", "<=", self.to_sequence),
            ("timestamp", ">=", self.from_ms),
            ("timestamp", "<=", self.to_ms),
        ):
            if value is not None:
                conditions.append(f"{column} {operator} ?")
                params.append(value)
        if self.text:
            conditions.append(f"{payload_text} ESCAPE '\\'")
            params.append("%" + like_literal(self.text) + "%")
        return (" AND ".join(conditions) or "1 = 1"), params


def like_literal(text: str) -> str:
    r"""``text`` as a ``LIKE`` pattern matching it literally (escape character ``\``).

    >>> like_literal("50%_off")
    '50\\%\\_off'
    """
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """An aggregate's stored snapshot: its state, the version and sequence number it was taken at, when."""

    aggregate_id: str
    state: bytes
    aggregate_version: int
    sequence_number: int
    updated_ms: int
    deleted: bool


class EventStore(ABC):
    """Abstract event store. Backends implement the ``_``-prefixed batch primitives and nothing else."""

    max_batch = 512
    #: True when one server is the only writer (SQLite): its cached stories are the stored ones.
    exclusive = False

    def __init__(self) -> None:
        self._pending: list[tuple[AppendRequest, asyncio.Future[StoredEvent]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[int], None]] = []
        self._head = 0

    # --- lifecycle ---------------------------------------------------------------------------------------------

    @abstractmethod
    def database(self) -> Database:
        """A handle on this store's database for the server's own tables (catalog, telemetry, users), so they live
        where the events do: shared by a cluster, kept across restarts. Not started; the caller owns it."""

    async def start(self) -> None:
        """Open connections, apply migrations, read the head."""
        await self._open()
        self._head = await self._read_head()

    async def stop(self) -> None:
        """Finish the appends already accepted, then close."""
        if self._writer is not None:
            await asyncio.shield(self._writer)
        await self._close()

    # --- writes ------------------------------------------------------------------------------------------------

    def append(self, request: AppendRequest) -> asyncio.Future[StoredEvent]:
        """Append one event: await the result; the event is durable when it resolves.

        Group-committed with concurrent appends. A plain function returning a future rather than a coroutine,
        so that many appends gathered at once cost no task each.
        """
        future: asyncio.Future[StoredEvent] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="evento-event-store-writer")
        return future

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            requests = [request for request, _ in batch]
            try:
                stored = await self._write_batch(requests)
            except VersionConflictError:
                # One request broke an aggregate's order; write the others one by one so only it fails.
                await self._write_individually(batch)
                continue
            except Exception as exc:
                log.exception("event store append failed for a batch of %d", len(batch))
                error = exc if isinstance(exc, EventStoreError) else EventStoreError(f"append failed: {exc}")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), event in zip(batch, stored, strict=True):
                if not future.done():
                    future.set_result(event)
            self._advance_head(stored[-1].sequence_number)

    async def _write_individually(self, batch: list[tuple[AppendRequest, asyncio.Future[StoredEvent]]]) -> None:
        for request, future in batch:
            try:
                (event,) = await self._write_batch([request])
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
                continue
            if not future.done():
                future.set_result(event)
            self._advance_head(event.sequence_number)

    def _advance_head(self, sequence_number: int) -> None:
        if sequence_number > self._head:
            self._head = sequence_number
            for listener in self._listeners:
                listener(sequence_number)

    # --- reads -------------------------------------------------------------------------------------------------

    async def head(self) -> int:
        """The highest committed sequence number (0 when empty)."""
        return self._head

    def add_listener(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(head)`` on the event loop after every commit."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[int], None]) -> None:
        self._listeners.remove(listener)

    def is_contended(self, aggregate_id: str) -> bool:
        """Whether servers sharing this store were seen racing for this aggregate lately (see
        :meth:`report_contention`); never for a store with a single writer."""
        return False

    def report_contention(self, aggregate_id: str) -> None:
        """Tell every server sharing the store that an append to this aggregate lost a race with another."""

    def cluster_lock(self, key: str) -> AbstractAsyncContextManager[None]:
        """Hold ``key`` against every server sharing this store: service commands' and wider lock ids always,
        an aggregate's own id while servers race for it.

        A store only one server writes (SQLite) needs nothing beyond the broker's own per-lock-id locks.
        """
        return nullcontext()

    @abstractmethod
    async def load_story(self, aggregate_id: str, *, use_snapshot: bool = True) -> Story:
        """The aggregate's snapshot (unless ``use_snapshot`` is false) and its later events, in order."""

    @abstractmethod
    async def find_by_command(self, command_id: str) -> StoredEvent | None:
        """The event a command (by its message id) produced, if it was stored."""

    @abstractmethod
    async def fetch(self, context: str, after: int, limit: int) -> list[StoredEvent]:
        """Events with ``sequence_number > after`` in order; ``context="*"`` means every context."""

    @abstractmethod
    async def count_events(self) -> int:
        """How many events are stored."""

    # --- browsing (the API's event browser and dashboard; not on the command path) ----------------------------

    #: The backend's ``LIKE`` over the payload as text, case-insensitive (see :meth:`EventFilter.where`).
    _payload_like = "CAST(payload AS TEXT) LIKE ?"

    async def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run one read-only statement (``?`` placeholders) on a reading connection; the rows. Backends that
        support browsing implement it; the browsing methods are written once, here."""
        raise NotImplementedError(f"{type(self).__name__} does not support browsing its events")

    async def browse_events(self, where: EventFilter, offset: int, limit: int) -> tuple[list[StoredEvent], int]:
        """The events ``where`` selects, by sequence number (descending if it says), ``limit`` of them from
        ``offset``; and how many it selects in all."""
        condition, params = where.where(self._payload_like)
        order = "DESC" if where.descending else "ASC"
        rows = await self._rows(
            f"SELECT {EVENT_COLUMNS} FROM es_events WHERE {condition} ORDER BY sequence_number {order}"
            " LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        total = await self._rows(f"SELECT COUNT(*) FROM es_events WHERE {condition}", params)
        return [row_to_event(row) for row in rows], int(total[0][0])

    async def event(self, sequence_number: int) -> StoredEvent | None:
        """The event of ``sequence_number``, if stored."""
        rows = await self._rows(f"SELECT {EVENT_COLUMNS} FROM es_events WHERE sequence_number = ?", (sequence_number,))
        return row_to_event(rows[0]) if rows else None

    async def snapshot(self, aggregate_id: str) -> SnapshotRecord | None:
        """The aggregate's stored snapshot, if it has one (a deleted aggregate's too, marked deleted)."""
        rows = await self._rows(
            "SELECT aggregate_id, state, aggregate_version, sequence_number, updated_at, deleted_at"
            " FROM es_snapshots WHERE aggregate_id = ?",
            (aggregate_id,),
        )
        if not rows:
            return None
        row = rows[0]
        return SnapshotRecord(row[0], bytes(row[1]), int(row[2]), int(row[3]), int(row[4]), row[5] is not None)

    async def count_aggregates(self) -> int:
        """How many aggregates have events (service events have none)."""
        rows = await self._rows("SELECT COUNT(DISTINCT aggregate_id) FROM es_events WHERE aggregate_id IS NOT NULL", ())
        return int(rows[0][0])

    async def recent_timestamps(self, limit: int) -> list[int]:
        """The timestamps (epoch ms) of the latest ``limit`` events, newest first: the recent publication rate."""
        rows = await self._rows("SELECT timestamp FROM es_events ORDER BY sequence_number DESC LIMIT ?", (limit,))
        return [int(row[0]) for row in rows]

    async def count_by_time(self, from_ms: int, to_ms: int, interval_ms: int) -> dict[int, int]:
        """How many events have a timestamp in each ``interval_ms`` wide bucket of ``[from_ms, to_ms)``: the
        bucket's start (epoch ms) to its count, buckets without events left out. The dashboard's publication rate
        over time; counted by the database so only one row per bucket leaves it."""
        if interval_ms <= 0 or to_ms <= from_ms:
            return {}
        # Integer division on both backends (SQLite INTEGER, PostgreSQL BIGINT); from_ms is subtracted first so
        # the quotient is never negative and truncation is the floor.
        rows = await self._rows(
            "SELECT (timestamp - ?) / ? AS bucket, COUNT(*) FROM es_events WHERE timestamp >= ? AND timestamp < ?"
            " GROUP BY bucket ORDER BY bucket",
            (from_ms, interval_ms, from_ms, to_ms),
        )
        return {from_ms + int(row[0]) * interval_ms: int(row[1]) for row in rows}

    # --- backend primitives ------------------------------------------------------------------------------------

    @abstractmethod
    async def _open(self) -> None: ...

    @abstractmethod
    async def _close(self) -> None: ...

    @abstractmethod
    async def _read_head(self) -> int: ...

    @abstractmethod
    async def _write_batch(self, requests: Sequence[AppendRequest]) -> list[StoredEvent]:
        """Write all requests in one transaction (all or nothing), in order, and return them as stored."""
