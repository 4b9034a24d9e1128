"""What only the PostgreSQL event store promises: its two sequence modes and several servers on one database.

The shared contract is in ``evento.testing.event_store_cases``; here two :class:`PostgresEventStore` objects on one
database stand for two servers of a cluster (each has its own pool and notification connection, exactly as two
server processes would).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import psycopg
import pytest

from evento.event_stores.base import AppendRequest, VersionConflictError
from evento.event_stores.postgres import PostgresEventStore
from evento.event_stores.snowflake import timestamp_ms
from evento.messages import StoredEvent
from evento.testing.databases import postgres_url  # noqa: F401  (fixture)
from evento.testing.event_store_cases import aggregate_event, all_events, event, fetch_until
from tests.helpers import wait_until

OpenPostgres = Callable[..., Awaitable[PostgresEventStore]]


@pytest.fixture
async def open_postgres(postgres_url: str) -> AsyncIterator[OpenPostgres]:  # noqa: F811
    opened: list[PostgresEventStore] = []

    async def open_one(**options: object) -> PostgresEventStore:
        store = PostgresEventStore(postgres_url, **options)  # type: ignore[arg-type]
        await store.start()
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        await store.stop()


async def test_cpes_numbers_are_consecutive_from_one(open_postgres: OpenPostgres) -> None:
    store = await open_postgres(mode="cpes")
    stored = await asyncio.gather(*(store.append(AppendRequest(event(), None)) for _ in range(50)))
    assert sorted(e.sequence_number for e in stored) == list(range(1, 51))


async def test_apes_hides_events_younger_than_the_fetch_delay(open_postgres: OpenPostgres) -> None:
    store = await open_postgres(mode="apes", fetch_delay=0.5)
    woken: list[int] = []
    store.add_listener(woken.append)
    before = time.time_ns() // 1_000_000
    stored = await store.append(AppendRequest(event(), None))
    assert before - 5 <= timestamp_ms(stored.sequence_number) <= time.time_ns() // 1_000_000  # a snowflake id
    # Younger than the delay: unreadable, and nobody is woken for it yet (both checked while it is surely young).
    assert await store.fetch("*", 0, 10) == []
    assert woken == []
    assert time.time_ns() // 1_000_000 - timestamp_ms(stored.sequence_number) < 500
    await wait_until(lambda: woken == [stored.sequence_number], timeout=5, what="consumers woken after the delay")
    assert await store.fetch("*", 0, 10) == [stored]


async def test_servers_hear_each_other_appends(open_postgres: OpenPostgres) -> None:
    one, two = await open_postgres(), await open_postgres()
    heads: list[int] = []
    two.add_listener(heads.append)
    stored = await one.append(aggregate_event("order-1", 1))
    await wait_until(lambda: stored.sequence_number in heads, timeout=5, what="NOTIFY reached the other server")
    assert await two.head() == stored.sequence_number
    assert (await two.load_story("order-1")).events == [stored]


@pytest.mark.parametrize("mode", ["cpes", "apes"])
async def test_one_aggregate_version_wins_across_servers(open_postgres: OpenPostgres, mode: str) -> None:
    one, two = await open_postgres(mode=mode), await open_postgres(mode=mode)
    results = await asyncio.gather(
        *(store.append(aggregate_event("stock-1", 1)) for store in (one, two) for _ in range(5)),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, StoredEvent)]
    assert len(winners) == 1
    assert all(isinstance(r, VersionConflictError) for r in results if r not in winners)
    assert (await two.load_story("stock-1")).events == winners


@pytest.mark.parametrize("mode", ["cpes", "apes"])
async def test_live_reader_never_skips_an_event_committed_by_any_server(open_postgres: OpenPostgres, mode: str) -> None:
    """8 writers over 2 servers append for 3 s while a reader follows with a checkpoint, as a consumer does.

    A store that hands out numbers before commit (a plain sequence) lets a reader pass a number whose transaction
    commits later; the reader then skips that event for ever. Here every stored event must be read once, in order.
    """
    servers = [await open_postgres(mode=mode), await open_postgres(mode=mode)]
    reader = await open_postgres(mode=mode)
    stop_at = time.monotonic() + 3.0
    seen: list[StoredEvent] = []

    async def writer(n: int) -> int:
        written = 0
        while time.monotonic() < stop_at:
            store = servers[n % 2]
            await asyncio.gather(*(store.append(AppendRequest(event(), f"w{n}")) for _ in range(random.randint(1, 8))))
            written += 1
        return written

    async def follow() -> None:
        checkpoint = 0
        while True:
            batch = await reader.fetch("*", checkpoint, 50)
            for stored in batch:
                seen.append(stored)
                checkpoint = stored.sequence_number
            if not batch:
                if time.monotonic() > stop_at + 0.5:
                    return
                await asyncio.sleep(0.002)  # a consumer's wait for the next wake-up

    writers = asyncio.gather(*(writer(n) for n in range(8)))
    await asyncio.gather(writers, follow())
    everything = await all_events(reader)
    assert len(everything) > 100
    await fetch_until(reader, len(everything))
    assert [e.sequence_number for e in seen] == [e.sequence_number for e in everything]


async def test_a_malformed_notification_does_not_deafen_a_server(
    open_postgres: OpenPostgres,
    postgres_url: str,  # noqa: F811
) -> None:
    """Anyone may NOTIFY on the store's channels: garbage is logged and ignored, and the server keeps hearing the
    other servers' commits."""
    one, two = await open_postgres(), await open_postgres()
    heads: list[int] = []
    two.add_listener(heads.append)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("SELECT pg_notify('evento_events', 'not-a-number')")
    stored = await one.append(AppendRequest(event(), None))
    await wait_until(lambda: stored.sequence_number in heads, timeout=5, what="the commit heard after the garbage")


async def test_appends_run_read_committed_when_the_database_defaults_to_repeatable_read(
    open_postgres: OpenPostgres,
    postgres_url: str,  # noqa: F811
) -> None:
    """The claim function must read the highest number after the append lock is granted; under a repeatable-read
    default its snapshot would predate the lock and two servers would hand out the same numbers (a batch then
    fails and is retried append by append). The store's connections run read committed whatever the default."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        database = conn.info.dbname
        conn.execute(f"ALTER DATABASE \"{database}\" SET default_transaction_isolation = 'repeatable read'")
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SHOW default_transaction_isolation").fetchone() == ("repeatable read",)
    store = await open_postgres()
    async with store._pool.connection() as conn:  # the connections appends run on
        cursor = await conn.execute("SHOW default_transaction_isolation")
        assert await cursor.fetchone() == ("read committed",)
    stored = await asyncio.gather(*(store.append(AppendRequest(event(), None)) for _ in range(20)))
    assert sorted(e.sequence_number for e in stored) == list(range(1, 21))


async def test_a_cluster_lock_whose_session_died_is_released_and_does_not_fail_the_work(
    open_postgres: OpenPostgres,
    postgres_url: str,  # noqa: F811
) -> None:
    """The lock's session is killed while the work runs (a restart, an idle timeout): the work's outcome stands,
    and the lock is free for the next holder."""
    one, two = await open_postgres(), await open_postgres()
    async with one.cluster_lock("room-1"):
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                " AND objid = (hashtextextended('room-1', 0) & 4294967295)::oid"
            )
    async with asyncio.timeout(5), two.cluster_lock("room-1"):
        pass
