"""What the SQL consumer state stores share: worker threads owning connections, the schema, the statements.

SQLite, PostgreSQL and MySQL/MariaDB differ in a few places only, and each backend module says just those: how to
connect, column types, the database clock, which driver errors mean "unavailable" or "deadlock, run it again",
and (MySQL) the upsert spelling. Everything else, statements included, is written once here.

Statements are written with ``?`` placeholders and a ``{now_ms}`` token for the database's clock; a backend with
``%s`` placeholders gets them translated once per statement text.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from abc import abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from evento.consumer_stores.base import (
    Checkpoint,
    ConsumerStateStore,
    DeadEvent,
    ErrorState,
    ProjectionTransactionAbortedError,
    SagaInstance,
    decode_event,
    encode_event,
)
from evento.errors import ConcurrentCheckpointError, ConsumerStoreError, ConsumerStoreUnavailableError
from evento.messages import StoredEvent, now_ms
from evento.storage.urls import format_placeholders

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["SQLConsumerStateStore"]

T = TypeVar("T")

# How many times a transaction the database aborted to break a deadlock is run again before giving up.
_DEADLOCK_ATTEMPTS = 5

# Version 1 of the schema, with the column types as tokens each backend fills in (see SQLConsumerStateStore.TYPES).
# A consumer_state row may exist without a checkpoint (last_sequence NULL): set_enabled and record_error
# create rows for consumers that never committed, and reset clears the checkpoint but keeps the enabled flag.
# Saga associations are rows, not a JSON column, so find_saga is an indexed lookup on every backend.
_SCHEMA_V1 = [
    """CREATE TABLE IF NOT EXISTS evento_consumer_state (
        consumer_id {key} PRIMARY KEY,
        last_sequence {int},
        version {int} NOT NULL DEFAULT 0,
        enabled INTEGER NOT NULL DEFAULT 1,
        error_count {int} NOT NULL DEFAULT 0,
        error_message {text},
        first_error_at {int},
        last_error_at {int},
        updated_at {int} NOT NULL
    ){table_options}""",
    """CREATE TABLE IF NOT EXISTS evento_consumer_lock (
        consumer_id {key} PRIMARY KEY,
        owner {key} NOT NULL,
        expires_at {int} NOT NULL
    ){table_options}""",
    """CREATE TABLE IF NOT EXISTS evento_saga_state (
        saga_id {key} PRIMARY KEY,
        saga_name {key} NOT NULL,
        state {blob} NOT NULL,
        updated_at {int} NOT NULL
    ){table_options}""",
    """CREATE TABLE IF NOT EXISTS evento_saga_association (
        saga_id {key} NOT NULL,
        saga_name {key} NOT NULL,
        name {key} NOT NULL,
        value {key} NOT NULL,
        PRIMARY KEY (saga_id, name){inline_lookup_index}
    ){table_options}""",
    "{lookup_index}",
    """CREATE TABLE IF NOT EXISTS evento_dead_event (
        consumer_id {key} NOT NULL,
        sequence_number {int} NOT NULL,
        event {blob} NOT NULL,
        error {text} NOT NULL,
        retry INTEGER NOT NULL DEFAULT 0,
        dead_at {int} NOT NULL,
        PRIMARY KEY (consumer_id, sequence_number)
    ){table_options}""",
    """CREATE TABLE IF NOT EXISTS evento_dedupe (
        consumer_id {key} NOT NULL,
        sequence_number {int} NOT NULL,
        claimed_at {int} NOT NULL,
        PRIMARY KEY (consumer_id, sequence_number)
    ){table_options}""",
]

_LOOKUP_INDEX = (
    "CREATE INDEX IF NOT EXISTS evento_saga_association_lookup ON evento_saga_association (saga_name, name, value)"
)

# One entry per schema version; a database records the versions it has in evento_consumer_schema.
_MIGRATIONS: list[list[str]] = [_SCHEMA_V1]


def _row_to_dead(row: Sequence[Any]) -> DeadEvent:
    return DeadEvent(
        consumer_id=row[0], event=decode_event(bytes(row[1])), error=row[2], retry=bool(row[3]), dead_at=row[4]
    )


class _Workers:
    """Threads that each own one database connection and run the store's blocking calls off the event loop.

    A connection is opened by its thread on first use and replaced after it breaks, so a database restart
    costs at most one failed call per connection (reported as transient), not the store. Several connections
    let concurrent calls meet in the database, whose locks (not ours) decide them.
    """

    def __init__(self, store: SQLConsumerStateStore, size: int) -> None:
        self._store = store
        self._jobs: queue.SimpleQueue[tuple[Callable[[Any], Any], asyncio.Future[Any]] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"evento-consumer-state-{n}", daemon=True) for n in range(size)
        ]
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for thread in self._threads:
            thread.start()

    async def run(self, fn: Callable[[Any], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, future))
        return await future

    async def stop(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        await asyncio.to_thread(self._join)

    def _join(self) -> None:
        for thread in self._threads:
            thread.join()

    def _work(self) -> None:
        store, loop = self._store, self._loop
        assert loop is not None
        conn: Any = None
        while (job := self._jobs.get()) is not None:
            fn, future = job
            try:
                if conn is None:
                    conn = store._open()
                outcome: tuple[bool, Any] = (True, store._call(conn, fn))
            except BaseException as exc:
                outcome = (False, exc)
                if conn is not None and not store._is_usable(conn):
                    store._close(conn)
                    conn = None
            # A closed event loop raises RuntimeError: nobody is waiting for this answer any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, outcome)
        if conn is not None:
            store._close(conn)


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if future.done():
        return  # the caller was cancelled; the work ran anyway, as with run_in_executor
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class _WorkFailed(Exception):
    """Carries an error raised by ``commit_with``'s work past the store's driver-error translation."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class SQLConsumerStateStore(ConsumerStateStore):
    """A consumer state store on a SQL database, reached through a blocking DB-API driver.

    Subclasses connect, name the column types and the clock, and classify their driver's errors. Every call is
    one statement in autocommit mode, one explicit transaction, or (commit_checkpoint) statements each correct
    on its own, so a call can be run again whole when the database aborts it to break a deadlock.
    """

    supports_transactions = True

    #: Placeholder style of the driver: "?" (qmark) or "%s" (format: :func:`~evento.storage.urls.format_placeholders`).
    PLACEHOLDER: ClassVar[str] = "%s"
    #: The statement that opens a transaction.
    BEGIN: ClassVar[str] = "BEGIN"
    #: A SQL expression for the database's clock in milliseconds since the epoch (lock leases use it).
    NOW_MS: ClassVar[str]
    #: Column types and table options filling the schema's tokens.
    TYPES: ClassVar[dict[str, str]]
    #: Statement taking a lock that serialises migrations (inside the migration transaction), if needed.
    SCHEMA_LOCK: ClassVar[str | None] = None

    # Upserts in the ON CONFLICT spelling (SQLite and PostgreSQL); MySQL overrides them.
    SEED_SQL: ClassVar[str] = (
        "INSERT INTO evento_consumer_state (consumer_id, last_sequence, version, updated_at)"
        " VALUES (?, ?, 0, ?) ON CONFLICT (consumer_id) DO UPDATE"
        " SET last_sequence = excluded.last_sequence, version = 0, updated_at = excluded.updated_at"
        " WHERE evento_consumer_state.last_sequence IS NULL"
    )
    LOCK_SQL: ClassVar[str] = (
        # One upsert: it inserts, takes over an expired lease or renews our own, else it changes nothing.
        "INSERT INTO evento_consumer_lock (consumer_id, owner, expires_at) VALUES (?, ?, {now_ms} + ?)"
        " ON CONFLICT (consumer_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at"
        " WHERE evento_consumer_lock.owner = excluded.owner OR evento_consumer_lock.expires_at <= {now_ms}"
    )
    SET_ENABLED_SQL: ClassVar[str] = (
        "INSERT INTO evento_consumer_state (consumer_id, enabled, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (consumer_id) DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at"
    )
    RECORD_ERROR_SQL: ClassVar[str] = (
        # first_error_at is NULL whenever the consumer is not in error (commit clears it), so COALESCE keeps
        # the start of the current error streak.
        "INSERT INTO evento_consumer_state (consumer_id, error_count, error_message, first_error_at,"
        " last_error_at, updated_at) VALUES (?, 1, ?, ?, ?, ?) ON CONFLICT (consumer_id) DO UPDATE"
        " SET error_count = evento_consumer_state.error_count + 1, error_message = excluded.error_message,"
        " first_error_at = COALESCE(evento_consumer_state.first_error_at, excluded.first_error_at),"
        " last_error_at = excluded.last_error_at, updated_at = excluded.updated_at"
    )
    ADD_DEAD_SQL: ClassVar[str] = (
        # A second failure of the same event replaces the entry: latest error, not flagged for retry.
        "INSERT INTO evento_dead_event (consumer_id, sequence_number, event, error, retry, dead_at)"
        " VALUES (?, ?, ?, ?, 0, ?) ON CONFLICT (consumer_id, sequence_number) DO UPDATE"
        " SET event = excluded.event, error = excluded.error, retry = 0, dead_at = excluded.dead_at"
    )
    SAVE_SAGA_SQL: ClassVar[str] = (
        "INSERT INTO evento_saga_state (saga_id, saga_name, state, updated_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (saga_id) DO UPDATE SET saga_name = excluded.saga_name, state = excluded.state,"
        " updated_at = excluded.updated_at"
    )
    SET_CHECKPOINT_SQL: ClassVar[str] = (
        # Whatever the row holds (or none): the checkpoint moves, the version goes up, the error streak ends.
        "INSERT INTO evento_consumer_state (consumer_id, last_sequence, version, updated_at) VALUES (?, ?, 1, ?)"
        " ON CONFLICT (consumer_id) DO UPDATE SET last_sequence = excluded.last_sequence,"
        " version = evento_consumer_state.version + 1, error_count = 0, error_message = NULL,"
        " first_error_at = NULL, last_error_at = NULL, updated_at = excluded.updated_at"
    )

    def __init__(self, *, connections: int) -> None:
        if connections < 1:
            raise ValueError(f"a consumer state store needs at least one connection, got {connections}")
        self._connections = connections
        self._workers: _Workers | None = None
        self._statements: dict[str, str] = {}
        # Locks taken through this instance, released on stop() as the contract asks.
        self._held: set[tuple[str, str]] = set()

    # --- what a backend provides ----------------------------------------------------------------------------

    @abstractmethod
    def _connect(self) -> Any:
        """Open a connection in autocommit mode (called on a worker thread)."""

    @abstractmethod
    def _unavailable(self, exc: BaseException) -> bool:
        """Whether a driver error means the database is unreachable, gone or busy (transient)."""

    @abstractmethod
    def _deadlocked(self, exc: BaseException) -> bool:
        """Whether the database aborted the transaction to break a deadlock (run it again)."""

    @abstractmethod
    def _driver_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` is an error of the driver (translated into an evento error)."""

    def _is_usable(self, conn: Any) -> bool:
        """Whether a connection survived a failed call; a broken one is replaced."""
        return True

    def _transaction_intact(self, conn: Any, consumer_id: str, checkpoint: Checkpoint) -> bool:
        """Whether the transaction that advanced ``consumer_id`` to ``checkpoint`` is still open and unharmed.

        Read back in that transaction: if it was rolled back (a deadlock on MySQL, a full disk on SQLite, a
        ``ROLLBACK``), the row shows another version, or a version that is committed already. A backend whose
        driver knows the transaction's state without a round trip says so instead.
        """
        row = self._one(
            conn, "SELECT last_sequence, version FROM evento_consumer_state WHERE consumer_id = ?", (consumer_id,)
        )
        return row is not None and (row[0], row[1]) == (checkpoint.sequence_number, checkpoint.version)

    def _close(self, conn: Any) -> None:
        # A broken connection may fail to close; it is dropped either way.
        with contextlib.suppress(Exception):
            conn.close()

    # --- plumbing -------------------------------------------------------------------------------------------

    def _sql(self, text: str) -> str:
        """A statement with parameters in the driver's spelling (cached per statement text)."""
        statement = self._statements.get(text)
        if statement is None:
            statement = text.replace("{now_ms}", self.NOW_MS)
            if self.PLACEHOLDER != "?":
                statement = format_placeholders(statement)
            self._statements[text] = statement
        return statement

    def _execute(self, conn: Any, text: str, params: Sequence[Any] | None = None) -> Any:
        cursor = conn.cursor()
        if params is None:
            # No parameters: drivers send the text as it is, so it keeps its own spelling.
            cursor.execute(text.replace("{now_ms}", self.NOW_MS))
        else:
            cursor.execute(self._sql(text), params)
        return cursor

    def _one(self, conn: Any, text: str, params: Sequence[Any] | None = None) -> Any:
        return self._execute(conn, text, params).fetchone()

    def _transaction(self, conn: Any, fn: Callable[[Any], T]) -> T:
        # Connections are in autocommit mode, so transactions are spelled out, the same way on every driver.
        self._execute(conn, self.BEGIN)
        try:
            result = fn(conn)
            self._execute(conn, "COMMIT")
        except BaseException:
            # If the connection broke, the database rolls back on its own and the first error is the news.
            with contextlib.suppress(Exception):
                self._execute(conn, "ROLLBACK")
            raise
        return result

    def _open(self) -> Any:
        try:
            return self._connect()
        except Exception as exc:
            if not self._driver_error(exc):
                raise
            raise ConsumerStoreUnavailableError(
                f"cannot connect to the {self.dialect} consumer state store: {exc}"
            ) from exc

    def _call(self, conn: Any, fn: Callable[[Any], T]) -> T:
        """Run one call on a worker thread: again after a deadlock, with driver errors translated."""
        attempt = 1
        while True:
            try:
                return fn(conn)
            except Exception as exc:
                if not self._driver_error(exc):
                    raise
                if self._deadlocked(exc) and attempt < _DEADLOCK_ATTEMPTS:
                    attempt += 1
                    continue
                if self._unavailable(exc) or self._deadlocked(exc):
                    raise ConsumerStoreUnavailableError(f"{self.dialect} consumer state store: {exc}") from exc
                raise ConsumerStoreError(f"{self.dialect} consumer state store: {exc}") from exc

    async def _run(self, fn: Callable[[Any], T]) -> T:
        workers = self._workers
        assert workers is not None, "the consumer state store is not started"
        return await workers.run(fn)

    async def _run_in_transaction(self, fn: Callable[[Any], T]) -> T:
        return await self._run(lambda conn: self._transaction(conn, fn))

    # --- lifecycle and schema -------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._workers is not None:
            return
        workers = _Workers(self, self._connections)
        workers.start()
        self._workers = workers
        try:
            await self._run(self._migrate)
        except BaseException:
            self._workers = None
            await workers.stop()
            raise

    async def stop(self) -> None:
        workers = self._workers
        if workers is None:
            return  # never started, or already stopped: stop() is idempotent
        try:
            for consumer_id, owner in list(self._held):
                await self.unlock(consumer_id, owner)
        finally:
            self._workers = None
            await workers.stop()

    def _migrate(self, conn: Any) -> None:
        """Bring the schema to the newest version, once, even when several processes start together."""
        self._transaction(conn, self._apply_migrations)

    def _apply_migrations(self, conn: Any) -> None:
        if self.SCHEMA_LOCK is not None:
            self._execute(conn, self.SCHEMA_LOCK)
        self._execute(
            conn,
            "CREATE TABLE IF NOT EXISTS evento_consumer_schema (version INTEGER PRIMARY KEY,"
            " applied_at {int} NOT NULL){table_options}".format(**self.TYPES),
        )
        row = self._one(conn, "SELECT MAX(version) FROM evento_consumer_schema")
        current = int(row[0]) if row and row[0] is not None else 0
        if current > len(_MIGRATIONS):
            raise ConsumerStoreError(
                f"the consumer state schema is at version {current}, newer than this Evento knows"
                f" ({len(_MIGRATIONS)}): upgrade Evento before opening this database"
            )
        types = {"lookup_index": _LOOKUP_INDEX, "inline_lookup_index": "", **self.TYPES}
        for version, statements in enumerate(_MIGRATIONS[current:], start=current + 1):
            for template in statements:
                statement = template.format(**types)
                if statement:
                    self._execute(conn, statement)
            self._execute(
                conn, "INSERT INTO evento_consumer_schema (version, applied_at) VALUES (?, ?)", (version, now_ms())
            )

    # --- checkpoints ----------------------------------------------------------------------------------------

    def _checkpoint(self, conn: Any, consumer_id: str) -> Checkpoint | None:
        row = self._one(
            conn,
            "SELECT last_sequence, version FROM evento_consumer_state"
            " WHERE consumer_id = ? AND last_sequence IS NOT NULL",
            (consumer_id,),
        )
        return None if row is None else Checkpoint(int(row[0]), int(row[1]))

    def _insert_absent(self, conn: Any, text: str, params: Sequence[Any]) -> bool:
        """Run an INSERT unless its key exists; whether it inserted."""
        return bool(self._execute(conn, text + " ON CONFLICT DO NOTHING", params).rowcount > 0)

    def _advance(self, conn: Any, consumer_id: str, sequence_number: int, expected_version: int) -> Checkpoint:
        now = now_ms()
        advanced = (
            self._execute(
                conn,
                "UPDATE evento_consumer_state SET last_sequence = ?, version = version + 1, error_count = 0,"
                " error_message = NULL, first_error_at = NULL, last_error_at = NULL, updated_at = ?"
                " WHERE consumer_id = ? AND version = ?",
                (sequence_number, now, consumer_id, expected_version),
            ).rowcount
            > 0
        )
        if not advanced and expected_version == 0:
            # A consumer that never ran is at version 0, so its first commit needs no seed.
            advanced = self._insert_absent(
                conn,
                "INSERT INTO evento_consumer_state (consumer_id, last_sequence, version, updated_at)"
                " VALUES (?, ?, 1, ?)",
                (consumer_id, sequence_number, now),
            )
        if not advanced:
            row = self._one(conn, "SELECT version FROM evento_consumer_state WHERE consumer_id = ?", (consumer_id,))
            version = row[0] if row else 0
            raise ConcurrentCheckpointError(
                f"checkpoint of {consumer_id} is at version {version}, expected {expected_version}"
            )
        return Checkpoint(sequence_number, expected_version + 1)

    async def read_checkpoint(self, consumer_id: str) -> Checkpoint | None:
        return await self._run(lambda conn: self._checkpoint(conn, consumer_id))

    async def seed_checkpoint(self, consumer_id: str, sequence_number: int) -> Checkpoint:
        def seed(conn: Any) -> Checkpoint:
            # Insert-if-absent for the checkpoint, but the row may already exist without one (enabled flag,
            # errors), so "absent" is last_sequence IS NULL rather than a missing row.
            self._execute(conn, self.SEED_SQL, (consumer_id, sequence_number, now_ms()))
            checkpoint = self._checkpoint(conn, consumer_id)
            assert checkpoint is not None
            return checkpoint

        return await self._run_in_transaction(seed)

    async def commit_checkpoint(self, consumer_id: str, sequence_number: int, expected_version: int) -> Checkpoint:
        # No transaction: each statement of _advance is atomic on its own and each one only ever applies at the
        # expected version, so the common case is one round trip (the UPDATE) instead of three.
        return await self._run(lambda conn: self._advance(conn, consumer_id, sequence_number, expected_version))

    async def commit_with(
        self, consumer_id: str, sequence_number: int, expected_version: int, work: Callable[[Any], T]
    ) -> tuple[T, Checkpoint]:
        """See :meth:`ConsumerStateStore.commit_with`.

        The checkpoint row is updated first, which also locks it until the transaction ends: a concurrent
        commit of the same consumer waits, then finds the version moved and fails before its work runs. If the
        database aborts the transaction to break a deadlock, the whole call (``work`` included) runs again. After
        ``work`` the transaction is checked (:meth:`_transaction_intact`) before COMMIT.
        """

        def commit(conn: Any) -> tuple[T, Checkpoint]:
            checkpoint = self._advance(conn, consumer_id, sequence_number, expected_version)
            try:
                result = work(conn)
            except Exception as exc:
                if self._driver_error(exc) and (self._deadlocked(exc) or self._unavailable(exc)):
                    raise  # the database's doing, not the work's: rerun, or reported as unavailable
                raise _WorkFailed(exc) from exc
            # COMMIT would not say that it rolled back an aborted transaction (PostgreSQL), and after a rollback
            # MySQL runs COMMIT on nothing: check first, so an advanced checkpoint is never reported falsely.
            if not self._transaction_intact(conn, consumer_id, checkpoint):
                raise ProjectionTransactionAbortedError(
                    f"the projection transaction of {consumer_id} was aborted inside the handler: a database error"
                    " was swallowed (or the handler committed or rolled back); its transaction was not committed"
                    f" and the checkpoint stays at version {expected_version}"
                )
            return result, checkpoint

        try:
            return await self._run_in_transaction(commit)
        except _WorkFailed as failed:
            # The caller's own error, unchanged (an SQL error in a projector's statement names the projector's
            # statement, not this store); the transaction was rolled back.
            raise failed.error from None

    async def reset(self, consumer_id: str) -> None:
        # Clear rather than delete the row: the enabled flag is the operator's, a replay does not re-enable.
        await self._run(
            lambda conn: self._execute(
                conn,
                "UPDATE evento_consumer_state SET last_sequence = NULL, version = 0, error_count = 0,"
                " error_message = NULL, first_error_at = NULL, last_error_at = NULL, updated_at = ?"
                " WHERE consumer_id = ?",
                (now_ms(), consumer_id),
            )
        )

    async def set_checkpoint(self, consumer_id: str, sequence_number: int) -> Checkpoint:
        def move(conn: Any) -> Checkpoint:
            self._execute(conn, self.SET_CHECKPOINT_SQL, (consumer_id, sequence_number, now_ms()))
            checkpoint = self._checkpoint(conn, consumer_id)
            assert checkpoint is not None
            return checkpoint

        return await self._run_in_transaction(move)

    # --- consumer lock --------------------------------------------------------------------------------------

    def _take_lease(self, conn: Any, consumer_id: str, owner: str, lease_ms: int) -> bool:
        return bool(self._execute(conn, self.LOCK_SQL, (consumer_id, owner, lease_ms)).rowcount > 0)

    async def try_lock(self, consumer_id: str, owner: str, lease_seconds: float) -> bool:
        """Take or renew the lease row, timed by the database's clock.

        A lease row rather than an advisory lock (``pg_try_advisory_lock``, ``GET_LOCK``): an advisory lock
        belongs to a session, so it needs a connection pinned for as long as it is held, it is lost silently
        when that connection drops, and it never fences an owner that stalled while its connection stayed up.
        A lease expires on its own, survives connection drops and store restarts, and the database clock in the
        statement means servers with skewed clocks agree on when it is over.
        """
        lease_ms = max(1, round(lease_seconds * 1000))
        acquired = await self._run(lambda conn: self._take_lease(conn, consumer_id, owner, lease_ms))
        if acquired:
            self._held.add((consumer_id, owner))
        return acquired

    async def unlock(self, consumer_id: str, owner: str) -> None:
        self._held.discard((consumer_id, owner))
        await self._run(
            lambda conn: self._execute(
                conn, "DELETE FROM evento_consumer_lock WHERE consumer_id = ? AND owner = ?", (consumer_id, owner)
            )
        )

    # --- enabled flag and error state -----------------------------------------------------------------------

    async def is_enabled(self, consumer_id: str) -> bool:
        def query(conn: Any) -> bool:
            row = self._one(conn, "SELECT enabled FROM evento_consumer_state WHERE consumer_id = ?", (consumer_id,))
            return row is None or bool(row[0])

        return await self._run(query)

    async def set_enabled(self, consumer_id: str, enabled: bool) -> None:
        await self._run(lambda conn: self._execute(conn, self.SET_ENABLED_SQL, (consumer_id, int(enabled), now_ms())))

    async def record_error(self, consumer_id: str, message: str) -> None:
        now = now_ms()
        await self._run(lambda conn: self._execute(conn, self.RECORD_ERROR_SQL, (consumer_id, message, now, now, now)))

    async def error_state(self, consumer_id: str) -> ErrorState:
        def query(conn: Any) -> ErrorState:
            row = self._one(
                conn,
                "SELECT error_count, error_message, first_error_at, last_error_at FROM evento_consumer_state"
                " WHERE consumer_id = ?",
                (consumer_id,),
            )
            if row is None:
                return ErrorState(False, 0, None, None, None)
            return ErrorState(row[0] > 0, int(row[0]), row[1], row[2], row[3])

        return await self._run(query)

    # --- dead event queue -----------------------------------------------------------------------------------

    async def add_dead_event(self, consumer_id: str, event: StoredEvent, error: str) -> None:
        params = (consumer_id, event.sequence_number, encode_event(event), error, now_ms())
        await self._run(lambda conn: self._execute(conn, self.ADD_DEAD_SQL, params))

    async def dead_letter(self, consumer_id: str, event: StoredEvent, error: str, expected_version: int) -> Checkpoint:
        params = (consumer_id, event.sequence_number, encode_event(event), error, now_ms())

        def park(conn: Any) -> Checkpoint:
            # The checkpoint first: a stale version fails before anything is parked.
            checkpoint = self._advance(conn, consumer_id, event.sequence_number, expected_version)
            self._execute(conn, self.ADD_DEAD_SQL, params)
            return checkpoint

        return await self._run_in_transaction(park)

    async def dead_events(self, consumer_id: str, *, retriable_only: bool = False) -> list[DeadEvent]:
        sql = "SELECT consumer_id, event, error, retry, dead_at FROM evento_dead_event WHERE consumer_id = ?"
        if retriable_only:
            sql += " AND retry = 1"
        sql += " ORDER BY sequence_number"
        return await self._run(lambda conn: [_row_to_dead(row) for row in self._execute(conn, sql, (consumer_id,))])

    async def set_dead_event_retry(self, consumer_id: str, sequence_number: int, retry: bool) -> bool:
        cursor = await self._run(
            lambda conn: self._execute(
                conn,
                "UPDATE evento_dead_event SET retry = ? WHERE consumer_id = ? AND sequence_number = ?",
                (int(retry), consumer_id, sequence_number),
            )
        )
        return bool(cursor.rowcount > 0)

    async def remove_dead_event(self, consumer_id: str, sequence_number: int) -> bool:
        cursor = await self._run(
            lambda conn: self._execute(
                conn,
                "DELETE FROM evento_dead_event WHERE consumer_id = ? AND sequence_number = ?",
                (consumer_id, sequence_number),
            )
        )
        return bool(cursor.rowcount > 0)

    # --- sagas ----------------------------------------------------------------------------------------------

    async def find_saga(self, saga_name: str, association: str, value: str) -> SagaInstance | None:
        def query(conn: Any) -> SagaInstance | None:
            row = self._one(
                conn,
                "SELECT s.saga_id, s.saga_name, s.state FROM evento_saga_association a"
                " JOIN evento_saga_state s ON s.saga_id = a.saga_id"
                " WHERE a.saga_name = ? AND a.name = ? AND a.value = ? LIMIT 1",
                (saga_name, association, value),
            )
            return None if row is None else SagaInstance(id=row[0], saga_name=row[1], state=bytes(row[2]))

        return await self._run(query)

    async def save_saga(self, instance: SagaInstance, associations: dict[str, str]) -> None:
        def save(conn: Any) -> None:
            self._execute(conn, self.SAVE_SAGA_SQL, (instance.id, instance.saga_name, instance.state, now_ms()))
            # Replace, not merge: an association the saga dropped must stop finding it.
            self._execute(conn, "DELETE FROM evento_saga_association WHERE saga_id = ?", (instance.id,))
            if associations:
                conn.cursor().executemany(
                    self._sql(
                        "INSERT INTO evento_saga_association (saga_id, saga_name, name, value) VALUES (?, ?, ?, ?)"
                    ),
                    [(instance.id, instance.saga_name, name, value) for name, value in associations.items()],
                )

        await self._run_in_transaction(save)

    async def delete_saga(self, instance_id: str) -> None:
        def delete(conn: Any) -> None:
            self._execute(conn, "DELETE FROM evento_saga_association WHERE saga_id = ?", (instance_id,))
            self._execute(conn, "DELETE FROM evento_saga_state WHERE saga_id = ?", (instance_id,))

        await self._run_in_transaction(delete)

    # --- observer dedupe ------------------------------------------------------------------------------------

    async def try_claim(self, consumer_id: str, sequence_number: int) -> bool:
        return await self._run(
            lambda conn: self._insert_absent(
                conn,
                "INSERT INTO evento_dedupe (consumer_id, sequence_number, claimed_at) VALUES (?, ?, ?)",
                (consumer_id, sequence_number, now_ms()),
            )
        )

    async def release_claim(self, consumer_id: str, sequence_number: int) -> None:
        await self._run(
            lambda conn: self._execute(
                conn,
                "DELETE FROM evento_dedupe WHERE consumer_id = ? AND sequence_number = ?",
                (consumer_id, sequence_number),
            )
        )
