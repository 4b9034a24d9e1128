"""Consumer administration through the REST API, against a real server with the TodoList bundles, in process and
over TCP: status and lag (a disabled projector falls behind and catches up), a poisoned event dead-lettered,
listed, retried after its cause is fixed and deleted, and a projector reset that replays the whole log into a
wiped read model, which ends identical."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from evento import Bundle, ConsumerSettings, event_handler, projector
from evento.consumer_stores import SQLiteConsumerStateStore
from evento.demo.todolist.payloads import TodoListCreatedEvent
from evento.demo.todolist.read_model import Session
from evento.transport.connector import TcpConnector
from tests.api_support import BUS_TOKEN, DEADLINE, RunningApi, running_api, running_api_process
from tests.helpers import wait_until

PROJECTOR = "todolist-query_TodoListProjector_1_*"
AUDIT = "audit_ListAudit_1_*"


@pytest.fixture(params=["inprocess", "tcp"])
async def todo_api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunningApi]:
    """The API with the TodoList on it: an in-process server, or a server process the bundles reach over TCP."""
    opened = running_api(tmp_path) if request.param == "inprocess" else running_api_process(tmp_path)
    async with opened as running:
        yield running


async def connect(todo: RunningApi, bundle: Bundle) -> None:
    """Start one more bundle on the API's server, the way the TodoList's bundles reach it."""
    if todo.server is not None:
        await bundle.start(todo.server)
    else:
        assert todo.process is not None
        await bundle.start(TcpConnector(todo.process.bus, auth_token=BUS_TOKEN))


async def status(todo: RunningApi, consumer_id: str) -> dict[str, Any]:
    response = await todo.viewer.get(f"/api/consumer/{consumer_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_caught_up(todo: RunningApi, consumer_id: str) -> dict[str, Any]:
    """The consumer's status once it handled everything stored (lag 0, head reached)."""
    found: dict[str, Any] = {}

    async def caught_up() -> bool:
        nonlocal found
        found = await status(todo, consumer_id)
        return bool(found["lag"] == 0 and found["headReached"] and found["inFlight"] == 0)

    await wait_until(caught_up, DEADLINE, what=f"{consumer_id} caught up")
    return found


async def test_consumers_are_listed_with_their_live_status_and_lag(todo_api: RunningApi) -> None:
    listed = (await todo_api.viewer.get("/api/consumer/")).json()
    assert [(c["consumerId"], c["componentKind"], c["bundleId"], c["instances"]) for c in listed["items"]] == [
        (PROJECTOR, "Projector", "todolist-query", ["replica-1"]),
        ("todolist-saga_ErpTodoListActivityRegistrationSaga_1_*", "Saga", "todolist-saga", ["replica-1"]),
        ("todolist-saga_TodoListNotificationObserver_1_*", "Observer", "todolist-saga", ["replica-1"]),
    ]
    invoker = todo_api.system.invoker()
    await invoker.create_todo_list("groceries", "alice")
    found = await wait_caught_up(todo_api, PROJECTOR)
    assert found["consumerId"] == PROJECTOR
    assert (found["component"], found["componentKind"], found["bundleId"], found["context"]) == (
        "TodoListProjector",
        "Projector",
        "todolist-query",
        "*",
    )
    assert (found["instanceId"], found["holdsLock"], found["enabled"]) == ("replica-1", True, True)
    assert found["checkpoint"] == found["head"] >= 1
    assert (found["deadEvents"], found["errorCount"], found["errorMessage"]) == (0, 0, None)

    # Paused, it falls behind by what is stored meanwhile; enabled again, it catches up.
    paused = await todo_api.admin.post(f"/api/consumer/{PROJECTOR}/disable")
    assert paused.status_code == 200, paused.text
    assert paused.json()["enabled"] is False
    for name in ("books", "films"):
        await invoker.create_todo_list(name, "alice")
    lagging = await status(todo_api, PROJECTOR)
    assert (lagging["enabled"], lagging["lag"], lagging["head"]) == (False, 2, found["head"] + 2)
    resumed = await todo_api.admin.post(f"/api/consumer/{PROJECTOR}/enable")
    assert resumed.json()["enabled"] is True
    assert (await wait_caught_up(todo_api, PROJECTOR))["checkpoint"] == found["head"] + 2

    # A viewer reads but does not act; an unknown consumer is a 404.
    assert (await todo_api.viewer.post(f"/api/consumer/{PROJECTOR}/disable")).status_code == 403
    unknown = await todo_api.viewer.get("/api/consumer/nobody_Nothing_1_*")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"


@dataclass
class Cause:
    """The bug behind the poisoned lists: while ``broken``, lists with these names fail the audit."""

    names: set[str] = field(default_factory=lambda: {"poison", "venom"})
    broken: bool = True
    audited: list[str] = field(default_factory=list)


@projector(version=1)
class ListAudit:
    """Audits created lists; fails (no retry) on the names its cause lists while the cause is not fixed."""

    def __init__(self, cause: Cause) -> None:
        self.cause = cause

    @event_handler(retry=0)
    def on_created(self, event: TodoListCreatedEvent) -> None:
        if self.cause.broken and event.content in self.cause.names:
            raise ValueError(f"cannot audit a list named {event.content!r}")
        self.cause.audited.append(event.content)


async def test_a_poisoned_event_is_dead_lettered_listed_retried_and_deleted(
    todo_api: RunningApi, tmp_path: Path
) -> None:
    cause = Cause()
    audit = Bundle(
        "audit",
        components=[ListAudit],
        consumer_store=SQLiteConsumerStateStore(tmp_path / "audit.db"),
        injector=lambda annotation: cause if annotation is Cause else None,
        consumer_settings=ConsumerSettings(error_delay=0.05),
    )
    await connect(todo_api, audit)
    try:
        invoker = todo_api.system.invoker()
        poison = await invoker.create_todo_list("poison", "alice")
        await invoker.create_todo_list("fine", "alice")
        venom = await invoker.create_todo_list("venom", "alice")
        found = await wait_caught_up(todo_api, AUDIT)
        assert found["deadEvents"] == 2
        assert cause.audited == ["fine"]

        listed = await todo_api.viewer.get(f"/api/consumer/{AUDIT}/event")
        assert listed.status_code == 200, listed.text
        dead = listed.json()["items"]
        assert [(d["eventName"], d["aggregateId"], d["payload"]["content"], d["retry"]) for d in dead] == [
            ("TodoListCreatedEvent", poison, "poison", False),
            ("TodoListCreatedEvent", venom, "venom", False),
        ]
        assert dead[0]["payload"] == {"identifier": poison, "content": "poison", "context": "default"}
        assert dead[0]["error"] == "ValueError: cannot audit a list named 'poison'"
        assert dead[0]["metadata"]["user"] == "alice"
        poisoned, venomous = dead[0]["sequenceNumber"], dead[1]["sequenceNumber"]

        # Retrying needs the admin; flagged, the cause fixed, the queue consumed: audited, out of the queue.
        assert (await todo_api.viewer.put(f"/api/consumer/{AUDIT}/event/{poisoned}?retry=true")).status_code == 403
        flagged = await todo_api.admin.put(f"/api/consumer/{AUDIT}/event/{poisoned}", params={"retry": "true"})
        assert flagged.status_code == 204, flagged.text
        listed = (await todo_api.viewer.get(f"/api/consumer/{AUDIT}/event")).json()["items"]
        assert [d["retry"] for d in listed] == [True, False]
        cause.names.discard("poison")
        consumed = await todo_api.admin.post(f"/api/consumer/{AUDIT}/consume-dead-queue")
        assert consumed.status_code == 200, consumed.text
        assert consumed.json() == {"processed": 1}
        assert cause.audited == ["fine", "poison"]
        remaining = (await todo_api.viewer.get(f"/api/consumer/{AUDIT}/event")).json()
        assert [d["sequenceNumber"] for d in remaining["items"]] == [venomous]
        assert (await status(todo_api, AUDIT))["deadEvents"] == 1

        # Given up on: deleted, then gone (a second delete, or a retry flag, finds nothing: 404).
        deleted = await todo_api.admin.delete(f"/api/consumer/{AUDIT}/event/{venomous}")
        assert deleted.status_code == 204, deleted.text
        assert (await todo_api.viewer.get(f"/api/consumer/{AUDIT}/event")).json()["total"] == 0
        assert (await todo_api.admin.delete(f"/api/consumer/{AUDIT}/event/{venomous}")).status_code == 404
        assert (await todo_api.admin.put(f"/api/consumer/{AUDIT}/event/{venomous}?retry=true")).status_code == 404
        assert cause.audited == ["fine", "poison"]
    finally:
        await audit.stop()


def read_model_rows(todo: RunningApi) -> dict[str, list[tuple[Any, ...]]]:
    def read(db: Session) -> dict[str, list[tuple[Any, ...]]]:
        return {
            "lists": db.rows("SELECT * FROM todolist_list ORDER BY identifier"),
            "todos": db.rows("SELECT * FROM todolist_todo ORDER BY identifier"),
        }

    return todo.system.read_model.read(read)


def wipe_read_model(db: Session) -> None:
    db.execute("DELETE FROM todolist_todo")
    db.execute("DELETE FROM todolist_list")


async def test_a_projector_reset_replays_into_a_read_model_that_ends_identical(todo_api: RunningApi) -> None:
    invoker = todo_api.system.invoker()
    for n in range(3):
        identifier = await invoker.create_todo_list(f"list {n}", "alice")
        todos = [await invoker.add_todo(identifier, f"todo {n}.{m}", "bob") for m in range(3)]
        await invoker.check_todo(identifier, todos[0], "carol")
        await invoker.remove_todo(identifier, todos[1], "bob")
    gone = await invoker.create_todo_list("deleted later", "alice")
    await invoker.delete_todo_list(gone, "alice")
    before = await wait_caught_up(todo_api, PROJECTOR)
    original = read_model_rows(todo_api)
    assert (len(original["lists"]), len(original["todos"])) == (3, 6)

    # The read model is lost (say, a bad migration): only a replay of the log can rebuild it.
    await todo_api.admin.post(f"/api/consumer/{PROJECTOR}/disable")
    todo_api.system.read_model.write(wipe_read_model)
    assert read_model_rows(todo_api) == {"lists": [], "todos": []}
    await todo_api.admin.post(f"/api/consumer/{PROJECTOR}/enable")

    assert (
        await todo_api.viewer.post(f"/api/consumer/{PROJECTOR}/reset", json={"fromSequenceNumber": 0})
    ).status_code == 403
    reset = await todo_api.admin.post(f"/api/consumer/{PROJECTOR}/reset", json={"fromSequenceNumber": 0})
    assert reset.status_code == 202, reset.text
    assert reset.json() == {"consumerId": PROJECTOR, "fromSequenceNumber": 0, "head": before["head"]}

    after = await wait_caught_up(todo_api, PROJECTOR)
    assert after["checkpoint"] == before["head"]
    assert read_model_rows(todo_api) == original

    bad = await todo_api.admin.post(f"/api/consumer/{PROJECTOR}/reset", json={"fromSequenceNumber": -1})
    assert bad.status_code == 422
    assert "fromSequenceNumber" in bad.json()["detail"]
