"""The control plane of a cluster: two `evento server` processes on one PostgreSQL. The API of either shows the
whole cluster (bundles and instances of both servers, from the shared catalog), and an admin request made through
server A reaches a consumer whose only instance is connected to server B (relayed to B's API with the caller's
token, which every server of the cluster accepts)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from evento import Bundle, ConsumerSettings, event_handler, projector
from evento.consumer_stores import MemoryConsumerStateStore
from evento.messages import SetConsumerEnabled
from evento.server.users import Role, UserStore
from evento.storage.database import PostgresDatabase
from evento.testing.databases import postgres_url  # noqa: F401  (fixture)
from evento.transport.connector import TcpConnector
from tests.api_support import ADMIN_PASSWORD, DEADLINE, bearer, login
from tests.helpers import ServerProcess, start_server_process, stop_server_process, wait_until
from tests.ticks import Tick, Ticked, Ticker

pytestmark = pytest.mark.slow

CONSUMER = "tally_ClusterTally_1_*"
VIEWER, VIEWER_PASSWORD = "vera", "viewer-pass-for-cluster-tests"


@dataclass
class Tally:
    """The ticks the tally handled and those it fails on."""

    handled: list[int] = field(default_factory=list)
    poisoned: set[int] = field(default_factory=set)


@projector(version=1)
class ClusterTally:
    """Counts ticks, failing (no retry) on poisoned ones."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally

    @event_handler(retry=0)
    def on_ticked(self, event: Ticked) -> None:
        if event.n in self.tally.poisoned:
            raise ValueError(f"tick {event.n} is poisoned")
        self.tally.handled.append(event.n)


@dataclass
class Cluster:
    a: ServerProcess
    b: ServerProcess
    client_a: httpx.AsyncClient
    client_b: httpx.AsyncClient


@pytest.fixture
async def cluster(postgres_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:  # noqa: F811
    started = await asyncio.gather(
        *(
            start_server_process(
                tmp_path / name, "--store", postgres_url, "--server-id", name, "--admin-password", ADMIN_PASSWORD
            )
            for name in ("a", "b")
        ),
        return_exceptions=True,
    )
    servers = [server for server in started if isinstance(server, ServerProcess)]
    try:
        failed = [error for error in started if isinstance(error, BaseException)]
        if failed:
            raise failed[0]
        a, b = servers
        await add_viewer(postgres_url)
        # One login, on A: its token is signed with the cluster's key, so B takes it too.
        token = await login(a.http, "admin", ADMIN_PASSWORD)
        async with (
            httpx.AsyncClient(base_url=a.http, headers=bearer(token), timeout=DEADLINE) as client_a,
            httpx.AsyncClient(base_url=b.http, headers=bearer(token), timeout=DEADLINE) as client_b,
        ):
            yield Cluster(a, b, client_a, client_b)
    finally:
        for server in servers:
            stop_server_process(server)


async def add_viewer(url: str) -> None:
    """A viewer in the cluster's users table (as ``evento users add`` would write it)."""
    database = PostgresDatabase(url)
    await database.start()
    try:
        users = UserStore(database)
        await users.start()
        await users.add(VIEWER, VIEWER_PASSWORD, Role.VIEWER)
    finally:
        await database.stop()


async def get(client: httpx.AsyncClient, path: str) -> Any:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_api_of_one_server_shows_and_administers_the_whole_cluster(cluster: Cluster) -> None:
    tally = Tally(poisoned={3})
    ticker = Bundle("ticker", components=[Ticker], instance_id="ticker-1")
    reader = Bundle(
        "tally",
        components=[ClusterTally],
        instance_id="tally-1",
        consumer_store=MemoryConsumerStateStore(),
        injector=lambda annotation: tally if annotation is Tally else None,
        consumer_settings=ConsumerSettings(error_delay=0.05),
    )
    # The writer is connected to both servers, the tally to B only.
    await ticker.start(TcpConnector([cluster.a.bus, cluster.b.bus]))
    await reader.start(TcpConnector(cluster.b.bus))
    try:
        commands, _ = ticker.gateways(None)
        for n in range(1, 6):
            await commands.send(Tick(n=n))

        # A lists B's instance (and the writer on both), from the shared catalog.
        async def listed() -> bool:
            bundles = {b["bundleId"]: b for b in (await get(cluster.client_a, "/api/bundle/"))["items"]}
            return "tally" in bundles and bundles["tally"]["online"] and len(bundles["ticker"]["instances"]) == 2

        await wait_until(listed, DEADLINE, what="A listing the bundles of both servers")
        bundles = {b["bundleId"]: b for b in (await get(cluster.client_a, "/api/bundle/"))["items"]}
        assert [(i["instanceId"], i["serverId"]) for i in bundles["tally"]["instances"]] == [("tally-1", "b")]
        assert sorted(i["serverId"] for i in bundles["ticker"]["instances"]) == ["a", "b"]
        (consumer,) = (await get(cluster.client_a, "/api/consumer/"))["items"]
        assert (consumer["consumerId"], consumer["instances"]) == (CONSUMER, ["tally-1"])
        assert {c["name"] for c in (await get(cluster.client_a, "/api/catalog/component/"))["items"]} == {
            "Ticker",
            "ClusterTally",
        }

        # A's API reaches the tally through B: its status, its dead events, and actions on them.
        async def caught_up() -> bool:
            status = await get(cluster.client_a, f"/api/consumer/{CONSUMER}")
            return bool(status["lag"] == 0 and status["deadEvents"] == 1)

        await wait_until(caught_up, DEADLINE, what="the tally caught up, seen through A")
        status = await get(cluster.client_a, f"/api/consumer/{CONSUMER}")
        assert (status["instanceId"], status["serverId"], status["holdsLock"]) == ("tally-1", "b", True)
        (dead,) = (await get(cluster.client_a, f"/api/consumer/{CONSUMER}/event"))["items"]
        assert (dead["eventName"], dead["payload"], dead["error"]) == (
            "Ticked",
            {"n": 3, "context": "default"},
            "ValueError: tick 3 is poisoned",
        )
        flagged = await cluster.client_a.put(f"/api/consumer/{CONSUMER}/event/{dead['sequenceNumber']}?retry=true")
        assert flagged.status_code == 204, flagged.text
        tally.poisoned.clear()
        consumed = await cluster.client_a.post(f"/api/consumer/{CONSUMER}/consume-dead-queue")
        assert consumed.json() == {"processed": 1}
        assert sorted(tally.handled) == [1, 2, 3, 4, 5]

        paused = await cluster.client_a.post(f"/api/consumer/{CONSUMER}/disable")
        assert paused.status_code == 200, paused.text
        assert (paused.json()["enabled"], paused.json()["serverId"]) == (False, "b")
        assert (await get(cluster.client_b, f"/api/consumer/{CONSUMER}"))["enabled"] is False
        enabled = await cluster.client_a.post(f"/api/consumer/{CONSUMER}/enable")
        assert enabled.json()["enabled"] is True

        reset = await cluster.client_a.post(f"/api/consumer/{CONSUMER}/reset", json={"fromSequenceNumber": 0})
        assert reset.status_code == 202, reset.text
        await wait_until(lambda: len(tally.handled) == 10, DEADLINE, what="the replay asked through A")
        assert sorted(tally.handled) == sorted([1, 2, 3, 4, 5] * 2)

        # A relayed request carries its caller's rights: a viewer reads through A but acts neither through A nor
        # by calling B's relay itself; without credentials the relay answers nothing.
        viewer = bearer(await login(cluster.a.http, VIEWER, VIEWER_PASSWORD))
        seen = await cluster.client_a.get(f"/api/consumer/{CONSUMER}", headers=viewer)
        assert (seen.status_code, seen.json()["serverId"]) == (200, "b")
        assert (await cluster.client_a.post(f"/api/consumer/{CONSUMER}/disable", headers=viewer)).status_code == 403
        relay = f"/api/consumer/{CONSUMER}/relay"
        disable = msgspec.json.encode(SetConsumerEnabled(CONSUMER, False))
        assert (await cluster.client_b.post(relay, content=disable, headers=viewer)).status_code == 403
        async with httpx.AsyncClient(base_url=cluster.b.http, timeout=DEADLINE) as anonymous:
            assert (await anonymous.post(relay, content=disable)).status_code == 401
        assert (await get(cluster.client_b, f"/api/consumer/{CONSUMER}"))["enabled"] is True
    finally:
        await reader.stop()
        await ticker.stop()
