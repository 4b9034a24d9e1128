"""Fixtures of the GUI's browser tests: the live system (one for the package), Chromium driven by Playwright (one
per module), and a page per test in a fresh browser context (1280×800), whose screenshot is saved under
``artifacts/gui`` when the test ends."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest

from tests.gui.support import ADMIN_PASSWORD, ARTIFACTS, VIEWER_PASSWORD, VIEWER_USER, LiveSystem, chromium_or_skip

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


#: Playwright's waits (for an element, a URL) give up after this many ms.
TIMEOUT_MS = 10_000


@pytest.fixture(scope="package")
def chromium() -> str:
    return chromium_or_skip()


@pytest.fixture(scope="package")
def live(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSystem]:
    system = LiveSystem(tmp_path_factory.mktemp("gui-live"))
    system.start()
    try:
        yield system
    finally:
        system.stop()


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            yield launched
        finally:
            launched.close()


def _artifact_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1]).strip("_")


PASSWORDS = {"admin": ADMIN_PASSWORD, VIEWER_USER: VIEWER_PASSWORD}


@pytest.fixture(scope="module")
def sessions(browser: Browser, live: LiveSystem) -> Callable[[str], Any]:
    """The browser storage (the GUI's session in localStorage) of a user logged in through the login page, once
    per user and module: each test then opens its pages already logged in."""
    from tests.gui.browser import login

    known: dict[str, Any] = {}

    def session(user: str) -> Any:
        if user not in known:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.set_default_timeout(TIMEOUT_MS)
            login(context.new_page(), live.url, user, PASSWORDS[user])
            known[user] = context.storage_state()
            context.close()
        return known[user]

    return session


@pytest.fixture
def open_page(
    browser: Browser, sessions: Callable[[str], Any], request: pytest.FixtureRequest
) -> Iterator[Callable[..., Page]]:
    """Opens pages in fresh contexts, logged in as ``user`` (``None``: not logged in), in the ``color_scheme``
    light or dark; the last page's screenshot is saved as ``artifacts/gui/<test>.png`` when the test ends, pass or
    fail."""
    contexts: list[Any] = []
    pages: list[Page] = []

    def open_(user: str | None = "admin", color_scheme: Literal["light", "dark"] = "light") -> Page:
        context = browser.new_context(
            viewport={"width": 1280, "height": 800},
            color_scheme=color_scheme,
            # No transitions (the GUI respects the preference): axe must not read a dialog while it fades in.
            reduced_motion="reduce",
            storage_state=sessions(user) if user else None,
        )
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        pages.append(page)
        return page

    yield open_
    if pages:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        target: Path = ARTIFACTS / f"{_artifact_name(request.node.nodeid)}.png"
        try:
            pages[-1].screenshot(path=str(target), full_page=True)
        except Exception as exc:  # a closed page must not hide the test's own outcome
            print(f"no screenshot of {request.node.nodeid}: {exc}")
    for context in contexts:
        context.close()
