"""What the GUI's browser tests run against: the real server (in-process, SQLite) with the TodoList bundles and
their traffic, a bundle whose projector dead-letters what its cause lists, in a thread of its own so the tests
drive Chromium with Playwright's synchronous API from the main thread.

Chromium is Debian's (``/usr/bin/chromium``, installed by ``.ci/run``; Playwright downloads no browser). Without
it, or without the built GUI, the tests skip saying what is missing, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from evento import Bundle, ConsumerSettings, event_handler, projector
from evento.consumer_stores import SQLiteConsumerStateStore
from evento.demo.todolist.payloads import TodoListCreatedEvent
from evento.server.api import ApiSettings
from evento.server.gui import GUI_DIST
from tests.api_support import ADMIN_PASSWORD, DEADLINE, VIEWER_PASSWORD, VIEWER_USER, RunningApi, running_api

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
#: Screenshots of every test, for a person to look at (git-ignored).
ARTIFACTS = ROOT / "artifacts" / "gui"
#: axe-core, from the GUI's own dev dependencies (no CDN).
AXE = ROOT / "gui" / "node_modules" / "axe-core" / "axe.min.js"
REVIEW = "audit_ListReview_1_*"
#: The review bundle's repository, which its pages link to (never fetched).
REPOSITORY = "https://example.org/evento/audit"
PROJECTOR = "todolist-query_TodoListProjector_1_*"

__all__ = [
    "ADMIN_PASSWORD",
    "ARTIFACTS",
    "AXE",
    "PROJECTOR",
    "REPOSITORY",
    "REVIEW",
    "VIEWER_PASSWORD",
    "VIEWER_USER",
    "LiveSystem",
    "chromium_or_skip",
    "unavailable",
]


def unavailable(reason: str) -> None:
    """Skip a browser test for want of ``reason``; under CI a failure, since CI installs everything."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"GUI browser tests cannot run under CI: {reason}")
    pytest.skip(f"GUI browser tests skipped: {reason}")


def chromium_or_skip() -> str:
    """The path of Debian's Chromium (``EVENTO_CHROMIUM`` to point elsewhere), the built GUI and axe-core, or
    skip (fail under CI) saying which is missing."""
    path = os.environ.get("EVENTO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        unavailable("no Chromium found (apt-get install chromium, or set EVENTO_CHROMIUM)")
    if not (GUI_DIST / "index.html").is_file():
        unavailable(f"the GUI is not built in {GUI_DIST} (run make gui)")
    if not AXE.is_file():
        unavailable(f"axe-core is not installed in {AXE.parent} (run make gui)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("Playwright for Python is not installed (pip install -e '.[dev]')")
    return path


@dataclass
class Cause:
    """The bug behind poisoned lists: while a list's name is here, the review projector fails on it."""

    names: set[str] = field(default_factory=lambda: {"poison"})
    reviewed: list[str] = field(default_factory=list)


@projector(version=1)
class ListReview:
    """Reviews created lists; fails without retry on the names its cause lists (a dead event each)."""

    def __init__(self, cause: Cause) -> None:
        self.cause = cause

    @event_handler(retry=0)
    def on_created(self, event: TodoListCreatedEvent) -> None:
        if event.content in self.cause.names:
            raise ValueError(f"cannot review a list named {event.content!r}")
        self.cause.reviewed.append(event.content)


@dataclass
class Traffic:
    """What the TodoList traffic created: list identifiers by name."""

    lists: dict[str, str] = field(default_factory=dict)


class LiveSystem:
    """The server, the TodoList and the review bundle running on an event loop in a thread of their own."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.cause = Cause()
        self.traffic = Traffic()
        self.api: RunningApi | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="gui-test-server", daemon=True)

    @property
    def url(self) -> str:
        assert self.api is not None
        return self.api.url

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(60):
            raise AssertionError("the GUI tests' server did not start within 60 s")
        if self._error is not None:
            raise AssertionError(f"the GUI tests' server failed to start: {self._error!r}") from self._error

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def call(self, work: Callable[[], Coroutine[Any, Any, T]], timeout: float = DEADLINE) -> T:
        """Run ``work()`` on the server's loop and return its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(work(), self._loop).result(timeout)

    def api_get(self, path: str) -> Any:
        """GET an API path as the admin; the JSON body."""

        async def get() -> Any:
            assert self.api is not None
            response = await self.api.admin.get(path)
            assert response.status_code == 200, response.text
            return response.json()

        return self.call(get)

    def wait_for(self, what: str, check: Callable[[], Awaitable[bool]], timeout: float = DEADLINE) -> None:
        """Wait (on the server's loop) until ``check()`` holds, or fail saying ``what``."""

        async def wait() -> None:
            deadline = asyncio.get_running_loop().time() + timeout
            while not await check():
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"not within {timeout} s: {what}")
                await asyncio.sleep(0.05)

        self.call(wait, timeout + 5)

    def review_bundle(self, instance_id: str) -> Bundle:
        """An instance of the review bundle (its instances share one consumer store: one holds the lock)."""
        return Bundle(
            "audit",
            components=[ListReview],
            description="Reviews the lists created (and fails on the poisoned ones)",
            repository_url=REPOSITORY,
            instance_id=instance_id,
            consumer_store=SQLiteConsumerStateStore(self.directory / "review.db"),
            injector=lambda annotation: self.cause if annotation is Cause else None,
            consumer_settings=ConsumerSettings(error_delay=0.05),
        )

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the thread that waits for the start
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        settings = ApiSettings(admin_password=ADMIN_PASSWORD, cluster_poll_seconds=0.2)
        async with running_api(self.directory, settings) as api:
            self.api = api
            review = self.review_bundle("replica-1")
            assert api.server is not None
            await review.start(api.server)
            try:
                await self._traffic(api)
                self._ready.set()
                await self._stop.wait()
            finally:
                await review.stop()

    async def _traffic(self, api: RunningApi) -> None:
        """TodoList traffic: lists with todos, some checked and removed, one list deleted."""
        invoker = api.system.invoker()
        for name, todos in (("groceries", ["milk", "bread", "eggs"]), ("books", ["dune", "emma"]), ("trip", ["map"])):
            identifier = await invoker.create_todo_list(name, "alice")
            self.traffic.lists[name] = identifier
            added = [await invoker.add_todo(identifier, todo, "bob") for todo in todos]
            await invoker.check_todo(identifier, added[0], "carol")
        gone = await invoker.create_todo_list("scratch", "alice")
        await invoker.delete_todo_list(gone, "alice")
        for consumer in (PROJECTOR, REVIEW):
            await self._caught_up(api, consumer)

    async def _caught_up(self, api: RunningApi, consumer: str) -> None:
        deadline = asyncio.get_running_loop().time() + DEADLINE
        while True:
            response = await api.admin.get(f"/api/consumer/{consumer}")
            body = response.json() if response.status_code == 200 else {}
            if body.get("lag") == 0 and body.get("headReached") and body.get("inFlight") == 0:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{consumer} did not catch up: {json.dumps(body)}")
            await asyncio.sleep(0.05)
