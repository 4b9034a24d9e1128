"""Telemetry through the REST API and /metrics, against a real server with the TodoList: in process and as an
``evento server`` process whose bundles connect over TCP. Counts must match the commands sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api_support import DEADLINE, RunningApi, running_api, running_api_process
from tests.helpers import wait_until

LISTS = 5
TODOS = 2


@pytest.fixture(params=["inprocess", "tcp"])
async def todo_api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunningApi]:
    """The API with the TodoList on it: an in-process server, or a server process the bundles reach over TCP."""
    opened = running_api(tmp_path) if request.param == "inprocess" else running_api_process(tmp_path)
    async with opened as running:
        yield running


async def traffic(todo: RunningApi) -> None:
    """``LISTS`` lists of ``TODOS`` todos each, through the TodoList's invoker."""
    invoker = todo.system.invoker()
    for n in range(LISTS):
        identifier = await invoker.create_todo_list(f"measured {n}", "ada")
        for t in range(TODOS):
            await invoker.add_todo(identifier, f"todo {t}", "ada")


async def flush(todo: RunningApi) -> None:
    """Ship every bundle's telemetry now (the TodoList's bundles report every 5 s on their own)."""
    for bundle in todo.system.bundles:
        await bundle.telemetry.flush()


def hits(body: dict[str, Any], key: str = "handlers") -> dict[str, int]:
    return {item["payload"]: sum(point["hits"] for point in item["points"]) for item in body[key]}


async def test_handler_statistics_count_the_commands_sent(todo_api: RunningApi) -> None:
    await traffic(todo_api)
    expected = {
        "todolist-command:TodoListAggregate:TodoListCreateCommand": LISTS,
        "todolist-command:TodoListAggregate:TodoListAddTodoCommand": LISTS * TODOS,
        "todolist-query:TodoListProjector:TodoListCreatedEvent": LISTS,
        "todolist-query:TodoListProjector:TodoListTodoAddedEvent": LISTS * TODOS,
        "todolist-web:TodoListInvoker:TodoListInvoker::add_todo": LISTS * TODOS,
    }
    found: dict[str, dict[str, Any]] = {}

    async def counted() -> bool:
        await flush(todo_api)
        response = await todo_api.viewer.get("/api/performance/handler", params={"size": 500})
        assert response.status_code == 200, response.text
        found.clear()
        found.update({item["handlerId"]: item for item in response.json()["items"]})
        return all(found.get(key, {}).get("count") == n for key, n in expected.items())

    await wait_until(counted, DEADLINE, what="handler statistics counting every command")
    create = found["todolist-command:TodoListAggregate:TodoListCreateCommand"]
    assert create["arrivals"] == LISTS
    assert create["componentKind"] == "Aggregate"
    assert create["handlerKind"] == "AggregateCommandHandler"
    assert 0 < create["minMs"] <= create["meanMs"] <= create["maxMs"]
    assert create["arrivalRatePerS"] > 0
    adding = found["todolist-web:TodoListInvoker:TodoListInvoker::add_todo"]
    assert adding["invocationProbability"] == {"TodoListAddTodoCommand": 1.0}
    only = await todo_api.viewer.get("/api/performance/handler", params={"bundleId": "todolist-query"})
    assert {item["bundleId"] for item in only.json()["items"]} == {"todolist-query"}

    # The same counts in the Prometheus text.
    response = await todo_api.viewer.get("/metrics")
    assert response.status_code == 200, response.text
    values = {
        (sample.name, sample.labels.get("component"), sample.labels.get("handler")): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    assert values[("evento_handler_invocations_total", "TodoListAggregate", "TodoListAddTodoCommand")] == LISTS * TODOS
    assert values[("evento_handler_invocations_total", "TodoListProjector", "TodoListCreatedEvent")] == LISTS


async def test_component_and_aggregate_series(todo_api: RunningApi) -> None:
    await traffic(todo_api)
    window: dict[str, str | int] = {
        "bundleId": "todolist-command",
        "componentId": "TodoListAggregate",
        "interval": 3600,
        "from": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "to": (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
    }
    body: dict[str, Any] = {}

    async def bucketed() -> bool:
        await flush(todo_api)
        response = await todo_api.viewer.get("/api/performance/component", params=window)
        assert response.status_code == 200, response.text
        body.update(response.json())
        return hits(body) == {"TodoListAddTodoCommand": LISTS * TODOS, "TodoListCreateCommand": LISTS}

    await wait_until(bucketed, DEADLINE, what="the aggregate's handlers in time buckets")
    assert body["aggregation"] == "AVG"
    assert body["interval"] == 3600
    for handler in body["handlers"]:
        assert handler["handlerKind"] == "AggregateCommandHandler"
        assert handler["handlerId"] == f"todolist-command:TodoListAggregate:{handler['payload']}"
        assert len(handler["points"]) == 2  # an hour and a minute in buckets of an hour
        assert any(p["serviceTimeMs"] is not None and p["serviceTimeMs"] > 0 for p in handler["points"])
    for aggregation in ("MAX", "MIN"):
        response = await todo_api.viewer.get(
            "/api/performance/component", params={**window, "aggregation": aggregation}
        )
        assert response.status_code == 200, response.text
        assert hits(response.json()) == hits(body)

    # The broker's phases are written by the server every few seconds.
    phases: dict[str, Any] = {}

    async def phased() -> bool:
        response = await todo_api.viewer.get("/api/performance/aggregate", params=window)
        assert response.status_code == 200, response.text
        phases.update(response.json())
        return hits(phases, "commands") == {"TodoListAddTodoCommand": LISTS * TODOS, "TodoListCreateCommand": LISTS}

    await wait_until(phased, DEADLINE, what="the aggregate's phases")
    for command in phases["commands"]:
        (point,) = [p for p in command["points"] if p["hits"]]
        for phase in ("totalMs", "lockMs", "retrieveMs", "computeMs", "publishMs"):
            assert point[phase] is not None
            assert point[phase] >= 0
        assert point["computeMs"] > 0
        assert point["publishMs"] > 0


#: Query parameters (over a valid bundleId and componentId) and the status they get.
BAD_PARAMETERS: list[tuple[dict[str, Any], int]] = [
    ({"bundleId": None}, 422),
    ({"aggregation": "MEDIAN"}, 422),
    ({"interval": 0}, 422),
    ({"interval": "often"}, 422),
    ({"from": "yesterday"}, 422),
    ({"from": "2030-01-01T00:00:00Z", "to": "2029-01-01T00:00:00Z"}, 400),
    ({"from": "1960-01-01T00:00:00Z"}, 400),
    ({"to": "9999-12-31T23:59:59-14:00"}, 400),  # past the last UTC datetime
    ({"interval": 1, "from": "2020-01-01T00:00:00Z", "to": "2021-01-01T00:00:00Z"}, 400),  # too many buckets
    ({"bundleId": ""}, 422),
    ({"bundleId": "x" * 300}, 422),
]


async def test_bad_parameters_are_refused_with_a_problem_and_the_routes_need_a_viewer(tmp_path: Path) -> None:
    async with running_api(tmp_path) as todo:
        for params, status in BAD_PARAMETERS:
            query = {"bundleId": "todolist-command", "componentId": "TodoListAggregate", **params}
            query = {name: value for name, value in query.items() if value is not None}
            for route in ("/api/performance/component", "/api/performance/aggregate"):
                response = await todo.viewer.get(route, params=query)
                assert response.status_code == status, (route, params, response.text)
                assert response.headers["content-type"].startswith("application/problem+json")
                assert response.json()["detail"]
        good = {"bundleId": "todolist-command", "componentId": "TodoListAggregate"}
        for route in ("/api/performance/component", "/api/performance/aggregate", "/api/performance/handler"):
            assert (await todo.anonymous.get(route, params=good)).status_code == 401
            assert (await todo.viewer.get(route, params=good)).status_code == 200
