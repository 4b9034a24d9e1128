"""The TodoList read model: two SQLite tables beside the query bundle's consumer state.

The projector writes it, the projection reads it. Writes are idempotent (upserts, deletes), so an event
delivered again after a crash (at most one, reference §A.5) leaves the same rows.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from evento.server.sqlite_store import connect

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS todolist_list (
    identifier TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'WIP',
    created_by TEXT, updated_by TEXT, created_at TEXT, updated_at TEXT, registered_at TEXT
);
CREATE INDEX IF NOT EXISTS todolist_list_created ON todolist_list (created_at, identifier);
CREATE TABLE IF NOT EXISTS todolist_todo (
    identifier TEXT PRIMARY KEY,
    list_identifier TEXT NOT NULL,
    content TEXT NOT NULL,
    completed INTEGER NOT NULL DEFAULT 0,
    created_by TEXT, completed_by TEXT, created_at TEXT, completed_at TEXT
);
CREATE INDEX IF NOT EXISTS todolist_todo_list ON todolist_todo (list_identifier, created_at);
"""


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a Z, as the HTTP API shows timestamps."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class TodoListReadModel:
    """Thread-safe access to the read model: one connection per thread, the schema created on first use."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._schema_lock = threading.Lock()
        self._schema_ready = False

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = connect(self.path, synchronous="NORMAL")
            self._local.conn = conn
            with self._schema_lock:
                if not self._schema_ready:
                    conn.executescript(_SCHEMA)
                    self._schema_ready = True
        return conn

    def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one transaction."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return work(self._conn())
