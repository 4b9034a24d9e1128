"""The SQLite event store: the embedded default.

WAL mode with ``synchronous=FULL``: a batch is on disk when its appends return, so an acknowledged command
survives a kill -9 or a power cut. One writer thread owns the write connection; sequence numbers are the rowid,
assigned inside the single writer's transactions, so they increase in commit order (CPES) by construction.
Readers use their own connections on a small thread pool and never block the writer (WAL). The store holds an
exclusive lock on ``<file>.lock`` while open: a second server on the same file stops at start (DataInUseError).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from evento.errors import EventStoreError, EventStoreUnavailableError
from evento.event_stores.base import (
    EVENT_COLUMNS,
    AppendRequest,
    EventStore,
    Story,
    VersionConflictError,
    encode_metadata,
    row_to_event,
    stored_events,
)
from evento.messages import StoredEvent, now_ms
from evento.storage.file_lock import FileLock
from evento.storage.sqlite import connect, is_busy

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from evento.storage.database import Database

__all__ = ["SQLiteEventStore"]

T = TypeVar("T")

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS evento_schema (version INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS es_events (
        sequence_number INTEGER PRIMARY KEY,
        aggregate_id TEXT,
        aggregate_version INTEGER,
        context TEXT NOT NULL,
        event_name TEXT NOT NULL,
        message_id TEXT NOT NULL,
        command_id TEXT,
        timestamp INTEGER NOT NULL,
        payload BLOB NOT NULL,
        metadata BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        deleted_at INTEGER
    )""",
    """CREATE UNIQUE INDEX IF NOT EXISTS es_events_aggregate
        ON es_events (aggregate_id, aggregate_version) WHERE aggregate_version IS NOT NULL""",
    """CREATE UNIQUE INDEX IF NOT EXISTS es_events_command ON es_events (command_id) WHERE command_id IS NOT NULL""",
    """CREATE INDEX IF NOT EXISTS es_events_aggregate_seq ON es_events (aggregate_id, sequence_number)""",
    """CREATE INDEX IF NOT EXISTS es_events_context ON es_events (context, sequence_number)""",
    """CREATE TABLE IF NOT EXISTS es_snapshots (
        aggregate_id TEXT PRIMARY KEY,
        state BLOB NOT NULL,
        aggregate_version INTEGER NOT NULL,
        sequence_number INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        deleted_at INTEGER
    )""",
    """CREATE TABLE IF NOT EXISTS es_deleted_aggregates (
        aggregate_id TEXT PRIMARY KEY,
        deleted_at INTEGER NOT NULL
    )""",
]
_SCHEMA_VERSION = 1


class SQLiteEventStore(EventStore):
    """Event store in one SQLite file. One store owns the file at a time (an exclusive lock, across processes)."""

    exclusive = True

    def database(self) -> Database:
        from evento.storage.database import SQLiteDatabase

        return SQLiteDatabase(self.path)

    def __init__(self, path: str | Path, *, readers: int = 2, synchronous: str = "FULL") -> None:
        super().__init__()
        self.path = Path(path)
        self._synchronous = synchronous
        self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="evento-es-write")
        self._reader_pool = ThreadPoolExecutor(readers, thread_name_prefix="evento-es-read")
        self._write_conn: sqlite3.Connection | None = None
        self._written = 0  # the last sequence number committed; touched only on the writer thread after start
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._owner = FileLock(self.path.with_name(self.path.name + ".lock"), f"event store {self.path.resolve()}")

    async def _on_writer(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._write_conn
        assert conn is not None, "the event store is not started"
        try:
            return await asyncio.get_running_loop().run_in_executor(self._writer_pool, fn, conn)
        except sqlite3.Error as exc:
            raise self._translated(exc) from exc

    async def _on_reader(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader_pool, self._with_reader, fn)
        except sqlite3.Error as exc:
            raise self._translated(exc) from exc

    def _translated(self, exc: sqlite3.Error) -> EventStoreError:
        """The Evento error for a driver error: unavailable (transient) while another process holds the file's
        lock past the busy timeout, refused otherwise (a full disk, a damaged file)."""
        message = f"SQLite event store {self.path}: {exc}"
        return EventStoreUnavailableError(message) if is_busy(exc) else EventStoreError(message)

    def _with_reader(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, synchronous=self._synchronous)
            self._local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return fn(conn)

    async def _open(self) -> None:
        self._owner.acquire()  # before any write: the other holder would see its sequence numbers taken
        try:
            try:
                self._write_conn = await asyncio.get_running_loop().run_in_executor(
                    self._writer_pool, lambda: connect(self.path, synchronous=self._synchronous)
                )
            except sqlite3.Error as exc:
                raise self._translated(exc) from exc
            await self._on_writer(_migrate)
        except BaseException:
            self._owner.release()
            raise

    async def _close(self) -> None:
        def close_readers() -> None:
            with self._reader_lock:
                for conn in self._reader_conns:
                    conn.close()
                self._reader_conns.clear()

        if self._write_conn is not None:
            await self._on_writer(lambda conn: conn.close())
            self._write_conn = None
        close_readers()
        self._writer_pool.shutdown(wait=True)
        self._reader_pool.shutdown(wait=True)
        self._owner.release()

    async def _read_head(self) -> int:
        self._written = await self._on_writer(
            lambda conn: conn.execute("SELECT COALESCE(MAX(sequence_number), 0) FROM es_events").fetchone()[0]
        )
        return self._written

    async def _write_batch(self, requests: Sequence[AppendRequest]) -> list[StoredEvent]:
        def write(conn: sqlite3.Connection) -> list[StoredEvent]:
            stored = _write(conn, requests, self._written)
            self._written = stored[-1].sequence_number  # only after COMMIT: a rolled-back batch reuses its numbers
            return stored

        return await self._on_writer(write)

    async def load_story(self, aggregate_id: str, *, use_snapshot: bool = True) -> Story:
        return await self._on_reader(lambda conn: _load_story(conn, aggregate_id, use_snapshot))

    async def find_by_command(self, command_id: str) -> StoredEvent | None:
        def query(conn: sqlite3.Connection) -> StoredEvent | None:
            sql = f"SELECT {EVENT_COLUMNS} FROM es_events WHERE command_id = ?"
            row = conn.execute(sql, (command_id,)).fetchone()
            return row_to_event(row) if row is not None else None

        return await self._on_reader(query)

    async def fetch(self, context: str, after: int, limit: int) -> list[StoredEvent]:
        def query(conn: sqlite3.Connection) -> list[StoredEvent]:
            if context == "*":
                sql = (
                    f"SELECT {EVENT_COLUMNS} FROM es_events WHERE sequence_number > ? ORDER BY sequence_number LIMIT ?"
                )
                params: tuple[Any, ...] = (after, limit)
            else:
                sql = (
                    f"SELECT {EVENT_COLUMNS} FROM es_events WHERE context = ? AND sequence_number > ?"
                    " ORDER BY sequence_number LIMIT ?"
                )
                params = (context, after, limit)
            return [row_to_event(row) for row in conn.execute(sql, params)]

        return await self._on_reader(query)

    async def count_events(self) -> int:
        return await self._on_reader(lambda conn: conn.execute("SELECT COUNT(*) FROM es_events").fetchone()[0])

    async def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return await self._on_reader(lambda conn: list(conn.execute(sql, tuple(params)).fetchall()))


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _SCHEMA:
            conn.execute(statement)
        row = conn.execute("SELECT MAX(version) FROM evento_schema").fetchone()
        if row[0] is None:
            conn.execute("INSERT INTO evento_schema (version) VALUES (?)", (_SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


_ROWS_PER_INSERT = 64  # 9 parameters a row: far below SQLite's variable limit, few distinct statements to cache
_INSERT_PREFIX = (
    "INSERT INTO es_events (sequence_number, aggregate_id, aggregate_version, context, event_name, message_id,"
    " timestamp, payload, metadata, created_at, command_id) VALUES "
)
_COLUMNS = 11
_ROW = "(" + ", ".join("?" * _COLUMNS) + ")"
_INSERT_SQL = {n: _INSERT_PREFIX + ", ".join([_ROW] * n) for n in range(1, _ROWS_PER_INSERT + 1)}


def _write(conn: sqlite3.Connection, requests: Sequence[AppendRequest], last_sequence: int) -> list[StoredEvent]:
    """Write a batch in one transaction. Sequence numbers are given explicitly (this thread is the only writer)
    and rows go in multi-row INSERTs: every SQLite call releases and re-takes the GIL, and with a busy event
    loop each re-take can wait a whole switch interval, so fewer calls per batch is what makes batches cheap."""
    created_at = now_ms()
    stored = stored_events(requests, range(last_sequence + 1, last_sequence + 1 + len(requests)))
    params: list[Any] = []
    for request, event in zip(requests, stored, strict=True):
        params += (
            event.sequence_number,
            event.aggregate_id,
            event.aggregate_version,
            event.context,
            event.event_name,
            event.message_id,
            event.timestamp,
            event.payload,
            encode_metadata(event.metadata),
            created_at,
            request.command_id,
        )
    conn.execute("BEGIN IMMEDIATE")
    try:
        for first in range(0, len(stored), _ROWS_PER_INSERT):
            rows = min(_ROWS_PER_INSERT, len(stored) - first)
            try:
                conn.execute(_INSERT_SQL[rows], params[first * _COLUMNS : (first + rows) * _COLUMNS])
            except sqlite3.IntegrityError as exc:
                raise VersionConflictError(f"an aggregate version in this batch is already stored: {exc}") from exc
        for request, event in zip(requests, stored, strict=True):
            if request.snapshot is not None and request.aggregate_id is not None:
                conn.execute(
                    "INSERT INTO es_snapshots (aggregate_id, state, aggregate_version, sequence_number, updated_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (aggregate_id) DO UPDATE SET state = excluded.state,"
                    " aggregate_version = excluded.aggregate_version,"
                    " sequence_number = excluded.sequence_number, updated_at = excluded.updated_at",
                    (
                        request.aggregate_id,
                        request.snapshot,
                        request.aggregate_version or 0,
                        event.sequence_number,
                        created_at,
                    ),
                )
            if request.delete_aggregate and request.aggregate_id is not None:
                _soft_delete(conn, request.aggregate_id, created_at)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return stored


def _soft_delete(conn: sqlite3.Connection, aggregate_id: str, deleted_at: int) -> None:
    conn.execute(
        "UPDATE es_events SET deleted_at = ? WHERE aggregate_id = ? AND deleted_at IS NULL", (deleted_at, aggregate_id)
    )
    conn.execute("UPDATE es_snapshots SET deleted_at = ? WHERE aggregate_id = ?", (deleted_at, aggregate_id))
    conn.execute(
        "INSERT OR REPLACE INTO es_deleted_aggregates (aggregate_id, deleted_at) VALUES (?, ?)",
        (aggregate_id, deleted_at),
    )


def _load_story(conn: sqlite3.Connection, aggregate_id: str, use_snapshot: bool) -> Story:
    story = Story()
    if conn.execute("SELECT 1 FROM es_deleted_aggregates WHERE aggregate_id = ?", (aggregate_id,)).fetchone():
        story.deleted = True
        return story
    if use_snapshot:
        row = conn.execute(
            "SELECT state, aggregate_version FROM es_snapshots WHERE aggregate_id = ? AND deleted_at IS NULL",
            (aggregate_id,),
        ).fetchone()
        if row is not None:
            story.snapshot, story.snapshot_version = row[0], row[1]
    story.events = _events_after(conn, aggregate_id, story.snapshot_version)
    return story


def _events_after(conn: sqlite3.Connection, aggregate_id: str, version: int) -> list[StoredEvent]:
    rows = conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM es_events WHERE aggregate_id = ? AND aggregate_version > ?"
        " ORDER BY aggregate_version",
        (aggregate_id, version),
    ).fetchall()
    return [row_to_event(row) for row in rows]
