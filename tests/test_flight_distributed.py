"""``evento demo flight``: the embedded demo process, and ``--distributed`` with one process per service of the
contract's topology, through the faults of C.6: ``payments`` paused (SIGSTOP) during a saga, ``flights`` killed
(kill -9) in the middle of a burst, and a full restart."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import test_flight_http as contract
from tests.example_systems import RECOVERY, SINGLE, accepted, converge, created, demo, get_json, new_uuid

pytestmark = pytest.mark.slow

SERVICES = {"server", "edge", "bookings", "flights", "payments"}
CONTRACT = [
    contract.test_each_decision_of_the_saga,
    contract.test_sixteen_racers_for_one_seat,
    contract.test_replays_of_one_booking_id_never_compete_with_their_own_hold,
    contract.test_a_confirmed_booking_changes_seat,
    contract.test_two_bookings_racing_into_one_free_seat,
]


async def book(client: httpx.AsyncClient, customer_id: str, flight_id: str, seat: str) -> str:
    booking_id = new_uuid()
    body = {"bookingId": booking_id, "customerId": customer_id, "flightId": flight_id, "seat": seat}
    await accepted(client, "/bookings", body)
    return booking_id


async def decisions(client: httpx.AsyncClient, ids: list[str], timeout: float) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any] | None]:
        found = [await client.get(f"/bookings/{b}") for b in ids]
        return [r.json() if r.status_code == 200 else None for r in found]

    views = await converge(read, lambda vs: all(v and v["status"] != "PENDING" for v in vs), timeout, "decisions")
    return [v for v in views if v is not None]


def owners(flight: dict[str, Any]) -> dict[str, str | None]:
    return {s["seat"]: s.get("bookingId") for s in flight["seats"] if not s["available"]}


async def new_flight(client: httpx.AsyncClient, seats: int, price: int) -> dict[str, Any]:
    response = await client.post("/flights", json={"seatCount": seats, "seatPrice": price})
    assert response.status_code == 201, response.text
    flight: dict[str, Any] = response.json()
    return flight


async def test_the_embedded_demo_keeps_everything_across_a_sigterm(tmp_path: Path) -> None:
    async with demo(tmp_path, "flight", distributed=False) as (process, client):
        assert await get_json(client, "/stats/bookings") == {"confirmed": 0, "rejected": 0, "revenue": 0}
        flight_id = (await new_flight(client, 12, 90))["id"]
        customer_id = (await created(client, "/customers", {"name": "c", "balance": 100}))["id"]
        ids = [await book(client, customer_id, flight_id, seat) for seat in ("2A", "2A", "2B")]
        before = await decisions(client, ids, SINGLE)
        assert [(v["status"], v.get("reason")) for v in before] == [
            ("CONFIRMED", None), ("REJECTED", "SEAT_TAKEN"), ("REJECTED", "INSUFFICIENT_FUNDS"),
        ]  # fmt: skip
        seat_map = await converge(
            lambda: get_json(client, f"/flights/{flight_id}"), lambda f: owners(f) == {"2A": ids[0]}, SINGLE, "seat"
        )
        assert await process.stop() == 0
        await process.start()
        assert await decisions(client, ids, SINGLE) == before
        assert await get_json(client, f"/flights/{flight_id}") == seat_map
        assert await get_json(client, "/stats/bookings") == {"confirmed": 1, "rejected": 2, "revenue": 90}
        assert (await get_json(client, f"/customers/{customer_id}"))["balance"] == 10


async def test_distributed_services_survive_the_faults_of_c6(tmp_path: Path) -> None:
    async with demo(tmp_path, "flight") as (process, client):
        assert set(process.pids()) == SERVICES, process.describe()

        # payments stopped before a booking is placed, back 2 s later: accepted, then decided once.
        flight_id = (await new_flight(client, 6, 300))["id"]
        customer_id = (await created(client, "/customers", {"name": "c", "balance": 100_000}))["id"]
        process.signal("payments", signal.SIGSTOP)
        try:
            paused = await book(client, customer_id, flight_id, "1A")
            await asyncio.sleep(2.0)  # the fault's length, as the contract describes it
        finally:
            process.signal("payments", signal.SIGCONT)
        (view,) = await decisions(client, [paused], RECOVERY)
        seats, balance = ({"1A": paused}, 99_700) if view["status"] == "CONFIRMED" else ({}, 100_000)
        await converge(
            lambda: get_json(client, f"/flights/{flight_id}"), lambda f: owners(f) == seats, SINGLE, "one seat"
        )
        await converge(
            lambda: get_json(client, f"/customers/{customer_id}"), lambda c: c["balance"] == balance, SINGLE, "charge"
        )

        # flights killed 0.3 s into 12 bookings spread round-robin over 6 seats: all accepted and decided, no seat
        # owned twice, seats taken = confirmed bookings.
        flight = await new_flight(client, 6, 50)
        labels = [s["seat"] for s in flight["seats"]]
        before = await get_json(client, "/stats/bookings")
        burst = asyncio.gather(*(book(client, customer_id, flight["id"], labels[n % 6]) for n in range(12)))
        await asyncio.sleep(0.3)
        killed = process.signal("flights", signal.SIGKILL)
        ids = list(await burst)
        await process.restarted("flights", killed)
        views = await decisions(client, ids, RECOVERY)
        confirmed = {v["seat"]: v["bookingId"] for v in views if v["status"] == "CONFIRMED"}
        assert len(confirmed) == sum(v["status"] == "CONFIRMED" for v in views) <= 6, views  # one owner per seat
        await converge(
            lambda: get_json(client, f"/flights/{flight['id']}"),
            lambda f: owners(f) == confirmed,
            SINGLE,
            "seats taken = confirmed bookings",
        )
        after = await converge(
            lambda: get_json(client, "/stats/bookings"),
            lambda s: s["confirmed"] + s["rejected"] == before["confirmed"] + before["rejected"] + 12,
            SINGLE,
            "statistics",
        )
        assert after["confirmed"] - before["confirmed"] == len(confirmed)
        assert after["revenue"] - before["revenue"] == 50 * len(confirmed)

        # The contract's flows and races through the processes, as in one process.
        for scenario in CONTRACT:
            await scenario(client)

        # Full restart: every decided booking keeps its status and seat, the statistics still count them.
        every = [paused, *ids]
        decided = await decisions(client, every, SINGLE)
        seat_map = await get_json(client, f"/flights/{flight['id']}")
        counted = await get_json(client, "/stats/bookings")
        assert await process.stop() == 0
        await process.start()
        assert await decisions(client, every, RECOVERY) == decided
        assert await get_json(client, f"/flights/{flight['id']}") == seat_map
        assert await get_json(client, "/stats/bookings") == counted
