"""Every page of the GUI loads in Chromium against the live TodoList system and shows its real data (names,
counts and identifiers the API reports), with no serious or critical accessibility violation, in the light theme
and, for the busiest pages, in the dark one; a deep link survives a reload."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from tests.gui.browser import assert_accessible
from tests.gui.support import PROJECTOR, REVIEW, LiveSystem

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Visit:
    """A page to open and what it must show: the texts ``shows`` gives for the live system."""

    path: Callable[[LiveSystem], str]
    shows: Callable[[LiveSystem], list[str]]


def fixed(path: str) -> Callable[[LiveSystem], str]:
    return lambda _live: path


PAGES: dict[str, Visit] = {
    "dashboard": Visit(fixed("/"), lambda live: ["Components by kind", f"{live.api_get('/api/dashboard')['events']}"]),
    "payloads": Visit(fixed("/payloads"), lambda _: ["TodoListCreatedEvent", "ErpUserActivityRegisterCommand"]),
    "payload": Visit(
        fixed("/payloads/TodoListView"), lambda _: ["A todo list with its todos.", "TodoView[]", "completed"]
    ),
    "components": Visit(fixed("/components"), lambda _: ["TodoListAggregate", "ListReview", "TodoListProjector"]),
    "component": Visit(
        fixed("/components/TodoListAggregate"), lambda _: ["TodoListCreateCommand", "TodoListTodoCheckedEvent"]
    ),
    "bundles": Visit(fixed("/bundles"), lambda _: ["todolist-command", "todolist-saga", "audit"]),
    "bundle": Visit(
        fixed("/bundles/todolist-query"), lambda _: ["TodoListProjector", "TodoListProjection", "replica-1"]
    ),
    "cluster": Visit(fixed("/cluster"), lambda _: ["todolist-web", "api-test-server", "audit"]),
    "consumers": Visit(fixed("/consumers"), lambda _: [PROJECTOR, REVIEW, "lag 0"]),
    "consumer": Visit(
        fixed(f"/consumers/{quote(PROJECTOR)}"),
        lambda live: ["holds the lock", f"{live.api_get('/api/dashboard')['head']}"],
    ),
    "events": Visit(fixed("/state-store/events"), lambda live: ["TodoListDeletedEvent", live.traffic.lists["trip"]]),
    "event": Visit(
        fixed("/state-store/events/1"),
        lambda live: ["TodoListCreatedEvent", "groceries", live.traffic.lists["groceries"]],
    ),
    "aggregate": Visit(
        lambda live: f"/state-store/aggregates/{live.traffic.lists['books']}",
        lambda _: ["TodoListCreatedEvent", "TodoListTodoCheckedEvent", "has no snapshot"],
    ),
    "snapshots": Visit(fixed("/state-store/snapshots"), lambda live: [live.traffic.lists["groceries"]]),
    "flows": Visit(fixed("/flows"), lambda _: ["Flows"]),
    "graph": Visit(fixed("/graph"), lambda _: ["Application graph"]),
}

DARK = ("dashboard", "consumer", "events")


def visit(page: Page, live: LiveSystem, name: str) -> None:
    target = PAGES[name]
    path = target.path(live)
    page.goto(f"{live.url}{path}")
    expect(page.get_by_test_id("current-user")).to_have_text("admin")
    expect(page).to_have_url(f"{live.url}{path}")
    for text in target.shows(live):
        expect(page.get_by_text(text, exact=False).first).to_be_visible()
    # No page is left loading or failing: the data arrived.
    expect(page.get_by_role("status").filter(has_text="Loading")).to_have_count(0)
    expect(page.get_by_role("alert")).to_have_count(0)


@pytest.mark.parametrize("name", list(PAGES))
def test_page_shows_real_data_and_is_accessible(name: str, live: LiveSystem, open_page: Callable[..., Page]) -> None:
    page = open_page()
    visit(page, live, name)
    assert_accessible(page)


@pytest.mark.parametrize("name", DARK)
def test_page_in_the_dark_theme_is_accessible(name: str, live: LiveSystem, open_page: Callable[..., Page]) -> None:
    page = open_page(color_scheme="dark")
    visit(page, live, name)
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background != "rgb(255, 255, 255)", "the dark theme was not applied"
    assert_accessible(page)


def test_a_deep_link_survives_a_reload(live: LiveSystem, open_page: Callable[..., Page]) -> None:
    page = open_page()
    path = "/payloads?kind=DomainEvent&q=todo"
    page.goto(f"{live.url}{path}")
    expect(page.get_by_text("TodoListTodoAddedEvent")).to_be_visible()
    expect(page.get_by_text("TodoListCreateCommand")).to_have_count(0)
    page.reload()
    expect(page).to_have_url(f"{live.url}{path}")
    expect(page.get_by_text("TodoListTodoAddedEvent")).to_be_visible()
    expect(page.get_by_role("textbox", name="Search payloads")).to_have_value("todo")
    expect(page.get_by_text("TodoListCreateCommand")).to_have_count(0)


def test_errors_and_empty_lists_say_so_in_the_apis_words(live: LiveSystem, open_page: Callable[..., Page]) -> None:
    page = open_page()
    page.goto(f"{live.url}/payloads/NoSuchPayload")
    expect(page.get_by_test_id("error-detail")).to_have_text("no payload 'NoSuchPayload' in the catalog")
    page.goto(f"{live.url}/consumers/{quote('nobody_Nothing_1_*')}")
    detail = live.call(lambda: _detail(live, "/api/consumer/nobody_Nothing_1_*"))
    expect(page.get_by_test_id("error-detail").first).to_have_text(detail)
    page.goto(f"{live.url}/state-store/events?fromSeq=-1")
    expect(page.get_by_test_id("error-detail")).to_contain_text("fromSeq")
    page.goto(f"{live.url}/payloads?q=nothing-is-called-this")
    expect(page.get_by_text("No payload matches these filters")).to_be_visible()
    assert_accessible(page)


def test_keyboard_focus_is_visible(live: LiveSystem, open_page: Callable[..., Page]) -> None:
    page = open_page()
    page.goto(f"{live.url}/payloads")
    expect(page.get_by_text("TodoListCreatedEvent")).to_be_visible()
    for _ in range(30):  # through the header and the navigation, to the first link of the list
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "ErpUserActivityRegisterCommand":
            break
    else:
        raise AssertionError("Tab never reached the payloads' first link")
    outline = page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.outlineWidth]; })()"
    )
    assert outline[0] != "none", outline
    assert outline[1] not in ("0px", ""), outline


async def _detail(live: LiveSystem, path: str) -> str:
    assert live.api is not None
    response = await live.api.admin.get(path)
    assert response.status_code >= 400, response.text
    detail: str = response.json()["detail"]
    return detail
