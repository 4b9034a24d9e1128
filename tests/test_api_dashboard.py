"""The dashboard and the cluster status of the server's API, on a real server with the TodoList: the figures match
the catalog and the event store, the view lists every instance with its enabled state, and the stream of
server-sent events reports joins, leaves, disables and enables, ending when its client leaves and when the server
stops."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from evento import Bundle
from evento.demo.todolist.invoker import TodoListInvoker
from evento.event_stores.postgres import PostgresEventStore
from evento.server import EventoServer
from evento.server.api import ApiSettings
from evento.server.http import ServerHttp
from evento.testing.databases import postgres_url  # noqa: F401  (fixture)
from tests.api_support import ADMIN_PASSWORD, RunningApi, bearer, login, running_api
from tests.helpers import wait_until


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[RunningApi]:
    async with running_api(tmp_path) as running:
        yield running


async def test_the_dashboard_counts_what_the_catalog_and_the_store_hold(api: RunningApi) -> None:
    invoker = api.system.invoker()
    for name in ("a", "b", "c"):
        identifier = await invoker.create_todo_list(name, "alice")
        await invoker.add_todo(identifier, "milk", "alice")
    assert api.server is not None
    await api.server.catalog_settled()
    response = await api.viewer.get("/api/dashboard")
    assert response.status_code == 200, response.text
    board = response.json()
    catalog, store = api.server.catalog, api.server.store
    assert board["clusterName"] == "evento"
    assert board["serverId"] == "api-test-server"
    assert board["servers"] == {"total": 1, "online": 1}
    assert board["bundles"] == {"total": 4, "online": 4}
    assert board["instances"] == 4
    components = Counter(str(c.info.kind) for c in await catalog.components())
    assert board["components"] == {"total": sum(components.values()), "byKind": dict(components)}
    assert {"Aggregate", "Projector", "Saga", "Invoker"} <= set(board["components"]["byKind"])
    payloads = Counter(p.info.kind for p in await catalog.payloads())
    assert board["payloads"]["byKind"] == dict(payloads)
    assert board["handlers"] == len(await catalog.handlers())
    assert board["events"] == await store.count_events() >= 6
    assert board["head"] == await store.head()
    assert board["aggregates"] == 3
    # Every event was published within the last minute: at least 6 events over the 60 s window.
    assert board["publicationWindowSeconds"] == 60
    assert board["publicationRate"] >= 6 / 60


async def test_the_cluster_view_lists_every_instance_and_server(api: RunningApi) -> None:
    response = await api.viewer.get("/api/cluster-status/view")
    assert response.status_code == 200, response.text
    view = response.json()
    assert [(s["serverId"], s["online"]) for s in view["servers"]] == [("api-test-server", True)]
    assert view["servers"][0]["httpUrl"] is None  # advertised by the runners, not by this bare test server
    assert sorted(i["bundleId"] for i in view["instances"]) == [
        "todolist-command", "todolist-query", "todolist-saga", "todolist-web"]  # fmt: skip
    assert all(i["enabled"] and i["serverId"] == "api-test-server" for i in view["instances"])


class EventStream:
    """A client of ``/api/cluster-status/stream``: its events, read as they come, by a task."""

    def __init__(self, api: RunningApi) -> None:
        self.client = httpx.AsyncClient(base_url=api.url, headers=bearer(api.viewer_token), timeout=30)
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.ended = asyncio.Event()
        self.status = 0
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async with self.client.stream("GET", "/api/cluster-status/stream") as response:
                self.status = response.status_code
                name = ""
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        name = line.removeprefix("event: ")
                    elif line.startswith("data: "):
                        self.events.append((name, json.loads(line.removeprefix("data: "))))
        finally:
            self.ended.set()

    def named(self, name: str) -> list[dict[str, Any]]:
        return [data for event, data in self.events if event == name]

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.client.aclose()


@contextlib.asynccontextmanager
async def stream_of(api: RunningApi) -> AsyncIterator[EventStream]:
    stream = EventStream(api)
    try:
        await wait_until(lambda: bool(stream.named("view")), 10, what="the stream's first view")
        yield stream
    finally:
        await stream.close()


async def test_the_stream_reports_joins_leaves_disables_and_enables(tmp_path: Path) -> None:
    settings = ApiSettings(admin_password=ADMIN_PASSWORD, cluster_poll_seconds=0.1)
    async with running_api(tmp_path, settings) as api:
        assert api.server is not None
        async with stream_of(api) as stream:
            assert stream.status == 200
            (view,) = stream.named("view")
            assert len(view["instances"]) == 4
            extra = Bundle("todolist-web", components=[TodoListInvoker], instance_id="web-2")
            await extra.start(api.server)
            await wait_until(lambda: bool(stream.named("join")), 10, what="a join event")
            assert [(e["bundleId"], e["instanceId"], e["enabled"]) for e in stream.named("join")] == [
                ("todolist-web", "web-2", True)
            ]
            (node,) = [n for n in api.server.registry.nodes if n.info.instance_id == "web-2"]
            api.server.set_enabled(node, False)
            await wait_until(lambda: bool(stream.named("disable")), 10, what="a disable event")
            api.server.set_enabled(node, True)
            await wait_until(lambda: bool(stream.named("enable")), 10, what="an enable event")
            await extra.stop()
            await wait_until(lambda: bool(stream.named("leave")), 10, what="a leave event")
            assert stream.named("leave")[0]["instanceId"] == "web-2"
            assert [event for event, _ in stream.events] == ["view", "join", "disable", "enable", "leave"]


async def test_the_stream_ends_when_its_client_leaves_and_when_the_server_stops(api: RunningApi) -> None:
    assert api.http is not None
    connections = api.http.uvicorn.server_state.connections
    before = set(connections)
    async with stream_of(api):
        streaming = connections - before
        assert len(streaming) == 1
    await wait_until(lambda: not streaming & connections, 10, what="the server let the stream's connection go")
    async with stream_of(api) as stream:
        started = time.monotonic()
        await api.http.stop()
        await asyncio.wait_for(stream.ended.wait(), 10)
        # Ended by the API, not cut by uvicorn's graceful-shutdown timeout (5 s).
        assert time.monotonic() - started < 3


async def test_any_server_of_a_cluster_shows_every_server_s_instances(postgres_url: str) -> None:  # noqa: F811
    """Two servers on one PostgreSQL: the view and the stream of the first show an instance joining the second."""
    servers = [EventoServer(PostgresEventStore(postgres_url), server_id=f"server-{n}") for n in (1, 2)]
    settings = ApiSettings(admin_password=ADMIN_PASSWORD, cluster_poll_seconds=0.1)
    https = [ServerHttp(server, settings, "127.0.0.1", 0) for server in servers]
    bundle = Bundle("todolist-web", components=[TodoListInvoker], instance_id="web-on-2")
    try:
        for server, http in zip(servers, https, strict=True):
            await server.start()
            await http.start()
        token = await login(https[0].url(), "admin", ADMIN_PASSWORD)
        async with httpx.AsyncClient(base_url=https[0].url(), headers=bearer(token)) as first:
            view = (await first.get("/api/cluster-status/view")).json()
            assert sorted((s["serverId"], s["online"]) for s in view["servers"]) == [
                ("server-1", True), ("server-2", True)]  # fmt: skip
            assert view["instances"] == []
            events: list[str] = []

            async def listen() -> None:
                async with first.stream("GET", "/api/cluster-status/stream") as response:
                    async for line in response.aiter_lines():
                        if line.startswith("data: ") and events and events[-1] == "join":
                            assert json.loads(line.removeprefix("data: "))["serverId"] == "server-2"
                        if line.startswith("event: "):
                            events.append(line.removeprefix("event: "))

            listening = asyncio.create_task(listen())
            try:
                await wait_until(lambda: events == ["view"], 10, what="the stream's view")
                await bundle.start(servers[1])
                await wait_until(lambda: events == ["view", "join"], 10, what="a join on the other server")
            finally:
                listening.cancel()
                await asyncio.gather(listening, return_exceptions=True)
            view = (await first.get("/api/cluster-status/view")).json()
            assert [(i["instanceId"], i["serverId"]) for i in view["instances"]] == [("web-on-2", "server-2")]
            board = (await first.get("/api/dashboard")).json()
            assert (board["servers"], board["instances"]) == ({"total": 2, "online": 2}, 1)
    finally:
        if bundle.info in [node.info for node in servers[1].registry.nodes]:
            await bundle.stop()
        for server, http in zip(servers, https, strict=True):
            await http.stop()
            await server.stop()
