"""The PostgreSQL event store: for production, and for clusters of servers sharing one database.

psycopg 3 in async mode with a connection pool. Appends are group-committed like every store (see
:class:`~evento.event_stores.base.EventStore`); what differs is how sequence numbers are made (reference §4.4):

* **CPES** (consistent, the default): each batch takes one cluster-wide transaction-scoped advisory lock, reads
  the highest number and writes the next ones. Locks are released only after the commit is visible, so numbers
  become visible in increasing order: a consumer reading ``sequence_number > checkpoint`` can never skip an event
  that commits later. The price is that appends from every server queue on that lock (group commit amortises it).
* **APES** (available): numbers are snowflake ids made by each server without coordination; readers only see ids
  older than ``fetch_delay`` (default 69 ms), the time allowed for a transaction to commit after taking its ids.

Every commit also sends ``NOTIFY evento_events`` with the new head, so each server learns of the others' appends
and wakes its consumers at once (APES: after ``fetch_delay``, when the events become visible).
"""

from __future__ import annotations

import asyncio
import logging
import random
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

import psycopg
import psycopg.errors
from psycopg_pool import AsyncConnectionPool, PoolTimeout

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
from evento.event_stores.snowflake import MAX_NODE_ID, Snowflake, lower_bound_at, timestamp_ms
from evento.messages import StoredEvent, now_ms
from evento.storage.postgres import is_unavailable

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from evento.storage.database import Database

__all__ = ["EventStoreMode", "PostgresEventStore"]

log = logging.getLogger(__name__)

EventStoreMode = Literal["cpes", "apes"]

# Advisory lock keys (one 64-bit key space per database, shared with applications: keep ours distinctive).
_MIGRATION_LOCK = 0x45564E54_0001  # "EVNT" 1
_APPEND_LOCK = 0x45564E54_0002
_NODE_LOCK_BASE = 0x45564E54_1000  # + node id: a server holds one while it makes snowflake ids
_CHANNEL = "evento_events"
_CONTENTION_CHANNEL = "evento_contention"

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS evento_schema (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS es_events (
        sequence_number BIGINT PRIMARY KEY,
        aggregate_id TEXT,
        aggregate_version BIGINT,
        context TEXT NOT NULL,
        event_name TEXT NOT NULL,
        message_id TEXT NOT NULL,
        command_id TEXT,
        timestamp BIGINT NOT NULL,
        payload BYTEA NOT NULL,
        metadata BYTEA NOT NULL,
        created_at BIGINT NOT NULL,
        deleted_at BIGINT
    )""",
    """CREATE UNIQUE INDEX IF NOT EXISTS es_events_aggregate
        ON es_events (aggregate_id, aggregate_version) WHERE aggregate_version IS NOT NULL""",
    "CREATE UNIQUE INDEX IF NOT EXISTS es_events_command ON es_events (command_id) WHERE command_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS es_events_context ON es_events (context, sequence_number)",
    """CREATE TABLE IF NOT EXISTS es_snapshots (
        aggregate_id TEXT PRIMARY KEY,
        state BYTEA NOT NULL,
        aggregate_version BIGINT NOT NULL,
        sequence_number BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        deleted_at BIGINT
    )""",
    """CREATE TABLE IF NOT EXISTS es_deleted_aggregates (
        aggregate_id TEXT PRIMARY KEY,
        deleted_at BIGINT NOT NULL
    )""",
    # CPES: take the cluster-wide append lock, then number the batch after the highest stored number and
    # announce the new head (delivered at commit). One round trip; and each statement of a plpgsql function
    # takes a fresh snapshot, so MAX, read after the lock is granted, sees every batch committed before.
    f"""CREATE OR REPLACE FUNCTION evento_claim_sequence_numbers(batch INTEGER) RETURNS BIGINT
    LANGUAGE plpgsql VOLATILE AS $$
    DECLARE first_number BIGINT;
    BEGIN
        PERFORM pg_advisory_xact_lock({_APPEND_LOCK});
        SELECT COALESCE(MAX(sequence_number), 0) + 1 INTO first_number FROM es_events;
        PERFORM pg_notify('{_CHANNEL}', (first_number + batch - 1)::TEXT);
        RETURN first_number;
    END $$""",
]
_SCHEMA_VERSION = 1

# Events go in with COPY (psycopg formats the rows in C); snapshots, rarer, with executemany.
_COPY_EVENTS = (
    "COPY es_events (sequence_number, aggregate_id, aggregate_version, context, event_name, message_id,"
    " command_id, timestamp, payload, metadata, created_at) FROM STDIN"
)
_UPSERT_SNAPSHOT = """
INSERT INTO es_snapshots (aggregate_id, state, aggregate_version, sequence_number, updated_at)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (aggregate_id) DO UPDATE SET state = excluded.state, aggregate_version = excluded.aggregate_version,
    sequence_number = excluded.sequence_number, updated_at = excluded.updated_at, deleted_at = NULL
"""
_EVENT_COLUMNS_OF_E = ", ".join(f"e.{column.strip()}" for column in EVENT_COLUMNS.split(","))
_LOAD_STORY = f"""
WITH snapshot AS (
    SELECT state, aggregate_version FROM es_snapshots
    WHERE aggregate_id = %(id)s AND deleted_at IS NULL AND %(use_snapshot)s
)
SELECT EXISTS (SELECT 1 FROM es_deleted_aggregates WHERE aggregate_id = %(id)s),
       (SELECT state FROM snapshot), (SELECT aggregate_version FROM snapshot), {_EVENT_COLUMNS_OF_E}
FROM (SELECT 1) AS one
LEFT JOIN es_events AS e
    ON e.aggregate_id = %(id)s AND e.aggregate_version > COALESCE((SELECT aggregate_version FROM snapshot), 0)
ORDER BY e.aggregate_version
"""


def _translated(message: str, exc: BaseException) -> EventStoreError:
    """The Evento error for a driver error: unavailable (a :class:`ConnectionError`, transient) or refused."""
    unavailable = is_unavailable(exc) or isinstance(exc, EventStoreUnavailableError)
    return EventStoreUnavailableError(message) if unavailable else EventStoreError(message)


class PostgresEventStore(EventStore):
    """Event store in a PostgreSQL database, shareable by several servers.

    ``url`` is a libpq connection string or ``postgresql://`` URL. The schema is created on start.
    """

    def database(self) -> Database:
        from evento.storage.database import PostgresDatabase

        return PostgresDatabase(self.url)

    def __init__(
        self,
        url: str,
        *,
        mode: EventStoreMode = "cpes",
        fetch_delay: float = 0.069,
        pool_size: int = 10,
        lock_connections: int = 64,
        contention_window: float = 2.0,
    ) -> None:
        super().__init__()
        if mode not in ("cpes", "apes"):
            raise ValueError(f"event store mode must be 'cpes' or 'apes', got {mode!r}")
        self.url = url
        self.mode: EventStoreMode = mode
        self.fetch_delay = fetch_delay if mode == "apes" else 0.0
        # Read committed whatever the database's default: CPES numbering relies on each statement of the claim
        # function seeing what committed before the append lock was granted.
        options = {"autocommit": True, "options": "-c default_transaction_isolation=read\\ committed"}
        self._pool = AsyncConnectionPool(url, min_size=2, max_size=max(2, pool_size), open=False, kwargs=options)
        # Cluster locks pin a connection while held: their own pool, so they can never starve the appends that
        # the commands holding them are waiting for.
        self._lock_pool = AsyncConnectionPool(
            url, min_size=0, max_size=max(1, lock_connections), open=False, kwargs={"autocommit": True}
        )
        self._lock_wait = 30.0  # a lock-pool connection not free in this time: an error, not a hang
        self.contention_window = contention_window
        self._contended: dict[str, float] = {}  # aggregate id -> until (loop time)
        self._reports: set[asyncio.Task[None]] = set()
        self._snowflake: Snowflake | None = None
        self._node_held = asyncio.Event()  # set while the listener's session holds the node id (APES)
        self._node_id: int | None = None
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._closing = False

    # --- lifecycle ---------------------------------------------------------------------------------------------

    async def _open(self) -> None:
        try:
            await self._pool.open(wait=True, timeout=10.0)
            await self._lock_pool.open()
        except (PoolTimeout, psycopg.Error) as exc:
            await self._pool.close()
            await self._lock_pool.close()
            raise _translated(f"cannot connect to the PostgreSQL event store: {exc}", exc) from exc
        try:
            await self._migrate()
            self._closing = False
            self._listener = asyncio.create_task(self._listen(), name="evento-pg-listener")
            # APES needs the node id the listener claims; CPES only wants remote appends heard from the start.
            listening = asyncio.ensure_future(self._listening.wait())
            await asyncio.wait([listening, self._listener], return_when=asyncio.FIRST_COMPLETED)
            listening.cancel()
            if self._listener.done():
                self._listener.result()  # raises what stopped it
        except BaseException:
            await self._close()
            raise

    async def _migrate(self) -> None:
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                for statement in _SCHEMA:
                    await conn.execute(statement)
                cursor = await conn.execute("SELECT MAX(version) FROM evento_schema")
                row = await cursor.fetchone()
                if row is None or row[0] is None:
                    await conn.execute("INSERT INTO evento_schema (version) VALUES (%s)", (_SCHEMA_VERSION,))
        except psycopg.Error as exc:
            raise _translated(f"cannot create the PostgreSQL event store's schema: {exc}", exc) from exc

    async def _close(self) -> None:
        self._closing = True
        if self._reports:
            await asyncio.gather(*self._reports, return_exceptions=True)
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        await self._lock_pool.close()
        await self._pool.close()

    async def _listen(self) -> None:
        """Hold a connection that hears every server's commits (and, in APES, owns this server's node id).

        Reconnects with backoff when the connection drops; the head is re-read then, so nothing committed in the
        meantime is missed by the consumers waiting on it.
        """
        delay = 0.1
        while not self._closing:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    if self.mode == "apes":
                        previous = self._node_id
                        self._node_id = await _claim_node_id(conn, prefer=previous)
                        self._snowflake = Snowflake(self._node_id)
                        self._node_held.set()
                    await conn.execute(f"LISTEN {_CHANNEL}")
                    await conn.execute(f"LISTEN {_CONTENTION_CHANNEL}")
                    if self._listening.is_set():  # a reconnect: catch up on what we did not hear
                        cursor = await conn.execute("SELECT COALESCE(MAX(sequence_number), 0) FROM es_events")
                        row = await cursor.fetchone()
                        self._advance_head(row[0] if row else 0)
                    self._listening.set()
                    delay = 0.1
                    async for notify in conn.notifies():
                        self._on_notify(notify.channel, notify.payload)
            except (psycopg.Error, EventStoreError) as exc:
                # The node id went with the session: make no more ids with it until it is claimed again.
                self._node_held.clear()
                if not self._listening.is_set():
                    raise _translated(f"cannot listen for PostgreSQL event notifications: {exc}", exc) from exc
                log.warning("event notification connection lost (%s); reconnecting in %.1f s", exc, delay)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, 5.0)

    def _on_notify(self, channel: str, payload: str) -> None:
        """One notification: a head from any server's commit, or an aggregate some server found contended. A
        malformed one (anyone may NOTIFY on these channels) is logged and ignored, never the listener's end."""
        try:
            if channel == _CHANNEL:
                self._advance_head(int(payload))
            else:
                self._mark_contended(payload)
        except Exception:
            log.exception("ignoring a malformed notification on %s: %r", channel, payload[:200])

    def _advance_head(self, sequence_number: int) -> None:
        if self.fetch_delay and sequence_number > self._head:
            # APES: readers see these events only once they are fetch_delay old; wake consumers then, not now.
            asyncio.get_running_loop().call_later(self.fetch_delay, super()._advance_head, sequence_number)
        else:
            super()._advance_head(sequence_number)

    async def _read_head(self) -> int:
        return await self._scalar("SELECT COALESCE(MAX(sequence_number), 0) FROM es_events")

    async def _scalar(self, sql: str) -> int:
        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(sql)
                row = await cursor.fetchone()
                return int(row[0]) if row else 0
        except (psycopg.Error, PoolTimeout) as exc:
            raise _translated(f"PostgreSQL read failed: {exc}", exc) from exc

    # --- writes ------------------------------------------------------------------------------------------------

    async def _write_batch(self, requests: Sequence[AppendRequest]) -> list[StoredEvent]:
        try:
            async with self._pool.connection() as conn, conn.transaction():
                if self.mode == "cpes":
                    cursor = await conn.execute("SELECT evento_claim_sequence_numbers(%s)", (len(requests),))
                    row = await cursor.fetchone()
                    assert row is not None
                    numbers: Sequence[int] = range(row[0], row[0] + len(requests))
                    stored = stored_events(requests, numbers)
                else:
                    snowflake = await self._own_snowflake()
                    stored = stored_events(requests, [snowflake.next_id() for _ in requests])
                    await conn.execute("SELECT pg_notify(%s, %s)", (_CHANNEL, str(stored[-1].sequence_number)))
                await _insert(conn, requests, stored)
            if self.mode == "apes":
                self._check_commit_lag(stored[0].sequence_number)
        except psycopg.errors.UniqueViolation as exc:
            raise VersionConflictError(f"an aggregate version or command of this batch is stored: {exc}") from exc
        except psycopg.errors.DeadlockDetected as exc:
            # APES batches of two servers inserting the same aggregate versions in opposite orders: like a
            # conflict, the batch is retried one append at a time, so only the losing appends fail.
            raise VersionConflictError(f"appends raced with another server's: {exc}") from exc
        except (psycopg.Error, PoolTimeout) as exc:
            raise _translated(f"PostgreSQL append failed: {exc}", exc) from exc
        return stored

    # --- contention: servers racing for one aggregate take turns under a cluster lock for a while --------------

    def is_contended(self, aggregate_id: str) -> bool:
        until = self._contended.get(aggregate_id)
        if until is None:
            return False
        if until < asyncio.get_running_loop().time():
            del self._contended[aggregate_id]
            return False
        return True

    def report_contention(self, aggregate_id: str) -> None:
        """Mark the aggregate contended here at once, and on the other servers through ``NOTIFY``.

        Without this, the server that won a race keeps its cached story and wins again, and the one that lost
        keeps re-reading and losing: while contended, every server takes the aggregate's cluster lock (queued
        fairly by PostgreSQL) instead.
        """
        self._mark_contended(aggregate_id)
        task = asyncio.create_task(self._notify_contention(aggregate_id))
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    def _mark_contended(self, aggregate_id: str) -> None:
        self._contended[aggregate_id] = asyncio.get_running_loop().time() + self.contention_window
        if len(self._contended) > 10_000:  # forget the expired ones; the map only holds recent races
            now = asyncio.get_running_loop().time()
            self._contended = {key: until for key, until in self._contended.items() if until >= now}

    async def _notify_contention(self, aggregate_id: str) -> None:
        try:
            async with self._pool.connection() as conn:
                await conn.execute("SELECT pg_notify(%s, %s)", (_CONTENTION_CHANNEL, aggregate_id))
        except psycopg.Error as exc:  # only a hint: the append's uniqueness keeps the aggregate consistent anyway
            log.warning("could not tell the cluster that %s is contended: %s", aggregate_id, exc)

    @asynccontextmanager
    async def cluster_lock(self, key: str) -> AsyncIterator[None]:
        """A session advisory lock on ``key``, held on a connection of its own until the block ends.

        If the wait is cancelled (the caller's deadline) or the unlock fails, the connection is closed instead
        of returned: ending the session is what surely releases whatever it may have acquired meanwhile.
        """
        try:
            conn = await self._lock_pool.getconn(timeout=self._lock_wait)
        except PoolTimeout as exc:
            raise _translated(f"no connection free to take the cluster lock {key!r}: {exc}", exc) from exc
        try:
            try:
                await conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))
            except psycopg.Error as exc:
                await conn.close()
                raise _translated(f"cannot take the cluster lock {key!r}: {exc}", exc) from exc
            except BaseException:
                await conn.close()
                raise
            try:
                yield
            finally:
                try:
                    await conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))
                except Exception as exc:
                    # The work under the lock is done; its outcome stands. Ending the session releases the lock.
                    log.warning("could not release the cluster lock %r (%s); closing its session", key, exc)
                    await conn.close()
        finally:
            await self._lock_pool.putconn(conn)

    def _check_commit_lag(self, first_id: int) -> None:
        """APES readers skip ids older than the fetch delay once they pass them: say so when a batch committed
        later than that after its ids were made (its events may be missed by consumers already past them)."""
        lag_ms = now_ms() - timestamp_ms(first_id)
        if lag_ms > self.fetch_delay * 1000:
            log.warning(
                "an APES batch committed %d ms after its ids were made (fetch delay %d ms): consumers reading "
                "meanwhile may have passed its events; raise --fetch-delay-ms",
                lag_ms,
                round(self.fetch_delay * 1000),
            )

    async def _own_snowflake(self) -> Snowflake:
        """The generator of this server's node id, once the listener holds it (APES)."""
        try:
            if not self._node_held.is_set():
                await asyncio.wait_for(self._node_held.wait(), 10.0)
        except TimeoutError:
            message = "no snowflake node id is held (the notification connection is down)"
            raise EventStoreUnavailableError(message) from None
        assert self._snowflake is not None
        return self._snowflake

    # --- reads -------------------------------------------------------------------------------------------------

    async def load_story(self, aggregate_id: str, *, use_snapshot: bool = True) -> Story:
        """One statement, one round trip: the deletion mark and the snapshot on every row, then the events
        after the snapshot (a single row of NULL events when there are none)."""
        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(_LOAD_STORY, {"id": aggregate_id, "use_snapshot": use_snapshot})
                rows = await cursor.fetchall()
        except (psycopg.Error, PoolTimeout) as exc:
            raise _translated(f"PostgreSQL read failed: {exc}", exc) from exc
        story = Story()
        if not rows:
            return story
        deleted, snapshot, snapshot_version = rows[0][:3]
        if deleted:
            story.deleted = True
            return story
        if snapshot is not None:
            story.snapshot, story.snapshot_version = bytes(snapshot), snapshot_version
        story.events = [row_to_event(row[3:]) for row in rows if row[3] is not None]
        return story

    async def find_by_command(self, command_id: str) -> StoredEvent | None:
        events = await self._select(f"SELECT {EVENT_COLUMNS} FROM es_events WHERE command_id = %s", (command_id,))
        return events[0] if events else None

    async def fetch(self, context: str, after: int, limit: int) -> list[StoredEvent]:
        conditions = ["sequence_number > %s"]
        params: list[Any] = [after]
        if context != "*":
            conditions.append("context = %s")
            params.append(context)
        if self.fetch_delay:
            conditions.append("sequence_number < %s")
            params.append(lower_bound_at(now_ms() - round(self.fetch_delay * 1000)))
        where = " AND ".join(conditions)
        sql = f"SELECT {EVENT_COLUMNS} FROM es_events WHERE {where} ORDER BY sequence_number LIMIT %s"
        return await self._select(sql, (*params, limit))

    async def count_events(self) -> int:
        return await self._scalar("SELECT COUNT(*) FROM es_events")

    #: The payload is UTF-8 JSON: as text, matched case-insensitively.
    _payload_like = "convert_from(payload, 'UTF8') ILIKE ?"

    async def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        # ``?`` placeholders as psycopg's (a literal ``%`` doubled): browsing SQL never holds a ``?`` in a literal.
        statement = sql.replace("%", "%%").replace("?", "%s")
        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(statement, tuple(params), binary=True)
                return list(await cursor.fetchall())
        except (psycopg.Error, PoolTimeout) as exc:
            raise _translated(f"PostgreSQL read failed: {exc}", exc) from exc

    async def _select(self, sql: str, params: Sequence[Any]) -> list[StoredEvent]:
        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(sql, params, binary=True)  # bytea arrive raw, not hex-encoded
                return [row_to_event(row) for row in await cursor.fetchall()]
        except (psycopg.Error, PoolTimeout) as exc:
            raise _translated(f"PostgreSQL read failed: {exc}", exc) from exc


async def _insert(
    conn: psycopg.AsyncConnection[Any], requests: Sequence[AppendRequest], stored: list[StoredEvent]
) -> None:
    created_at = now_ms()
    async with conn.cursor() as cursor:
        async with cursor.copy(_COPY_EVENTS) as copy:
            for request, event in zip(requests, stored, strict=True):
                await copy.write_row(
                    (event.sequence_number, event.aggregate_id, event.aggregate_version, event.context,
                     event.event_name, event.message_id, request.command_id, event.timestamp, event.payload,
                     encode_metadata(event.metadata), created_at)
                )  # fmt: skip
        snapshots = [
            (request.aggregate_id, request.snapshot, request.aggregate_version or 0, event.sequence_number, created_at)
            for request, event in zip(requests, stored, strict=True)
            if request.snapshot is not None and request.aggregate_id is not None
        ]
        if snapshots:
            await cursor.executemany(_UPSERT_SNAPSHOT, snapshots)
    for request in requests:
        if request.delete_aggregate and request.aggregate_id is not None:
            await conn.execute(
                "UPDATE es_events SET deleted_at = %s WHERE aggregate_id = %s AND deleted_at IS NULL",
                (created_at, request.aggregate_id),
            )
            await conn.execute(
                "UPDATE es_snapshots SET deleted_at = %s WHERE aggregate_id = %s", (created_at, request.aggregate_id)
            )
            await conn.execute(
                "INSERT INTO es_deleted_aggregates (aggregate_id, deleted_at) VALUES (%s, %s)"
                " ON CONFLICT (aggregate_id) DO UPDATE SET deleted_at = excluded.deleted_at",
                (request.aggregate_id, created_at),
            )


async def _claim_node_id(conn: psycopg.AsyncConnection[Any], *, prefer: int | None = None) -> int:
    """Take a free snowflake node id (``prefer`` first: the one held before a reconnect): a session advisory lock
    per id, held while ``conn`` lives, so two live servers never make ids with the same node id."""
    start = random.randrange(MAX_NODE_ID + 1) if prefer is None else prefer  # spread servers out
    for offset in range(MAX_NODE_ID + 1):
        node_id = (start + offset) % (MAX_NODE_ID + 1)
        cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", (_NODE_LOCK_BASE + node_id,))
        row = await cursor.fetchone()
        if row and row[0]:
            return node_id
    raise EventStoreError(f"all {MAX_NODE_ID + 1} snowflake node ids are taken by live servers")
