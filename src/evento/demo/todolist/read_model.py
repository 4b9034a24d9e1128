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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from evento.bundle.calls import projection_transaction
from evento.consumer_stores import ConsumerStateStore, SQLiteConsumerStateStore
from evento.storage.sqlite import connect as sqlite_connect
from evento.storage.urls import format_placeholders, parse_store_url

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
# The todo index serves the projection's ``WHERE list_identifier = ? ORDER BY position, created_at`` whole.
_INDEXES = {
    "todolist_list_created": "todolist_list (created_at, identifier)",
    "todolist_todo_order": "todolist_todo (list_identifier, position, created_at)",
}
# Indexes of earlier versions that todolist_todo_order replaces (on (list_identifier, created_at) before todos had
# a position): dropped, so writes do not keep up an index no query uses.
_RETIRED_INDEXES = {"todolist_todo_list": "todolist_todo"}
# Binary collation on MySQL: identifiers that differ only in case are different lists, as on the other databases.
_MYSQL_TABLE_OPTIONS = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
_MAX_IDLE = 8
# Replicas starting together on a fresh database create the schema one after the other under these locks:
# PostgreSQL's advisory locks are per database; MySQL's named locks are per server, so the database is in the name.
_PG_SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(hashtext('evento_todolist_schema'))"
_MYSQL_SCHEMA_LOCK_NAME = "CONCAT('evento_todolist_schema.', MD5(DATABASE()))"
_MYSQL_SCHEMA_LOCK_SECONDS = 60
_MEMORY = ":memory:"
# A case-insensitive substring test taking its text literally: LIKE would read % _ and the escape character as
# wildcards, and SQLite's LIKE ends its pattern at a NUL (a NUL made every name match).
_CONTAINS = {
    "sqlite": "instr(LOWER({column}), LOWER(?)) > 0",
    "postgresql": "strpos(LOWER({column}), LOWER(?)) > 0",
    "mysql": "INSTR(LOWER({column}), LOWER(?)) > 0",
}


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
        #: False once the connection's state is unknown (a failed COMMIT): the pool closes it instead of reusing it.
        self.reusable = True

    def _sql(self, sql: str) -> str:
        return sql if self.dialect == "sqlite" else format_placeholders(sql)

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

    def contains(self, column: str) -> str:
        """A condition true where ``column`` contains the next parameter, ignoring case; every character of the
        parameter (``%``, ``_``, ``\\``, NUL) stands for itself."""
        return _CONTAINS[self.dialect].format(column=column)

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

    The spec follows the store URL rules (:mod:`evento.storage.urls`), as a consumer store's does, so both
    always agree on where a database is; ``memory`` excepted, and SQLite's ``:memory:`` added.
    """
    if database == _MEMORY:
        return "sqlite", database
    location = parse_store_url(database, data_dir=data_dir, what="a read model database")
    if location.path is not None:
        return "sqlite", str(location.path)
    if location.backend == "postgres":
        return "postgresql", location.url
    if location.backend == "mysql":
        return "mysql", location.url
    raise ValueError(f"a read model needs a database: a SQLite file, postgresql:// or mysql://, not {database!r}")


def _connect(database: str, dialect: str) -> Any:
    """A new autocommit connection of the dialect's driver: transactions are spelled out where they are wanted."""
    if dialect == "sqlite":
        if database != _MEMORY:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        return sqlite_connect(database, synchronous="NORMAL")
    if dialect == "postgresql":
        import psycopg

        return psycopg.connect(database, autocommit=True)
    import pymysql

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
    ``postgresql://`` or a ``mysql://`` URL; or ``:memory:``, a SQLite database of this object alone (kept in one
    connection, used by one call at a time, gone on :meth:`close`). Inside a projector handler whose consumer store
    is this same database, writes join the projection transaction (found by comparing the store's file or URL, so
    it cannot be forgotten: on SQLite a connection of its own would wait on that transaction's write lock).
    Connections of its own (for reads, and for writes outside a projection transaction) are pooled, opened on
    demand and closed by :meth:`close`. Thread-safe.
    """

    def __init__(self, database: str | Path, *, data_dir: Path | None = None) -> None:
        self.dialect, self.database = _locate(str(database), data_dir)
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._schema_ready = False
        self._shared: weakref.WeakKeyDictionary[ConsumerStateStore, bool] = weakref.WeakKeyDictionary()
        # Each connection to ":memory:" is a database of its own: that one holds the data, and calls take turns
        # on it (re-entrant, so work that reads while it writes sees its own rows instead of waiting on itself).
        self._memory: Any = None
        self._memory_turn = threading.RLock() if self.database == _MEMORY else None

    def shares(self, store: ConsumerStateStore) -> bool:
        """Whether ``store`` keeps its state in this read model's database."""
        shared = self._shared.get(store)
        if shared is None:
            if self._memory_turn is not None:
                shared = False  # no store can reach this object's private database
            elif isinstance(store, SQLiteConsumerStateStore):
                shared = self.dialect == "sqlite" and Path(store.path).resolve() == Path(self.database).resolve()
            else:
                shared = store.dialect == self.dialect and getattr(store, "url", None) == self.database
            self._shared[store] = shared
        return shared

    def open(self) -> None:
        """Create the tables if they are missing. Call before the projector starts: on MySQL a ``CREATE`` would
        commit a projection transaction half-way, and on SQLite it would wait for that transaction's lock.

        Safe when several processes open the same fresh (or older) database at once: see :func:`_create_schema`.
        """
        with self._lock:
            if self._schema_ready:
                return
        with self._connection() as session:
            _create_schema(session)
        with self._lock:
            self._schema_ready = True

    def close(self) -> None:
        """Close the idle connections (those in use close when returned); a ``:memory:`` database is dropped."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._schema_ready = False
        if self._memory_turn is not None:
            with self._memory_turn:
                memory, self._memory = self._memory, None
            idle += [memory] if memory is not None else []
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
        with self._connection() as session, _transaction(session):
            return work(session)

    def read(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` on a pooled connection, each statement seeing what was committed when it started."""
        self.open()
        with self._connection() as session:
            return work(session)

    @contextmanager
    def _connection(self) -> Iterator[Session]:
        if self._memory_turn is not None:
            with self._memory_turn:
                if self._memory is None:
                    self._memory = _connect(_MEMORY, "sqlite")
                # Never closed before close(): it is the database. SQLite rolls back what a failed COMMIT left.
                yield Session(self._memory, self.dialect)
            return
        with self._lock:
            connection = self._idle.pop() if self._idle else None
        if connection is None:
            connection = _connect(self.database, self.dialect)
        session = Session(connection, self.dialect)
        keep = True
        try:
            yield session
        except BaseException:
            keep = _alive(connection, self.dialect)
            raise
        finally:
            with self._lock:
                keep = keep and session.reusable and len(self._idle) < _MAX_IDLE
                if keep:
                    self._idle.append(connection)
            if not keep:
                connection.close()


@contextmanager
def _transaction(session: Session) -> Iterator[None]:
    """One transaction on ``session``'s connection (which is in autocommit mode): committed if the block returns,
    rolled back if it raises. A connection whose COMMIT failed is rolled back and never reused: its state (still
    in the transaction on SQLite, for one) is not worth guessing."""
    session.execute("BEGIN IMMEDIATE" if session.dialect == "sqlite" else "BEGIN")
    try:
        yield
    except BaseException:
        _roll_back(session)
        raise
    try:
        session.execute("COMMIT")
    except BaseException:
        session.reusable = False
        _roll_back(session)
        raise


def _roll_back(session: Session) -> None:
    with contextlib.suppress(Exception):  # a broken connection rolls back on its own
        session.execute("ROLLBACK")


def _create_schema(session: Session) -> None:
    """Create or upgrade the tables and indexes, serialised between processes doing the same on one database.

    Without the lock, replicas starting together on a fresh database race: PostgreSQL's ``CREATE TABLE IF NOT
    EXISTS`` fails on the type it creates, MySQL's index look-up and ``CREATE INDEX`` (error 1061), and any
    ``ALTER TABLE ... ADD COLUMN`` of an upgrade. PostgreSQL and SQLite run the DDL in a transaction (under an
    advisory lock, and the write lock of ``BEGIN IMMEDIATE``); MySQL commits DDL on its own, so a named lock
    held around it serialises instead.
    """
    if session.dialect != "mysql":
        with _transaction(session):
            if session.dialect == "postgresql":
                session.execute(_PG_SCHEMA_LOCK)
            _apply_schema(session)
        return
    row = session.row(f"SELECT GET_LOCK({_MYSQL_SCHEMA_LOCK_NAME}, ?)", _MYSQL_SCHEMA_LOCK_SECONDS)
    if not row or row[0] != 1:
        raise TimeoutError(
            f"another process held the TodoList read model's schema lock for {_MYSQL_SCHEMA_LOCK_SECONDS} s"
        )
    try:
        _apply_schema(session)
    finally:
        session.execute(f"SELECT RELEASE_LOCK({_MYSQL_SCHEMA_LOCK_NAME})")


def _apply_schema(session: Session) -> None:
    options = _MYSQL_TABLE_OPTIONS if session.dialect == "mysql" else ""
    for table in _TABLES:
        session.execute(table + options)
    if "position" not in session.columns("todolist_todo"):
        # A read model from before todos were ordered by event: its rows keep their order by created_at.
        session.execute("ALTER TABLE todolist_todo ADD COLUMN position BIGINT NOT NULL DEFAULT 0")
    if session.dialect == "mysql":
        # MySQL has no CREATE INDEX IF NOT EXISTS nor DROP INDEX IF EXISTS (MariaDB has): look indexes up.
        known = {
            str(row[0])
            for row in session.rows(
                "SELECT DISTINCT index_name FROM information_schema.statistics WHERE table_schema = DATABASE()"
            )
        }
        for name, table in _RETIRED_INDEXES.items():
            if name in known:
                session.execute(f"DROP INDEX {name} ON {table}")
        for name, target in _INDEXES.items():
            if name not in known:
                session.execute(f"CREATE INDEX {name} ON {target}")
        return
    for name in _RETIRED_INDEXES:
        session.execute(f"DROP INDEX IF EXISTS {name}")
    for name, target in _INDEXES.items():
        session.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")
