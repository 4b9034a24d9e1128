"""A cluster: two `evento server` processes sharing one PostgreSQL event store, bundles connected to both.

The bundles run in the test process and reach the servers over real TCP; every command goes to whichever server
the bundle's connector picks (round robin), so each test spreads its traffic over both servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from evento import Bundle, CommandGateway, ServiceCommand, ServiceEvent, command_handler, service
from evento.consumer_stores import MemoryConsumerStateStore
from evento.errors import EventoError, LockTimeoutError
from evento.event_stores.postgres import PostgresEventStore
from evento.testing.databases import postgres_url  # noqa: F401  (fixture)
from tests.bank import (
    Account,
    Deposit,
    InsufficientFunds,
    Ledger,
    LedgerProjector,
    OpenAccount,
    SnapshottingAccount,
    Withdraw,
)
from tests.helpers import ServerProcess, start_server_process, stop_server_process, wait_until

pytestmark = pytest.mark.slow


@dataclass
class Cluster:
    url: str
    servers: list[ServerProcess]
    bundles: list[Bundle]

    @property
    def addresses(self) -> list[str]:
        return [server.bus for server in self.servers]

    async def join(self, bundle: Bundle) -> Bundle:
        from evento.transport.connector import TcpConnector

        await bundle.start(TcpConnector(self.addresses))
        self.bundles.append(bundle)
        return bundle

    def stored(self) -> list[tuple[int, str, int | None, str | None]]:
        """(sequence number, event name, aggregate version, command id) of every stored event, in order."""
        with psycopg.connect(self.url) as conn:
            rows = conn.execute(
                "SELECT sequence_number, event_name, aggregate_version, command_id FROM es_events"
                " ORDER BY sequence_number"
            ).fetchall()
        return [(row[0], row[1], row[2], row[3]) for row in rows]


@contextlib.asynccontextmanager
async def cluster(url: str, tmp_path: Path, mode: str) -> AsyncIterator[Cluster]:
    servers = [
        await start_server_process(tmp_path / f"server-{n}", "--store", url, "--es-mode", mode, "--server-id", f"s{n}")
        for n in (1, 2)
    ]
    running = Cluster(url, servers, [])
    try:
        yield running
    finally:
        for bundle in reversed(running.bundles):
            await bundle.stop()
        for server in servers:
            stop_server_process(server)


async def accounts(running: Cluster) -> CommandGateway:
    """Two instances of the Account aggregate, both connected to both servers, and a gateway sending from one."""
    bank = [await running.join(Bundle("bank", components=[Account], instance_id=f"bank-{n}")) for n in (1, 2)]
    commands, _ = bank[0].gateways(None)
    return commands


@pytest.mark.parametrize("mode", ["cpes", "apes"])
async def test_no_oversell_across_servers(postgres_url: str, tmp_path: Path, mode: str) -> None:  # noqa: F811
    """200 concurrent withdrawals of 1 from a balance of 50, spread over two servers: exactly 50 succeed."""
    async with cluster(postgres_url, tmp_path, mode) as running:
        commands = await accounts(running)
        await commands.send(OpenAccount(account="stock"))
        await commands.send(Deposit(account="stock", amount=50))
        results = await asyncio.gather(
            *(commands.send(Withdraw(account="stock", amount=1)) for _ in range(200)), return_exceptions=True
        )
        succeeded = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, InsufficientFunds)]
        others = [r for r in results if isinstance(r, BaseException) and not isinstance(r, InsufficientFunds)]
        assert others == []
        assert (len(succeeded), len(refused)) == (50, 150)
        assert sorted(event.balance for event in succeeded) == list(range(50))
        versions = [version for _, name, version, _ in running.stored() if name == "Withdrawn"]
        assert None not in versions
        assert sorted(v for v in versions if v is not None) == list(range(3, 53))


async def test_a_refusal_made_on_a_stale_cached_story_is_checked_against_the_store(
    postgres_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Commands alternate between the servers, so each server's cached story of the account is one event
    behind: a withdrawal judged on it would be refused for a balance the account no longer has. The refusal is
    checked against the stored story, and the command re-runs on it."""
    async with cluster(postgres_url, tmp_path, "cpes") as running:
        commands = await accounts(running)
        await commands.send(OpenAccount(account="alternating"))
        await commands.send(Deposit(account="alternating", amount=6))
        balances = [(await commands.send(Withdraw(account="alternating", amount=1))).balance for _ in range(6)]
        assert balances == [5, 4, 3, 2, 1, 0]
        with pytest.raises(InsufficientFunds):
            await commands.send(Withdraw(account="alternating", amount=1))


async def test_a_hot_aggregate_shared_by_two_servers_serves_every_command(
    postgres_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """600 concurrent withdrawals from one account, through both servers: every one succeeds, each on the
    balance the previous left. Without turns, the server that lost a race kept losing to the other's cached
    story and commands ran out of retries; the servers now take turns under a cluster lock while contended."""
    async with cluster(postgres_url, tmp_path, "cpes") as running:
        bank = [
            await running.join(Bundle("bank", components=[SnapshottingAccount], instance_id=f"bank-{n}"))
            for n in (1, 2)
        ]
        commands, _ = bank[0].gateways(None)
        await commands.send(OpenAccount(account="hot"))
        await commands.send(Deposit(account="hot", amount=600))
        results = await asyncio.gather(
            *(commands.send(Withdraw(account="hot", amount=1)) for _ in range(600)), return_exceptions=True
        )
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert sorted(r.balance for r in results) == list(range(600))  # type: ignore[union-attr]
        versions = [version for _, name, version, _ in running.stored() if name == "Withdrawn"]
        assert None not in versions
        assert sorted(v for v in versions if v is not None) == list(range(3, 603))


@pytest.mark.parametrize("mode", ["cpes", "apes"])
async def test_projector_sees_every_event_once_in_order_while_two_servers_write(
    postgres_url: str,  # noqa: F811
    tmp_path: Path,
    mode: str,
) -> None:
    """8 writers through 2 servers for 10 s while a projector consumes live: it sees exactly the stored events."""
    async with cluster(postgres_url, tmp_path, mode) as running:
        commands = await accounts(running)
        ledger = Ledger()
        projector = await running.join(
            Bundle(
                "ledger",
                components=[LedgerProjector],
                consumer_store=MemoryConsumerStateStore(),
                injector=lambda annotation: ledger if annotation is Ledger else None,
            )
        )
        stop_at = time.monotonic() + 10.0

        async def writer(n: int) -> int:
            sent = 0
            await commands.send(OpenAccount(account=f"w{n}"))
            while time.monotonic() < stop_at:
                await asyncio.gather(
                    *(commands.send(Deposit(account=f"w{n}", amount=1)) for _ in range(random.randint(1, 4)))
                )
                sent += 1
            return sent

        assert sum(await asyncio.gather(*(writer(n) for n in range(8)))) > 0
        stored = [(seq, name) for seq, name, _, _ in running.stored()]
        await wait_until(lambda: len(ledger.seen) >= len(stored), timeout=30, what="projector caught up")
        await projector.wait_for_head()
        assert [(seq, name) for seq, name, _ in ledger.seen] == stored


async def test_kill_one_server_mid_burst_loses_and_duplicates_nothing(
    postgres_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """kill -9 of one of two servers during a burst: bundles fail over; every acknowledged deposit is stored
    once, and nothing is stored that was not asked for."""
    async with cluster(postgres_url, tmp_path, "cpes") as running:
        commands = await accounts(running)
        for n in range(20):
            await commands.send(OpenAccount(account=f"acc-{n}"))
        acknowledged: list[int] = []
        failed = 0

        async def deposit(n: int) -> None:
            nonlocal failed
            try:
                event = await commands.send(Deposit(account=f"acc-{n % 20}", amount=n + 1))
            except EventoError:
                failed += 1
                return
            acknowledged.append(event.amount)

        burst = [asyncio.create_task(deposit(n)) for n in range(400)]
        await wait_until(lambda: len(acknowledged) >= 100, timeout=30, what="burst under way")
        running.servers[0].process.kill()
        await asyncio.gather(*burst)
        running.servers[0].process.wait()
        amounts = _deposit_amounts(running.url)
        assert len(amounts) == len(set(amounts)), "a deposit was stored twice"
        assert set(acknowledged) <= set(amounts), "an acknowledged deposit is missing"
        assert set(amounts) <= set(range(1, 401))
        assert len(acknowledged) + failed == 400
        assert failed <= 20, f"{failed} deposits failed although the other server was up"
        # Later commands on the surviving server keep working.
        assert (await commands.send(Deposit(account="acc-0", amount=1000))).amount == 1000


class Reserve(ServiceCommand):
    """Takes one seat; every reservation shares the lock id, so the cluster must run them one at a time."""

    seat: int

    @property
    def lock_id(self) -> str:
        return "the-one-room"


class Reserved(ServiceEvent):
    seat: int


@dataclass
class Room:
    inside: int = 0
    most_inside: int = 0


@service()
class Booking:
    def __init__(self, room: Room) -> None:
        self.room = room

    @command_handler
    async def reserve(self, command: Reserve) -> Reserved:
        self.room.inside += 1
        self.room.most_inside = max(self.room.most_inside, self.room.inside)
        try:
            await asyncio.sleep(0.005)  # the work a booking does: long enough for another server's call to overlap
        finally:
            self.room.inside -= 1
        return Reserved(seat=command.seat)


async def test_a_service_lock_id_holds_across_servers(postgres_url: str, tmp_path: Path) -> None:  # noqa: F811
    """Service commands sharing a lock id, sent through both servers at once, never run concurrently: the lock
    id is held cluster-wide (a PostgreSQL advisory lock), not only within each server."""
    async with cluster(postgres_url, tmp_path, "cpes") as running:
        room = Room()
        booking = await running.join(
            Bundle("booking", components=[Booking], injector=lambda annotation: room if annotation is Room else None)
        )
        commands, _ = booking.gateways(None)
        reserved = await asyncio.gather(*(commands.send(Reserve(seat=n)) for n in range(40)))
        assert sorted(event.seat for event in reserved) == list(range(40))
        assert room.most_inside == 1


async def test_a_command_that_cannot_get_its_lock_in_time_fails_without_running(
    postgres_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Another holder keeps the lock id (a stalled server, here a store in the test): the command's wait ends at
    its deadline with LockTimeoutError, and the handler never ran; once the lock is free, commands run again."""
    async with cluster(postgres_url, tmp_path, "cpes") as running:
        room = Room()
        booking = await running.join(
            Bundle("booking", components=[Booking], injector=lambda annotation: room if annotation is Room else None)
        )
        commands, _ = booking.gateways(None)
        holder = PostgresEventStore(postgres_url)
        await holder.start()
        try:
            async with holder.cluster_lock("the-one-room"):
                with pytest.raises(LockTimeoutError, match="did not run"):
                    await commands.send(Reserve(seat=1), timeout=1.0)
            assert room.most_inside == 0
            assert (await commands.send(Reserve(seat=2))).seat == 2
        finally:
            await holder.stop()


def _deposit_amounts(url: str) -> list[int]:
    import msgspec

    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT payload FROM es_events WHERE event_name = 'Deposited'").fetchall()
    return [msgspec.json.decode(bytes(row[0]))["amount"] for row in rows]
