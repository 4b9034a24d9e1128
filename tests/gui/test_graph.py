"""The application graph in Chromium against the live TodoList system: every handler of the catalog drawn, the
search finding the projector's handler of checked todos, pinning it (with as many handlers downstream and
upstream as the catalog's message paths give) and flying to it, so that hovering the middle of the drawing now
hovers that handler, and a click opens its component; no serious or critical accessibility violation."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Page, expect

from tests.gui.browser import assert_accessible
from tests.gui.support import ARTIFACTS, LiveSystem

PROJECTOR = "todolist-query:TodoListProjector:TodoListTodoCheckedEvent"
LABEL = "TodoListTodoCheckedEvent — TodoListProjector · todolist-query"

REQUEST_HANDLERS = {"AggregateCommandHandler", "CommandHandler", "QueryHandler"}
EVENT_PRODUCERS = {"AggregateCommandHandler", "CommandHandler"}
EVENT_CONSUMERS = {"EventHandler", "SagaEventHandler"}


def message_paths(handlers: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """The edges the graph must draw, from the catalog as the API serves it: a handler sending a command or query
    → the handlers of that payload; a command handler returning an event → that event's consumers."""
    by_payload: dict[str, list[dict[str, Any]]] = {}
    for h in handlers:
        by_payload.setdefault(h["payload"], []).append(h)
    paths = set()
    for h in handlers:
        for sent in [*h["invokedCommands"], *h["invokedQueries"]]:
            for target in by_payload.get(sent["payload"], []):
                if target["handlerKind"] in REQUEST_HANDLERS:
                    paths.add((h["handlerId"], target["handlerId"]))
        if h["handlerKind"] in EVENT_PRODUCERS and h["returnType"]:
            for target in by_payload.get(h["returnType"], []):
                if target["handlerKind"] in EVENT_CONSUMERS:
                    paths.add((h["handlerId"], target["handlerId"]))
    return {(a, b) for a, b in paths if a != b}


def reachable(paths: set[tuple[str, str]], start: str, *, upstream: bool) -> set[str]:
    step: dict[str, set[str]] = {}
    for a, b in paths:
        origin, target = (b, a) if upstream else (a, b)
        step.setdefault(origin, set()).add(target)
    seen: set[str] = set()
    queue = deque([start])
    while queue:
        for following in step.get(queue.popleft(), set()):
            if following not in seen and following != start:
                seen.add(following)
                queue.append(following)
    return seen


def test_the_graphs_search_finds_pins_and_flies_to_a_handler(live: LiveSystem, open_page: Callable[..., Page]) -> None:
    handlers: list[dict[str, Any]] = live.api_get("/api/handler/?size=500")["items"]
    paths = message_paths(handlers)
    page = open_page()
    page.goto(f"{live.url}/graph")

    canvas = page.get_by_test_id("graph-canvas")
    expect(canvas).to_have_attribute("data-handlers", str(len(handlers)))
    label = canvas.get_attribute("aria-label") or ""
    assert f"{len(handlers)} handlers, {len(paths)} message paths" in label, label
    assert_accessible(page)

    search = page.get_by_role("combobox", name="Find a handler")
    search.click()
    search.fill("CheckedEvent — TodoListProjector")
    page.get_by_role("option", name=LABEL).click()
    pinned = page.get_by_test_id("graph-pinned")
    expect(pinned).to_have_attribute("data-handler-id", PROJECTOR)
    expect(canvas).to_have_attribute("data-pinned", PROJECTOR)
    expect(pinned).to_contain_text(LABEL)
    downstream = reachable(paths, PROJECTOR, upstream=False)
    upstream = reachable(paths, PROJECTOR, upstream=True)
    assert len(upstream) >= 2  # the aggregate's check handler and the invoker sending the command
    expect(pinned).to_contain_text(f"{len(downstream)} downstream")
    expect(pinned).to_contain_text(f"{len(upstream)} upstream")

    # The view flew to it: the middle of the drawing is now that handler (hover says so once the flight ends).
    box = canvas.bounding_box()
    assert box is not None
    centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    hover = page.get_by_test_id("graph-hover")
    deadline = time.monotonic() + 5
    while True:
        page.mouse.move(centre[0] + 1, centre[1])
        page.mouse.move(*centre)
        if hover.count() and hover.get_attribute("data-handler-id") == PROJECTOR:
            break
        assert time.monotonic() < deadline, "hovering the middle after the flight shows no pinned handler"
        page.wait_for_timeout(50)
    expect(hover).to_contain_text("TodoListProjector · todolist-query")
    expect(hover).to_contain_text(f"{len(upstream)} upstream")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "application-graph.png"))

    page.mouse.click(*centre)
    expect(page).to_have_url(f"{live.url}/components/TodoListProjector?bundleId=todolist-query")
