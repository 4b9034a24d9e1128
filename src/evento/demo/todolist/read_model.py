"""The TodoList read model: two tables on SQLite, PostgreSQL or MySQL/MariaDB, usually in the query bundle's
consumer store database.

The projector writes it, the projection reads it. When the read model lives in the database of the consumer store
it names (the default), the projector's writes join the projection transaction, which commits them together with
the checkpoint: an event is projected exactly once, even across a crash. Otherwise (an in-memory consumer store,
an ``async`` handler, a dead-event replay) writes run in a transaction of their own and stay idempotent (upserts,
deletes), so the one event redelivered after a crash (reference §A.5) leaves the same rows.

SQL is written once, with ``?`` placeholders; :class:`Session` speaks each driver's dialect.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from evento.bundle.calls import projection_transaction
from evento.consumer_stores import ConsumerStateStore, SQLiteConsumerStateStore, open_consumer_store
from evento.server.sqlite_store import connect as sqlite_connect

__all__ = ["Session", "TodoListReadModel", "iso"]

T = TypeVar("T")

# Types every dialect accepts: keys and indexed columns are VARCHAR (MySQL indexes no TEXT without a prefix
# length); timestamps are ISO 8601 strings, so ordering them as text is ordering them in time.
_TABLES = [
    """CREATE TABLE IF NOT EXISTS todolist_list (
        identifier VARCHAR(100) PRIMARY KEY,
        name TEXT NOT NULL,
        status VARCHAR(32) NOT NULL DEFAULT 'WIP',
        created_by TEXT, updated_by TEXT,
        created_at VARCHAR(32), updated_at VARCHAR(32), registered_at VARCHAR(32)
    )""",
    """CREATE TABLE IF NOT EXISTS todolist_todo (
        identifier VARCHAR(100) PRIMARY KEY,
        list_identifier VARCHAR(100) NOT NULL,
        position BIGINT NOT NULL,
        content TEXT NOT NULL,
        completed INTEGER NOT NULL DEFAULT 0,
        created_by TEXT, completed_by TEXT, created_at VARCHAR(32), completed_at VARCHAR(32)
    )""",
]
_INDEXES = {
    "todolist_list_created": "todolist_list (created_at, identifier)",
    "todolist_todo_list": "todolist_todo (list_identifier, position)",
}
# Binary collation on MySQL: identifiers that differ only in case are different lists, as on the other databases.
_MYSQL_TABLE_OPTIONS = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
_MAX_IDLE = 8


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a Z, as the HTTP API shows timestamps."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Session:
    """One connection of the read model, in a transaction when writing; SQL uses ``?`` placeholders.

    The drivers of PostgreSQL and MySQL (psycopg, PyMySQL) want ``%s`` and a doubled literal ``%``; the statement
    is rewritten for them, so queries must not hold a ``?`` or ``%`` of their own outside parameters.
    """

    def __init__(self, connection: Any, dialect: str) -> None:
        self.connection = connection
        self.dialect = dialect

    def _sql(self, sql: str) -> str:
        return sql if self.dialect == "sqlite" else sql.replace("%", "%%").replace("?", "%s")

    def execute(self, sql: str, *params: Any) -> int:
        """Run one statement; returns the number of rows it changed."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(self._sql(sql), params)
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        cursor = self.connection.cursor()
        try:
            cursor.execute(self._sql(sql), params)
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def columns(self, table: str) -> list[str]:
        """The column names of ``table``."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(f"SELECT * FROM {table} WHERE 1 = 0")
            cursor.fetchall()
            return [str(column[0]) for column in cursor.description]
        finally:
            cursor.close()

    def row(self, sql: str, *params: Any) -> tuple[Any, ...] | None:
        found = self.rows(sql, *params)
        return found[0] if found else None

    def insert_new(self, table: str, **values: Any) -> None:
        """Insert a row unless one with its key exists: a redelivered creation event changes nothing."""
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        if self.dialect == "mysql":
            # INSERT IGNORE would also turn errors such as a too-long value into warnings; this only skips the key.
            first = next(iter(values))
            tail = f" ON DUPLICATE KEY UPDATE {first} = {first}"
        else:
            tail = " ON CONFLICT DO NOTHING"
        self.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks}){tail}", *values.values())


def _locate(database: str, data_dir: Path | None) -> tuple[str, str]:
    """The dialect of a database spec and what its driver connects to (a file path, or the URL itself).

    The spec takes the forms of a consumer store's (:func:`~evento.consumer_stores.open_consumer_store`, which
    reads it here, so both always agree on where a database is), ``memory`` excepted; and SQLite's ``:memory:``.
    """
    if database == ":memory:":
        return "sqlite", database
    store = open_consumer_store(database, data_dir=data_dir)
    if isinstance(store, SQLiteConsumerStateStore):
        return "sqlite", str(store.path)
    if store.dialect in ("postgresql", "mysql"):
        return store.dialect, database.strip()
    raise ValueError(f"a read model needs a database: a SQLite file, postgresql:// or mysql://, not {database!r}")


def _connect(database: str, dialect: str) -> Any:
    """A new autocommit connection of the dialect's driver: transactions are spelled out where they are wanted."""
    if dialect == "sqlite":
        if database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        return sqlite_connect(database, synchronous="NORMAL")
    if dialect == "postgresql":
        import psycopg

        return psycopg.connect(database, autocommit=True)
    import pymysql  # type: ignore[import-untyped]

    from evento.consumer_stores.mysql import parse_mysql_url

    return pymysql.connect(**parse_mysql_url(database), charset="utf8mb4", autocommit=True)


def _alive(connection: Any, dialect: str) -> bool:
    if dialect == "postgresql":
        return not connection.closed and not connection.broken
    if dialect == "mysql":
        return bool(connection.open)
    return True


class TodoListReadModel:
    """The TodoList tables, reached through :meth:`write` (projector) and :meth:`read` (projection).

    ``database`` is written as a consumer store's: a SQLite file (relative ones under ``data_dir``), a
    ``postgresql://`` or a ``mysql://`` URL. Inside a projector handler whose consumer store is this same database,
    writes join the projection transaction (found by comparing the store's file or URL, so it cannot be
    forgotten: on SQLite a connection of its own would wait on that transaction's write lock). Connections of its
    own (for reads, and for writes outside a projection transaction) are pooled, opened on demand and closed by
    :meth:`close`. Thread-safe.
    """

    def __init__(self, database: str | Path, *, data_dir: Path | None = None) -> None:
        self.dialect, self.database = _locate(str(database), data_dir)
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._schema_ready = False
        self._shared: weakref.WeakKeyDictionary[ConsumerStateStore, bool] = weakref.WeakKeyDictionary()

    def shares(self, store: ConsumerStateStore) -> bool:
        """Whether ``store`` keeps its state in this read model's database."""
        shared = self._shared.get(store)
        if shared is None:
            if isinstance(store, SQLiteConsumerStateStore):
                shared = self.dialect == "sqlite" and Path(store.path).resolve() == Path(self.database).resolve()
            else:
                shared = store.dialect == self.dialect and getattr(store, "url", None) == self.database
            self._shared[store] = shared
        return shared

    def open(self) -> None:
        """Create the tables if they are missing. Call before the projector starts: on MySQL a ``CREATE`` would
        commit a projection transaction half-way, and on SQLite it would wait for that transaction's lock."""
        with self._lock:
            if self._schema_ready:
                return
        with self._connection() as session:
            _create_schema(session)
        with self._lock:
            self._schema_ready = True

    def close(self) -> None:
        """Close the idle connections (those in use close when returned)."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._schema_ready = False
        for connection in idle:
            connection.close()

    def write(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in one transaction: the projection transaction when it is in this database, else one of
        its own on a pooled connection."""
        transaction = projection_transaction()
        if transaction is not None and self.shares(transaction.store):
            if not self._schema_ready:
                raise RuntimeError("open() the TodoList read model before its projector runs")
            return work(Session(transaction.connection, self.dialect))
        self.open()
        with self._connection() as session:
            session.execute("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")
            try:
                result = work(session)
            except BaseException:
                with contextlib.suppress(Exception):  # a broken connection rolls back on its own
                    session.execute("ROLLBACK")
                raise
            session.execute("COMMIT")
            return result

    def read(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` on a pooled connection, each statement seeing what was committed when it started."""
        self.open()
        with self._connection() as session:
            return work(session)

    @contextmanager
    def _connection(self) -> Iterator[Session]:
        with self._lock:
            connection = self._idle.pop() if self._idle else None
        if connection is None:
            connection = _connect(self.database, self.dialect)
        keep = True
        try:
            yield Session(connection, self.dialect)
        except BaseException:
            keep = _alive(connection, self.dialect)
            raise
        finally:
            with self._lock:
                keep = keep and len(self._idle) < _MAX_IDLE
                if keep:
                    self._idle.append(connection)
            if not keep:
                connection.close()


def _create_schema(session: Session) -> None:
    options = _MYSQL_TABLE_OPTIONS if session.dialect == "mysql" else ""
    for table in _TABLES:
        session.execute(table + options)
    if "position" not in session.columns("todolist_todo"):
        # A read model from before todos were ordered by event: its rows keep their order by created_at.
        session.execute("ALTER TABLE todolist_todo ADD COLUMN position BIGINT NOT NULL DEFAULT 0")
    existing: Sequence[tuple[Any, ...]] = []
    if session.dialect == "mysql":
        # MySQL has no CREATE INDEX IF NOT EXISTS (MariaDB has): look the indexes up instead.
        existing = session.rows(
            "SELECT DISTINCT index_name FROM information_schema.statistics WHERE table_schema = DATABASE()"
        )
    known = {str(row[0]) for row in existing}
    guard = "" if session.dialect == "mysql" else "IF NOT EXISTS "
    for name, target in _INDEXES.items():
        if name not in known:
            session.execute(f"CREATE INDEX {guard}{name} ON {target}")
