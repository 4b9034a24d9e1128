"""The flows API on the real TodoList system (an in-process server, its API on a real port, the four TodoList
bundles): the invoker's flows through the server to the aggregate, the event store and the projector, saga and
observer; service times from the telemetry the bundles reported; a what-if that makes the projector the
bottleneck; and the API's refusals (404 for what does not exist, 422 for bad what-if values, 401 without login).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from evento.server.telemetry import OVERHEAD_POOL
from tests.api_support import RunningApi, running_api
from tests.helpers import wait_until

WEB = "todolist-web:TodoListInvoker:TodoListInvoker::"
CHECK = WEB + "check_todo"
AGGREGATE = "todolist-command:TodoListAggregate:TodoListCheckTodoCommand"
PROJECTOR = "todolist-query:TodoListProjector:TodoListTodoCheckedEvent"
SAGA = "todolist-saga:ErpTodoListActivityRegistrationSaga:TodoListTodoCheckedEvent"
OBSERVER = "todolist-saga:TodoListNotificationObserver:TodoListTodoCheckedEvent"
PROJECTOR_ERP = "todolist-query:TodoListProjector:ErpUserActivityRegisteredEvent"
SAGA_ERP = "todolist-saga:ErpTodoListActivityRegistrationSaga:ErpUserActivityRegisteredEvent"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[RunningApi]:
    """The API of an in-process server with the TodoList on it."""
    async with running_api(tmp_path) as running:
        yield running


async def flows(api: RunningApi, path: str, **params: Any) -> dict[str, Any]:
    response = await api.viewer.get(f"/api/flows/{path}", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def station(model: dict[str, Any], handler_id: str) -> dict[str, Any]:
    found = [s for s in model["stations"] if s["handlerId"] == handler_id]
    assert len(found) == 1, [s["handlerId"] for s in model["stations"]]
    return found[0]


def parent(model: dict[str, Any], node_id: int) -> int:
    (origin,) = [e["origin"] for e in model["edges"] if e["target"] == node_id]
    return int(origin)


async def test_the_invokers_flow_reaches_the_aggregate_the_event_store_and_every_consumer(api: RunningApi) -> None:
    assert api.server is not None
    await api.server.catalog_settled()
    model = await flows(api, f"handler/{quote(CHECK)}")

    assert [s["key"] for s in model["sources"]] == [CHECK]
    assert model["sources"][0]["ratePerS"] == pytest.approx(1.0)  # one a second unless told otherwise
    by_id = {s["id"]: s for s in model["stations"]}
    invoker, aggregate = station(model, CHECK), station(model, AGGREGATE)
    # invoker -> gateway (the command) -> aggregate -> response (the event) -> event store -> consumers
    gateway = by_id[parent(model, aggregate["id"])]
    assert (gateway["kind"], gateway["payload"]) == ("Gateway", "TodoListCheckTodoCommand")
    assert parent(model, gateway["id"]) == invoker["id"]
    response = next(
        s for s in model["stations"] if s["kind"] == "GatewayResponse" and parent(model, s["id"]) == aggregate["id"]
    )
    assert response["payload"] == "TodoListTodoCheckedEvent"
    store = next(s for s in model["stations"] if s["kind"] == "EventStore" and parent(model, s["id"]) == response["id"])
    assert store["payload"] == "TodoListTodoCheckedEvent"
    consumers = {s["handlerId"]: s for s in model["stations"] if parent(model, s["id"]) == store["id"]}
    assert set(consumers) == {PROJECTOR, SAGA, OBSERVER}
    assert consumers[PROJECTOR]["oneActiveConsumer"]
    assert consumers[SAGA]["oneActiveConsumer"]
    assert not consumers[OBSERVER]["oneActiveConsumer"]
    assert all(c["kind"] == "Consumer" and c["isAsync"] for c in consumers.values())
    # The observer queries the projection and sends a notification; the saga registers the activity at the ERP,
    # whose event reaches the projector and the saga again.
    sent = {(e["sender"], e["sent"]) for e in model["edges"] if e["sender"]}
    assert {
        (CHECK, "TodoListCheckTodoCommand"),
        (OBSERVER, "TodoListViewFindByIdentifierQuery"),
        (OBSERVER, "NotificationSendCommand"),
        (SAGA, "ErpUserActivityRegisterCommand"),
    } <= sent
    assert {s["handlerId"] for s in model["stations"]} >= {
        "todolist-query:TodoListProjection:TodoListViewFindByIdentifierQuery",
        "todolist-saga:ErpService:ErpUserActivityRegisterCommand",
        "todolist-query:TodoListProjector:ErpUserActivityRegisteredEvent",
    }
    assert [f["source"] for f in model["flows"]] == [CHECK]

    everything = await flows(api, "")
    assert sorted(s["key"] for s in everything["sources"]) == sorted(
        WEB + name
        for name in (
            "create_todo_list",
            "delete_todo_list",
            "add_todo",
            "check_todo",
            "remove_todo",
            "find_todo_list",
            "search_todo_lists",
        )
    )
    projector_flows = await flows(api, "component/TodoListProjector")
    assert len(projector_flows["sources"]) == 6
    assert (await flows(api, "bundle/todolist-query"))["sources"]
    event_flow = await flows(api, "payload/TodoListTodoCheckedEvent")
    assert event_flow["stations"][0]["kind"] == "EventStore"


async def test_service_times_come_from_the_telemetry_the_bundles_reported(api: RunningApi) -> None:
    server = api.server
    assert server is not None
    invoker = api.system.invoker()
    identifier = await invoker.create_todo_list("flows", "ann")
    todo = await invoker.add_todo(identifier, "measure me", "ann")
    await invoker.check_todo(identifier, todo, "ann")

    async def reported() -> bool:
        for bundle in api.system.bundles:
            await bundle.telemetry.flush()
        handlers = {s.handler_id for s in await server.telemetry.handler_stats()}
        return {AGGREGATE, PROJECTOR, CHECK} <= handlers

    # The projector handles the event after the command returned: its report may take a few flushes.
    await wait_until(reported, interval=0.05, what="telemetry of the check's handlers")
    model = await flows(api, f"handler/{quote(CHECK)}")
    for handler_id in (CHECK, AGGREGATE, PROJECTOR):
        measured = station(model, handler_id)
        assert measured["serviceTimeProvenance"] == "measured", measured
        assert measured["serviceTimeMs"] > 0
    stats = {s.handler_id: s for s in await server.telemetry.handler_stats()}
    # A consumer's station adds its overhead per event (none yet: too few events pooled for a value).
    overhead = (await server.telemetry.consumer_overheads()).get(("todolist-query", "TodoListProjector"), 0.0)
    assert station(model, PROJECTOR)["serviceTimeMs"] == pytest.approx(stats[PROJECTOR].aged_mean_ms + overhead)
    # The invoker sent its command once: the telemetry's probability is on its edge.
    edge = next(e for e in model["edges"] if e["sender"] == CHECK)
    assert (edge["probability"], edge["probabilityProvenance"]) == (pytest.approx(1.0), "measured")


async def test_a_projector_station_adds_its_consumers_overhead_per_event(api: RunningApi) -> None:
    """The TodoList projector keeps its checkpoints in SQLite: each event's commit and thread hops are work its
    handler's telemetry does not time. Its engine reports its busy time, the server derives the overhead per event,
    and the projector's station serves an event in the handler's aged mean plus that overhead."""
    server = api.server
    assert server is not None
    invoker = api.system.invoker()
    # A list holds at most 5 todos: lists of one todo each, two events apiece, enough for a pooled value.
    for n in range(OVERHEAD_POOL // 2 + 2):
        identifier = await invoker.create_todo_list(f"overhead {n}", "ann")
        todo = await invoker.add_todo(identifier, "measure me", "ann")
    await invoker.check_todo(identifier, todo, "ann")
    key = ("todolist-query", "TodoListProjector")

    async def measured() -> bool:
        for bundle in api.system.bundles:
            await bundle.telemetry.flush()
        handlers = {s.handler_id for s in await server.telemetry.handler_stats()}
        return PROJECTOR in handlers and key in await server.telemetry.consumer_overheads()

    await wait_until(measured, interval=0.05, what="the projector's overhead per event")

    async def inputs() -> tuple[float, float]:
        stats = {s.handler_id: s for s in await server.telemetry.handler_stats()}
        return stats[PROJECTOR].aged_mean_ms, (await server.telemetry.consumer_overheads())[key]

    # A periodic report may land while the model is read: read again until the inputs held still around it.
    for _ in range(5):
        before = await inputs()
        model = await flows(api, f"handler/{quote(CHECK)}")
        if await inputs() == before:
            break
    else:
        raise AssertionError("the telemetry kept changing while the model was read")
    handler_ms, overhead_ms = before
    assert overhead_ms > 0
    projector = station(model, PROJECTOR)
    assert projector["serviceTimeProvenance"] == "measured"
    assert projector["serviceTimeMs"] == pytest.approx(handler_ms + overhead_ms)
    # Only the consumer's stations carry it: the aggregate's is its handler's aged mean.
    stats = {s.handler_id: s for s in await server.telemetry.handler_stats()}
    assert station(model, AGGREGATE)["serviceTimeMs"] == pytest.approx(stats[AGGREGATE].aged_mean_ms)


async def test_a_what_if_makes_the_projector_the_bottleneck(api: RunningApi) -> None:
    """Every 2 ms = 500 checks/s; the projector at 10 ms per event completes 1000/10 = 100/s: the bottleneck and
    the flow's main bottleneck, with throughput 100/s and its queue growing by 400/s. Its other handler on this
    flow, of the ERP's event, is set to 0 ms so that it claims none of the projector's one server (at 2.5 ms it
    would claim 500 × 0.0025 = 1.25 of the 5 + 1.25 demanded). The saga (0.5 ms for each of its two events:
    500 × 0.0005 × 2 = 0.5 of a server) keeps up; the observer has no server limit."""
    assert api.server is not None
    await api.server.catalog_settled()
    body = {
        "selection": {"kind": "handler", "value": CHECK},
        "interArrivalMs": 2,
        "serviceTimesMs": {PROJECTOR: 10, PROJECTOR_ERP: 0, SAGA: 0.5, SAGA_ERP: 0.5, OBSERVER: 50},
        "invocationProbabilities": {CHECK: {"TodoListCheckTodoCommand": 1}},
        "instances": {"todolist-query": 3},
    }
    response = await api.viewer.post("/api/flows/evaluate", json=body)
    assert response.status_code == 200, response.text
    model = response.json()
    projector = station(model, PROJECTOR)
    assert projector["serviceTimeProvenance"] == "override"
    assert projector["workloadPerS"] == pytest.approx(500.0)
    assert projector["capacityPerS"] == pytest.approx(100.0)
    assert projector["throughputPerS"] == pytest.approx(100.0)
    assert projector["queueGrowthPerS"] == pytest.approx(400.0)
    assert projector["bottleneck"]
    assert not station(model, SAGA)["bottleneck"]
    assert not station(model, SAGA_ERP)["bottleneck"]
    assert station(model, SAGA)["servers"] == pytest.approx(0.25)  # its demand, 500 × 0.0005: all it needs
    assert station(model, OBSERVER)["capacityPerS"] is None
    (flow,) = model["flows"]
    assert flow["mainBottleneck"] == projector["id"]
    assert flow["maxThroughputPerS"] == pytest.approx(100.0)
    # Three query instances divide its concurrency, not its projector's capacity (one consumer holds the lock).
    query = next(b for b in model["bundles"] if b["bundleId"] == "todolist-query")
    assert query["instances"] == 3
    assert query["customersPerInstance"] == pytest.approx(query["customers"] / 3)

    # The same selection without the what-if: one check a second, no bottleneck.
    plain = await flows(api, f"handler/{quote(CHECK)}")
    assert not any(s["bottleneck"] for s in plain["stations"])


async def test_the_flows_api_refuses_what_does_not_exist_bad_values_and_anonymous_callers(api: RunningApi) -> None:
    assert api.server is not None
    await api.server.catalog_settled()
    for path in ("handler/no:such:handler", "payload/NoSuchPayload", "component/Nobody", "bundle/nowhere"):
        response = await api.viewer.get(f"/api/flows/{path}")
        assert response.status_code == 404, (path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    refused = [
        ({"serviceTimesMs": {PROJECTOR: -1}}, "serviceTimesMs"),
        ({"serviceTimesMs": {"no:such:handler": 1}}, "no handler 'no:such:handler'"),
        ({"invocationProbabilities": {CHECK: {"TodoListDeleteCommand": 2}}}, "does not send 'TodoListDeleteCommand'"),
        ({"sourceInterArrivalMs": {"nowhere": 5}}, "no source 'nowhere'"),
        ({"instances": {"todolist-query": 0}}, "instances"),
        ({"interArrivalMs": 0}, "interArrivalMs"),
        ({"selection": {"kind": "payload"}}, "needs a value"),
        ({"selection": {"kind": "everything"}}, "selection"),
        ({"serverStations": {"queryGatewayMs": False}}, "queryGatewayMs"),  # no false read as 0
        ({"serviceTimesMs": {PROJECTOR: "3"}}, "serviceTimesMs"),
    ]
    for body, words in refused:
        response = await api.viewer.post("/api/flows/evaluate", json=body)
        assert response.status_code == 422, (body, response.text)
        assert words in response.json()["detail"], (body, response.json())
    response = await api.viewer.get("/api/flows/", params={"interArrivalMs": -3})
    assert response.status_code == 422
    response = await api.viewer.post("/api/flows/evaluate", json={"selection": {"kind": "bundle", "value": "nowhere"}})
    assert response.status_code == 404
    assert (await api.anonymous.get("/api/flows/")).status_code == 401
    assert (await api.anonymous.post("/api/flows/evaluate", json={})).status_code == 401
