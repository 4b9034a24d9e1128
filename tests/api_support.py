"""The server's REST API running for real, for the API's tests: uvicorn on a free port of 127.0.0.1 serving
:func:`evento.server.api.create_api` over an :class:`EventoServer` (SQLite) with the TodoList bundles, in one
process (:func:`running_api`, fixture ``api``) or as an ``evento server`` process whose TodoList bundles connect
over TCP (:func:`running_api_process`, fixture ``api_process``). Either gives httpx clients logged in as the
``admin`` and as a ``viewer``, and an anonymous one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from evento import ConsumerSettings
from evento.demo.todolist.system import TodoListSystem
from evento.event_stores import EventStore, SQLiteEventStore
from evento.server import EventoServer
from evento.server.api import ApiSettings
from evento.server.http import ServerHttp
from evento.server.users import Role, UserStore
from evento.storage.database import SQLiteDatabase
from evento.transport.connector import TcpConnector
from tests.helpers import ServerProcess, start_server_process, stop_server_process

ADMIN_PASSWORD = "admin-pass-for-tests"
VIEWER_USER = "vera"
VIEWER_PASSWORD = "viewer-pass-for-tests"
BUS_TOKEN = "api-tests-bus-token"
DEADLINE = 15.0


@dataclass
class RunningApi:
    """A running API: its base URL, the TodoList on it, and clients for the admin, a viewer and nobody."""

    url: str
    system: TodoListSystem
    admin: httpx.AsyncClient
    viewer: httpx.AsyncClient
    anonymous: httpx.AsyncClient
    admin_token: str
    viewer_token: str
    #: The in-process server and its HTTP surface (``None`` for a server process).
    server: EventoServer | None = None
    http: ServerHttp | None = None
    #: The server process (``None`` in process).
    process: ServerProcess | None = None
    _clients: list[httpx.AsyncClient] = field(default_factory=list)

    def client(self, **options: Any) -> httpx.AsyncClient:
        """Another client of the API (closed with the others), e.g. ``auth=("user", "password")``."""
        client = httpx.AsyncClient(base_url=self.url, timeout=DEADLINE, **options)
        self._clients.append(client)
        return client

    async def login(self, username: str, password: str) -> str:
        """A token for ``username``, from ``POST /api/auth/login``."""
        return await login(self.url, username, password)

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()


async def login(url: str, username: str, password: str) -> str:
    """A token for ``username`` from the API at ``url`` (``POST /api/auth/login``)."""
    async with httpx.AsyncClient(base_url=url, timeout=DEADLINE) as client:
        response = await client.post("/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def bearer(token: str) -> dict[str, str]:
    """The header that authenticates with ``token``."""
    return {"Authorization": f"Bearer {token}"}


async def _clients(url: str, system: TodoListSystem, **where: Any) -> RunningApi:
    admin_token = await login(url, "admin", ADMIN_PASSWORD)
    viewer_token = await login(url, VIEWER_USER, VIEWER_PASSWORD)

    def client(**options: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=url, timeout=DEADLINE, **options)

    admin, viewer, anonymous = client(headers=bearer(admin_token)), client(headers=bearer(viewer_token)), client()
    running = RunningApi(url, system, admin, viewer, anonymous, admin_token, viewer_token, **where)
    running._clients.extend([admin, viewer, anonymous])
    return running


def todolist(directory: Path) -> TodoListSystem:
    """The TodoList bundles with short delays, their state under ``directory``."""
    return TodoListSystem(directory, service_delay=0.01, consumer_settings=ConsumerSettings(error_delay=0.05))


@contextlib.asynccontextmanager
async def running_api(
    directory: Path,
    settings: ApiSettings | None = None,
    *,
    system: TodoListSystem | None = None,
    store: EventStore | None = None,
) -> AsyncIterator[RunningApi]:
    """The API of an in-process server (SQLite under ``directory`` unless ``store`` is given) with the TodoList on
    it, on a free port."""
    settings = settings or ApiSettings(admin_password=ADMIN_PASSWORD)
    server = EventoServer(store or SQLiteEventStore(directory / "events.db"), server_id="api-test-server")
    await server.start()
    http = ServerHttp(server, settings, "127.0.0.1", 0)
    todo = system or todolist(directory / "bundles")
    running: RunningApi | None = None
    try:
        await http.start()
        await http.context.users.add(VIEWER_USER, VIEWER_PASSWORD, Role.VIEWER)
        await todo.start(server)
        for bundle in todo.bundles:
            await bundle.wait_for_head(DEADLINE)
        running = await _clients(http.url(), todo, server=server, http=http)
        yield running
    finally:
        if running is not None:
            await running.close()
        await todo.stop()
        await http.stop()
        await server.stop()


@contextlib.asynccontextmanager
async def running_api_process(directory: Path, *extra: str) -> AsyncIterator[RunningApi]:
    """The API of an ``evento server`` process (SQLite under ``directory``), its TodoList bundles connected to its
    bus over TCP from this process."""
    process = await start_server_process(
        directory / "server", "--auth-token", BUS_TOKEN, "--admin-password", ADMIN_PASSWORD, *extra
    )
    todo = todolist(directory / "bundles")
    running: RunningApi | None = None
    try:
        await _add_user(directory / "server" / "events.db", VIEWER_USER, VIEWER_PASSWORD, Role.VIEWER)
        for bundle in todo.bundles:
            await bundle.start(TcpConnector(process.bus, auth_token=BUS_TOKEN))
        for bundle in todo.bundles:
            await bundle.wait_for_head(DEADLINE)
        running = await _clients(process.http, todo, process=process)
        yield running
    finally:
        if running is not None:
            await running.close()
        await todo.stop()
        stop_server_process(process)


async def _add_user(events_db: Path, name: str, password: str, role: Role) -> None:
    """A user written straight into a server's SQLite database (as ``evento users add`` does)."""
    database = SQLiteDatabase(events_db)
    await database.start()
    try:
        users = UserStore(database)
        await users.start()
        await users.add(name, password, role)
    finally:
        await database.stop()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[RunningApi]:
    """The API of an in-process server with the TodoList on it."""
    async with running_api(tmp_path) as running:
        yield running


@pytest.fixture
async def api_process(tmp_path: Path) -> AsyncIterator[RunningApi]:
    """The API of an ``evento server`` process with the TodoList connected over TCP."""
    async with running_api_process(tmp_path) as running:
        yield running
