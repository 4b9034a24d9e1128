"""What only the SQL consumer state stores promise: migrations, driver errors, dropped connections, several
stores sharing one database.

The shared contract (evento.testing.consumer_store_cases) runs on these backends too; these cases reach into the
database the way an operator or a second process would.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from evento.bundle.consumers import is_transient
from evento.consumer_stores import open_consumer_store
from evento.consumer_stores.base import Checkpoint, ProjectionTransactionAbortedError
from evento.consumer_stores.mysql import MySQLConsumerStateStore, parse_mysql_url
from evento.consumer_stores.postgres import PostgresConsumerStateStore
from evento.consumer_stores.sql import SQLConsumerStateStore
from evento.consumer_stores.sqlite import SQLiteConsumerStateStore
from evento.errors import ConsumerStoreError, ConsumerStoreUnavailableError
from evento.testing.databases import mysql_database, postgres_database
from tests.helpers import free_port

Opener = Callable[..., SQLConsumerStateStore]


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens stores on one database per test; several calls share it, like several processes would."""
    if request.param == "sqlite":
        yield lambda **_: SQLiteConsumerStateStore(tmp_path / "consumers.db")
    elif request.param == "postgres":
        with postgres_database() as url:
            yield lambda **options: PostgresConsumerStateStore(url, **options)
    else:
        with mysql_database() as url:
            yield lambda **options: MySQLConsumerStateStore(url, **options)


def _query(sql: str) -> Callable[[Any], list[tuple[Any, ...]]]:
    def run(conn: Any) -> list[tuple[Any, ...]]:
        cursor = conn.cursor()
        cursor.execute(sql)
        return [tuple(row) for row in cursor.fetchall()]

    return run


def _statement(sql: str) -> Callable[[Any], None]:
    return lambda conn: conn.cursor().execute(sql)


async def _peek(store: SQLConsumerStateStore, sql: str) -> list[tuple[Any, ...]]:
    """Read the store's database through its own connection (commit_with of a probe consumer)."""
    probe = await store.read_checkpoint("probe")
    rows, _ = await store.commit_with("probe", 0, probe.version if probe else 0, _query(sql))
    return rows


async def test_stores_starting_together_migrate_once(open_store: Opener) -> None:
    stores = [open_store() for _ in range(4)]
    await asyncio.gather(*(store.start() for store in stores))
    try:
        assert await _peek(stores[0], "SELECT version FROM evento_consumer_schema") == [(1,)]
        assert await stores[1].try_lock("projector", "a", 30)
        assert not await stores[2].try_lock("projector", "b", 30)
    finally:
        await asyncio.gather(*(store.stop() for store in stores))


_START_AND_STOP = """
import asyncio, sys
from evento.consumer_stores import open_consumer_store

async def main() -> None:
    store = open_consumer_store(sys.argv[1])
    await store.start()
    await store.seed_checkpoint("projector", int(sys.argv[2]))
    await store.stop()

asyncio.run(main())
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_processes_starting_together_migrate_once(backend: str, tmp_path: Path) -> None:
    database = {"postgres": postgres_database, "mysql": mysql_database}.get(backend)
    with database() if database else contextlib.nullcontext(str(tmp_path / "consumers.db")) as spec:
        processes = [
            subprocess.Popen([sys.executable, "-c", _START_AND_STOP, spec, str(n)], stderr=subprocess.PIPE, text=True)
            for n in range(3)
        ]
        errors = [process.communicate(timeout=60)[1] for process in processes]
        assert [process.returncode for process in processes] == [0, 0, 0], errors

        async def check() -> None:
            store = open_consumer_store(spec)
            assert isinstance(store, SQLConsumerStateStore)
            await store.start()
            try:
                assert await _peek(store, "SELECT version FROM evento_consumer_schema") == [(1,)]
                # One seed won and the others kept it.
                checkpoint = await store.read_checkpoint("projector")
                assert checkpoint is not None
                assert checkpoint.version == 0
                assert checkpoint.sequence_number in (0, 1, 2)
            finally:
                await store.stop()

        asyncio.run(check())


async def test_restart_keeps_schema_and_state(open_store: Opener) -> None:
    store = open_store()
    await store.start()
    await store.seed_checkpoint("projector", 7)
    await store.stop()
    again = open_store()
    await again.start()
    try:
        assert await again.read_checkpoint("projector") == Checkpoint(7, 0)
        assert await _peek(again, "SELECT version FROM evento_consumer_schema") == [(1,)]
    finally:
        await again.stop()


async def test_newer_schema_is_refused(open_store: Opener) -> None:
    store = open_store()
    await store.start()
    await store.commit_with(
        "probe", 0, 0, _statement("INSERT INTO evento_consumer_schema (version, applied_at) VALUES (99, 0)")
    )
    await store.stop()
    newer = open_store()
    with pytest.raises(ConsumerStoreError, match="version 99, newer than this Evento knows"):
        await newer.start()
    await newer.stop()  # start() cleaned up after itself: stopping is harmless


async def test_saga_lookup_has_an_index(open_store: Opener) -> None:
    store = open_store()
    await store.start()
    catalog = {
        "sqlite": "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'evento_saga_association_lookup'",
        "postgresql": "SELECT indexname FROM pg_indexes WHERE indexname = 'evento_saga_association_lookup'",
        "mysql": "SELECT DISTINCT index_name FROM information_schema.statistics"
        " WHERE table_schema = DATABASE() AND index_name = 'evento_saga_association_lookup'",
    }
    try:
        assert await _peek(store, catalog[store.dialect]) == [("evento_saga_association_lookup",)]
    finally:
        await store.stop()


async def test_lock_and_checkpoint_hold_between_stores(open_store: Opener) -> None:
    first, second = open_store(), open_store()
    await first.start()
    await second.start()
    try:
        attempts = [
            store.try_lock("projector", f"{name}-{n}", 30)
            for n in range(10)
            for name, store in (("first", first), ("second", second))
        ]
        assert (await asyncio.gather(*attempts)).count(True) == 1
        seeded = await first.seed_checkpoint("projector", 0)
        results = await asyncio.gather(
            first.commit_checkpoint("projector", 1, seeded.version),
            second.commit_checkpoint("projector", 2, seeded.version),
            return_exceptions=True,
        )
        assert sum(isinstance(result, Checkpoint) for result in results) == 1, results
        assert await second.read_checkpoint("projector") == await first.read_checkpoint("projector")
    finally:
        await first.stop()
        await second.stop()


async def test_driver_error_in_work_reaches_the_caller_unchanged_and_is_rolled_back(open_store: Opener) -> None:
    """An SQL error in the caller's own statement is the caller's (a projector's bug), reported as the driver
    raised it, not as a failure of the store; it is not transient, so the engine's retries and dead queue apply."""
    store = open_store()
    await store.start()
    try:
        with pytest.raises(Exception, match="no_such_table") as info:
            await store.commit_with("projector", 1, 0, _query("SELECT * FROM no_such_table"))
        assert not isinstance(info.value, ConsumerStoreError)
        assert not is_transient(info.value)
        assert await store.read_checkpoint("projector") is None
        # The connection that failed is still usable.
        assert await store.commit_checkpoint("projector", 1, 0) == Checkpoint(1, 1)
    finally:
        await store.stop()


@pytest.mark.parametrize(
    "url",
    ["postgresql://postgres@127.0.0.1:{port}/evento", "mysql://root@127.0.0.1:{port}/evento"],
    ids=["postgres", "mysql"],
)
async def test_unreachable_database_is_transient(url: str) -> None:
    spec = url.format(port=free_port())
    store: SQLConsumerStateStore = (
        PostgresConsumerStateStore(spec, connect_timeout=2)
        if spec.startswith("postgresql")
        else MySQLConsumerStateStore(spec, connect_timeout=2)
    )
    with pytest.raises(ConsumerStoreUnavailableError, match="cannot connect") as info:
        await store.start()
    assert is_transient(info.value)
    await store.stop()


def _kill_postgres_sessions(url: str) -> None:
    database = url.rsplit("/", 1)[1]
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )


def _kill_mysql_sessions(url: str) -> None:
    database = url.rsplit("/", 1)[1]
    admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True)
    try:
        with admin.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()", (database,)
            )
            for (session,) in cursor.fetchall():
                cursor.execute(f"KILL {int(session)}")
    finally:
        admin.close()


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
async def test_dropped_connection_is_transient_then_replaced(backend: str) -> None:
    database = postgres_database if backend == "postgres" else mysql_database
    with database() as url:
        store: SQLConsumerStateStore = (
            PostgresConsumerStateStore(url, connections=1)
            if backend == "postgres"
            else MySQLConsumerStateStore(url, connections=1)
        )
        await store.start()
        try:
            seeded = await store.seed_checkpoint("projector", 0)
            (_kill_postgres_sessions if backend == "postgres" else _kill_mysql_sessions)(url)
            with pytest.raises(ConsumerStoreUnavailableError) as info:
                await store.commit_checkpoint("projector", 1, seeded.version)
            assert is_transient(info.value)
            # The broken connection was dropped; the next call opens a new one and nothing was lost.
            assert await store.read_checkpoint("projector") == seeded
            assert await store.commit_checkpoint("projector", 1, seeded.version) == Checkpoint(1, 1)
        finally:
            await store.stop()


# --- a database error swallowed by commit_with's work --------------------------------------------------------------


async def test_postgres_error_swallowed_by_work_is_not_reported_as_committed() -> None:
    """On PostgreSQL an error aborts the whole transaction, so work that catches it and carries on leaves nothing
    to commit: commit_with must say so, not hand back an advanced checkpoint that COMMIT silently rolled back."""
    with postgres_database() as url:
        store = PostgresConsumerStateStore(url, connections=1)
        await store.start()
        try:
            await store.commit_with("setup", 0, 0, _statement("CREATE TABLE todo_view (id TEXT PRIMARY KEY)"))
            await store.commit_with("setup", 1, 1, _statement("INSERT INTO todo_view VALUES ('t1')"))
            created = await store.seed_checkpoint("projector", 0)

            def insert_ignoring_duplicates(conn: Any) -> None:
                for todo in ("t1", "t2"):
                    with contextlib.suppress(psycopg.errors.UniqueViolation, psycopg.errors.InFailedSqlTransaction):
                        conn.execute("INSERT INTO todo_view VALUES (%s)", (todo,))

            with pytest.raises(ProjectionTransactionAbortedError, match="a database error was swallowed"):
                await store.commit_with("projector", 1, created.version, insert_ignoring_duplicates)
            assert not is_transient(ProjectionTransactionAbortedError("x"))
            assert await store.read_checkpoint("projector") == created
            # The connection is usable again, and a correct handler commits.
            rows, checkpoint = await store.commit_with(
                "projector", 1, created.version, _query("SELECT id FROM todo_view ORDER BY id")
            )
            assert (rows, checkpoint) == ([("t1",)], Checkpoint(1, created.version + 1))
        finally:
            await store.stop()


def _wait_for_lock_wait(url: str, deadline: float) -> None:
    """Block until some InnoDB transaction of the database's server waits for a row lock."""
    with contextlib.closing(pymysql.connect(**parse_mysql_url(url), autocommit=True)) as watcher:
        while time.monotonic() < deadline:
            with watcher.cursor() as cursor:
                cursor.execute("SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT'")
                if cursor.fetchone()[0] > 0:
                    return
            time.sleep(0.005)
    raise AssertionError("the other transaction never waited for the row lock")


async def test_mysql_deadlock_swallowed_by_work_is_not_reported_as_committed() -> None:
    """On MySQL/MariaDB a deadlock rolls the whole InnoDB transaction back (checkpoint update included) and later
    statements run in autocommit: work that swallows it must not get an advanced checkpoint back."""
    with mysql_database() as url:
        store = MySQLConsumerStateStore(url, connections=1)
        await store.start()
        other = pymysql.connect(**parse_mysql_url(url), autocommit=False)
        try:
            await store.commit_with("setup", 0, 0, _statement("CREATE TABLE pair (id INT PRIMARY KEY, n INT)"))
            values = ", ".join(f"({n}, 0)" for n in range(1, 201))
            await store.commit_with("setup", 1, 1, _statement(f"INSERT INTO pair VALUES {values}"))
            created = await store.seed_checkpoint("projector", 0)
            # The other transaction holds rows 2..200, so InnoDB picks the lighter work transaction as the victim.
            other.begin()
            with other.cursor() as cursor:
                cursor.execute("UPDATE pair SET n = n + 1 WHERE id >= 2")
            swallowed: list[Exception] = []

            def deadlock_and_swallow(conn: Any) -> None:
                with conn.cursor() as cursor:
                    cursor.execute("UPDATE pair SET n = n + 1 WHERE id = 1")
                    waiting = threading.Thread(
                        target=lambda: other.cursor().execute("UPDATE pair SET n = 5 WHERE id = 1")
                    )
                    waiting.start()
                    _wait_for_lock_wait(url, time.monotonic() + 10)
                    try:
                        cursor.execute("UPDATE pair SET n = n + 1 WHERE id = 2")
                    except pymysql.OperationalError as exc:
                        swallowed.append(exc)
                    waiting.join(10)

            with pytest.raises(ProjectionTransactionAbortedError):
                await store.commit_with("projector", 1, created.version, deadlock_and_swallow)
            assert [exc.args[0] for exc in swallowed] == [1213]
            other.commit()
            assert await store.read_checkpoint("projector") == created
            assert await _peek(store, "SELECT n FROM pair WHERE id IN (1, 2) ORDER BY id") == [(5,), (1,)]
        finally:
            other.close()
            await store.stop()


def test_transient_is_decided_by_the_error_type_never_by_its_message() -> None:
    """A driver's text is no contract: an error merely saying "database is locked" or "connection refused" is not
    transient (before, the consumer engine matched such texts); the stores' Unavailable errors, ConnectionError and
    TimeoutError are, anywhere in the cause chain; ConsumerSettings.transient_errors replaces the set."""
    from evento.bundle.consumers import ConsumerSettings
    from evento.errors import EventStoreUnavailableError

    assert not is_transient(RuntimeError("database is locked"))
    assert not is_transient(OSError("connection refused"))
    unavailable = [ConsumerStoreUnavailableError("x"), EventStoreUnavailableError("x"), TimeoutError()]
    unavailable.append(ConnectionError())
    assert all(is_transient(error) for error in unavailable)
    wrapped = ConsumerStoreError("outer")
    wrapped.__cause__ = EventStoreUnavailableError("inner")
    assert is_transient(wrapped)

    class VendorDriverBusy(Exception):
        pass

    custom = ConsumerSettings(transient_errors=(VendorDriverBusy,))
    assert is_transient(VendorDriverBusy(), custom.transient_errors)
    assert not is_transient(TimeoutError(), custom.transient_errors)
