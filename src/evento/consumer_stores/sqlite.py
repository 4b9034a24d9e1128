"""The SQLite consumer state store: the embedded default next to the SQLite event store.

One connection, owned by one worker thread, runs every statement; the event loop never blocks on the file.
Writes that touch several rows run in ``BEGIN IMMEDIATE`` transactions, so they take the file's write lock up
front and another process sharing the file cannot interleave with them. ``synchronous=FULL`` makes a committed
checkpoint durable when ``commit_checkpoint`` returns.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from evento.consumer_stores.base import (
    Checkpoint,
    ConsumerStateStore,
    DeadEvent,
    ErrorState,
    SagaInstance,
    decode_event,
    encode_event,
)
from evento.errors import ConcurrentCheckpointError
from evento.messages import StoredEvent, now_ms
from evento.server.sqlite_store import connect

__all__ = ["SQLiteConsumerStateStore"]

T = TypeVar("T")

# A consumer_state row may exist without a checkpoint (last_sequence NULL): set_enabled and record_error
# create rows for consumers that never committed, and reset clears the checkpoint but keeps the enabled flag.
_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS evento_consumer_state (
        consumer_id TEXT PRIMARY KEY,
        last_sequence INTEGER,
        version INTEGER NOT NULL DEFAULT 0,
        enabled INTEGER NOT NULL DEFAULT 1,
        error_count INTEGER NOT NULL DEFAULT 0,
        error_message TEXT,
        first_error_at INTEGER,
        last_error_at INTEGER,
        updated_at INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS evento_consumer_lock (
        consumer_id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS evento_saga_state (
        saga_id TEXT PRIMARY KEY,
        saga_name TEXT NOT NULL,
        state BLOB NOT NULL,
        updated_at INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS evento_saga_association (
        saga_id TEXT NOT NULL,
        saga_name TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (saga_id, name)
    )""",
    """CREATE INDEX IF NOT EXISTS evento_saga_association_lookup
        ON evento_saga_association (saga_name, name, value)""",
    """CREATE TABLE IF NOT EXISTS evento_dead_event (
        consumer_id TEXT NOT NULL,
        sequence_number INTEGER NOT NULL,
        event BLOB NOT NULL,
        error TEXT NOT NULL,
        retry INTEGER NOT NULL DEFAULT 0,
        dead_at INTEGER NOT NULL,
        PRIMARY KEY (consumer_id, sequence_number)
    )""",
    """CREATE TABLE IF NOT EXISTS evento_dedupe (
        consumer_id TEXT NOT NULL,
        sequence_number INTEGER NOT NULL,
        claimed_at INTEGER NOT NULL,
        PRIMARY KEY (consumer_id, sequence_number)
    )""",
]


def _transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    # The connection is in autocommit mode (isolation_level=None), so transactions are spelled out here.
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return result


def _migrate(conn: sqlite3.Connection) -> None:
    def apply(conn: sqlite3.Connection) -> None:
        for statement in _SCHEMA:
            conn.execute(statement)

    _transaction(conn, apply)


def _checkpoint_row(conn: sqlite3.Connection, consumer_id: str) -> Checkpoint | None:
    row = conn.execute(
        "SELECT last_sequence, version FROM evento_consumer_state WHERE consumer_id = ? AND last_sequence IS NOT NULL",
        (consumer_id,),
    ).fetchone()
    return None if row is None else Checkpoint(row[0], row[1])


def _advance(conn: sqlite3.Connection, consumer_id: str, sequence_number: int, expected_version: int) -> Checkpoint:
    now = now_ms()
    cursor = conn.execute(
        "UPDATE evento_consumer_state SET last_sequence = ?, version = version + 1, error_count = 0,"
        " error_message = NULL, first_error_at = NULL, last_error_at = NULL, updated_at = ?"
        " WHERE consumer_id = ? AND version = ?",
        (sequence_number, now, consumer_id, expected_version),
    )
    if cursor.rowcount == 0 and expected_version == 0:
        # A consumer that never ran is at version 0, so its first commit needs no seed.
        cursor = conn.execute(
            "INSERT INTO evento_consumer_state (consumer_id, last_sequence, version, updated_at)"
            " VALUES (?, ?, 1, ?) ON CONFLICT (consumer_id) DO NOTHING",
            (consumer_id, sequence_number, now),
        )
    if cursor.rowcount == 0:
        row = conn.execute("SELECT version FROM evento_consumer_state WHERE consumer_id = ?", (consumer_id,)).fetchone()
        version = row[0] if row else 0
        raise ConcurrentCheckpointError(
            f"checkpoint of {consumer_id} is at version {version}, expected {expected_version}"
        )
    return Checkpoint(sequence_number, expected_version + 1)


def _row_to_dead(row: tuple[Any, ...]) -> DeadEvent:
    return DeadEvent(consumer_id=row[0], event=decode_event(row[1]), error=row[2], retry=bool(row[3]), dead_at=row[4])


class SQLiteConsumerStateStore(ConsumerStateStore):
    """Consumer state in one SQLite file, usually next to the event store's.

    Progress, saga state and dead events must outlive the process, and a file needs no server to run; the
    optimistic checkpoint version and the lease lock keep two processes sharing the file from both advancing
    one consumer.
    """

    dialect = "sqlite"
    supports_transactions = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._pool: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        # Locks taken through this instance, released on stop() as the contract asks.
        self._held: set[tuple[str, str]] = set()

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn, pool = self._conn, self._pool
        assert conn is not None and pool is not None, "the consumer state store is not started"
        return await asyncio.get_running_loop().run_in_executor(pool, fn, conn)

    async def start(self) -> None:
        if self._conn is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One thread owns the connection: sqlite3 connections are not safe to share between threads at once,
        # and a single writer serialises this process's transactions without lock contention.
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="evento-consumer-state")
        loop = asyncio.get_running_loop()
        self._conn = await loop.run_in_executor(self._pool, lambda: connect(self.path, synchronous="FULL"))
        await self._run(_migrate)

    async def stop(self) -> None:
        if self._conn is None or self._pool is None:
            return  # never started, or already stopped: stop() is idempotent
        for consumer_id, owner in list(self._held):
            await self.unlock(consumer_id, owner)
        await self._run(lambda conn: conn.close())
        self._conn = None
        self._pool.shutdown(wait=True)
        self._pool = None

    # --- checkpoints ----------------------------------------------------------------------------------------

    async def read_checkpoint(self, consumer_id: str) -> Checkpoint | None:
        return await self._run(lambda conn: _checkpoint_row(conn, consumer_id))

    async def seed_checkpoint(self, consumer_id: str, sequence_number: int) -> Checkpoint:
        def seed(conn: sqlite3.Connection) -> Checkpoint:
            # Insert-if-absent for the checkpoint, but the row may already exist without one (enabled flag,
            # errors), so "absent" is last_sequence IS NULL rather than a missing row.
            conn.execute(
                "INSERT INTO evento_consumer_state (consumer_id, last_sequence, version, updated_at)"
                " VALUES (?, ?, 0, ?) ON CONFLICT (consumer_id) DO UPDATE"
                " SET last_sequence = excluded.last_sequence, version = 0, updated_at = excluded.updated_at"
                " WHERE evento_consumer_state.last_sequence IS NULL",
                (consumer_id, sequence_number, now_ms()),
            )
            checkpoint = _checkpoint_row(conn, consumer_id)
            assert checkpoint is not None
            return checkpoint

        return await self._run(lambda conn: _transaction(conn, seed))

    async def commit_checkpoint(self, consumer_id: str, sequence_number: int, expected_version: int) -> Checkpoint:
        return await self._run(
            lambda conn: _transaction(conn, lambda conn: _advance(conn, consumer_id, sequence_number, expected_version))
        )

    async def commit_with(
        self, consumer_id: str, sequence_number: int, expected_version: int, work: Callable[[Any], T]
    ) -> tuple[T, Checkpoint]:
        def commit(conn: sqlite3.Connection) -> tuple[T, Checkpoint]:
            # The checkpoint first: a stale version fails before work runs, so nothing of it is written.
            checkpoint = _advance(conn, consumer_id, sequence_number, expected_version)
            return work(conn), checkpoint

        return await self._run(lambda conn: _transaction(conn, commit))

    async def reset(self, consumer_id: str) -> None:
        # Clear rather than delete the row: the enabled flag is the operator's, a replay does not re-enable.
        await self._run(
            lambda conn: conn.execute(
                "UPDATE evento_consumer_state SET last_sequence = NULL, version = 0, error_count = 0,"
                " error_message = NULL, first_error_at = NULL, last_error_at = NULL, updated_at = ?"
                " WHERE consumer_id = ?",
                (now_ms(), consumer_id),
            )
        )

    # --- consumer lock --------------------------------------------------------------------------------------

    async def try_lock(self, consumer_id: str, owner: str, lease_seconds: float) -> bool:
        def lock(conn: sqlite3.Connection) -> bool:
            # Wall-clock expiry, because the lease is shared with other processes, each with its own
            # monotonic clock. One upsert: it inserts, takes over an expired lease or renews our own, else it
            # changes nothing (rowcount 0).
            now = now_ms()
            cursor = conn.execute(
                "INSERT INTO evento_consumer_lock (consumer_id, owner, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (consumer_id) DO UPDATE"
                " SET owner = excluded.owner, expires_at = excluded.expires_at"
                " WHERE evento_consumer_lock.owner = excluded.owner"
                " OR evento_consumer_lock.expires_at <= ?",
                (consumer_id, owner, now + round(lease_seconds * 1000), now),
            )
            return cursor.rowcount > 0

        acquired = await self._run(lock)
        if acquired:
            self._held.add((consumer_id, owner))
        return acquired

    async def unlock(self, consumer_id: str, owner: str) -> None:
        self._held.discard((consumer_id, owner))
        await self._run(
            lambda conn: conn.execute(
                "DELETE FROM evento_consumer_lock WHERE consumer_id = ? AND owner = ?", (consumer_id, owner)
            )
        )

    # --- enabled flag and error state -----------------------------------------------------------------------

    async def is_enabled(self, consumer_id: str) -> bool:
        def query(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT enabled FROM evento_consumer_state WHERE consumer_id = ?", (consumer_id,)
            ).fetchone()
            return row is None or bool(row[0])

        return await self._run(query)

    async def set_enabled(self, consumer_id: str, enabled: bool) -> None:
        await self._run(
            lambda conn: conn.execute(
                "INSERT INTO evento_consumer_state (consumer_id, enabled, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (consumer_id) DO UPDATE"
                " SET enabled = excluded.enabled, updated_at = excluded.updated_at",
                (consumer_id, int(enabled), now_ms()),
            )
        )

    async def record_error(self, consumer_id: str, message: str) -> None:
        now = now_ms()
        # first_error_at is NULL whenever the consumer is not in error (commit clears it), so COALESCE keeps
        # the start of the current error streak.
        await self._run(
            lambda conn: conn.execute(
                "INSERT INTO evento_consumer_state (consumer_id, error_count, error_message, first_error_at,"
                " last_error_at, updated_at) VALUES (?, 1, ?, ?, ?, ?) ON CONFLICT (consumer_id) DO UPDATE"
                " SET error_count = evento_consumer_state.error_count + 1,"
                " error_message = excluded.error_message,"
                " first_error_at = COALESCE(evento_consumer_state.first_error_at, excluded.first_error_at),"
                " last_error_at = excluded.last_error_at, updated_at = excluded.updated_at",
                (consumer_id, message, now, now, now),
            )
        )

    async def error_state(self, consumer_id: str) -> ErrorState:
        def query(conn: sqlite3.Connection) -> ErrorState:
            row = conn.execute(
                "SELECT error_count, error_message, first_error_at, last_error_at FROM evento_consumer_state"
                " WHERE consumer_id = ?",
                (consumer_id,),
            ).fetchone()
            if row is None:
                return ErrorState(False, 0, None, None, None)
            return ErrorState(row[0] > 0, row[0], row[1], row[2], row[3])

        return await self._run(query)

    # --- dead event queue -----------------------------------------------------------------------------------

    async def add_dead_event(self, consumer_id: str, event: StoredEvent, error: str) -> None:
        data = encode_event(event)
        # A second failure of the same event replaces the entry: latest error, not flagged for retry.
        await self._run(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO evento_dead_event"
                " (consumer_id, sequence_number, event, error, retry, dead_at) VALUES (?, ?, ?, ?, 0, ?)",
                (consumer_id, event.sequence_number, data, error, now_ms()),
            )
        )

    async def dead_events(self, consumer_id: str, *, retriable_only: bool = False) -> list[DeadEvent]:
        sql = "SELECT consumer_id, event, error, retry, dead_at FROM evento_dead_event WHERE consumer_id = ?"
        if retriable_only:
            sql += " AND retry = 1"
        sql += " ORDER BY sequence_number"

        def query(conn: sqlite3.Connection) -> list[DeadEvent]:
            return [_row_to_dead(row) for row in conn.execute(sql, (consumer_id,))]

        return await self._run(query)

    async def set_dead_event_retry(self, consumer_id: str, sequence_number: int, retry: bool) -> bool:
        cursor = await self._run(
            lambda conn: conn.execute(
                "UPDATE evento_dead_event SET retry = ? WHERE consumer_id = ? AND sequence_number = ?",
                (int(retry), consumer_id, sequence_number),
            )
        )
        return cursor.rowcount > 0

    async def remove_dead_event(self, consumer_id: str, sequence_number: int) -> bool:
        cursor = await self._run(
            lambda conn: conn.execute(
                "DELETE FROM evento_dead_event WHERE consumer_id = ? AND sequence_number = ?",
                (consumer_id, sequence_number),
            )
        )
        return cursor.rowcount > 0

    # --- sagas ----------------------------------------------------------------------------------------------

    async def find_saga(self, saga_name: str, association: str, value: str) -> SagaInstance | None:
        def query(conn: sqlite3.Connection) -> SagaInstance | None:
            row = conn.execute(
                "SELECT s.saga_id, s.saga_name, s.state FROM evento_saga_association a"
                " JOIN evento_saga_state s ON s.saga_id = a.saga_id"
                " WHERE a.saga_name = ? AND a.name = ? AND a.value = ? LIMIT 1",
                (saga_name, association, value),
            ).fetchone()
            return None if row is None else SagaInstance(id=row[0], saga_name=row[1], state=row[2])

        return await self._run(query)

    async def save_saga(self, instance: SagaInstance, associations: dict[str, str]) -> None:
        def save(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO evento_saga_state (saga_id, saga_name, state, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (saga_id) DO UPDATE SET saga_name = excluded.saga_name, state = excluded.state,"
                " updated_at = excluded.updated_at",
                (instance.id, instance.saga_name, instance.state, now_ms()),
            )
            # Replace, not merge: an association the saga dropped must stop finding it.
            conn.execute("DELETE FROM evento_saga_association WHERE saga_id = ?", (instance.id,))
            conn.executemany(
                "INSERT INTO evento_saga_association (saga_id, saga_name, name, value) VALUES (?, ?, ?, ?)",
                [(instance.id, instance.saga_name, name, value) for name, value in associations.items()],
            )

        await self._run(lambda conn: _transaction(conn, save))

    async def delete_saga(self, instance_id: str) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM evento_saga_association WHERE saga_id = ?", (instance_id,))
            conn.execute("DELETE FROM evento_saga_state WHERE saga_id = ?", (instance_id,))

        await self._run(lambda conn: _transaction(conn, delete))

    # --- observer dedupe ------------------------------------------------------------------------------------

    async def try_claim(self, consumer_id: str, sequence_number: int) -> bool:
        cursor = await self._run(
            lambda conn: conn.execute(
                "INSERT INTO evento_dedupe (consumer_id, sequence_number, claimed_at) VALUES (?, ?, ?)"
                " ON CONFLICT (consumer_id, sequence_number) DO NOTHING",
                (consumer_id, sequence_number, now_ms()),
            )
        )
        return cursor.rowcount > 0

    async def release_claim(self, consumer_id: str, sequence_number: int) -> None:
        await self._run(
            lambda conn: conn.execute(
                "DELETE FROM evento_dedupe WHERE consumer_id = ? AND sequence_number = ?",
                (consumer_id, sequence_number),
            )
        )
