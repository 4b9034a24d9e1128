"""The catalog the server keeps (evento.server.catalog), on real SQLite and PostgreSQL databases: registrations
replace a bundle's rows, what telemetry learns a handler sends is merged into it, instances count only while
their server beats, a bundle without instances stays listed (offline) until deleted and survives a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from evento import Bundle
from evento.discovery import ComponentKind, NodeInfo
from evento.event_stores import SQLiteEventStore
from evento.messages import HandlerTelemetry, ReportTelemetry
from evento.server import EventoServer
from evento.server.catalog import BundleNotFoundError, BundleOnlineError, Catalog
from evento.storage.database import Database, PostgresDatabase, SQLiteDatabase
from evento.testing.databases import postgres_database
from tests.bank import Account, BonusDesk, BonusSaga, BonusService, Ledger, LedgerProjector
from tests.helpers import wait_until


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where the catalog's tables go: a SQLite file, or a throwaway PostgreSQL database."""
    if request.param == "sqlite":
        yield str(tmp_path / "catalog.db")
    else:
        with postgres_database() as url:
            yield url


def open_database(url: str) -> Database:
    return PostgresDatabase(url) if url.startswith("postgresql://") else SQLiteDatabase(url)


@pytest.fixture
async def catalogs(database_url: str) -> AsyncIterator[list[Catalog]]:
    """Catalogs of servers sharing one database, started by the test with :func:`start_catalog`; stopped after."""
    started: list[Catalog] = []
    yield started
    for catalog in started:
        await catalog.stop()
        await catalog.database.stop()


async def start_catalog(catalogs: list[Catalog], url: str, server_id: str, heartbeat_seconds: float = 5.0) -> Catalog:
    database = open_database(url)
    await database.start()
    catalog = Catalog(database, server_id, heartbeat_seconds=heartbeat_seconds)
    await catalog.start()
    catalogs.append(catalog)
    return catalog


def bank_bundle(*components: type, version: int = 1) -> Bundle:
    """A bundle of the bank's components (its registration is what the catalog records)."""

    def provide(annotation: object) -> object:
        provided: dict[object, object] = {Ledger: Ledger(), BonusDesk: BonusDesk()}
        return provided.get(annotation)

    return Bundle("bank", components=components, version=version, injector=provide, description="The bank")


async def join(catalog: Catalog, bundle: Bundle, instance: str = "i-1") -> NodeInfo:
    info = NodeInfo(bundle.bundle_id, bundle.version, instance)
    await catalog.instance_joined(info)
    await catalog.record_registration(info, bundle.registration())
    await catalog.instance_enabled(info, True)
    return info


async def test_a_registration_is_recorded_and_the_next_one_replaces_it(
    catalogs: list[Catalog], database_url: str
) -> None:
    catalog = await start_catalog(catalogs, database_url, "s1")
    info = await join(catalog, bank_bundle(Account, LedgerProjector, BonusSaga, BonusService))

    (bundle,) = await catalog.bundles()
    assert (bundle.bundle_id, bundle.version, bundle.description, bundle.online) == ("bank", 1, "The bank", True)
    assert [(i.instance_id, i.server_id, i.enabled) for i in bundle.instances] == [("i-1", "s1", True)]
    components = {c.info.name: c.info for c in await catalog.components()}
    assert {name: info.kind for name, info in components.items()} == {
        "Account": ComponentKind.AGGREGATE,
        "LedgerProjector": ComponentKind.PROJECTOR,
        "BonusSaga": ComponentKind.SAGA,
        "BonusService": ComponentKind.SERVICE,
    }
    assert components["Account"].domain == "tests"  # no @domain: the package of its module
    assert components["Account"].source_file is not None
    assert components["Account"].source_file.endswith("bank.py")
    handlers = {(h.info.component, h.info.payload): h.info for h in await catalog.handlers()}
    sends = handlers["BonusSaga", "Deposited"].invoked_commands
    assert list(sends) == ["PayBonus"]
    assert sends["PayBonus"].isdigit()  # the line the analysis found it on
    assert handlers["BonusSaga", "AccountOpened"].association_property == "account"
    payloads = {p.info.name: p for p in await catalog.payloads()}
    assert payloads["Deposited"].producers == ("Account",)
    assert set(payloads["Deposited"].consumers) == {"Account", "LedgerProjector", "BonusSaga"}
    assert payloads["PayBonus"].producers == ("BonusSaga",)
    assert payloads["PayBonus"].consumers == ("BonusService",)
    assert payloads["Deposit"].info.json_schema["$ref"] == "#/$defs/Deposit"

    # Version 2 has only the aggregate: everything else of version 1 is gone, in one go.
    second = bank_bundle(Account, version=2)
    await catalog.record_registration(NodeInfo("bank", 2, info.instance_id), second.registration())
    assert [b.version for b in await catalog.bundles()] == [2]
    assert [c.info.name for c in await catalog.components()] == ["Account"]
    assert {h.info.component for h in await catalog.handlers()} == {"Account"}
    assert "PayBonus" not in {p.info.name for p in await catalog.payloads()}


async def test_sends_learned_at_run_time_are_merged_into_the_handler(
    catalogs: list[Catalog], database_url: str
) -> None:
    catalog = await start_catalog(catalogs, database_url, "s1")
    await join(catalog, bank_bundle(Account, LedgerProjector, BonusSaga, BonusService))
    report = ReportTelemetry(
        started=0,
        ended=1,
        handlers=[
            HandlerTelemetry(
                component="LedgerProjector", component_kind="Projector", handler_kind="EventHandler",
                payload="Deposited", count=3, total_ms=3.0, min_ms=1.0, max_ms=1.0, last_ms=1.0, arrivals=3,
                sends={"Withdraw": 2, "SomeBalanceQuery": 1, "NeverSent": 0},
            )
        ],
    )  # fmt: skip
    await catalog.learn_sends("bank", report)
    await catalog.learn_sends("bank", report)  # the next interval's report says it again: nothing new

    handlers = {(h.info.component, h.info.payload): h.info for h in await catalog.handlers("bank")}
    learned = handlers["LedgerProjector", "Deposited"]
    # A declared payload is classified by its kind; an unknown one by its name. No line: no analysis saw it.
    assert learned.invoked_commands == {"Withdraw": ""}
    assert learned.invoked_queries == {"SomeBalanceQuery": ""}
    assert handlers["LedgerProjector", "AccountOpened"].invoked_commands == {}
    assert (await catalog.handlers("nobody")) == []
    withdraw = next(p for p in await catalog.payloads() if p.info.name == "Withdraw")
    assert "LedgerProjector" in withdraw.producers

    # Another server of the cluster learning the same send writes nothing twice (and fails on nothing).
    other = await start_catalog(catalogs, database_url, "s2")
    await other.learn_sends("bank", report)
    assert (await other.handlers("bank")) == await catalog.handlers("bank")

    # What was learned of version 1's code is forgotten when version 2 registers.
    second = bank_bundle(LedgerProjector, version=2)
    await catalog.record_registration(NodeInfo("bank", 2, "i-1"), second.registration())
    (deposited,) = [h.info for h in await catalog.handlers("bank") if h.info.payload == "Deposited"]
    assert deposited.invoked_commands == {}


async def test_a_bundle_without_instances_stays_offline_until_deleted(
    catalogs: list[Catalog], database_url: str
) -> None:
    catalog = await start_catalog(catalogs, database_url, "s1")
    info = await join(catalog, bank_bundle(Account))
    with pytest.raises(BundleOnlineError):
        await catalog.delete_bundle("bank")
    with pytest.raises(BundleNotFoundError):
        await catalog.delete_bundle("nobody")

    await catalog.instance_left(info)
    (bundle,) = await catalog.bundles()
    assert (bundle.online, bundle.instances) == (False, ())
    assert bundle.last_seen_ms >= bundle.first_seen_ms
    assert [c.info.name for c in await catalog.components()] == ["Account"]

    await catalog.delete_bundle("bank")
    assert await catalog.bundles() == []
    assert await catalog.components() == []
    assert await catalog.handlers() == []
    assert await catalog.payloads() == []


async def test_instances_count_while_their_server_beats_and_go_when_it_stops(
    catalogs: list[Catalog], database_url: str
) -> None:
    """Two servers on one database: each sees the other's instances; a server that stops cleanly takes its
    instances with it at once, one that stops beating (killed, cut off) loses them when its heartbeat is stale."""
    beat = 0.1
    first = await start_catalog(catalogs, database_url, "s1", heartbeat_seconds=beat)
    second = await start_catalog(catalogs, database_url, "s2", heartbeat_seconds=beat)
    await first.advertise("http://127.0.0.1:1")
    await join(first, bank_bundle(Account), "i-1")
    await join(second, bank_bundle(Account), "i-2")

    assert {(i.instance_id, i.server_id) for i in await first.instances()} == {("i-1", "s1"), ("i-2", "s2")}
    assert {s.server_id: (s.online, s.http_url) for s in await second.servers()} == {
        "s1": (True, "http://127.0.0.1:1"),
        "s2": (True, None),
    }

    # The second server goes silent without stopping: its instance counts until its heartbeat is stale.
    assert second._heartbeat is not None
    second._heartbeat.cancel()

    async def only_first() -> bool:
        return {i.instance_id for i in await first.instances()} == {"i-1"}

    await wait_until(only_first, 10, what="the silent server's instance no longer online")
    assert {s.server_id: s.online for s in await first.servers()} == {"s1": True, "s2": False}
    assert [b.online for b in await first.bundles()] == [True]  # i-1 still is

    # The first stops cleanly: its instance is gone at once, and the bundle is offline.
    catalogs.remove(first)
    await first.stop()
    third = await start_catalog(catalogs, database_url, "s3", heartbeat_seconds=beat)
    assert await third.instances() == []
    assert [b.online for b in await third.bundles()] == [False]
    await first.database.stop()


async def test_a_restarted_server_drops_the_instances_its_previous_run_left(
    catalogs: list[Catalog], database_url: str
) -> None:
    crashed = await start_catalog(catalogs, database_url, "s1")
    await join(crashed, bank_bundle(Account), "i-1")
    catalogs.remove(crashed)
    assert crashed._heartbeat is not None
    crashed._heartbeat.cancel()  # it dies: no clean stop
    await crashed.database.stop()

    restarted = await start_catalog(catalogs, database_url, "s1")
    assert await restarted.instances() == []
    assert [b.bundle_id for b in await restarted.bundles()] == ["bank"]


async def test_servers_starting_together_create_the_tables_once() -> None:
    """Concurrent CREATE TABLE IF NOT EXISTS collide on PostgreSQL unless serialised: four servers at once."""
    with postgres_database() as url:
        databases = [PostgresDatabase(url) for _ in range(4)]
        for database in databases:
            await database.start()
        catalogs = [Catalog(database, f"s{n}") for n, database in enumerate(databases)]
        try:
            await asyncio.gather(*(catalog.start() for catalog in catalogs))
            assert len(await catalogs[0].servers()) == 4
        finally:
            for catalog in catalogs:
                await catalog.stop()
                await catalog.database.stop()


async def test_two_servers_recording_one_bundle_at_once_agree(catalogs: list[Catalog], database_url: str) -> None:
    """An instance joins every server of its cluster: both record its registration at the same moment."""
    servers = [await start_catalog(catalogs, database_url, f"s{n}") for n in (1, 2)]
    bundle = bank_bundle(Account, LedgerProjector, BonusSaga, BonusService)
    for _ in range(5):
        await asyncio.gather(*(join(server, bundle, "i-1") for server in servers))
    assert len(await servers[0].components()) == 4
    assert await servers[0].handlers() == await servers[1].handlers()
    assert {i.server_id for i in await servers[1].instances()} == {"s1", "s2"}


async def test_the_catalog_survives_a_server_restart(tmp_path: Path) -> None:
    """What bundles declared is still there after the server restarts; the bundles are offline until they
    connect again."""
    server = EventoServer(SQLiteEventStore(tmp_path / "events.db"), server_id="s1")
    await server.start()
    bundle = bank_bundle(Account, LedgerProjector)
    await bundle.start(server)
    await server.catalog_settled()
    before = await server.catalog.handlers()
    assert [b.online for b in await server.catalog.bundles()] == [True]
    await bundle.stop()
    await server.stop()

    restarted = EventoServer(SQLiteEventStore(tmp_path / "events.db"), server_id="s1")
    await restarted.start()
    try:
        (offline,) = await restarted.catalog.bundles()
        assert (offline.bundle_id, offline.online) == ("bank", False)
        assert await restarted.catalog.handlers() == before
        assert [c.consumer_id for c in await restarted.admin.consumers()] == ["bank_LedgerProjector_1_*"]
    finally:
        await restarted.stop()
