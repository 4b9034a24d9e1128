"""``GET /api/dashboard/publication-rate`` on a real server with the TodoList: every bucket of the range listed, its
count equal to the events whose timestamps fall in it (checked against the store's own events, and against events
appended at chosen times), bad ranges answered as problems, a viewer required."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from evento.event_stores.base import AppendRequest
from evento.testing.event_store_cases import all_events, event, fetch_until
from tests.api_support import RunningApi, running_api


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[RunningApi]:
    async with running_api(tmp_path) as running:
        yield running


def _rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


async def test_each_bucket_counts_the_events_published_in_it(api: RunningApi) -> None:
    invoker = api.system.invoker()
    for name in ("a", "b", "c", "d"):
        identifier = await invoker.create_todo_list(name, "alice")
        await invoker.add_todo(identifier, "milk", "alice")
    assert api.server is not None
    stored = await all_events(api.server.store)
    assert len(stored) >= 8
    stamps = [e.timestamp for e in stored]
    start = min(stamps) - 1_500  # buckets not aligned with the events
    end = max(stamps) + 2_000
    response = await api.viewer.get(
        "/api/dashboard/publication-rate", params={"interval": 1, "from": _rfc3339(start), "to": _rfc3339(end)}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    expected = Counter((stamp - start) // 1000 for stamp in stamps)
    buckets = body["buckets"]
    assert len(buckets) == -(-(end - start) // 1000)  # every bucket, the quiet ones too
    assert [b["events"] for b in buckets] == [expected.get(i, 0) for i in range(len(buckets))]
    assert body["events"] == len(stored)
    assert (body["interval"], body["from"][:19], body["to"][:19]) == (1, _rfc3339(start)[:19], _rfc3339(end)[:19])


async def test_events_at_chosen_times_give_exact_rates(api: RunningApi) -> None:
    assert api.server is not None
    store = api.server.store
    base = 978_307_200_000  # 2001-01-01T00:00:00Z: far from the TodoList's own events
    offsets = [0, 1, 59_999, 60_000, 150_000, 179_999, 180_000]  # the last one is at `to`: excluded
    before = len(await all_events(store))
    for offset in offsets:
        await store.append(AppendRequest(msgspec.structs.replace(event(), timestamp=base + offset), None))
    await fetch_until(store, before + len(offsets))
    response = await api.viewer.get(
        "/api/dashboard/publication-rate",
        params={"interval": 60, "from": "2001-01-01T00:00:00Z", "to": "2001-01-01T00:03:00Z"},
    )
    assert response.status_code == 200, response.text
    buckets = response.json()["buckets"]
    assert [(b["timestamp"], b["events"], b["ratePerS"]) for b in buckets] == [
        ("2001-01-01T00:00:00Z", 3, 0.05),
        ("2001-01-01T00:01:00Z", 1, round(1 / 60, 3)),
        ("2001-01-01T00:02:00Z", 2, round(2 / 60, 3)),
    ]
    # A last bucket cut short by `to` is measured over its own width.
    response = await api.viewer.get(
        "/api/dashboard/publication-rate",
        params={"interval": 120, "from": "2001-01-01T00:00:00Z", "to": "2001-01-01T00:03:00+00:00"},
    )
    assert [(b["events"], b["ratePerS"]) for b in response.json()["buckets"]] == [(4, round(4 / 120, 3)), (2, 0.033)]


BAD_RANGES = [
    ({"interval": "0"}, 422, "interval"),
    ({"interval": "soon"}, 422, "interval"),
    ({"from": "yesterday"}, 422, "from"),
    ({"to": "2001-01-01"}, 422, "to"),
    ({"from": "2001-01-01T00:00:00Z", "to": "2000-01-01T00:00:00Z"}, 400, "after"),
    ({"interval": "1", "from": "2001-01-01T00:00:00Z", "to": "2002-01-01T00:00:00Z"}, 400, "buckets"),
]


async def test_bad_ranges_are_problems_and_a_viewer_is_required(api: RunningApi) -> None:
    for params, status, says in BAD_RANGES:
        response = await api.viewer.get("/api/dashboard/publication-rate", params=params)
        assert response.status_code == status, (params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert says in response.json()["detail"], (params, response.text)
    response = await api.anonymous.get("/api/dashboard/publication-rate")
    assert response.status_code == 401
    assert (await api.viewer.get("/api/dashboard/publication-rate")).status_code == 200
