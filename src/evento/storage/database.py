"""A small async SQL database for the server's own tables (catalog, telemetry, users), on SQLite or PostgreSQL.

The control plane keeps its tables in the event store's database (DESIGN §5), so a cluster sharing one PostgreSQL
shares them and a restart keeps them. Its statements are few and not on the command path, so one portable surface
is enough: SQL written with ``?`` placeholders and the syntax both engines accept (``INSERT … ON CONFLICT … DO
UPDATE``, ``BIGINT``, ``DOUBLE PRECISION``, ``TEXT``), run off the event loop. ``dialect`` says which engine it
is, for the rare statement that must differ. Driver errors come out as :class:`~evento.errors.EventStoreError`
(:class:`~evento.errors.EventStoreUnavailableError` when the database cannot be reached).

>>> import asyncio, tempfile, pathlib
>>> async def main() -> list[tuple[object, ...]]:
...     with tempfile.TemporaryDirectory() as tmp:
...         db = SQLiteDatabase(pathlib.Path(tmp) / "control.db")
...         await db.start()
...         await db.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v BIGINT)")
...         await db.execute("INSERT INTO t VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v", ("a", 1))
...         await db.execute("INSERT INTO t VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v", ("a", 2))
...         rows = await db.fetchall("SELECT k, v FROM t")
...         await db.stop()
...         return rows
>>> asyncio.run(main())
[('a', 2)]
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from evento.errors import EventStoreError, EventStoreUnavailableError
from evento.storage.sqlite import connect, is_busy

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

__all__ = ["Cursor", "Database", "PostgresDatabase", "SQLiteDatabase"]

T = TypeVar("T")


class Cursor(ABC):
    """What a :meth:`Database.transaction` function is given: statements run in one transaction."""

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""

    @abstractmethod
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    @abstractmethod
    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        rows = self.fetchall(sql, params)
        return rows[0] if rows else None


class Database(ABC):
    """An async database whose statements run on worker threads, one transaction per call."""

    dialect: Literal["sqlite", "postgres"]

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    @abstractmethod
    async def transaction(self, work: Callable[[Cursor], T], *, write: bool = True) -> T:
        """Run ``work`` in one transaction (committed when it returns, rolled back when it raises). ``write=False``
        promises it only reads: SQLite then takes no write lock, so the event store's appends never wait on it."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return await self.transaction(lambda cursor: cursor.execute(sql, params))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self.transaction(lambda cursor: cursor.executemany(sql, rows))

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await self.transaction(lambda cursor: cursor.fetchall(sql, params), write=False)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None


# --- SQLite --------------------------------------------------------------------------------------------------


class _SQLiteCursor(Cursor):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._conn.execute(sql, tuple(params)).rowcount

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._conn.executemany(sql, [tuple(row) for row in rows])

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self._conn.execute(sql, tuple(params)).fetchall())


class SQLiteDatabase(Database):
    """Tables in a SQLite file (the event store's, beside its own tables): one connection on one thread, so
    transactions never interleave; other processes' writers are waited out by the busy timeout."""

    dialect: Literal["sqlite", "postgres"] = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="evento-control-db")
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def start(self) -> None:
        def open_() -> None:
            self._conn = connect(self.path)

        await self._run(open_)

    async def stop(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await self._run(close)
        self._pool.shutdown(wait=True)

    async def transaction(self, work: Callable[[Cursor], T], *, write: bool = True) -> T:
        def run() -> T:
            conn = self._conn
            if conn is None:
                raise EventStoreUnavailableError(f"the database {self.path} is not open")
            # A writer takes the lock at once (no deadlock upgrading a read lock); a reader takes none in WAL mode.
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = work(_SQLiteCursor(conn))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return await self._run(run)

    async def _run(self, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn)
        except sqlite3.Error as exc:
            if is_busy(exc):
                raise EventStoreUnavailableError(f"the database {self.path} stayed locked: {exc}") from exc
            raise EventStoreError(f"database {self.path}: {exc}") from exc


# --- PostgreSQL ----------------------------------------------------------------------------------------------


class _PostgresCursor(Cursor):
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = self._conn.execute(_pg(sql), tuple(params))
        return int(cursor.rowcount)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._conn.cursor() as cursor:
            cursor.executemany(_pg(sql), [tuple(row) for row in rows])

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self._conn.execute(_pg(sql), tuple(params)).fetchall())


def _pg(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled). Our statements never hold a ``?`` in a
    string literal: values always travel as parameters."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresDatabase(Database):
    """Tables in a PostgreSQL database (the event store's), shared by every server of a cluster. A few worker
    threads each own a connection; the database's row locks decide between them and between servers."""

    dialect: Literal["sqlite", "postgres"] = "postgres"

    def __init__(self, url: str, *, connections: int = 2, connect_timeout: float = 10.0) -> None:
        self.url = url
        self._connect_timeout = connect_timeout
        self._pool = ThreadPoolExecutor(connections, thread_name_prefix="evento-control-db")
        self._local = threading.local()
        self._conns: list[Any] = []
        self._conns_lock = threading.Lock()

    async def stop(self) -> None:
        def close_all() -> None:
            with self._conns_lock:
                for conn in self._conns:
                    conn.close()
                self._conns.clear()

        await asyncio.get_running_loop().run_in_executor(None, close_all)
        self._pool.shutdown(wait=True)

    def _connection(self) -> Any:
        import psycopg

        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = psycopg.connect(self.url, connect_timeout=max(1, round(self._connect_timeout)))
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    async def transaction(self, work: Callable[[Cursor], T], *, write: bool = True) -> T:
        import psycopg

        from evento.storage.postgres import is_unavailable

        def run() -> T:
            conn = self._connection()
            with conn.transaction():
                return work(_PostgresCursor(conn))

        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, run)
        except psycopg.Error as exc:
            if is_unavailable(exc):
                raise EventStoreUnavailableError(f"PostgreSQL unavailable: {exc}") from exc
            raise EventStoreError(f"PostgreSQL: {exc}") from exc
