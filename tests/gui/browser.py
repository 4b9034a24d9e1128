"""Steps the GUI's browser tests share: logging in through the login page, and the accessibility check (axe-core
from ``gui/node_modules``: no serious or critical violation).

axe-core is evaluated through the DevTools protocol rather than added as a ``<script>`` tag: the GUI's Content
Security Policy refuses inline scripts, and the tests keep that policy on (a test browser that bypassed it would
not notice the GUI breaking it)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from playwright.sync_api import expect

from tests.gui.support import AXE

if TYPE_CHECKING:
    from playwright.sync_api import Page

#: The impacts the GUI must not have.
BLOCKING = ("serious", "critical")


@functools.cache
def _axe_source() -> str:
    return AXE.read_text()


def login(page: Page, url: str, username: str, password: str, path: str = "/") -> None:
    """Log in through the login page, asked for by opening ``path`` without a session."""
    page.goto(f"{url}{path}")
    expect(page.get_by_role("heading", name="Evento")).to_be_visible()
    page.get_by_label("User name").fill(username)
    page.locator("input[name=password]").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("current-user")).to_have_text(username)


def accessibility_violations(page: Page) -> list[dict[str, Any]]:
    """The serious and critical violations axe-core finds on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(_axe_source())
    results: dict[str, Any] = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [v for v in results["violations"] if v.get("impact") in BLOCKING]


def assert_accessible(page: Page) -> None:
    found = accessibility_violations(page)
    lines = [f"{v['impact']} {v['id']}: {v['help']} — {[n['target'] for n in v['nodes'][:3]]}" for v in found]
    assert not found, f"accessibility violations on {page.url}:\n" + "\n".join(lines)
