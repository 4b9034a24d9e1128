"""What a user does in the GUI, in Chromium against the live TodoList system: logging in (a wrong password says
so; the asked page opens after; logging out and a rejected token return to the login page), a viewer who sees no
admin action where an admin sees them, a dead event retried from its consumer's page, a replay followed to its
end, the event browser filtered by aggregate down to the aggregate's timeline, and the cluster page following a
bundle that joins and leaves."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from tests.gui.browser import assert_accessible
from tests.gui.support import ADMIN_PASSWORD, PROJECTOR, REPOSITORY, REVIEW, VIEWER_USER, LiveSystem

pytestmark = pytest.mark.slow


def test_login_fails_with_a_wrong_password_and_then_opens_the_asked_page(
    live: LiveSystem, open_page: Callable[..., Page]
) -> None:
    page = open_page(user=None)
    page.goto(f"{live.url}/consumers?q=todolist")
    expect(page).to_have_url(f"{live.url}/login?next={quote('/consumers?q=todolist', safe='')}")
    page.get_by_label("User name").fill("admin")
    page.locator("input[name=password]").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("login-error")).to_have_text("wrong user name or password")
    expect(page).to_have_url(f"{live.url}/login?next={quote('/consumers?q=todolist', safe='')}")
    assert_accessible(page)

    page.locator("input[name=password]").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live.url}/consumers?q=todolist")
    expect(page.get_by_text(PROJECTOR)).to_be_visible()
    expect(page.get_by_text(REVIEW)).to_have_count(0)  # the search in the URL applies

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{live.url}/login")
    page.goto(f"{live.url}/bundles")
    expect(page).to_have_url(f"{live.url}/login?next=%2Fbundles")


def test_a_rejected_token_returns_to_the_login_page(live: LiveSystem, open_page: Callable[..., Page]) -> None:
    page = open_page()
    page.goto(f"{live.url}/bundles")
    expect(page.get_by_text("todolist-command")).to_be_visible()
    # The server no longer accepts the token (forged, or signed with a key the server lost): the first call says
    # 401, and the GUI drops the session.
    page.evaluate(
        """() => {
            const session = JSON.parse(localStorage.getItem("evento.session"));
            localStorage.setItem("evento.session", JSON.stringify({...session, token: session.token + "x"}));
        }"""
    )
    page.goto(f"{live.url}/components")
    expect(page).to_have_url(f"{live.url}/login?next=%2Fcomponents")
    assert page.evaluate("localStorage.getItem('evento.session')") is None


def admin_controls(page: Page) -> list[str]:
    """The admin controls visible on a consumer's page."""
    controls = [
        page.get_by_role("button", name="Disable"),
        page.get_by_role("button", name="Replay"),
        page.get_by_role("button", name="Consume dead queue"),
        page.get_by_role("switch"),
        page.get_by_role("button", name="Delete"),
    ]
    return [str(control) for control in controls if control.count() > 0]


@pytest.fixture
def poisoned(live: LiveSystem) -> Iterator[int]:
    """A list the review fails on: its event is the review's only dead event (its sequence number); the queue is
    emptied again after the test."""
    live.wait_for("the review's dead queue emptied", lambda: _drop_dead_events(live))
    live.cause.names = {"poison"}
    live.call(lambda: _create_list(live, "poison"))
    live.wait_for("a dead event in the review", lambda: _dead_count(live, 1))
    yield live.api_get(f"/api/consumer/{REVIEW}/event")["items"][0]["sequenceNumber"]
    live.cause.names = set()
    live.wait_for("the review's dead queue emptied", lambda: _drop_dead_events(live))


def test_a_viewer_sees_no_admin_action(live: LiveSystem, open_page: Callable[..., Page], poisoned: int) -> None:
    path = f"{live.url}/consumers/{quote(REVIEW)}"

    admin = open_page()
    admin.goto(path)
    expect(admin.get_by_test_id("dead-table").get_by_text("TodoListCreatedEvent")).to_be_visible()
    expect(admin.get_by_test_id("current-role")).to_have_text("admin")
    assert len(admin_controls(admin)) == 5, admin_controls(admin)

    viewer = open_page(user=VIEWER_USER)
    viewer.goto(path)
    expect(viewer.get_by_test_id("current-role")).to_have_text("viewer")
    expect(viewer.get_by_test_id("dead-table").get_by_text("TodoListCreatedEvent")).to_be_visible()
    # The retry flag, read-only.
    expect(viewer.get_by_test_id("dead-table").get_by_text("no", exact=True)).to_be_visible()
    assert admin_controls(viewer) == []
    # The viewer reads everything else: the payload of the dead event.
    viewer.get_by_role("button", name="Payload of event").first.click()
    expect(viewer.get_by_role("dialog").get_by_text('"poison"')).to_be_visible()
    assert_accessible(viewer)


def test_a_dead_event_is_retried_from_its_consumers_page(
    live: LiveSystem, open_page: Callable[..., Page], poisoned: int
) -> None:
    seq = poisoned

    page = open_page()
    page.goto(f"{live.url}/consumers/{quote(REVIEW)}")
    table = page.get_by_test_id("dead-table")
    expect(table.get_by_role("link", name=str(seq), exact=True)).to_be_visible()
    expect(page.get_by_test_id("dead-count")).to_have_text("1")
    # The error and payload viewers show what the API stored.
    page.get_by_role("button", name=f"Error of event {seq}").click()
    expect(page.get_by_role("dialog").get_by_text("ValueError: cannot review a list named 'poison'")).to_be_visible()
    page.keyboard.press("Escape")
    page.get_by_role("button", name=f"Payload of event {seq}").click()
    expect(page.get_by_role("dialog").get_by_text('"content": "poison"')).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)

    # Flagged for retry, the cause fixed, the queue consumed: handled, and gone from the queue.
    switch = page.get_by_role("switch", name=f"Retry event {seq}")
    switch.click(force=True)  # the switch's input is visually hidden behind its track
    expect(page.get_by_test_id("action-notice")).to_have_text(f"Event {seq} flagged for retry")
    expect(switch).to_be_checked()
    assert live.api_get(f"/api/consumer/{REVIEW}/event")["items"][0]["retry"] is True
    live.cause.names = set()
    page.get_by_role("button", name="Consume dead queue").click()
    expect(page.get_by_test_id("action-notice")).to_have_text("1 flagged dead event handled successfully")
    expect(table.get_by_text("No dead event")).to_be_visible()
    expect(page.get_by_test_id("dead-count")).to_have_text("0")
    assert "poison" in live.cause.reviewed
    assert_accessible(page)


def test_a_replay_is_followed_to_its_end(live: LiveSystem, open_page: Callable[..., Page]) -> None:
    live.cause.names = set()
    before = len(live.cause.reviewed)
    head = live.api_get("/api/dashboard")["head"]
    page = open_page()
    page.goto(f"{live.url}/consumers/{quote(REVIEW)}")
    page.get_by_label("From sequence number").fill("0")
    page.get_by_role("button", name="Replay").click()
    page.get_by_role("dialog").get_by_role("button", name="Replay").click()
    progress = page.get_by_test_id("reset-progress")
    expect(progress).to_contain_text(f"Replay finished from 0 to {head}")
    expect(page.get_by_test_id("checkpoint")).to_have_text(str(head))
    created = live.api_get("/api/system-state-store/event?eventName=TodoListCreatedEvent&size=500")["total"]
    assert len(live.cause.reviewed) == before + created


def test_the_event_browser_filters_by_aggregate(live: LiveSystem, open_page: Callable[..., Page]) -> None:
    aggregate = live.traffic.lists["groceries"]
    expected = live.api_get(f"/api/system-state-store/event?aggregateId={aggregate}&sort=asc")["items"]
    total = live.api_get("/api/system-state-store/event")["total"]
    assert 1 < len(expected) < total
    page = open_page()
    page.goto(f"{live.url}/state-store/events")
    rows = page.get_by_test_id("events-table").locator("tbody tr")
    expect(rows).to_have_count(min(total, 25))
    page.get_by_role("textbox", name="Aggregate").fill(aggregate)
    expect(page).to_have_url(f"{live.url}/state-store/events?aggregateId={aggregate}")
    expect(rows).to_have_count(len(expected))
    for row in rows.all():
        expect(row.locator("td").nth(2)).to_have_text(aggregate)
    expect(page.get_by_text(f"1–{len(expected)} of {len(expected)} events")).to_be_visible()

    # The aggregate's timeline: its events oldest first.
    rows.first.get_by_role("link", name=aggregate).click()
    expect(page).to_have_url(f"{live.url}/state-store/aggregates/{aggregate}")
    titles = page.get_by_test_id("timeline").locator(".mantine-Timeline-itemTitle a")
    expect(titles).to_have_count(len(expected))
    assert titles.all_inner_texts() == [e["eventName"] for e in expected]


def test_the_cluster_page_follows_a_bundle_joining_and_leaving(
    live: LiveSystem, open_page: Callable[..., Page]
) -> None:
    page = open_page()
    page.goto(f"{live.url}/cluster")
    expect(page.get_by_test_id("stream-state")).to_have_text("live")
    instances = page.get_by_test_id("instances")
    expect(instances.get_by_role("link", name="todolist-saga")).to_be_visible()
    expect(instances.get_by_text("replica-2")).to_have_count(0)
    second = live.review_bundle("replica-2")  # the review scaled out: a second instance joins, then leaves

    async def start() -> None:
        assert live.api is not None
        assert live.api.server is not None
        await second.start(live.api.server)

    live.call(start)
    try:
        expect(instances.get_by_text("replica-2")).to_be_visible()
        expect(page.get_by_text("join audit/replica-2")).to_be_visible()
    finally:
        live.call(second.stop)
    expect(instances.get_by_text("replica-2")).to_have_count(0)
    expect(page.get_by_text("leave audit/replica-2")).to_be_visible()
    page.goto(f"{live.url}/bundles/audit")
    expect(page.get_by_role("link", name=REPOSITORY)).to_have_attribute("href", REPOSITORY)


async def _create_list(live: LiveSystem, name: str) -> str:
    assert live.api is not None
    return await live.api.system.invoker().create_todo_list(name, "alice")


async def _dead_count(live: LiveSystem, count: int) -> bool:
    assert live.api is not None
    response = await live.api.admin.get(f"/api/consumer/{REVIEW}")
    return response.status_code == 200 and response.json()["deadEvents"] == count and response.json()["lag"] == 0


async def _drop_dead_events(live: LiveSystem) -> bool:
    assert live.api is not None
    listed = (await live.api.admin.get(f"/api/consumer/{REVIEW}/event")).json()["items"]
    for dead in listed:
        await live.api.admin.delete(f"/api/consumer/{REVIEW}/event/{dead['sequenceNumber']}")
    return await _dead_count(live, 0)
