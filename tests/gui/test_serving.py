"""The server serving the GUI's built assets over real HTTP (no browser): the app's index for every path that is
not the API's (deep links), hashed assets cached for a year and compressed, index.html revalidated, the API's own
answers untouched (404 problems, 405, its redirect), nothing outside the build directory, and a page saying how
to build the GUI when it is missing."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from evento.event_stores import SQLiteEventStore
from evento.server import EventoServer
from evento.server.api import ApiSettings, create_api
from evento.server.gui import IMMUTABLE, NO_CACHE, mount_gui
from evento.server.http import EmbeddedUvicorn

INDEX = '<!doctype html><html><head><script type="module" src="/assets/app-3f2a1b.js"></script></head></html>'
SCRIPT = "export const answer = 42;\n" * 200  # large enough to be worth compressing


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    """A built GUI as Vite lays it out, beside a file that must never be served."""
    built = tmp_path / "dist"
    (built / "assets").mkdir(parents=True)
    (built / "index.html").write_text(INDEX)
    (built / "assets" / "app-3f2a1b.js").write_text(SCRIPT)
    (built / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (tmp_path / "secret.txt").write_text("not for the browser")
    return built


async def serve(directory: Path, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    server = EventoServer(SQLiteEventStore(tmp_path / "events.db"), server_id="gui-serving")
    await server.start()
    app = mount_gui(create_api(server, ApiSettings(admin_password="gui-serving-password")), directory)
    http = EmbeddedUvicorn(app, "127.0.0.1", 0)
    await http.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http.port}", timeout=10) as client:
            yield client
    finally:
        await http.stop()
        await server.stop()


@pytest.fixture
async def client(dist: Path, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for served in serve(dist, tmp_path):
        yield served


@pytest.fixture
async def unbuilt(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for served in serve(tmp_path / "never-built", tmp_path):
        yield served


async def test_every_path_outside_the_api_answers_the_apps_index(client: httpx.AsyncClient) -> None:
    for path in ("/", "/payloads/TodoListView", "/consumers/a_B_1_*?page=2", "/state-store/events/12"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.text == INDEX
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["cache-control"] == NO_CACHE
        assert "script-src 'self'" in response.headers["content-security-policy"]
    assert (await client.head("/bundles")).status_code == 200


async def test_hashed_assets_are_cached_for_a_year_and_compressed(client: httpx.AsyncClient) -> None:
    plain = await client.get("/assets/app-3f2a1b.js", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200
    assert plain.text == SCRIPT
    assert plain.headers["cache-control"] == IMMUTABLE
    assert "javascript" in plain.headers["content-type"]
    assert "content-encoding" not in plain.headers

    raw = await client.send(
        client.build_request("GET", "/assets/app-3f2a1b.js", headers={"Accept-Encoding": "gzip"}), stream=True
    )
    body = b"".join([chunk async for chunk in raw.aiter_raw()])
    await raw.aclose()
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.headers["vary"] == "Accept-Encoding"
    assert gzip.decompress(body).decode() == SCRIPT
    assert len(body) < len(SCRIPT) / 10

    other = await client.get("/favicon.svg")
    assert other.status_code == 200
    assert other.headers["cache-control"] == NO_CACHE


async def test_a_missing_asset_is_a_404_not_the_index(client: httpx.AsyncClient) -> None:
    response = await client.get("/assets/app-000000.js")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "reload the page" in response.json()["detail"]


async def test_nothing_outside_the_build_is_served(client: httpx.AsyncClient) -> None:
    for path in ("/assets/..%2F..%2Fsecret.txt", "/..%2Fsecret.txt", "/assets/%2E%2E/%2E%2E/secret.txt"):
        response = await client.get(path)
        assert response.status_code in (200, 404), path  # the app's index, or no such asset
        assert "not for the browser" not in response.text, path


async def test_the_api_keeps_its_own_answers(client: httpx.AsyncClient) -> None:
    unknown = await client.get("/api/no-such-route")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert (await client.get("/metrics/anything")).status_code == 404
    assert (await client.post("/api/dashboard")).status_code == 405
    assert (await client.post("/payloads")).status_code == 404  # the GUI answers only GET and HEAD
    redirect = await client.get("/api/bundle", follow_redirects=False)
    assert redirect.status_code == 307
    assert redirect.headers["location"].endswith("/api/bundle/")
    assert (await client.get("/api/health")).status_code == 200
    assert (await client.get("/api/dashboard")).status_code == 401


async def test_without_a_build_a_page_says_how_to_make_one(unbuilt: httpx.AsyncClient) -> None:
    for path in ("/", "/cluster", "/assets/app-3f2a1b.js"):
        response = await unbuilt.get(path)
        assert response.status_code == 503, path
        assert response.headers["content-type"].startswith("text/html")
        assert "The GUI was not built" in response.text
        assert "make gui" in response.text
    assert (await unbuilt.get("/api/health")).status_code == 200
