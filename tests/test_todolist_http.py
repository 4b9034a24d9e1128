"""The TodoList HTTP API, in process: every status code, body shape and rule the API promises its clients.

The whole system runs in the test's event loop: an :class:`EventoServer` over a real SQLite event store under
``tmp_path``, the four TodoList bundles, and the FastAPI app reached through ``httpx.ASGITransport``. The contract
runs three times: with the bundles' consumer state and the read model in SQLite files (the default), in a
PostgreSQL database and in a MariaDB/MySQL database. Commands
return once their event is stored, but reads follow the projector, so every read after a write polls with
:func:`wait_until` under a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from evento import (
    AggregateNotInitializedError,
    Bundle,
    ConsumerSettings,
    EventoError,
    aggregate,
    aggregate_command_handler,
)
from evento.demo.todolist.guard import MAX_BODY_BYTES, MAX_HEADER_BYTES, MAX_TARGET_BYTES, error_response
from evento.demo.todolist.invoker import TodoListInvoker
from evento.demo.todolist.payloads import TodoListCreateCommand, TodoListCreatedEvent, TodoListDeletedEvent
from evento.demo.todolist.read_model import TodoListReadModel
from evento.demo.todolist.system import TodoListSystem
from evento.demo.todolist.web import MAX_SEARCH, MAX_TEXT, create_app
from evento.errors import EventStoreError
from evento.event_stores import SQLiteEventStore
from evento.event_stores.base import VersionConflictError
from evento.server import EventoServer
from evento.server.http import MAX_REQUEST_HEAD_BYTES, EmbeddedUvicorn
from evento.testing.databases import mysql_database, postgres_database

T = TypeVar("T")

DEADLINE = 10.0
LIST_KEYS = {"identifier", "name", "todos", "createdBy", "updatedBy", "createdAt", "updatedAt", "status"}
TODO_KEYS = {"identifier", "content", "completed", "createdBy", "completedBy", "createdAt", "completedAt"}
STATUSES = {"WIP", "REGISTRATION_PENDING", "REGISTERED"}


# --- helpers -------------------------------------------------------------------------------------------------------


async def wait_until(predicate: Callable[[], Awaitable[T | None]], timeout: float = DEADLINE) -> T:
    """Re-check ``predicate`` until it returns something truthy (returned) or ``timeout`` seconds pass (fails)."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: T | None = None
    while True:
        last = await predicate()
        if last:
            return last
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")
        await asyncio.sleep(0.02)


def auth(user: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {user}"}


def assert_error(response: httpx.Response, status: int, kind: str) -> None:
    """The response has ``status`` and the error body ``{"error": message, "type": kind}``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "type"}, body
    assert body["type"] == kind, body
    assert isinstance(body["error"], str), body
    assert body["error"], body


def assert_utc_iso(value: Any) -> datetime:
    """``value`` is an ISO 8601 timestamp in UTC; returns it parsed."""
    assert isinstance(value, str), value
    moment = datetime.fromisoformat(value)
    assert moment.utcoffset() == timedelta(0), value
    return moment


async def create_list(client: httpx.AsyncClient, name: str, user: str = "alice") -> str:
    response = await client.post("/todo-list/", json={"name": name}, headers=auth(user))
    assert response.status_code == 201, response.text
    identifier: str = response.json()["identifier"]
    return identifier


async def add_todo(client: httpx.AsyncClient, list_id: str, content: str, user: str = "alice") -> str:
    response = await client.post(f"/todo-list/{list_id}/todo/", json={"content": content}, headers=auth(user))
    assert response.status_code == 201, response.text
    identifier: str = response.json()["identifier"]
    return identifier


async def read_list_when(
    client: httpx.AsyncClient, list_id: str, condition: Callable[[dict[str, Any]], bool], timeout: float = DEADLINE
) -> dict[str, Any]:
    """GET the list until it is found and ``condition`` holds on its body (the projector may lag behind)."""

    async def fetch() -> dict[str, Any] | None:
        response = await client.get(f"/todo-list/{list_id}", headers=auth())
        if response.status_code != 200:
            return None
        body: dict[str, Any] = response.json()
        assert body["status"] in STATUSES, body
        return body if condition(body) else None

    return await wait_until(fetch, timeout)


def todo_ids(body: dict[str, Any]) -> set[str]:
    return {t["identifier"] for t in body["todos"]}


def is_checked(body: dict[str, Any], todo_id: str) -> bool:
    return any(t["identifier"] == todo_id and t["completed"] for t in body["todos"])


async def search(client: httpx.AsyncClient, name_like: str = "", page: int = 0) -> list[dict[str, Any]]:
    response = await client.get("/todo-list/", params={"nameLike": name_like, "page": page}, headers=auth())
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()
    return items


async def _search_when(
    client: httpx.AsyncClient, name_like: str, condition: Callable[[list[dict[str, Any]]], bool], page: int = 0
) -> list[dict[str, Any]] | None:
    items = await search(client, name_like, page)
    return items if condition(items) else None


# --- fixtures ------------------------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def consumer_store(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """Where the bundles keep consumer state and the read model: SQLite files (``None``, the default) or an empty
    PostgreSQL or MariaDB database."""
    if request.param == "sqlite":
        yield None
        return
    with postgres_database() if request.param == "postgresql" else mysql_database() as url:
        yield url


@contextlib.asynccontextmanager
async def running_system(data_dir: Path, consumer_store: str | None = None) -> AsyncIterator[TodoListSystem]:
    """A started server (SQLite event store under ``data_dir``) with the TodoList system on it."""
    server = EventoServer(SQLiteEventStore(data_dir / "events.db"))
    await server.start()
    todo_system = TodoListSystem(
        data_dir,
        service_delay=0.01,
        consumer_settings=ConsumerSettings(error_delay=0.05),
        consumer_store=consumer_store,
    )
    try:
        await todo_system.start(server)
        # Sagas and observers pick their start position ("now") in their first cycle, after start() returned; wait
        # for it, or a list created at once could be missed by the saga (see test_a_saga_sees_events_appended_...).
        for bundle in todo_system.bundles:
            await bundle.wait_for_head(DEADLINE)
        yield todo_system
    finally:
        await todo_system.stop()
        await server.stop()


@pytest.fixture
async def system(tmp_path: Path, consumer_store: str | None) -> AsyncIterator[TodoListSystem]:
    """A started server (SQLite event store under ``tmp_path``) with the TodoList system on it."""
    async with running_system(tmp_path, consumer_store) as todo_system:
        yield todo_system


def client_for(
    system: TodoListSystem, timeout: float | None = None, raise_app_exceptions: bool = True
) -> httpx.AsyncClient:
    """A client of a fresh app over a fresh invoker (with ``timeout`` as its command deadline when given).

    By default an unhandled exception in the app is raised in the test; otherwise the client sees the 500.
    """
    invoker = system.invoker()
    if timeout is not None:
        invoker.timeout = timeout
    transport = httpx.ASGITransport(app=create_app(invoker), raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url="http://todo")


@pytest.fixture
async def client(system: TodoListSystem) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the TodoList API of ``system``."""
    async with client_for(system) as http:
        yield http


# --- authentication ------------------------------------------------------------------------------------------------

ENDPOINTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/todo-list/", {"name": "groceries"}),
    ("GET", "/todo-list/?nameLike=&page=0", None),
    ("GET", "/todo-list/TDLS_x", None),
    ("DELETE", "/todo-list/TDLS_x", None),
    ("POST", "/todo-list/TDLS_x/todo/", {"content": "milk"}),
    ("DELETE", "/todo-list/TDLS_x/todo/TODO_x", None),
    ("PUT", "/todo-list/TDLS_x/todo/TODO_x", None),
]


BAD_AUTHORIZATIONS: list[str | None] = [None, "", "Bearer", "Bearer    ", "Basic alice", "alice"]


async def test_every_endpoint_requires_a_bearer_token(client: httpx.AsyncClient) -> None:
    """Without ``Authorization: Bearer <user>`` (missing, empty, other scheme) every endpoint answers 401."""
    for method, url, body in ENDPOINTS:
        for header in BAD_AUTHORIZATIONS:
            headers = {} if header is None else {"Authorization": header}
            response = await client.request(method, url, json=body, headers=headers)
            assert response.status_code == 401, (method, url, header, response.text)
            assert_error(response, 401, "Unauthorized")
    # Nothing was created: a list created now is the only one the search finds once it is projected.
    only = await create_list(client, "the only one")
    found = await wait_until(lambda: _search_when(client, "", bool))
    assert [i["identifier"] for i in found] == [only]


# --- create, read, search ------------------------------------------------------------------------------------------


async def test_create_returns_201_and_the_list_becomes_readable(client: httpx.AsyncClient) -> None:
    """POST /todo-list/ → 201 {identifier: TDLS_…}; GET then shows the full view: no todos, WIP, audit by the user."""
    response = await client.post("/todo-list/", json={"name": "groceries"}, headers=auth("alice"))
    assert response.status_code == 201
    assert set(response.json()) == {"identifier"}
    list_id = response.json()["identifier"]
    assert list_id.startswith("TDLS_")
    assert len(list_id) > len("TDLS_")

    body = await read_list_when(client, list_id, lambda _: True)
    assert set(body) == LIST_KEYS
    assert body["identifier"] == list_id
    assert body["name"] == "groceries"
    assert body["todos"] == []
    assert body["status"] == "WIP"
    assert body["createdBy"] == body["updatedBy"] == "alice"
    assert assert_utc_iso(body["createdAt"]) == assert_utc_iso(body["updatedAt"])


async def test_each_create_gets_a_new_identifier(client: httpx.AsyncClient) -> None:
    """Two lists with the same name are two lists."""
    first, second = await create_list(client, "same"), await create_list(client, "same")
    assert first != second
    items = await wait_until(lambda: _search_when(client, "same", lambda found: len(found) == 2))
    assert {i["identifier"] for i in items} == {first, second}


async def test_search_returns_pages_of_15(client: httpx.AsyncClient) -> None:
    """With 17 lists: page 0 has 15 {identifier, name} items, page 1 the other 2, page 2 none; no list twice."""
    created = set(await asyncio.gather(*(create_list(client, f"list {n:02d}") for n in range(17))))
    assert len(created) == 17

    async def all_projected() -> bool:
        return len(await search(client, "", 0)) + len(await search(client, "", 1)) == 17

    await wait_until(all_projected)
    page0, page1, page2 = await search(client, "", 0), await search(client, "", 1), await search(client, "", 2)
    assert (len(page0), len(page1), page2) == (15, 2, [])
    for item in page0 + page1:
        assert set(item) == {"identifier", "name"}
        assert item["name"].startswith("list ")
    seen = [item["identifier"] for item in page0 + page1]
    assert len(seen) == len(set(seen))
    assert set(seen) == created
    # The defaults are nameLike="" and page=0; a negative page reads as the first page.
    default = await client.get("/todo-list/", headers=auth())
    negative = await client.get("/todo-list/", params={"page": -1}, headers=auth())
    assert default.status_code == negative.status_code == 200
    assert default.json() == negative.json() == page0


async def test_search_filters_by_name_like(client: httpx.AsyncClient) -> None:
    """nameLike matches a substring of the name; % and _ in it are plain characters, not wildcards."""
    names = ["groceries", "Garage groceries", "work", "100% done", "1000 things", "a_c", "abc"]
    ids = dict(zip(names, await asyncio.gather(*(create_list(client, n) for n in names)), strict=True))
    await wait_until(lambda: _search_when(client, "", lambda found: len(found) == len(names)))

    async def names_for(name_like: str) -> set[str]:
        items = await search(client, name_like)
        assert all(ids[i["name"]] == i["identifier"] for i in items)
        return {i["name"] for i in items}

    assert await names_for("groceries") == {"groceries", "Garage groceries"}
    assert await names_for("work") == {"work"}
    assert await names_for("100%") == {"100% done"}
    assert await names_for("a_c") == {"a_c"}
    assert await names_for("nothing like it") == set()
    assert await names_for("") == set(names)


async def test_unknown_list_is_404(client: httpx.AsyncClient) -> None:
    """Reading or commanding a list that never existed answers 404."""
    assert_error(await client.get("/todo-list/TDLS_unknown", headers=auth()), 404, "TodoListNotFoundError")
    calls = [
        client.delete("/todo-list/TDLS_unknown", headers=auth()),
        client.post("/todo-list/TDLS_unknown/todo/", json={"content": "milk"}, headers=auth()),
        client.put("/todo-list/TDLS_unknown/todo/TODO_unknown", headers=auth()),
        client.delete("/todo-list/TDLS_unknown/todo/TODO_unknown", headers=auth()),
    ]
    for response in await asyncio.gather(*calls):
        assert_error(response, 404, "AggregateNotInitializedError")


# --- invalid input -------------------------------------------------------------------------------------------------

INVALID_BODIES: list[tuple[str, bytes]] = [
    ("blank", b'{"X": ""}'),
    ("whitespace", b'{"X": "  \\t "}'),
    ("number", b'{"X": 123}'),
    ("null", b'{"X": null}'),
    ("list", b'{"X": ["a"]}'),
    ("missing", b"{}"),
    ("not an object", b'["X"]'),
    ("malformed", b'{"X": "a"'),
    ("empty", b""),
]


async def test_invalid_list_name_is_400(client: httpx.AsyncClient) -> None:
    """A blank, mistyped, missing or malformed name is refused with 400 and nothing is created."""
    headers = {**auth(), "Content-Type": "application/json"}
    for case, raw in INVALID_BODIES:
        response = await client.post("/todo-list/", content=raw.replace(b"X", b"name"), headers=headers)
        assert response.status_code == 400, (case, response.text)
        assert_error(response, 400, "ValidationError")
    # Nothing was created: a list created now is the only one the search finds once it is projected.
    only = await create_list(client, "the only one")
    found = await wait_until(lambda: _search_when(client, "", bool))
    assert [i["identifier"] for i in found] == [only]


async def test_invalid_todo_content_is_400(client: httpx.AsyncClient) -> None:
    """A blank, mistyped, missing or malformed todo content is refused with 400 and no todo is added."""
    list_id = await create_list(client, "groceries")
    headers = {**auth(), "Content-Type": "application/json"}
    for case, raw in INVALID_BODIES:
        url = f"/todo-list/{list_id}/todo/"
        response = await client.post(url, content=raw.replace(b"X", b"content"), headers=headers)
        assert response.status_code == 400, (case, response.text)
        assert_error(response, 400, "ValidationError")
    # The list accepts exactly five todos: five more succeed, so none of the refused ones was added.
    for n in range(5):
        await add_todo(client, list_id, f"todo {n}")
    body = await read_list_when(client, list_id, lambda b: len(b["todos"]) == 5)
    assert [t["content"] for t in body["todos"]] == [f"todo {n}" for n in range(5)]


async def test_search_with_a_non_integer_page_is_400(client: httpx.AsyncClient) -> None:
    """page must be an integer."""
    for page in ["abc", "1.5", "", "0x1"]:
        response = await client.get("/todo-list/", params={"nameLike": "", "page": page}, headers=auth())
        assert response.status_code == 400, (page, response.text)
        assert_error(response, 400, "ValidationError")


async def test_search_with_an_absurd_page_is_not_a_server_error(system: TodoListSystem) -> None:
    """A page far beyond the data answers 200 [] (or 400 with the error body), never a bare 500."""
    async with client_for(system, raise_app_exceptions=False) as client:
        for page in [10**6, 2**62, 10**20]:
            response = await client.get("/todo-list/", params={"page": page}, headers=auth())
            assert response.status_code in (200, 400), (page, response.status_code, response.text)
            if response.status_code == 200:
                assert response.json() == []
            else:
                assert_error(response, 400, "ValidationError")


# --- todos and the aggregate rules ---------------------------------------------------------------------------------


async def test_add_todo_returns_201_and_the_todo_becomes_readable(client: httpx.AsyncClient) -> None:
    """POST /todo-list/{id}/todo/ → 201 {identifier: TODO_…}; GET then lists it, unchecked, in the order added."""
    list_id = await create_list(client, "groceries")
    response = await client.post(f"/todo-list/{list_id}/todo/", json={"content": "milk"}, headers=auth("bob"))
    assert response.status_code == 201
    assert set(response.json()) == {"identifier"}
    milk = response.json()["identifier"]
    assert milk.startswith("TODO_")
    assert len(milk) > len("TODO_")
    bread = await add_todo(client, list_id, "bread", "bob")

    body = await read_list_when(client, list_id, lambda b: len(b["todos"]) == 2)
    assert [(t["identifier"], t["content"]) for t in body["todos"]] == [(milk, "milk"), (bread, "bread")]
    for todo in body["todos"]:
        assert set(todo) == TODO_KEYS
        assert todo["completed"] is False
        assert todo["createdBy"] == "bob"
        assert_utc_iso(todo["createdAt"])
        assert todo["completedBy"] is None
        assert todo["completedAt"] is None
    assert body["status"] == "WIP"


async def test_a_list_holds_at_most_five_todos(client: httpx.AsyncClient) -> None:
    """The sixth todo is refused with 409 (aggregate rule), and the list keeps its five."""
    list_id = await create_list(client, "groceries")
    added = [await add_todo(client, list_id, f"todo {n}") for n in range(5)]
    response = await client.post(f"/todo-list/{list_id}/todo/", json={"content": "one too many"}, headers=auth())
    assert_error(response, 409, "TodoListRuleError")
    body = await read_list_when(client, list_id, lambda b: len(b["todos"]) == 5)
    assert [t["identifier"] for t in body["todos"]] == added


async def test_thirty_concurrent_adds_create_exactly_five(client: httpx.AsyncClient) -> None:
    """30 concurrent adds to one list: exactly 5 answer 201, 25 answer 409; the list holds those 5, by their users."""
    list_id = await create_list(client, "race")
    responses = await asyncio.gather(
        *(
            client.post(f"/todo-list/{list_id}/todo/", json={"content": f"todo {n}"}, headers=auth(f"user{n}"))
            for n in range(30)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 5 + [409] * 25, statuses
    for response in responses:
        if response.status_code == 409:
            assert_error(response, 409, "TodoListRuleError")
    created = {r.json()["identifier"]: f"user{n}" for n, r in enumerate(responses) if r.status_code == 201}
    body = await read_list_when(client, list_id, lambda b: len(b["todos"]) == 5)
    assert {t["identifier"]: t["createdBy"] for t in body["todos"]} == created


async def test_check_todo_returns_202_and_checking_it_again_is_409(client: httpx.AsyncClient) -> None:
    """PUT /todo-list/{id}/todo/{todoId} → 202 and the todo reads as completed; a second check → 409."""
    list_id = await create_list(client, "groceries")
    milk = await add_todo(client, list_id, "milk")
    await add_todo(client, list_id, "bread")
    response = await client.put(f"/todo-list/{list_id}/todo/{milk}", headers=auth())
    assert response.status_code == 202
    body = await read_list_when(client, list_id, lambda b: is_checked(b, milk))
    assert [t["completed"] for t in body["todos"]] == [True, False]
    assert_error(await client.put(f"/todo-list/{list_id}/todo/{milk}", headers=auth()), 409, "TodoListRuleError")


async def test_checking_or_removing_an_unknown_todo_is_409(client: httpx.AsyncClient) -> None:
    """A todo identifier the list does not hold is a broken rule (409), for check and for remove."""
    list_id = await create_list(client, "groceries")
    await add_todo(client, list_id, "milk")
    assert_error(await client.put(f"/todo-list/{list_id}/todo/TODO_nope", headers=auth()), 409, "TodoListRuleError")
    assert_error(await client.delete(f"/todo-list/{list_id}/todo/TODO_nope", headers=auth()), 409, "TodoListRuleError")


async def test_remove_todo_returns_204_and_the_todo_is_gone(client: httpx.AsyncClient) -> None:
    """DELETE /todo-list/{id}/todo/{todoId} → 204; GET then no longer shows it; removing it again → 409."""
    list_id = await create_list(client, "groceries")
    milk = await add_todo(client, list_id, "milk")
    bread = await add_todo(client, list_id, "bread")
    await read_list_when(client, list_id, lambda b: len(b["todos"]) == 2)

    response = await client.delete(f"/todo-list/{list_id}/todo/{milk}", headers=auth("bob"))
    assert response.status_code == 204
    assert response.content == b""
    body = await read_list_when(client, list_id, lambda b: milk not in todo_ids(b))
    assert todo_ids(body) == {bread}
    assert body["updatedBy"] == "bob"
    assert_error(await client.delete(f"/todo-list/{list_id}/todo/{milk}", headers=auth()), 409, "TodoListRuleError")


async def test_a_checked_todo_cannot_be_removed(client: httpx.AsyncClient) -> None:
    """Removing a checked todo is refused with 409 and the todo stays."""
    list_id = await create_list(client, "groceries")
    milk = await add_todo(client, list_id, "milk")
    await add_todo(client, list_id, "bread")
    assert (await client.put(f"/todo-list/{list_id}/todo/{milk}", headers=auth())).status_code == 202
    assert_error(await client.delete(f"/todo-list/{list_id}/todo/{milk}", headers=auth()), 409, "TodoListRuleError")
    body = await read_list_when(client, list_id, lambda b: is_checked(b, milk))
    assert milk in todo_ids(body)


async def test_a_list_holding_a_checked_todo_cannot_be_deleted(client: httpx.AsyncClient) -> None:
    """DELETE of a list with a checked todo is refused with 409 and the list stays readable and usable."""
    list_id = await create_list(client, "groceries")
    milk = await add_todo(client, list_id, "milk")
    await add_todo(client, list_id, "bread")
    assert (await client.put(f"/todo-list/{list_id}/todo/{milk}", headers=auth())).status_code == 202
    assert_error(await client.delete(f"/todo-list/{list_id}", headers=auth()), 409, "TodoListRuleError")
    await add_todo(client, list_id, "eggs")
    await read_list_when(client, list_id, lambda b: len(b["todos"]) == 3)


async def test_delete_returns_204_then_the_list_is_gone(client: httpx.AsyncClient) -> None:
    """DELETE /todo-list/{id} → 204; then GET → 404, search no longer lists it, and every command on it → 404."""
    list_id = await create_list(client, "groceries")
    keep = await create_list(client, "groceries too")
    milk = await add_todo(client, list_id, "milk")
    await read_list_when(client, list_id, lambda b: len(b["todos"]) == 1)

    response = await client.delete(f"/todo-list/{list_id}", headers=auth())
    assert response.status_code == 204
    assert response.content == b""

    async def gone() -> httpx.Response | None:
        found = await client.get(f"/todo-list/{list_id}", headers=auth())
        return found if found.status_code == 404 else None

    assert_error(await wait_until(gone), 404, "TodoListNotFoundError")
    assert [i["identifier"] for i in await search(client, "groceries")] == [keep]
    calls = [
        client.delete(f"/todo-list/{list_id}", headers=auth()),
        client.post(f"/todo-list/{list_id}/todo/", json={"content": "eggs"}, headers=auth()),
        client.put(f"/todo-list/{list_id}/todo/{milk}", headers=auth()),
        client.delete(f"/todo-list/{list_id}/todo/{milk}", headers=auth()),
    ]
    for response in await asyncio.gather(*calls):
        assert_error(response, 404, "AggregateDeletedError")


# --- audit fields, saga, observer ----------------------------------------------------------------------------------


async def test_audit_fields_name_who_did_what_and_when(client: httpx.AsyncClient) -> None:
    """createdBy/updatedBy/completedBy are the bearer tokens of who created, last changed, checked; times in UTC."""
    list_id = await create_list(client, "groceries", user="alice")
    milk = await add_todo(client, list_id, "milk", user="bob")
    bread = await add_todo(client, list_id, "bread", user="dave")
    created = await read_list_when(client, list_id, lambda b: len(b["todos"]) == 2)
    assert created["createdBy"] == "alice"
    assert created["updatedBy"] == "dave"

    assert (await client.put(f"/todo-list/{list_id}/todo/{milk}", headers=auth("carol"))).status_code == 202
    body = await read_list_when(client, list_id, lambda b: is_checked(b, milk))
    todos = {t["identifier"]: t for t in body["todos"]}
    assert body["createdBy"] == "alice"
    assert body["updatedBy"] == "carol"
    assert (todos[milk]["createdBy"], todos[milk]["completedBy"]) == ("bob", "carol")
    assert (todos[bread]["createdBy"], todos[bread]["completedBy"]) == ("dave", None)
    assert todos[bread]["completedAt"] is None

    list_created, list_updated = assert_utc_iso(body["createdAt"]), assert_utc_iso(body["updatedAt"])
    milk_created, milk_completed = assert_utc_iso(todos[milk]["createdAt"]), assert_utc_iso(todos[milk]["completedAt"])
    assert list_created <= milk_created <= milk_completed == list_updated
    assert body["createdAt"] == created["createdAt"]
    assert abs(datetime.now().astimezone() - list_created) < timedelta(minutes=1)


async def test_the_saga_registers_a_list_once_every_todo_is_checked(client: httpx.AsyncClient) -> None:
    """A list stays WIP while a todo is unchecked; checking the last one makes it REGISTERED (via the ERP saga)."""
    list_id = await create_list(client, "groceries")
    milk = await add_todo(client, list_id, "milk")
    bread = await add_todo(client, list_id, "bread", user="bob")

    assert (await client.put(f"/todo-list/{list_id}/todo/{milk}", headers=auth())).status_code == 202
    body = await read_list_when(client, list_id, lambda b: is_checked(b, milk) and len(b["todos"]) == 2)
    assert body["status"] == "WIP"

    assert (await client.put(f"/todo-list/{list_id}/todo/{bread}", headers=auth("carol"))).status_code == 202
    body = await read_list_when(client, list_id, lambda b: b["status"] == "REGISTERED")
    assert all(t["completed"] for t in body["todos"])


async def test_removing_the_last_unchecked_todo_registers_the_list(client: httpx.AsyncClient) -> None:
    """A list whose todos left are all checked is complete: removing its only unchecked todo registers it."""
    list_id = await create_list(client, "groceries")
    milk = await add_todo(client, list_id, "milk")
    bread = await add_todo(client, list_id, "bread")
    assert (await client.put(f"/todo-list/{list_id}/todo/{milk}", headers=auth())).status_code == 202
    await read_list_when(client, list_id, lambda b: is_checked(b, milk) and len(b["todos"]) == 2)

    assert (await client.delete(f"/todo-list/{list_id}/todo/{bread}", headers=auth("bob"))).status_code == 204
    body = await read_list_when(client, list_id, lambda b: b["status"] == "REGISTERED")
    assert [t["identifier"] for t in body["todos"]] == [milk]


async def test_status_is_registration_pending_while_the_erp_works(
    system: TodoListSystem, client: httpx.AsyncClient
) -> None:
    """Between the last check and the ERP's answer the status reads REGISTRATION_PENDING, then REGISTERED."""
    list_id = await create_list(client, "groceries")
    milk = await add_todo(client, list_id, "milk")
    await read_list_when(client, list_id, lambda b: len(b["todos"]) == 1)
    system.services.delay = 0.5  # a slow ERP, so the pending state lasts long enough to be seen
    assert (await client.put(f"/todo-list/{list_id}/todo/{milk}", headers=auth())).status_code == 202
    await read_list_when(client, list_id, lambda b: b["status"] == "REGISTRATION_PENDING")
    await read_list_when(client, list_id, lambda b: b["status"] == "REGISTERED")


async def test_the_observer_sends_a_notification_for_a_checked_todo(
    system: TodoListSystem, client: httpx.AsyncClient
) -> None:
    """Checking a todo makes the observer send a notification naming the todo and its list."""
    list_id = await create_list(client, "groceries")
    milk = await add_todo(client, list_id, "milk")
    await add_todo(client, list_id, "bread")
    await read_list_when(client, list_id, lambda b: len(b["todos"]) == 2)
    assert system.services.sent_notifications == []

    assert (await client.put(f"/todo-list/{list_id}/todo/{milk}", headers=auth())).status_code == 202
    expected = "You have checked the todo 'milk' of 'groceries'"

    async def sent() -> bool:
        return expected in system.services.sent_notifications

    await wait_until(sent)
    assert system.services.sent_notifications == [expected]


async def test_a_saga_sees_events_appended_right_after_a_first_start(tmp_path: Path) -> None:
    """A list created as soon as the system reports started is still followed by the saga and gets REGISTERED.

    The race is made deterministic by holding the saga bundle's consumer cycles (only those run by the consumer
    tasks) until the list exists, as a loaded machine does; start() itself is not held.
    """
    server = EventoServer(SQLiteEventStore(tmp_path / "events.db"))
    await server.start()
    system = TodoListSystem(tmp_path, service_delay=0.01, consumer_settings=ConsumerSettings(error_delay=0.05))
    store = system.saga.consumer_store
    gate = asyncio.Event()
    read_checkpoint = store.read_checkpoint

    async def held_read_checkpoint(consumer_id: str) -> Any:
        task = asyncio.current_task()
        if task is not None and task.get_name().startswith("evento-consumer-"):
            await gate.wait()
        return await read_checkpoint(consumer_id)

    store.read_checkpoint = held_read_checkpoint  # type: ignore[method-assign]
    try:
        await asyncio.wait_for(system.start(server), DEADLINE)
        async with client_for(system) as client:
            list_id = await create_list(client, "right away")
            milk = await add_todo(client, list_id, "milk")
            gate.set()
            await system.saga.wait_for_head(DEADLINE)
            assert (await client.put(f"/todo-list/{list_id}/todo/{milk}", headers=auth())).status_code == 202
            await read_list_when(client, list_id, lambda b: b["status"] == "REGISTERED", timeout=2.0)
    finally:
        gate.set()
        await system.stop()
        await server.stop()


# --- where the read model lives ------------------------------------------------------------------------------------


async def test_the_read_model_shares_the_query_bundles_consumer_store_database(
    system: TodoListSystem, client: httpx.AsyncClient, consumer_store: str | None, tmp_path: Path
) -> None:
    """The projector's rows land in the query bundle's consumer store database (its SQLite file by default),
    written in the projection transaction of that store."""
    store = system.query.consumer_store
    assert system.read_model.shares(store)
    assert system.read_model.dialect == store.dialect
    list_id = await create_list(client, "groceries")
    await read_list_when(client, list_id, lambda _: True)
    # Read on a connection of the test's own, to the database the consumer store was configured with.
    outside = TodoListReadModel(consumer_store or str(tmp_path / "todolist-query.db"))
    try:
        rows = outside.read(lambda db: db.rows("SELECT identifier, name FROM todolist_list"))
    finally:
        outside.close()
    assert rows == [(list_id, "groceries")]


async def test_on_a_memory_consumer_store_the_read_model_keeps_its_own_file(tmp_path: Path) -> None:
    """A memory consumer store has no database to share: the read model stays in todolist-query.db under the
    data directory and writes in transactions of its own."""
    server = EventoServer(SQLiteEventStore(tmp_path / "events.db"))
    await server.start()
    system = TodoListSystem(
        tmp_path, service_delay=0.01, consumer_settings=ConsumerSettings(error_delay=0.05), consumer_store="memory"
    )
    assert not system.read_model.shares(system.query.consumer_store)
    assert system.read_model.database == str(tmp_path / "todolist-query.db")
    try:
        await system.start(server)
        async with client_for(system) as client:
            list_id = await create_list(client, "groceries")
            await add_todo(client, list_id, "milk")
            body = await read_list_when(client, list_id, lambda b: len(b["todos"]) == 1)
            assert body["todos"][0]["content"] == "milk"
    finally:
        await system.stop()
        await server.stop()


def test_a_read_model_from_before_todo_positions_gets_the_column(tmp_path: Path) -> None:
    """A SQLite read model written by an earlier version (no position column) is upgraded in place, its rows kept."""
    path = tmp_path / "todolist-query.db"
    with contextlib.closing(sqlite3.connect(path)) as old:
        old.executescript(
            "CREATE TABLE todolist_todo (identifier TEXT PRIMARY KEY, list_identifier TEXT NOT NULL,"
            " content TEXT NOT NULL, completed INTEGER NOT NULL DEFAULT 0, created_by TEXT, completed_by TEXT,"
            " created_at TEXT, completed_at TEXT);"
            " INSERT INTO todolist_todo (identifier, list_identifier, content) VALUES ('TODO_1', 'TDLS_1', 'milk');"
        )
    read_model = TodoListReadModel(str(path))
    try:
        read_model.open()
        rows = read_model.read(lambda db: db.rows("SELECT identifier, content, position FROM todolist_todo"))
    finally:
        read_model.close()
    assert rows == [("TODO_1", "milk", 0)]


# --- gateway timeout -----------------------------------------------------------------------------------------------


async def test_a_command_past_its_deadline_is_504(system: TodoListSystem, client: httpx.AsyncClient) -> None:
    """When the invoker's deadline passes before the command is acknowledged, the API answers 504.

    The deadline is the invoker's ``timeout``; zero makes it pass before any command can complete, which is the
    same code path as a slow server. A 504 promises nothing about the outcome, so only the status is pinned, and
    the system keeps answering afterwards.
    """
    async with client_for(system, timeout=0.0) as hurried:
        late = await hurried.post("/todo-list/", json={"name": "late"}, headers=auth())
        assert_error(late, 504, "RequestTimeoutError")
        list_id, doomed = await create_list(client, "on time"), await create_list(client, "doomed")
        responses = await asyncio.gather(
            hurried.post(f"/todo-list/{list_id}/todo/", json={"content": "milk"}, headers=auth()),
            hurried.put(f"/todo-list/{list_id}/todo/TODO_x", headers=auth()),
            hurried.delete(f"/todo-list/{list_id}/todo/TODO_x", headers=auth()),
            hurried.delete(f"/todo-list/{doomed}", headers=auth()),
        )
        for response in responses:
            assert_error(response, 504, "RequestTimeoutError")
    await add_todo(client, list_id, "bread")
    body = await read_list_when(client, list_id, lambda b: "bread" in [t["content"] for t in b["todos"]])
    assert [t["content"] for t in body["todos"]] in (["bread"], ["milk", "bread"])


def test_with_a_relative_data_dir_and_a_memory_store_the_read_model_is_in_that_dir_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's default data directory is relative (``.evento-demo``): the read model's file must land in it,
    not in a copy of it nested inside it."""
    monkeypatch.chdir(tmp_path)
    system = TodoListSystem(Path("demo-data"), consumer_store="memory")
    system.read_model.open()
    system.read_model.close()
    assert (tmp_path / "demo-data" / "todolist-query.db").is_file()
    assert not (tmp_path / "demo-data" / "demo-data").exists()


# --- hostile input: bounds, literal search, one error shape ---------------------------------------------------------

sqlite_only = pytest.mark.parametrize("consumer_store", ["sqlite"], indirect=True)


@sqlite_only
async def test_names_contents_and_search_text_are_bounded(client: httpx.AsyncClient) -> None:
    """A name or content of 1,000 characters is accepted and read back whole, 1,001 is refused with 400, as is a
    ``nameLike`` over 200 characters; none of the refused ones is stored."""
    longest = "n" * MAX_TEXT
    list_id = await create_list(client, longest)
    await add_todo(client, list_id, "c" * MAX_TEXT)
    body = await read_list_when(client, list_id, lambda b: len(b["todos"]) == 1)
    assert (body["name"], body["todos"][0]["content"]) == (longest, "c" * MAX_TEXT)

    too_long = "x" * (MAX_TEXT + 1)
    assert_error(await client.post("/todo-list/", json={"name": too_long}, headers=auth()), 400, "ValidationError")
    refused = await client.post(f"/todo-list/{list_id}/todo/", json={"content": too_long}, headers=auth())
    assert_error(refused, 400, "ValidationError")
    assert len(await search(client, "n" * MAX_SEARCH)) == 1
    over = await client.get("/todo-list/", params={"nameLike": "n" * (MAX_SEARCH + 1)}, headers=auth())
    assert_error(over, 400, "ValidationError")
    assert [i["identifier"] for i in await search(client, "")] == [list_id]
    assert len((await read_list_when(client, list_id, lambda _: True))["todos"]) == 1


@sqlite_only
async def test_text_the_read_models_cannot_store_is_400(client: httpx.AsyncClient) -> None:
    """A lone surrogate (not Unicode: no database stores it) or a NUL (PostgreSQL's text cannot hold one, so its
    projector would stall on the event) in a name or a content is refused with 400; so is a body that is not UTF-8;
    nothing is stored."""
    list_id = await create_list(client, "groceries")
    headers = {**auth(), "Content-Type": "application/json"}
    bodies = [b'{"X": "\\ud800"}', b'{"X": "a\\udfffb"}', b'{"X": "nul\\u0000byte"}', b'{"X": "\xff\xfe"}']
    for raw in bodies:
        for url, field in [("/todo-list/", b"name"), (f"/todo-list/{list_id}/todo/", b"content")]:
            response = await client.post(url, content=raw.replace(b"X", field), headers=headers)
            assert_error(response, 400, "ValidationError")
    await add_todo(client, list_id, "milk")
    body = await read_list_when(client, list_id, lambda b: len(b["todos"]) == 1)
    assert [t["content"] for t in body["todos"]] == ["milk"]
    assert [i["identifier"] for i in await search(client, "")] == [list_id]


async def test_name_like_is_taken_literally(client: httpx.AsyncClient) -> None:
    """``%``, ``_``, ``\\`` and NUL in nameLike stand for themselves, on every read model database (a NUL used to
    end SQLite's LIKE pattern and match every list, and to fail PostgreSQL's driver)."""
    names = ["100% done", "1000 things", "a_c", "abc", "back\\slash", "backslash", "Mixed CASE"]
    ids = dict(zip(names, await asyncio.gather(*(create_list(client, n) for n in names)), strict=True))
    await wait_until(lambda: _search_when(client, "", lambda found: len(found) == len(names)))

    async def names_for(name_like: str) -> set[str]:
        items = await search(client, name_like)
        assert all(ids[i["name"]] == i["identifier"] for i in items)
        return {i["name"] for i in items}

    assert await names_for("%") == {"100% done"}
    assert await names_for("_") == {"a_c"}
    assert await names_for("\\") == {"back\\slash"}
    assert await names_for("k\\s") == {"back\\slash"}
    assert await names_for("\x00") == set()
    assert await names_for("a\x00") == set()
    assert await names_for("%_") == set()
    assert await names_for("mixed case") == {"Mixed CASE"}


async def test_identifiers_outside_the_api_s_alphabet_are_400(client: httpx.AsyncClient) -> None:
    """A list or todo identifier that the API could not have made (NUL, spaces, over 100 characters) answers 400
    on every database instead of reaching it (PostgreSQL's driver refuses a NUL: that was a 500)."""
    bad = ["%00", "a%20b", "T" * 101, "TDLS_%C3%A9"]
    for identifier in bad:
        calls = [
            client.get(f"/todo-list/{identifier}", headers=auth()),
            client.delete(f"/todo-list/{identifier}", headers=auth()),
            client.post(f"/todo-list/{identifier}/todo/", json={"content": "milk"}, headers=auth()),
            client.put(f"/todo-list/TDLS_x/todo/{identifier}", headers=auth()),
            client.delete(f"/todo-list/TDLS_x/todo/{identifier}", headers=auth()),
        ]
        for response in await asyncio.gather(*calls):
            assert_error(response, 400, "ValidationError")
    assert_error(await client.get(f"/todo-list/{'T' * 100}", headers=auth()), 404, "TodoListNotFoundError")


@sqlite_only
async def test_every_error_has_the_one_json_shape(client: httpx.AsyncClient) -> None:
    """Routes and methods the API does not have answer {"error", "type"} too (404, 405 with Allow), not
    FastAPI's {"detail"}; 401 names the Bearer scheme."""
    assert_error(await client.get("/nowhere", headers=auth()), 404, "NotFound")
    assert_error(await client.get("/todo-list/TDLS_x/todo/", headers=auth()), 405, "MethodNotAllowed")
    patched = await client.patch("/todo-list/", json={"name": "x"}, headers=auth())
    assert_error(patched, 405, "MethodNotAllowed")
    assert set(patched.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}
    unauthorized = await client.get("/todo-list/")
    assert_error(unauthorized, 401, "Unauthorized")
    assert unauthorized.headers["www-authenticate"] == "Bearer"


@sqlite_only
async def test_an_oversized_body_is_413_before_it_is_read(client: httpx.AsyncClient) -> None:
    """A body over 64 KiB answers 413 (before authentication), whether its length is declared or it streams
    without one: the answer comes while the client is still sending, and nothing is created. A body of exactly
    64 KiB is served."""
    padding = "p" * (MAX_BODY_BYTES - len('{"name": "groceries", "pad": ""}'))
    exact = json.dumps({"name": "groceries", "pad": padding}).encode()
    assert len(exact) == MAX_BODY_BYTES
    headers = {**auth(), "Content-Type": "application/json"}
    assert (await client.post("/todo-list/", content=exact, headers=headers)).status_code == 201

    declared = await client.post("/todo-list/", content=exact + b" ", headers={"Content-Type": "application/json"})
    assert_error(declared, 413, "ContentTooLarge")
    never_ends = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        yield b'{"name": "' + b"n" * MAX_BODY_BYTES
        await never_ends.wait()  # the rest never comes: only an answer before it ends the request
        yield b'"}'

    streamed = await asyncio.wait_for(client.post("/todo-list/", content=endless(), headers=headers), DEADLINE)
    assert "content-length" not in streamed.request.headers
    assert_error(streamed, 413, "ContentTooLarge")
    assert [i["name"] for i in await wait_until(lambda: _search_when(client, "", bool))] == ["groceries"]


class FaultyListError(EventoError):
    """An Evento error of a kind the HTTP API does not list (as a new one would be)."""


class VanishedListError(AggregateNotInitializedError):
    """A subclass of a listed Evento error: it answers as its parent does."""


# What the faulty aggregate raises for each list name, and the status and type the API must answer.
FAULTS: dict[str, tuple[Exception, int, str]] = {
    "key": (KeyError("todos"), 500, "InternalServerError"),
    "assert": (AssertionError("state is broken"), 500, "InternalServerError"),
    "conflict": (VersionConflictError("version 2 of TDLS_x is stored"), 409, "VersionConflictError"),
    "store": (EventStoreError("disk full"), 503, "EventStoreError"),
    "unlisted": (FaultyListError("something new"), 500, "InternalServerError"),
    "vanished": (VanishedListError("gone"), 404, "VanishedListError"),
}


@aggregate()
class FaultyTodoList:
    """Stands in for the TodoList aggregate and fails every create with the error its name picks."""

    @aggregate_command_handler(init=True)
    def create(self, command: TodoListCreateCommand) -> TodoListCreatedEvent:
        if command.name == "undeclared":
            return TodoListDeletedEvent(identifier=command.identifier)  # type: ignore[return-value]  # refused by the server
        raise FAULTS[command.name][0]


async def test_handler_errors_of_any_kind_answer_the_json_shape(tmp_path: Path) -> None:
    """Errors a handler raises that the API has no rule for cross the bus and answer JSON, never a plain-text
    500: Evento errors by their class (a subclass as its nearest listed parent, an unlisted one as a server fault),
    anything else as a 500 whose message names only the class. So does the server's refusal of an event the
    handler returned but never declared (InvalidEventError)."""
    server = EventoServer(SQLiteEventStore(tmp_path / "events.db"))
    await server.start()
    faulty = Bundle("todolist-command", components=[FaultyTodoList])
    web = Bundle("todolist-web", components=[TodoListInvoker])
    try:
        for bundle in (faulty, web):
            await bundle.start(server)
        transport = httpx.ASGITransport(app=create_app(web.invoker(TodoListInvoker)), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://todo") as client:
            for name, (exc, status, kind) in FAULTS.items():
                response = await client.post("/todo-list/", json={"name": name}, headers=auth())
                assert_error(response, status, kind)
                if status == 500:
                    assert response.json()["error"] == f"internal server error ({type(exc).__name__})"
                else:
                    assert response.json()["error"] == str(exc)
            undeclared = await client.post("/todo-list/", json={"name": "undeclared"}, headers=auth())
            assert_error(undeclared, 500, "InternalServerError")
            assert undeclared.json()["error"] == "internal server error (InvalidEventError)"
    finally:
        for bundle in (web, faulty):
            await bundle.stop()
        await server.stop()


# --- the real HTTP server: limits on the wire ----------------------------------------------------------------------


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[int]:
    """The TodoList API on the uvicorn server the demo runs it with, on a free port of 127.0.0.1; its port."""
    async with running_system(tmp_path) as todo_system:
        http = EmbeddedUvicorn(create_app(todo_system.invoker()), "127.0.0.1", 0)
        await http.start()
        try:
            yield http.servers[0].sockets[0].getsockname()[1]
        finally:
            await http.stop()


class Answer:
    """A response read off a raw connection, and whether the server then closed it."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes, closed: bool) -> None:
        self.status, self.headers, self.body, self.closed = status, headers, body, closed

    def assert_error(self, status: int, kind: str) -> None:
        assert self.status == status, (self.status, self.body)
        assert self.headers["content-type"] == "application/json", self.headers
        body = json.loads(self.body)
        assert set(body) == {"error", "type"}, body
        assert body["type"] == kind, body
        assert body["error"], body


async def exchange(port: int, *parts: bytes) -> Answer:
    """Send ``parts`` on a new connection (the request may be left unfinished) and read the one answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for part in parts:
            writer.write(part)
            await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
        if "content-length" not in headers:  # the body runs to the end of the connection
            return Answer(int(status_line.split()[1]), headers, await asyncio.wait_for(reader.read(), DEADLINE), True)
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), DEADLINE)
        says_close = "close" in headers.get("connection", "").lower()
        closed = says_close and await asyncio.wait_for(reader.read(1), DEADLINE) == b""
        return Answer(int(status_line.split()[1]), headers, body, closed)
    finally:
        writer.close()


def request_head(method: str = "POST", target: str = "/todo-list/", *extra: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: todo", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_the_demo_server_refuses_oversized_requests_before_reading_them(served: int) -> None:
    """On the uvicorn server the demo uses: a declared body over 64 KiB, a chunked one that passes 64 KiB, headers
    over 8 KiB and a request target over 4 KiB answer 413/431/414 JSON at once (no credentials needed: bounds
    come first), while the client has not finished sending, and the connection is closed. Within the bounds the
    same requests are served."""
    huge = await exchange(served, request_head("POST", "/todo-list/", "Content-Length: 10000000"), b'{"name": ')
    huge.assert_error(413, "ContentTooLarge")
    assert huge.closed
    chunk = b"%x\r\n%s\r\n" % (MAX_BODY_BYTES + 1, b"x" * (MAX_BODY_BYTES + 1))
    chunked = await exchange(served, request_head("POST", "/todo-list/", "Transfer-Encoding: chunked"), chunk)
    chunked.assert_error(413, "ContentTooLarge")
    assert chunked.closed
    big_header = request_head("GET", "/todo-list/", f"X-Padding: {'h' * MAX_HEADER_BYTES}")
    headers = await exchange(served, big_header)
    headers.assert_error(431, "RequestHeaderFieldsTooLarge")
    long_target = await exchange(served, request_head("GET", f"/todo-list/?pad={'t' * MAX_TARGET_BYTES}"))
    long_target.assert_error(414, "URITooLong")

    body = json.dumps({"name": "n" * MAX_TEXT}).encode()
    within = [
        f"Authorization: Bearer {'u' * (MAX_HEADER_BYTES - 200)}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    created = await exchange(served, request_head("POST", "/todo-list/?" + "q" * 3000, *within), body)
    assert created.status == 201, created.body
    assert json.loads(created.body)["identifier"].startswith("TDLS_")


async def test_the_demo_server_cuts_a_request_head_that_never_ends(served: int) -> None:
    """A request head still incomplete past 16 KiB (h11's bound, pinned for the demo's server) is answered 400 and
    the connection closed, instead of being buffered for as long as the client keeps sending."""
    unfinished = request_head("GET", "/todo-list/").removesuffix(b"\r\n\r\n")
    cut = await exchange(served, unfinished + b"\r\nX-Slow: " + b"s" * (MAX_REQUEST_HEAD_BYTES + 1))
    assert cut.status == 400
    assert cut.closed


def test_an_error_message_is_one_line_of_json_whatever_it_holds() -> None:
    """A message echoing a newline or a lone surrogate (which no JSON encoder turns into UTF-8) still answers one
    line of valid JSON, instead of failing while the error is being reported."""
    response = error_response(409, "todo \ud800 is\nnot in the list", "TodoListRuleError")
    assert json.loads(bytes(response.body)) == {"error": "todo \\ud800 is not in the list", "type": "TodoListRuleError"}
