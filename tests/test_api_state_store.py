"""The event browser of the server's API (``/api/system-state-store``) over the TodoList's real events, on SQLite
and on PostgreSQL: every filter, the order, paging, one event with its payload decoded, an aggregate's snapshot,
and the refusals (unknown event, bad filters) as one-line problems."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from evento.event_stores import open_event_store
from evento.testing.databases import EVENT_STORE_BACKENDS, store_url
from tests.api_support import RunningApi, running_api

BROWSE = "/api/system-state-store/event"


@pytest.fixture(params=EVENT_STORE_BACKENDS)
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunningApi]:
    with store_url(request.param, tmp_path, "events.db") as url:
        async with running_api(tmp_path, store=open_event_store(url, data_dir=tmp_path)) as running:
            yield running


async def browse(api: RunningApi, **params: Any) -> dict[str, Any]:
    response = await api.viewer.get(BROWSE, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def sequence_numbers(page: dict[str, Any]) -> list[int]:
    return [item["sequenceNumber"] for item in page["items"]]


async def test_the_event_browser_filters_orders_and_pages(api: RunningApi) -> None:
    invoker = api.system.invoker()
    groceries = await invoker.create_todo_list("groceries", "alice")
    await invoker.add_todo(groceries, "Milk 50%_off", "alice")
    chores = await invoker.create_todo_list("chores", "bob")
    await invoker.add_todo(chores, "sweep", "bob")
    everything = await browse(api, size=500, sort="asc")
    mine = [item for item in everything["items"] if item["aggregateId"] in (groceries, chores)]
    assert [item["eventName"] for item in mine] == [
        "TodoListCreatedEvent",
        "TodoListTodoAddedEvent",
        "TodoListCreatedEvent",
        "TodoListTodoAddedEvent",
    ]
    created, added = mine[0], mine[1]
    assert created["payload"] == {"identifier": groceries, "content": "groceries", "context": "default"}  # JSON
    assert created["aggregateVersion"] == 1
    assert created["context"] == "default"
    assert isinstance(created["metadata"], dict)
    seqs = sequence_numbers(everything)
    assert seqs == sorted(seqs)
    assert everything["total"] == len(seqs)

    newest_first = await browse(api, size=500)  # the default order: newest first
    assert sequence_numbers(newest_first) == seqs[::-1]
    assert sequence_numbers(await browse(api, aggregateId=groceries)) == [added["sequenceNumber"],
                                                                          created["sequenceNumber"]]  # fmt: skip
    by_name = await browse(api, eventName="TodoListCreatedEvent", sort="asc")
    assert sequence_numbers(by_name) == [created["sequenceNumber"], mine[2]["sequenceNumber"]]
    assert (await browse(api, context="nowhere"))["total"] == 0
    assert (await browse(api, context="default"))["total"] >= 4
    between = await browse(api, fromSeq=added["sequenceNumber"], toSeq=mine[2]["sequenceNumber"], sort="asc")
    assert sequence_numbers(between) == [added["sequenceNumber"], mine[2]["sequenceNumber"]]
    # A literal substring of the payload, in any case: % and _ are not wildcards.
    assert sequence_numbers(await browse(api, q="milk 50%_OFF")) == [added["sequenceNumber"]]
    assert (await browse(api, q="Milk 50%%off"))["total"] == 0
    assert (await browse(api, q="milk_50"))["total"] == 0
    # Times: the events' own timestamps, bounds inclusive.
    at = datetime.fromisoformat(added["timestamp"])
    window = await browse(api, **{"from": at.isoformat(), "to": at.isoformat(), "aggregateId": groceries})
    assert sequence_numbers(window) == [added["sequenceNumber"]]
    later = (at + timedelta(days=1)).astimezone(UTC).replace(tzinfo=None).isoformat()  # no zone: UTC
    assert (await browse(api, **{"from": later}))["total"] == 0
    # Paging: 0-based pages of `size`, the total of every match.
    first, second = await browse(api, size=1, page=0, sort="asc"), await browse(api, size=1, page=1, sort="asc")
    assert (sequence_numbers(first), sequence_numbers(second)) == ([seqs[0]], [seqs[1]])
    assert (first["total"], first["page"], first["size"]) == (len(seqs), 0, 1)
    assert (await browse(api, page=1000))["items"] == []


async def test_one_event_and_a_snapshot(api: RunningApi) -> None:
    invoker = api.system.invoker()
    identifier = await invoker.create_todo_list("busy", "alice")
    for n in range(4):  # 1 + 4 x 2 + 1 = 10 events: the aggregate snapshots every 10
        todo = await invoker.add_todo(identifier, f"todo {n}", "alice")
        await invoker.remove_todo(identifier, todo, "alice")
    last = await invoker.add_todo(identifier, "last", "alice")
    (created,) = (await browse(api, aggregateId=identifier, eventName="TodoListCreatedEvent"))["items"]
    one = await api.viewer.get(f"{BROWSE}/{created['sequenceNumber']}")
    assert one.json() == created
    snapshot = await api.viewer.get("/api/system-state-store/snapshot", params={"aggregateId": identifier})
    assert snapshot.status_code == 200, snapshot.text
    body = snapshot.json()
    assert (body["aggregateId"], body["aggregateVersion"], body["deleted"]) == (identifier, 10, False)
    assert body["state"]["todos"] == {last: False}  # the state as JSON: the one todo left, unchecked
    head = (await browse(api, aggregateId=identifier, size=1))["items"][0]
    assert body["sequenceNumber"] == head["sequenceNumber"]


async def test_what_the_browser_refuses_is_one_line(api: RunningApi) -> None:
    missing = await api.viewer.get(f"{BROWSE}/999999999")
    assert (missing.status_code, missing.headers["content-type"]) == (404, "application/problem+json")
    assert missing.json()["detail"] == "no event has sequence number 999999999"
    none = await api.viewer.get("/api/system-state-store/snapshot", params={"aggregateId": "nobody"})
    assert (none.status_code, none.json()["detail"]) == (404, "the aggregate 'nobody' has no snapshot")
    for params, detail in (
        ({"sort": "up"}, "Expected 'asc' or 'desc' - at query `sort`"),
        ({"size": 0}, "Input should be greater than or equal to 1 - at query `size`"),
        ({"size": 501}, "Input should be less than or equal to 500 - at query `size`"),
        ({"fromSeq": -1}, "Input should be greater than or equal to 0 - at query `fromSeq`"),
        ({"from": "yesterday"}, "Expected an ISO 8601 date-time (2026-01-31T12:00:00Z) - at query `from`"),
        ({"q": "a\x00b"}, "String should match pattern '^[^\\x00]*$' - at query `q`"),
    ):
        response = await api.viewer.get(BROWSE, params=params)
        assert (response.status_code, response.json()["detail"]) == (422, detail), params
