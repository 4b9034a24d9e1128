"""The GUI's charts in Chromium against the live TodoList system: the TodoList aggregate's component page draws
each handler's hits and service time and the command phases, its table's hit counts equal to what
/api/performance/component and /api/performance/aggregate return; a period without telemetry says so; the dashboard
draws the publication rate with the events the API counts; a bundle page draws its component graph; axe finds no
serious or critical violation on those pages, light or dark."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.gui.browser import assert_accessible
from tests.gui.support import LiveSystem

pytestmark = pytest.mark.slow

AGGREGATE = "TodoListAggregate"

#: Pixels of a canvas drawn in colour (not the greys of axes, grid and labels): what a chart's data is drawn in.
COLOURED_PIXELS = """canvas => {
  const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  let count = 0;
  for (let i = 0; i < data.length; i += 4) {
    const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
    if (a > 100 && Math.max(r, g, b) - Math.min(r, g, b) > 60) count++;
  }
  return count;
}"""


def coloured_pixels(chart: Locator) -> int:
    return int(chart.locator("canvas").first.evaluate(COLOURED_PIXELS))


def _range() -> dict[str, str]:
    """A range covering all of the live system's traffic (the GUI asks for the last 6 hours)."""
    now = datetime.now(UTC)
    return {
        "from": (now - timedelta(hours=6)).isoformat().replace("+00:00", "Z"),
        "to": (now + timedelta(minutes=15)).isoformat().replace("+00:00", "Z"),
    }


def _hits(body: dict[str, Any], key: str) -> dict[str, int]:
    return {item["payload"]: sum(point["hits"] for point in item["points"]) for item in body[key]}


def _flush(live: LiveSystem) -> None:
    async def flush() -> None:
        assert live.api is not None
        for bundle in live.api.system.bundles:
            await bundle.telemetry.flush()

    live.call(flush)


def settled_performance(live: LiveSystem, bundle_id: str) -> tuple[dict[str, int], dict[str, int]]:
    """Hits per handler and commands per command type of the aggregate, once every bundle has reported and the
    server has written the broker's phases (its four lists created at least)."""
    found: dict[str, dict[str, int]] = {}

    async def reported() -> bool:
        assert live.api is not None
        for bundle in live.api.system.bundles:
            await bundle.telemetry.flush()
        params: dict[str, str | int] = {"bundleId": bundle_id, "componentId": AGGREGATE, "interval": 900, **_range()}
        for route, key in (("component", "handlers"), ("aggregate", "commands")):
            response = await live.api.viewer.get(f"/api/performance/{route}", params=params)
            assert response.status_code == 200, response.text
            found[key] = _hits(response.json(), key)
        return found["commands"].get("TodoListCreateCommand", 0) >= 4 and bool(found["handlers"])

    live.wait_for("the aggregate's telemetry and phases reported", reported)
    return found["handlers"], found["commands"]


def test_component_page_charts_each_handler_and_the_phases(live: LiveSystem, open_page: Callable[..., Page]) -> None:
    bundle_id = live.api_get(f"/api/catalog/component/{AGGREGATE}")["bundleId"]
    handlers, commands = settled_performance(live, bundle_id)
    assert handlers["TodoListCreateCommand"] >= 4
    page = open_page()
    page.goto(f"{live.url}/components/{AGGREGATE}")
    telemetry = page.get_by_test_id("telemetry")
    expect(telemetry.get_by_test_id("telemetry-chart")).to_have_count(len(handlers))
    # The table says what the API counts, handler by handler.
    for payload, count in handlers.items():
        expect(
            page.get_by_test_id("telemetry-summary").locator(f'tr[data-handler="{payload}"] [data-testid=hits]')
        ).to_have_text(f"{count:,}")
    for payload, count in commands.items():
        expect(
            page.get_by_test_id("phases-summary").locator(f'tr[data-command="{payload}"] [data-testid=commands]')
        ).to_have_text(f"{count:,}")
    # The charts are drawn: their canvases hold the series' colours, not only grey axes.
    chart = (
        telemetry.get_by_test_id("handler-telemetry")
        .filter(has_text="TodoListCreateCommand")
        .get_by_test_id("telemetry-chart")
    )
    expect(chart.get_by_role("img")).to_have_attribute(
        "aria-label", "Hits and AVG service time of the TodoListCreateCommand handler per bucket of 900 s"
    )
    assert coloured_pixels(chart) > 20
    phases = telemetry.get_by_test_id("phases").filter(has_text="TodoListCreateCommand").get_by_test_id("phases-chart")
    assert coloured_pixels(phases) > 20
    # Another aggregation and interval are asked for and kept in the URL.
    page.get_by_text("MAX", exact=True).click()
    expect(page).to_have_url(f"{live.url}/components/{AGGREGATE}?aggregation=MAX")
    expect(chart.get_by_role("img")).to_have_attribute(
        "aria-label", "Hits and MAX service time of the TodoListCreateCommand handler per bucket of 900 s"
    )
    expect(page.get_by_role("status").filter(has_text="Loading")).to_have_count(0)
    expect(page.get_by_role("alert")).to_have_count(0)
    assert_accessible(page)


def test_component_page_in_the_dark_is_accessible(live: LiveSystem, open_page: Callable[..., Page]) -> None:
    page = open_page(color_scheme="dark")
    page.goto(f"{live.url}/components/{AGGREGATE}")
    expect(page.get_by_test_id("phases-section")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Loading")).to_have_count(0)
    assert_accessible(page)


def test_a_period_without_telemetry_says_so(live: LiveSystem, open_page: Callable[..., Page]) -> None:
    page = open_page()
    page.goto(
        f"{live.url}/components/{AGGREGATE}?period=custom&from=2001-01-01T00:00&to=2001-01-01T06:00&interval=3600"
    )
    expect(page.get_by_text("No telemetry from this component in this period yet")).to_be_visible()
    expect(page.get_by_text("No command of this aggregate was timed by the server in this period")).to_be_visible()
    expect(page.get_by_role("combobox", name="Period")).to_have_value("From … to …")
    expect(page.get_by_test_id("telemetry-chart")).to_have_count(0)


def test_dashboard_charts_the_publication_rate(live: LiveSystem, open_page: Callable[..., Page]) -> None:
    events = live.api_get("/api/dashboard")["events"]  # every event of the live system is of the last hour
    page = open_page()
    page.goto(live.url)
    expect(page.get_by_test_id("publication-rate-summary")).to_contain_text(f"{events:,} events in the period")
    chart = page.get_by_test_id("publication-rate-chart")
    expect(chart.get_by_role("img")).to_have_attribute("aria-label", "Events published per second in buckets of 60 s")
    assert coloured_pixels(chart) > 20
    assert_accessible(page)


def test_bundle_page_draws_its_component_graph(live: LiveSystem, open_page: Callable[..., Page]) -> None:
    handlers = live.api_get("/api/bundle/todolist-command")["handlers"]
    page = open_page()
    page.goto(f"{live.url}/bundles/todolist-command")
    canvas = page.get_by_test_id("bundle-graph").get_by_test_id("graph-canvas")
    expect(canvas).to_be_visible()
    label = canvas.get_attribute("aria-label") or ""
    assert label.startswith("Application graph: 1 bundles,"), label
    assert f" {len(handlers)} handlers" in label, label
    assert_accessible(page)
