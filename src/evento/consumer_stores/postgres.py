"""The PostgreSQL consumer state store (psycopg 3): consumer state shared by every process of a deployment.

Needs the ``postgres`` extra (``pip install evento-framework[postgres]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from evento.consumer_stores.sql import SQLConsumerStateStore
from evento.storage.postgres import is_unavailable

if TYPE_CHECKING:
    from evento.consumer_stores.base import Checkpoint

__all__ = ["PostgresConsumerStateStore"]

# 40001 serialization failure, 40P01 deadlock detected: the transaction was aborted and may run again.
_RETRY_STATES = ("40001", "40P01")


class PostgresConsumerStateStore(SQLConsumerStateStore):
    """Consumer state in a PostgreSQL database, created and migrated on start.

    ``url`` is a libpq URL or conninfo string (``postgresql://user:pass@host:5432/db``). ``connections`` worker
    threads each own one connection, so that many calls run at once; concurrent calls are decided by the
    database's row locks, so several processes may share the database safely.
    """

    dialect = "postgresql"
    NOW_MS = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT"
    TYPES = {"key": "TEXT", "int": "BIGINT", "text": "TEXT", "blob": "BYTEA", "table_options": ""}
    # Transactional DDL plus this lock: two processes starting at once migrate one after the other.
    SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(hashtext('evento_consumer_schema'))"

    def __init__(self, url: str, *, connections: int = 4, connect_timeout: float = 10.0) -> None:
        super().__init__(connections=connections)
        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise ValueError(f"not a PostgreSQL URL or conninfo string: {exc}") from exc
        # libpq would only find a bad port when connecting; a configuration error should show at once.
        if not all(port.strip().isdigit() for port in str(params.get("port", "5432")).split(",")):
            raise ValueError(f"bad port in PostgreSQL URL: {params['port']!r}")
        self.url = url
        self._connect_timeout = connect_timeout

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, round(self._connect_timeout)))

    def _driver_error(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.Error)

    def _unavailable(self, exc: BaseException) -> bool:
        return is_unavailable(exc)

    def _deadlocked(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.Error) and exc.sqlstate in _RETRY_STATES

    def _transaction_intact(self, conn: Any, consumer_id: str, checkpoint: Checkpoint) -> bool:
        # Any error aborts the whole transaction (INERROR) and a ROLLBACK ends it (IDLE); libpq tracks this from
        # every reply, so no round trip is needed.
        return bool(conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS)

    def _is_usable(self, conn: Any) -> bool:
        return not (conn.closed or conn.broken)
