"""The SQLite consumer state store: the embedded default next to the SQLite event store.

One connection, owned by one worker thread, runs every statement; the event loop never blocks on the file.
Writes that touch several rows run in ``BEGIN IMMEDIATE`` transactions, so they take the file's write lock up
front and another process sharing the file cannot interleave with them. ``synchronous=FULL`` makes a committed
checkpoint durable when ``commit_checkpoint`` returns.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from evento.consumer_stores.sql import SQLConsumerStateStore
from evento.storage.sqlite import connect, is_busy

__all__ = ["SQLiteConsumerStateStore"]


class SQLiteConsumerStateStore(SQLConsumerStateStore):
    """Consumer state in one SQLite file, usually next to the event store's.

    Progress, saga state and dead events must outlive the process, and a file needs no server to run; the
    optimistic checkpoint version and the lease lock keep two processes sharing the file from both advancing
    one consumer. One connection is enough: SQLite has a single writer, so more would only wait on each other.
    """

    dialect = "sqlite"
    PLACEHOLDER = "?"
    BEGIN = "BEGIN IMMEDIATE"
    NOW_MS = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
    TYPES = {"key": "TEXT", "int": "INTEGER", "text": "TEXT", "blob": "BLOB", "table_options": ""}

    def __init__(self, path: str | Path) -> None:
        super().__init__(connections=1)
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return connect(self.path, synchronous="FULL")

    def _driver_error(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.Error)

    def _unavailable(self, exc: BaseException) -> bool:
        # Another process held the write lock past the busy timeout: the file is busy, not broken.
        return is_busy(exc)

    def _deadlocked(self, exc: BaseException) -> bool:
        return False  # BEGIN IMMEDIATE takes the write lock up front, so SQLite transactions cannot deadlock
