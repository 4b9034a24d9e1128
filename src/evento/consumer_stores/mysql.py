"""The MySQL/MariaDB consumer state store (PyMySQL): for deployments whose databases are MySQL or MariaDB.

Needs the ``mysql`` extra (``pip install evento-framework[mysql]``). Upserts use ``ON DUPLICATE KEY UPDATE`` with
``VALUES(col)``, the spelling both MariaDB and MySQL accept (MySQL 8.0.20+ deprecates it without removing it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

# PyMySQL ships no type information: pyproject.toml's mypy overrides ignore its missing imports.
import pymysql
from pymysql.constants import CLIENT

from evento.consumer_stores.sql import SQLConsumerStateStore
from evento.errors import ConsumerStoreUnavailableError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["MySQLConsumerStateStore", "parse_mysql_url"]

# Client error codes: can't connect (2003), server gone away (2006), lost connection (2013), out of sync (2014),
# lost connection at handshake (2055); server: too many connections (1040), shutting down (1053), lock wait
# timeout (1205), connection killed (1927, MariaDB), idle disconnect (4031, MySQL 8).
_UNAVAILABLE_CODES = frozenset({2003, 2006, 2013, 2014, 2055, 1040, 1053, 1205, 1927, 4031})
_DEADLOCK = 1213
_DUPLICATE_KEY = 1062
# GET_LOCK names are per server and at most 64 characters, so the database's name is hashed into it.
_SCHEMA_LOCK_NAME = "CONCAT('evento_consumer_schema.', MD5(DATABASE()))"
_SCHEMA_LOCK_SECONDS = 60


def parse_mysql_url(url: str) -> dict[str, Any]:
    """PyMySQL ``connect`` arguments from ``mysql://user:password@host:port/database`` (or ``mariadb://``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb"):
        raise ValueError(f"a MySQL URL starts with mysql:// or mariadb://, got {url!r}")
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise ValueError(f"a MySQL URL names one database: mysql://user:pass@host:port/db, got {parts.path!r}")
    if parts.query or parts.fragment:
        raise ValueError("a MySQL URL takes no query or fragment: mysql://user:pass@host:port/db")
    try:
        port = parts.port or 3306
    except ValueError as exc:
        raise ValueError(f"bad port in MySQL URL: {exc}") from exc
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": port,
        "user": unquote(parts.username) if parts.username else "root",
        "password": unquote(parts.password) if parts.password else "",
        "database": database,
    }


class MySQLConsumerStateStore(SQLConsumerStateStore):
    """Consumer state in a MySQL or MariaDB database (InnoDB), created and migrated on start.

    ``url`` is ``mysql://user:pass@host:port/db`` (or ``mariadb://``). Sessions run at READ COMMITTED, so a
    statement sees the latest committed rows and InnoDB takes no gap locks; in UTC, so the lease clock has no
    daylight-saving jumps. Keys compare byte for byte (``utf8mb4_bin``): consumer ids and saga association
    values are case-sensitive, as on the other backends.
    """

    dialect = "mysql"
    BEGIN = "START TRANSACTION"
    NOW_MS = "CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)"
    TYPES = {
        # 255 characters of utf8mb4 keep the three-column lookup index under InnoDB's 3072-byte key limit.
        "key": "VARCHAR(255)",
        "int": "BIGINT",
        "text": "MEDIUMTEXT",
        "blob": "LONGBLOB",
        "table_options": " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        # In the table's own DDL: MySQL has no CREATE INDEX IF NOT EXISTS, and DDL is not transactional here.
        "inline_lookup_index": ", INDEX evento_saga_association_lookup (saga_name, name, value)",
        "lookup_index": "",
    }

    SEED_SQL = (
        # Assignments run left to right and see earlier ones, so last_sequence is tested before it is set.
        "INSERT INTO evento_consumer_state (consumer_id, last_sequence, version, updated_at) VALUES (?, ?, 0, ?)"
        " ON DUPLICATE KEY UPDATE version = IF(last_sequence IS NULL, 0, version),"
        " updated_at = IF(last_sequence IS NULL, VALUES(updated_at), updated_at),"
        " last_sequence = COALESCE(last_sequence, VALUES(last_sequence))"
    )
    LOCK_SQL = (
        # owner changes first; expires_at then moves only if the row is (now) ours: a renewal or a takeover.
        "INSERT INTO evento_consumer_lock (consumer_id, owner, expires_at) VALUES (?, ?, {now_ms} + ?)"
        " ON DUPLICATE KEY UPDATE owner = IF(owner = VALUES(owner) OR expires_at <= {now_ms}, VALUES(owner), owner),"
        " expires_at = IF(owner = VALUES(owner), VALUES(expires_at), expires_at)"
    )
    SET_ENABLED_SQL = (
        "INSERT INTO evento_consumer_state (consumer_id, enabled, updated_at) VALUES (?, ?, ?)"
        " ON DUPLICATE KEY UPDATE enabled = VALUES(enabled), updated_at = VALUES(updated_at)"
    )
    RECORD_ERROR_SQL = (
        "INSERT INTO evento_consumer_state (consumer_id, error_count, error_message, first_error_at,"
        " last_error_at, updated_at) VALUES (?, 1, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE"
        " error_count = error_count + 1, error_message = VALUES(error_message),"
        " first_error_at = COALESCE(first_error_at, VALUES(first_error_at)),"
        " last_error_at = VALUES(last_error_at), updated_at = VALUES(updated_at)"
    )
    ADD_DEAD_SQL = (
        "INSERT INTO evento_dead_event (consumer_id, sequence_number, event, error, retry, dead_at)"
        " VALUES (?, ?, ?, ?, 0, ?) ON DUPLICATE KEY UPDATE"
        " event = VALUES(event), error = VALUES(error), retry = 0, dead_at = VALUES(dead_at)"
    )
    SAVE_SAGA_SQL = (
        "INSERT INTO evento_saga_state (saga_id, saga_name, state, updated_at) VALUES (?, ?, ?, ?)"
        " ON DUPLICATE KEY UPDATE saga_name = VALUES(saga_name), state = VALUES(state),"
        " updated_at = VALUES(updated_at)"
    )
    SET_CHECKPOINT_SQL = (
        "INSERT INTO evento_consumer_state (consumer_id, last_sequence, version, updated_at) VALUES (?, ?, 1, ?)"
        " ON DUPLICATE KEY UPDATE last_sequence = VALUES(last_sequence), version = version + 1, error_count = 0,"
        " error_message = NULL, first_error_at = NULL, last_error_at = NULL, updated_at = VALUES(updated_at)"
    )

    def __init__(self, url: str, *, connections: int = 4, connect_timeout: float = 10.0) -> None:
        super().__init__(connections=connections)
        self._params = parse_mysql_url(url)
        self.url = url
        self._connect_timeout = connect_timeout

    def _connect(self) -> Any:
        conn = pymysql.connect(
            **self._params,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=self._connect_timeout,
            # UPDATE reports the rows it matched, not only those it changed (set_dead_event_retry to the same
            # value still finds its entry).
            client_flag=CLIENT.FOUND_ROWS,
            init_command="SET time_zone = '+00:00'",
        )
        with conn.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        return conn

    def _driver_error(self, exc: BaseException) -> bool:
        return isinstance(exc, pymysql.MySQLError)

    def _unavailable(self, exc: BaseException) -> bool:
        if isinstance(exc, pymysql.InterfaceError):
            return True  # the connection is closed on our side
        return isinstance(exc, pymysql.OperationalError) and bool(exc.args) and exc.args[0] in _UNAVAILABLE_CODES

    def _deadlocked(self, exc: BaseException) -> bool:
        return isinstance(exc, pymysql.OperationalError) and bool(exc.args) and exc.args[0] == _DEADLOCK

    def _is_usable(self, conn: Any) -> bool:
        return bool(conn.open)

    def _migrate(self, conn: Any) -> None:
        # MySQL commits DDL implicitly, so a transaction cannot serialise two processes migrating at once; a
        # named server lock does.
        row = self._one(conn, f"SELECT GET_LOCK({_SCHEMA_LOCK_NAME}, ?)", (_SCHEMA_LOCK_SECONDS,))
        if not row or row[0] != 1:
            raise ConsumerStoreUnavailableError(
                f"another process held the consumer state schema lock for {_SCHEMA_LOCK_SECONDS} s"
            )
        try:
            self._apply_migrations(conn)
        finally:
            self._execute(conn, f"SELECT RELEASE_LOCK({_SCHEMA_LOCK_NAME})")

    def _insert_absent(self, conn: Any, text: str, params: Sequence[Any]) -> bool:
        # ON DUPLICATE KEY UPDATE cannot tell "inserted" from "already there" once FOUND_ROWS is on, and
        # INSERT IGNORE would also swallow bad data; a duplicate-key error is the precise answer.
        try:
            self._execute(conn, text, params)
        except pymysql.IntegrityError as exc:
            if exc.args and exc.args[0] == _DUPLICATE_KEY:
                return False
            raise
        return True

    def _take_lease(self, conn: Any, consumer_id: str, owner: str, lease_ms: int) -> bool:
        # The affected-row count cannot tell a renewal that changed nothing from a refusal, so read the owner
        # back in the same transaction, while the upsert's row lock keeps it from changing.
        def take(conn: Any) -> bool:
            self._execute(conn, self.LOCK_SQL, (consumer_id, owner, lease_ms))
            row = self._one(conn, "SELECT owner FROM evento_consumer_lock WHERE consumer_id = ?", (consumer_id,))
            return row is not None and row[0] == owner

        return self._transaction(conn, take)
