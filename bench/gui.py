"""``gui_initial_js_kb`` and ``gui_first_load_ms``: the GUI's first page, in Debian's Chromium driven by Playwright
against ``evento demo`` (a real process on free ports, with TodoList traffic sent to its HTTP API).

``gui_initial_js_kb``: the JavaScript the dashboard loads (every script response from navigation until its figures
show), gzip-compressed as the server sends it; baseline ``budget`` 400 KB (issue 11: heavy pages load lazily).
``gui_first_load_ms``: from navigation to ``/`` in a fresh browser context (no cache; the session already in
localStorage, as after a login) until the dashboard shows the demo's event count; the median of the trials,
baseline ``budget`` 1500 ms. Both below 1 in ratio meet the budget. Needs the built GUI (``make gui``) and
Chromium (``apt-get install chromium`` or ``EVENTO_CHROMIUM``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

from bench.common import Figure, RunConfig

FIGURES = ("gui_initial_js_kb", "gui_first_load_ms")
JS_BUDGET_KB = 400.0
LOAD_BUDGET_MS = 1500.0
ADMIN_PASSWORD = "bench-gui-first-load"
READY_SECONDS = 60.0
TIMEOUT_MS = 30_000
#: The compression level the server uses for its assets (evento.server.gui).
GZIP_LEVEL = 6


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _gzip_size(path: str) -> int:
    """The bytes the server sends for a built asset (``/assets/…``) to a browser accepting gzip."""
    from evento.server.gui import GUI_DIST

    return len(gzip.compress((GUI_DIST / path.lstrip("/")).read_bytes(), compresslevel=GZIP_LEVEL))


def _chromium() -> str:
    path = os.environ.get("EVENTO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        raise RuntimeError("the GUI benches need Chromium: apt-get install chromium (or set EVENTO_CHROMIUM)")
    return path


@contextlib.contextmanager
def _demo(directory: Path) -> Iterator[tuple[str, str]]:
    """``evento demo`` on free ports until the block ends: its server's URL and its TodoList API's URL."""
    from evento.server.gui import GUI_DIST

    if not (GUI_DIST / "index.html").is_file():
        raise RuntimeError(f"the GUI benches need the built GUI in {GUI_DIST}: run make gui first")
    port, todo_port = _free_port(), _free_port()
    command = [
        sys.executable, "-m", "evento.cli", "--log-level", "WARNING", "demo",
        "--data-dir", str(directory / "demo"), "--host", "127.0.0.1", "--port", str(port),
        "--bus-port", str(_free_port()), "--todo-port", str(todo_port), "--service-delay", "0.005",
        "--admin-password", ADMIN_PASSWORD,
    ]  # fmt: skip
    log = directory / "demo.out"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + READY_SECONDS
        while "Ready." not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"evento demo did not start:\n{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{todo_port}"
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _traffic(todo_url: str, lists: int) -> None:
    """TodoList traffic through the demo's HTTP API: lists with three todos each, one checked."""
    with httpx.Client(base_url=todo_url, timeout=30, headers={"Authorization": "Bearer alice"}) as client:
        for n in range(lists):
            created = client.post("/todo-list/", json={"name": f"bench list {n}"})
            created.raise_for_status()
            identifier = created.json()["identifier"]
            todos = []
            for m in range(3):
                added = client.post(f"/todo-list/{identifier}/todo/", json={"content": f"todo {m}"})
                added.raise_for_status()
                todos.append(added.json()["identifier"])
            client.put(f"/todo-list/{identifier}/todo/{todos[0]}").raise_for_status()


def _login(url: str) -> tuple[str, dict[str, Any]]:
    """A token of the admin, and the GUI's session holding it as the browser keeps it after a login
    (localStorage ``evento.session``)."""
    answer = httpx.post(f"{url}/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}, timeout=30)
    answer.raise_for_status()
    body = answer.json()
    session = {"username": "admin", "token": body["token"], "expiresAt": body["expiresAt"], "roles": body["roles"]}
    storage = {"origins": [{"origin": url, "localStorage": [{"name": "evento.session", "value": json.dumps(session)}]}]}
    return body["token"], storage


async def _trial(browser: Any, url: str, storage: dict[str, Any], events: int) -> tuple[float, dict[str, int]]:
    """One cold load of the dashboard: the milliseconds until its figures show, and the scripts it loaded."""
    from playwright.async_api import Response, expect

    context = await browser.new_context(viewport={"width": 1280, "height": 800}, storage_state=storage)
    context.set_default_timeout(TIMEOUT_MS)
    loaded: list[str] = []

    def seen(response: Response) -> None:
        if response.request.resource_type == "script":
            loaded.append(urlparse(response.url).path)

    page = await context.new_page()
    page.on("response", seen)
    try:
        started = time.perf_counter()
        await page.goto(f"{url}/")
        await expect(page.get_by_test_id("figure-Events")).to_have_text(f"{events:,}", timeout=TIMEOUT_MS)
        elapsed = (time.perf_counter() - started) * 1000
        # What the page loads lazily once shown (the chart of its slot) counts too.
        await page.wait_for_load_state("networkidle")
        return elapsed, {path: _gzip_size(path) for path in loaded}
    finally:
        await context.close()


async def _measure(url: str, trials: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    token, storage = _login(url)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        dashboard = await client.get("/api/dashboard", headers={"Authorization": f"Bearer {token}"})
    dashboard.raise_for_status()
    events = dashboard.json()["events"]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=_chromium(), headless=True)
        try:
            await _trial(browser, url, storage, events)  # warms the server (first compression of each asset)
            results = [await _trial(browser, url, storage, events) for _ in range(trials)]
        finally:
            await browser.close()
    return {"events": events, "loads_ms": [r[0] for r in results], "scripts": results[-1][1]}


def run(config: RunConfig, figures: frozenset[str] = frozenset(FIGURES)) -> list[Figure]:
    if not figures & set(FIGURES):
        return []
    directory = config.scratch("gui")
    with _demo(directory) as (url, todo_url):
        _traffic(todo_url, 5 if config.quick else 20)
        found = asyncio.run(_measure(url, 3 if config.quick else 7))
    js_kb = sum(found["scripts"].values()) / 1024
    load_ms = statistics.median(found["loads_ms"])
    config.details["gui"] = {
        "events": found["events"],
        "loads_ms": [round(ms, 1) for ms in found["loads_ms"]],
        "scripts_gzip_bytes": {path.rsplit("/", 1)[-1]: size for path, size in sorted(found["scripts"].items())},
        "figures": "first load: navigation to the dashboard's event count shown (fresh context, median); "
        f"initial JS: the scripts that load gzip -{GZIP_LEVEL}",
    }
    results = []
    if "gui_initial_js_kb" in figures:
        results.append(Figure.compare("gui_initial_js_kb", js_kb, "KB", "budget", JS_BUDGET_KB))
    if "gui_first_load_ms" in figures:
        results.append(Figure.compare("gui_first_load_ms", load_ms, "ms", "budget", LOAD_BUDGET_MS))
    return results
