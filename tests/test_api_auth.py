"""Authentication and roles of the server's REST API, on the real API (uvicorn, a real server with the TodoList):
every route × {anonymous, wrong password, viewer, admin} (the routes enumerated from the app, so a new route is
covered without editing this file), logins and tokens (expiry, forgery, a deleted user, a token from another server
of the cluster), throttling by user name and by client address, and the admin's password at first start."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import pytest
from fastapi.routing import iter_route_contexts

from evento.event_stores.postgres import PostgresEventStore
from evento.messages import GetConsumerStatus, ResetConsumer
from evento.server import EventoServer
from evento.server.api import ApiSettings
from evento.server.api._security import TokenIssuer
from evento.server.http import ServerHttp
from evento.server.users import ADMIN_USER, Role, UserStore
from evento.storage.database import SQLiteDatabase
from evento.testing.databases import postgres_url  # noqa: F401  (fixture)
from tests.api_support import (
    ADMIN_PASSWORD,
    VIEWER_PASSWORD,
    VIEWER_USER,
    RunningApi,
    bearer,
    login,
    running_api,
)
from tests.helpers import free_port, start_server_process, stop_server_process, wait_until

#: Routes anyone may call.
PUBLIC = {"/api/health", "/api/health/ready", "/api/openapi.json", "/api/docs"}
#: Changes a viewer may ask for (everything else but GET needs an admin): logging in, and evaluating a what-if
#: performance model (a computation, nothing changes).
VIEWER_CHANGES = {("POST", "/api/auth/login"), ("POST", "/api/flows/evaluate")}
#: Routes whose rights depend on the request's body (see test_a_relayed_admin_request_needs_the_right_role).
BY_BODY = {("POST", "/api/consumer/{consumer_id}/relay")}
PUBLIC_CHANGES = {("POST", "/api/auth/login")}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[RunningApi]:
    # The matrix fails many logins on purpose: the throttle must not be what answers.
    settings = ApiSettings(admin_password=ADMIN_PASSWORD, max_auth_failures=100_000)
    async with running_api(tmp_path, settings) as running:
        yield running


def routes(api: RunningApi) -> list[tuple[str, str]]:
    """Every (method, path) of the app, as it routes them."""
    assert api.http is not None
    return [
        (method, route.path)
        for route in iter_route_contexts(api.http.app.routes)  # routers included in the app, flattened
        for method in sorted(route.methods or ())
        if method != "HEAD" and route.path is not None
    ]


def expected_role(method: str, path: str) -> str:
    if path in PUBLIC or (method, path) in PUBLIC_CHANGES:
        return "public"
    if method == "GET" or (method, path) in VIEWER_CHANGES:
        return "viewer"
    return "admin"


async def status_of(client: httpx.AsyncClient, method: str, path: str) -> httpx.Response:
    """The answer's head (a stream, such as the cluster's server-sent events, is closed unread)."""
    url = re.sub(r"\{[^}]+\}", "1", path)
    body: dict[str, object] | None = {} if method in ("POST", "PUT", "PATCH") else None
    async with client.stream(method, url, json=body) as response:
        return response


async def test_every_route_answers_each_caller_as_its_role_says(api: RunningApi) -> None:
    callers = {
        "anonymous": api.anonymous,
        "wrong password": api.client(auth=(ADMIN_USER, "not-the-password")),
        "viewer": api.viewer,
        "admin": api.admin,
    }
    checked: dict[str, int] = {"public": 0, "viewer": 0, "admin": 0}
    for method, path in routes(api):
        if (method, path) in BY_BODY:
            continue
        role = expected_role(method, path)
        checked[role] += 1
        for caller, client in callers.items():
            response = await status_of(client, method, path)
            where = f"{caller} {method} {path}: {response.status_code}"
            assert response.status_code < 500, where
            denied = (role == "admin" and caller in ("anonymous", "wrong password", "viewer")) or (
                role == "viewer" and caller in ("anonymous", "wrong password")
            )
            if not denied:
                assert response.status_code not in (401, 403), where
            elif caller == "viewer":
                assert response.status_code == 403, where
                assert response.headers["content-type"] == "application/problem+json", where
            else:
                assert response.status_code == 401, where
                assert response.headers["www-authenticate"].startswith("Bearer"), where
                assert response.headers["content-type"] == "application/problem+json", where
    # The matrix saw the routes of every area (a wrong enumeration would check nothing).
    paths = {path for _, path in routes(api)}
    for area in ("/api/auth/me", "/api/dashboard", "/api/cluster-status/view", "/api/system-state-store/event",
                 "/metrics"):  # fmt: skip
        assert area in paths
    assert checked["public"] >= 4
    assert checked["viewer"] >= 8
    print(f"authorisation matrix: {checked} routes x 4 callers")


async def test_a_relayed_admin_request_needs_the_right_role(api: RunningApi) -> None:
    """The relay route (servers of a cluster forward admin requests through it, with their caller's credentials)
    lets a viewer read and only an admin change."""
    path = "/api/consumer/c/relay"
    read = msgspec.json.encode(GetConsumerStatus("c"))
    change = msgspec.json.encode(ResetConsumer("c", 0))
    assert (await api.anonymous.post(path, content=read)).status_code == 401
    assert (await api.viewer.post(path, content=change)).status_code == 403
    assert (await api.viewer.post(path, content=read)).status_code not in (401, 403)
    assert (await api.admin.post(path, content=change)).status_code not in (401, 403)


async def test_login_gives_a_token_with_its_expiry_and_roles(api: RunningApi) -> None:
    before = time.time()
    response = await api.anonymous.post("/api/auth/login", json={"username": VIEWER_USER, "password": VIEWER_PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"token", "expiresAt", "roles"}
    assert body["roles"] == ["viewer"]
    expires = time.mktime(time.strptime(body["expiresAt"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert before + 12 * 3600 - 5 <= expires <= time.time() + 12 * 3600 + 5
    me = await api.client(headers=bearer(body["token"])).get("/api/auth/me")
    assert me.json() == {"username": VIEWER_USER, "roles": ["viewer"]}
    admin = await api.admin.get("/api/auth/me")
    assert admin.json() == {"username": "admin", "roles": ["viewer", "admin"]}
    # HTTP Basic, for scripts.
    basic = await api.client(auth=(VIEWER_USER, VIEWER_PASSWORD)).get("/api/auth/me")
    assert basic.json()["username"] == VIEWER_USER


async def test_wrong_credentials_are_one_readable_line(api: RunningApi) -> None:
    for body in ({"username": VIEWER_USER, "password": "wrong-password"}, {"username": "nobody", "password": "x"}):
        response = await api.anonymous.post("/api/auth/login", json=body)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json() == {
            "type": "about:blank",
            "title": "Unauthorized",
            "status": 401,
            "detail": "wrong user name or password",
        }
    missing = await api.anonymous.post("/api/auth/login", json={"username": VIEWER_USER})
    assert missing.status_code == 422
    assert missing.json()["detail"] == "Missing required field - at `$.password`"
    wrong_type = await api.anonymous.post("/api/auth/login", json={"username": 5, "password": "x"})
    assert wrong_type.json()["detail"] == "Expected `str`, got `int` - at `$.username`"
    paged = await api.viewer.get("/api/system-state-store/event", params={"size": "many"})
    assert paged.status_code == 422
    assert paged.json()["detail"] == "Expected `int`, got `str` - at query `size`"


async def test_tokens_expire_and_cannot_be_forged(api: RunningApi) -> None:
    assert api.http is not None
    tokens = api.http.context.tokens
    expired, _ = tokens.issue(ADMIN_USER, now=time.time() - tokens.ttl_seconds - 60)
    response = await api.client(headers=bearer(expired)).get("/api/auth/me")
    assert response.status_code == 401
    assert response.json()["detail"] == "the token expired: log in again"
    forged, _ = TokenIssuer(b"another key" * 4, 3600).issue(ADMIN_USER)
    response = await api.client(headers=bearer(forged)).get("/api/auth/me")
    assert (response.status_code, response.json()["detail"]) == (401, "the token is not valid")
    garbage = await api.client(headers=bearer("not.a.jwt")).get("/api/auth/me")
    assert garbage.status_code == 401
    # A deleted user's token stops working at once; a user's role is read at each request.
    await api.http.context.users.add("temp", "temp-password", Role.ADMIN)
    token = await login(api.url, "temp", "temp-password")
    assert (await api.client(headers=bearer(token)).post("/api/consumer/x/enable")).status_code != 403
    await api.http.context.users.set_role("temp", Role.VIEWER)
    assert (await api.client(headers=bearer(token)).post("/api/consumer/x/enable")).status_code == 403
    await api.http.context.users.delete("temp")
    gone = await api.client(headers=bearer(token)).get("/api/auth/me")
    assert (gone.status_code, gone.json()["detail"]) == (401, "the token's user no longer exists")


async def test_a_token_stops_working_when_its_lifetime_passes(tmp_path: Path) -> None:
    settings = ApiSettings(admin_password=ADMIN_PASSWORD, token_ttl_seconds=1)
    async with running_api(tmp_path, settings) as api:
        client = api.client(headers=bearer(await login(api.url, VIEWER_USER, VIEWER_PASSWORD)))
        assert (await client.get("/api/auth/me")).status_code == 200

        async def expired() -> bool:
            return (await client.get("/api/auth/me")).status_code == 401

        await wait_until(expired, 5, interval=0.2, what="the one-second token refused")


def from_address(api: RunningApi, address: str, **options: object) -> httpx.AsyncClient:
    """A client whose connections come from ``address`` (any of 127/8 reaches the server on 127.0.0.1)."""
    return api.client(transport=httpx.AsyncHTTPTransport(local_address=address), **options)


async def attempt(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/api/auth/login", json={"username": username, "password": password})


async def test_failures_for_one_user_name_lock_it_from_everywhere(tmp_path: Path) -> None:
    settings = ApiSettings(admin_password=ADMIN_PASSWORD, max_auth_failures=3, auth_lockout_seconds=60)
    async with running_api(tmp_path, settings) as api:
        for n in (2, 3, 4):  # each address fails once: no address reaches the limit, the name does
            assert (await attempt(from_address(api, f"127.0.0.{n}"), ADMIN_USER, "guess")).status_code == 401
        elsewhere = from_address(api, "127.0.0.5")
        locked = await attempt(elsewhere, ADMIN_USER, ADMIN_PASSWORD)
        assert locked.status_code == 429
        assert locked.headers["content-type"] == "application/problem+json"
        assert 55 <= int(locked.headers["retry-after"]) <= 60
        assert locked.json()["detail"].startswith("too many failed logins: try again in")
        basic = await from_address(api, "127.0.0.5", auth=(ADMIN_USER, ADMIN_PASSWORD)).get("/api/auth/me")
        assert basic.status_code == 429
        # Other users, and tokens issued before, are not locked.
        assert (await attempt(elsewhere, VIEWER_USER, VIEWER_PASSWORD)).status_code == 200
        assert (await api.admin.get("/api/auth/me")).status_code == 200


async def test_failures_from_one_address_lock_it_for_every_name(tmp_path: Path) -> None:
    settings = ApiSettings(admin_password=ADMIN_PASSWORD, max_auth_failures=3, auth_lockout_seconds=1)
    async with running_api(tmp_path, settings) as api:
        attacker = from_address(api, "127.0.0.2")
        assert (await attempt(attacker, "alice", "guess")).status_code == 401
        assert (await attempt(attacker, "bob", "guess")).status_code == 401
        forged = await from_address(api, "127.0.0.2", headers=bearer("forged.token.here")).get("/api/auth/me")
        assert forged.status_code == 401  # a forged token counts as a failure too
        assert (await attempt(attacker, VIEWER_USER, VIEWER_PASSWORD)).status_code == 429
        assert (await attempt(from_address(api, "127.0.0.3"), VIEWER_USER, VIEWER_PASSWORD)).status_code == 200

        async def unlocked() -> bool:
            return (await attempt(attacker, VIEWER_USER, VIEWER_PASSWORD)).status_code == 200

        await wait_until(unlocked, 5, interval=0.2, what="the address unlocked after its lockout")


async def test_a_token_from_one_server_of_a_cluster_works_on_the_others(
    postgres_url: str,  # noqa: F811
) -> None:
    """Both servers share one PostgreSQL: one token key (made once), one users table."""
    servers = [EventoServer(PostgresEventStore(postgres_url), server_id=f"server-{n}") for n in (1, 2)]
    https = [ServerHttp(server, ApiSettings(), "127.0.0.1", 0) for server in servers]
    try:
        for server, http in zip(servers, https, strict=True):
            await server.start()
            await http.start()
        generated = [http.context.admin_login.password for http in https]
        assert sum(password is not None for password in generated) == 1, "the admin is created once"
        password = next(p for p in generated if p is not None)
        token = await login(https[0].url(), ADMIN_USER, password)
        async with httpx.AsyncClient(base_url=https[1].url(), headers=bearer(token)) as other:
            assert (await other.get("/api/auth/me")).json()["username"] == ADMIN_USER
    finally:
        for server, http in zip(servers, https, strict=True):
            await http.stop()
            await server.stop()


async def test_the_admin_password_is_generated_once_or_set_by_the_option(tmp_path: Path) -> None:
    database = SQLiteDatabase(tmp_path / "events.db")
    await database.start()
    try:
        users = UserStore(database)
        await users.start()
        first = await users.ensure_admin()
        assert first.password is not None
        assert len(first.password) >= 16
        assert (await users.ensure_admin()).password is None, "printed once: a restart does not show it again"
        assert await users.verify(ADMIN_USER, first.password) is not None
        await users.ensure_admin("chosen-password")
        assert await users.verify(ADMIN_USER, first.password) is None
        assert await users.verify(ADMIN_USER, "chosen-password") is not None
        rows = await database.fetchall("SELECT password_hash FROM evento_api_user")
        assert rows
        assert all(str(row[0]).startswith("$argon2id$") for row in rows)
        assert "chosen-password" not in str(rows)
    finally:
        await database.stop()


@pytest.mark.slow
async def test_evento_demo_prints_the_api_and_a_login_that_works(tmp_path: Path) -> None:
    """What `make demo` shows: the API's URL and the admin's login, usable at once."""
    port = free_port()
    log = tmp_path / "demo.log"
    with open(log, "wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "evento.cli", "--log-level", "WARNING", "demo", "--data-dir", str(tmp_path / "d"),
             "--port", str(port), "--bus-port", str(free_port()), "--todo-port", str(free_port()),
             "--service-delay", "0.01"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        await wait_until(lambda: "Ready." in log.read_text() or demo.poll() is not None, 60, what="demo Ready.")
        printed = log.read_text()
        assert f"API             http://127.0.0.1:{port}/api/docs" in printed, printed
        match = re.search(r"Login\s+admin / (\S+)  \(generated: shown once, keep it\)", printed)
        assert match is not None, printed
        token = await login(f"http://127.0.0.1:{port}", ADMIN_USER, match.group(1))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=bearer(token)) as client:

            async def all_online() -> bool:  # the catalog records joins a moment after they happen
                return bool((await client.get("/api/dashboard")).json()["bundles"] == {"total": 4, "online": 4})

            await wait_until(all_online, 10, interval=0.1, what="the demo's four bundles in the dashboard")
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=30)


@pytest.mark.slow
async def test_evento_server_prints_the_login_once(tmp_path: Path) -> None:
    first = await start_server_process(tmp_path)
    try:
        match = re.search(r"Login\s+admin / (\S+)", first.output())
        assert match is not None, first.output()
        assert "/api/docs" in first.output()
        token = await login(first.http, ADMIN_USER, match.group(1))
        assert token
    finally:
        stop_server_process(first)
    second = await start_server_process(tmp_path)
    try:
        assert match.group(1) not in second.output()
        assert "Login           admin (password from --admin-password or set earlier)" in second.output()
        await login(second.http, ADMIN_USER, match.group(1))
    finally:
        stop_server_process(second)


async def test_metrics_need_a_viewer_unless_public(tmp_path: Path) -> None:
    async with running_api(tmp_path, ApiSettings(admin_password=ADMIN_PASSWORD)) as api:
        assert (await api.anonymous.get("/metrics")).status_code == 401
        scraped = await api.viewer.get("/metrics")
        assert scraped.status_code == 200
        assert scraped.headers["content-type"].startswith("text/plain")
        assert "# TYPE" in scraped.text
    async with running_api(tmp_path / "public", ApiSettings(admin_password=ADMIN_PASSWORD, metrics_public=True)) as api:
        scraped = await api.anonymous.get("/metrics")
        assert (scraped.status_code, "# TYPE" in scraped.text) == (200, True)
        assert (await api.anonymous.get("/api/dashboard")).status_code == 401  # only /metrics is opened


async def test_cors_is_off_unless_an_origin_is_given(tmp_path: Path) -> None:
    preflight = {"Origin": "https://gui.example", "Access-Control-Request-Method": "GET"}
    async with running_api(tmp_path, ApiSettings(admin_password=ADMIN_PASSWORD)) as api:
        answer = await api.anonymous.options("/api/dashboard", headers=preflight)
        assert "access-control-allow-origin" not in answer.headers
        plain = await api.viewer.get("/api/dashboard", headers={"Origin": "https://gui.example"})
        assert "access-control-allow-origin" not in plain.headers
    settings = ApiSettings(admin_password=ADMIN_PASSWORD, cors_origins=("https://gui.example",))
    async with running_api(tmp_path / "cors", settings) as api:
        answer = await api.anonymous.options("/api/dashboard", headers=preflight)
        assert answer.headers["access-control-allow-origin"] == "https://gui.example"
        other = await api.anonymous.options("/api/dashboard", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
