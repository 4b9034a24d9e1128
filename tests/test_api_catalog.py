"""The catalog through the REST API, against a real server with the TodoList bundles, in process and over TCP:
every TodoList payload (with its JSON Schema), component and handler (with what it sends) is listed; a send only
telemetry saw is merged in; a bundle cannot be deleted while online; and the catalog survives a restart of the
server (its bundles offline, still listed)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from evento.demo.todolist import payloads as todolist_payloads
from evento.event_stores import SQLiteEventStore
from evento.messages import HandlerTelemetry, ReportTelemetry
from evento.payloads import Payload, payload_kind, payload_schema
from evento.server import EventoServer
from evento.server.api import ApiSettings
from evento.server.http import ServerHttp
from tests.api_support import (
    ADMIN_PASSWORD,
    DEADLINE,
    RunningApi,
    bearer,
    login,
    running_api,
    running_api_process,
)
from tests.helpers import start_server_process, stop_server_process, wait_until

TODOLIST_BUNDLES = ["todolist-command", "todolist-query", "todolist-saga", "todolist-web"]

#: The TodoList's components, by kind.
COMPONENTS = {
    "TodoListAggregate": ("Aggregate", "todolist-command"),
    "TodoListProjector": ("Projector", "todolist-query"),
    "TodoListProjection": ("Projection", "todolist-query"),
    "ErpTodoListActivityRegistrationSaga": ("Saga", "todolist-saga"),
    "TodoListNotificationObserver": ("Observer", "todolist-saga"),
    "ErpService": ("Service", "todolist-saga"),
    "NotificationService": ("Service", "todolist-saga"),
    "TodoListInvoker": ("Invoker", "todolist-web"),
}


def todolist_payload_classes() -> dict[str, type[Payload]]:
    """Every payload class of the TodoList that travels: its module's classes in the TodoList domain, less the
    view that only nests in another."""
    return {
        name: cls
        for name, cls in vars(todolist_payloads).items()
        if isinstance(cls, type) and getattr(cls, "__evento_domain__", None) == "TodoList" and name != "TodoView"
    }


@pytest.fixture(params=["inprocess", "tcp"])
async def todo_api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunningApi]:
    """The API with the TodoList on it: an in-process server, or a server process the bundles reach over TCP."""
    opened = running_api(tmp_path) if request.param == "inprocess" else running_api_process(tmp_path)
    async with opened as running:
        await wait_for_bundles(running.viewer, online=True)
        yield running


async def wait_for_bundles(client: httpx.AsyncClient, *, online: bool) -> list[dict[str, Any]]:
    """The TodoList bundles once the catalog lists all four (registrations are written in the background)."""
    found: list[dict[str, Any]] = []

    async def listed() -> bool:
        nonlocal found
        response = await client.get("/api/bundle/")
        assert response.status_code == 200, response.text
        found = response.json()["items"]
        return [b["bundleId"] for b in found] == TODOLIST_BUNDLES and all(b["online"] is online for b in found)

    await wait_until(listed, DEADLINE, what=f"the TodoList bundles listed {'online' if online else 'offline'}")
    return found


async def get(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_every_todolist_payload_is_in_the_catalog_with_its_schema(todo_api: RunningApi) -> None:
    client = todo_api.viewer
    expected = todolist_payload_classes()
    page = await get(client, "/api/catalog/payload/", size=500)
    assert page["total"] == len(expected) == 17
    listed = {item["name"]: item for item in page["items"]}
    assert set(listed) == set(expected)
    for name, cls in expected.items():
        item = listed[name]
        assert (item["kind"], item["domain"]) == (payload_kind(cls), "TodoList"), name
        detail = await get(client, f"/api/catalog/payload/{name}")
        assert detail["jsonSchema"] == payload_schema(cls), name
        assert detail["sourceFile"].endswith("todolist/payloads.py")
    created = listed["TodoListCreatedEvent"]
    assert created["description"] == "A todo list was created; ``content`` is its name."
    assert created["producers"] == ["TodoListAggregate"]
    assert set(created["consumers"]) == {
        "TodoListAggregate",
        "TodoListProjector",
        "ErpTodoListActivityRegistrationSaga",
    }
    assert set(created["bundleIds"]) == {"todolist-command", "todolist-query", "todolist-saga"}
    assert listed["NotificationSendCommand"]["producers"] == ["TodoListNotificationObserver"]
    assert listed["TodoListView"]["producers"] == ["TodoListProjection"]
    handlers = (await get(client, "/api/catalog/payload/TodoListViewFindByIdentifierQuery"))["handlers"]
    assert [(h["component"], h["returnType"]) for h in handlers] == [("TodoListProjection", "TodoListView")]

    # Filters and paging.
    events = await get(client, "/api/catalog/payload/", kind="domainevent")
    assert {item["name"] for item in events["items"]} == {
        n for n, c in expected.items() if payload_kind(c) == "DomainEvent"
    }
    assert [i["name"] for i in (await get(client, "/api/catalog/payload/", q="erp"))["items"]] == [
        "ErpUserActivityRegisterCommand",
        "ErpUserActivityRegisteredEvent",
    ]
    assert (await get(client, "/api/catalog/payload/", domain="elsewhere"))["total"] == 0
    last = await get(client, "/api/catalog/payload/", page=3, size=5)
    assert (last["total"], last["page"], last["size"], len(last["items"])) == (17, 3, 5, 2)
    missing = await client.get("/api/catalog/payload/NoSuchPayload")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_every_todolist_component_and_handler_is_in_the_catalog_with_its_sends(todo_api: RunningApi) -> None:
    client = todo_api.viewer
    page = await get(client, "/api/catalog/component/")
    assert {c["name"]: (c["kind"], c["bundleId"]) for c in page["items"]} == COMPONENTS
    for component in page["items"]:
        assert component["description"], component["name"]
        assert component["domain"] == "todolist"
        assert component["sourceFile"].endswith(".py")
        assert component["line"] > 0
    saga_bundle = await get(client, "/api/catalog/component/", bundleId="todolist-saga", kind="Service")
    assert sorted(c["name"] for c in saga_bundle["items"]) == ["ErpService", "NotificationService"]

    # Every handler the bundles declared, with the sends their analysis found (line numbers included).
    listed = (await get(client, "/api/handler/", size=500))["items"]
    declared = {
        (bundle.bundle_id, h.component, h.payload): h
        for bundle in todo_api.system.bundles
        for h in bundle.registration().handlers
    }
    assert {(h["bundleId"], h["component"], h["payload"]) for h in listed} == set(declared)
    for item in listed:
        info = declared[item["bundleId"], item["component"], item["payload"]]
        assert item["handlerId"] == f"{item['bundleId']}:{item['component']}:{item['payload']}"
        assert (item["handlerKind"], item["returnType"]) == (info.handler_kind, info.return_type)
        commands = {i["payload"]: i["line"] for i in item["invokedCommands"]}
        queries = {i["payload"]: i["line"] for i in item["invokedQueries"]}
        assert commands == {name: int(line) for name, line in info.invoked_commands.items()}
        assert queries == {name: int(line) for name, line in info.invoked_queries.items()}
    observer = (await get(client, "/api/catalog/component/TodoListNotificationObserver"))["handlers"]
    assert [(h["payload"], [i["payload"] for i in h["invokedCommands"]], [i["payload"] for i in h["invokedQueries"]])
            for h in observer] == [
        ("TodoListTodoCheckedEvent", ["NotificationSendCommand"], ["TodoListViewFindByIdentifierQuery"])
    ]  # fmt: skip
    saga = await get(client, "/api/handler/", component="ErpTodoListActivityRegistrationSaga")
    assert {h["payload"]: h["associationProperty"] for h in saga["items"]}["ErpUserActivityRegisteredEvent"] == (
        "resource_identifier"
    )
    assert {h["associationProperty"] for h in saga["items"]} == {"identifier", "resource_identifier"}
    checked = next(h for h in saga["items"] if h["payload"] == "TodoListTodoCheckedEvent")
    assert [i["payload"] for i in checked["invokedCommands"]] == ["ErpUserActivityRegisterCommand"]

    # A bundle with its components and handlers.
    query = await get(client, "/api/bundle/todolist-query")
    assert (query["bundleId"], query["version"], query["online"]) == ("todolist-query", 1, True)
    assert [i["instanceId"] for i in query["instances"]] == ["replica-1"]
    assert sorted(c["name"] for c in query["components"]) == ["TodoListProjection", "TodoListProjector"]
    assert len(query["handlers"]) == 8  # six events projected, two queries answered


async def test_a_send_seen_only_at_run_time_is_merged_into_its_handler(todo_api: RunningApi) -> None:
    """What a handler sends that the analysis could not see (a payload class chosen at run time) comes with the
    telemetry reports: the catalog adds it to the handler, with no line."""
    report = ReportTelemetry(
        started=0,
        ended=1,
        handlers=[
            HandlerTelemetry(
                component="TodoListInvoker", component_kind="Invoker", handler_kind="InvocationHandler",
                payload="TodoListInvoker::create_todo_list", count=1, total_ms=1.0, min_ms=1.0, max_ms=1.0,
                last_ms=1.0, arrivals=1, sends={"TodoListCreateCommand": 1, "TodoListListItemViewSearchQuery": 1},
            )
        ],
    )  # fmt: skip
    await todo_api.system.web.outbox.request(report, DEADLINE)  # through the bundle's own link (in process / TCP)
    client = todo_api.viewer

    async def learned() -> bool:
        found = await get(client, "/api/handler/", payload="TodoListInvoker::create_todo_list")
        return bool(found["items"][0]["invokedQueries"])

    await wait_until(learned, DEADLINE, what="the learned query in the handler")
    (handler,) = (await get(client, "/api/handler/", payload="TodoListInvoker::create_todo_list"))["items"]
    assert handler["invokedQueries"] == [{"payload": "TodoListListItemViewSearchQuery", "line": None, "learned": True}]
    (command,) = handler["invokedCommands"]  # known to the analysis already: kept with its line
    assert (command["payload"], command["learned"]) == ("TodoListCreateCommand", False)
    assert isinstance(command["line"], int)
    search = await get(client, "/api/catalog/payload/TodoListListItemViewSearchQuery")
    assert "TodoListInvoker" in search["producers"]


@contextlib.asynccontextmanager
async def restarted(todo: RunningApi, directory: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The same server started again on its data, without bundles: a client of its API as the admin."""
    if todo.process is None:
        server = EventoServer(SQLiteEventStore(directory / "events.db"), server_id="api-test-server")
        await server.start()
        http = ServerHttp(server, ApiSettings(admin_password=ADMIN_PASSWORD), "127.0.0.1", 0)
        try:
            await http.start()
            async with admin_client(http.url()) as client:
                yield client
        finally:
            await http.stop()
            await server.stop()
        return
    process = await start_server_process(directory / "server", "--admin-password", ADMIN_PASSWORD)
    try:
        async with admin_client(process.http) as client:
            yield client
    finally:
        stop_server_process(process)


@contextlib.asynccontextmanager
async def admin_client(url: str) -> AsyncIterator[httpx.AsyncClient]:
    token = await login(url, "admin", ADMIN_PASSWORD)
    async with httpx.AsyncClient(base_url=url, headers=bearer(token), timeout=DEADLINE) as client:
        yield client


@pytest.mark.parametrize("where", ["inprocess", "tcp"])
async def test_the_catalog_survives_a_server_restart(tmp_path: Path, where: str) -> None:
    opened = running_api(tmp_path) if where == "inprocess" else running_api_process(tmp_path)
    async with opened as todo:
        await wait_for_bundles(todo.viewer, online=True)
        handlers = (await get(todo.viewer, "/api/handler/", size=500))["items"]
        online = await todo.admin.delete("/api/bundle/todolist-web")
        assert online.status_code == 409, online.text
        assert "online" in online.json()["detail"]
        forbidden = await todo.viewer.delete("/api/bundle/todolist-web")
        assert forbidden.status_code == 403

    async with restarted(todo, tmp_path) as client:
        bundles = await wait_for_bundles(client, online=False)
        assert all(b["instances"] == [] for b in bundles)
        assert (await get(client, "/api/handler/", size=500))["items"] == handlers
        assert (await get(client, "/api/catalog/payload/"))["total"] == 17
        assert len((await get(client, "/api/consumer/"))["items"]) == 3
        status = await client.get("/api/consumer/todolist-query_TodoListProjector_1_*")
        assert status.status_code == 503, status.text  # known, but no instance to ask

        # Offline, a bundle can be forgotten; then it is gone.
        deleted = await client.delete("/api/bundle/todolist-web")
        assert deleted.status_code == 204, deleted.text
        assert (await client.get("/api/bundle/todolist-web")).status_code == 404
        assert (await client.delete("/api/bundle/todolist-web")).status_code == 404
        assert "TodoListInvoker" not in {c["name"] for c in (await get(client, "/api/catalog/component/"))["items"]}
