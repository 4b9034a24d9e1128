"""The flows page in Chromium against the live TodoList system: the invoker's check flow drawn as the API models
it (gateway, aggregate, response, event store, the asynchronous projector, saga and observer on dashed edges),
the side list's search selecting a payload's flow, and the performance evaluation's what-if moving the bottleneck
from the saga to the projector (marked and drawn red), with no serious or critical accessibility violation."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.gui.browser import assert_accessible
from tests.gui.support import ARTIFACTS, LiveSystem

if TYPE_CHECKING:
    from playwright.sync_api import FloatRect

CHECK = "todolist-web:TodoListInvoker:TodoListInvoker::check_todo"
AGGREGATE = "todolist-command:TodoListAggregate:TodoListCheckTodoCommand"
PROJECTOR = "todolist-query:TodoListProjector:TodoListTodoCheckedEvent"
SAGA = "todolist-saga:ErpTodoListActivityRegistrationSaga:TodoListTodoCheckedEvent"
OBSERVER = "todolist-saga:TodoListNotificationObserver:TodoListTodoCheckedEvent"
PROJECTOR_ERP = "todolist-query:TodoListProjector:ErpUserActivityRegisteredEvent"
SAGA_ERP = "todolist-saga:ErpTodoListActivityRegistrationSaga:ErpUserActivityRegisteredEvent"


def station(page: Page, handler_id: str) -> Locator:
    """The drawn station of ``handler_id`` on the check flow (it passes each of these once)."""
    return page.locator(f'[data-testid="flow-station"][data-handler-id="{handler_id}"]')


def is_red(colour: str) -> bool:
    """Whether a computed CSS colour (``rgb(r, g, b)``) is a red: red well above green and blue."""
    r, g, b = (int(c) for c in re.findall(r"\d+", colour)[:3])
    return r > 180 and r - g > 80 and r - b > 80


def set_service_time(page: Page, handler_id: str, value: str) -> None:
    page.get_by_role("tab", name=re.compile(r"^Service times")).click()
    page.get_by_label(f"Service time of {handler_id} (ms)").fill(value)


def evaluate(page: Page) -> None:
    button = page.get_by_role("button", name="Evaluate")
    button.click()
    expect(button).not_to_have_attribute("data-loading", "true")


def test_the_flows_page_draws_the_todolists_check_flow(live: LiveSystem, open_page: Callable[..., Page]) -> None:
    model: dict[str, Any] = live.api_get(f"/api/flows/handler/{quote(CHECK)}")
    page = open_page()
    page.goto(f"{live.url}/flows?handler={quote(CHECK)}")

    stations = page.get_by_test_id("flow-station")
    expect(stations).to_have_count(len(model["stations"]))
    expect(page.get_by_test_id("flow-counts")).to_contain_text(f"1 flow · {len(model['stations'])} stations")
    expect(page.get_by_test_id("flow-source")).to_have_count(1)
    expect(station(page, AGGREGATE)).to_have_count(1)
    expect(station(page, AGGREGATE)).to_contain_text("TodoListAggregate")
    expect(page.locator('[data-testid="flow-station"][data-kind="EventStore"]').first).to_contain_text(
        "TodoListTodoCheckedEvent"
    )
    for consumer in (PROJECTOR, SAGA, OBSERVER):
        expect(station(page, consumer)).to_have_attribute("data-kind", "Consumer")
    # One edge per edge of the model; the asynchronous ones (into consumers) dashed.
    expect(page.locator(".react-flow__edge")).to_have_count(len(model["edges"]))
    asynchronous = sum(1 for e in model["edges"] if e["isAsync"])
    assert asynchronous >= 3
    dashed = page.locator(".react-flow__edge.flow-edge-async path.react-flow__edge-path")
    expect(dashed).to_have_count(asynchronous)
    assert "6" in (dashed.first.evaluate("e => getComputedStyle(e).strokeDasharray") or "")
    # An invocation edge carries its probability.
    expect(page.locator(".react-flow__edge-textwrapper", has_text="p 1").first).to_be_attached()
    assert_accessible(page)

    # The side list finds a payload and opens its flow: an event enters at the event store.
    page.get_by_role("combobox", name="List flows by").click()
    page.get_by_role("option", name="Payloads").click()
    page.get_by_label("Search payloads").fill("TodoListTodoChecked")
    page.get_by_role("link", name=re.compile("TodoListTodoCheckedEvent")).click()
    expect(page).to_have_url(re.compile(r"/flows\?payload=TodoListTodoCheckedEvent$"))
    event_flow: dict[str, Any] = live.api_get("/api/flows/payload/TodoListTodoCheckedEvent")
    expect(stations).to_have_count(len(event_flow["stations"]))
    expect(page.locator('[data-testid="flow-station"][data-kind="EventStore"]')).to_have_count(
        sum(1 for s in event_flow["stations"] if s["kind"] == "EventStore")
    )


def test_a_what_if_moves_the_bottleneck_to_the_projector(live: LiveSystem, open_page: Callable[..., Page]) -> None:
    """At one check a second, a saga taking 5 s per event can do 0.2 a second: it becomes the bottleneck. Back to
    its measured time and the projector at 5 s instead (its ERP-event handler at 0 ms, claiming none of its one
    server), the bottleneck moves to the projector, drawn red and marked as the flow's main bottleneck."""
    page = open_page()
    page.goto(f"{live.url}/flows?handler={quote(CHECK)}&evaluate=1")
    expect(station(page, PROJECTOR)).to_have_attribute("data-bottleneck", "false")
    expect(page.get_by_test_id("flow-main-bottleneck")).to_have_count(0)
    expect(page.get_by_test_id("flow-max-throughput")).to_have_text("no limit")

    set_service_time(page, SAGA, "5000")
    set_service_time(page, SAGA_ERP, "0")  # the saga's other handler on this flow: none of its one server
    evaluate(page)
    expect(station(page, SAGA)).to_have_attribute("data-main-bottleneck", "true")
    expect(station(page, PROJECTOR)).to_have_attribute("data-bottleneck", "false")
    expect(page.get_by_test_id("flow-main-bottleneck")).to_contain_text("ErpTodoListActivityRegistrationSaga")

    set_service_time(page, SAGA, "")
    set_service_time(page, SAGA_ERP, "")
    set_service_time(page, PROJECTOR, "5000")
    # Its handler of the ERP's event, further down this flow, shares the projector's one server: at its measured
    # time its small share of that server could make it the first bottleneck instead (as in the API's test).
    set_service_time(page, PROJECTOR_ERP, "0")
    evaluate(page)
    projector = station(page, PROJECTOR)
    expect(projector).to_have_attribute("data-main-bottleneck", "true")
    expect(projector).to_have_attribute("data-status", "bottleneck")
    expect(projector).to_contain_text("main bottleneck")
    expect(station(page, SAGA)).to_have_attribute("data-bottleneck", "false")
    assert is_red(projector.evaluate("e => getComputedStyle(e).borderTopColor"))
    expect(page.get_by_test_id("flow-main-bottleneck")).to_contain_text("TodoListProjector")
    # The figures are the server's: the same what-if asked of the API gives the throughput the page shows.
    body = {"selection": {"kind": "handler", "value": CHECK}, "serviceTimesMs": {PROJECTOR: 5000, PROJECTOR_ERP: 0}}
    evaluated = live.call(lambda: _post(live, "/api/flows/evaluate", body))
    (flow,) = evaluated["flows"]
    assert flow["mainBottleneck"] == int(projector.get_attribute("data-station-id") or -1)
    shown = page.get_by_test_id("flow-max-throughput").inner_text()
    assert float(shown.split()[0]) == pytest.approx(flow["maxThroughputPerS"], rel=0.01)  # three digits shown
    assert_accessible(page)

    # The figures' main bottleneck shows it in the drawing (the picture the README shows).
    page.get_by_test_id("flow-main-bottleneck").click()
    graph = page.get_by_test_id("flow-graph")
    graph.scroll_into_view_if_needed()
    expect(page.get_by_test_id("station-details")).to_contain_text("TodoListProjector")
    wait_until_inside(projector, graph)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "flows-bottleneck.png"))


def _within(a: FloatRect, b: FloatRect) -> bool:
    return (
        a["x"] >= b["x"]
        and a["y"] >= b["y"]
        and a["x"] + a["width"] <= b["x"] + b["width"]
        and a["y"] + a["height"] <= b["y"] + b["height"]
    )


def wait_until_inside(inner: Locator, outer: Locator, timeout: float = 5.0) -> None:
    """Wait until ``inner``'s box lies within ``outer``'s (the view's animated move has brought it in)."""
    deadline = time.monotonic() + timeout
    while True:
        a, b = inner.bounding_box(), outer.bounding_box()
        if a and b and _within(a, b):
            return
        assert time.monotonic() < deadline, f"{inner} not shown within {outer}: {a} in {b}"
        inner.page.wait_for_timeout(50)


async def _post(live: LiveSystem, path: str, body: dict[str, Any]) -> Any:
    assert live.api is not None
    response = await live.api.admin.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()
