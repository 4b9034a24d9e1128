"""The flight example through its HTTP API, in one process (contract part C): the seat map, the saga's
decisions, 16 racers for one seat, replays of one booking id, the hold expiring while payments is away, seat
changes (T2), the invariants of C.4 at convergence and durability across a restart."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evento.demo.flight import system as flight_system
from evento.demo.flight.system import FlightSystem
from evento.demo.shared.system import ExampleConfig
from evento.testing.databases import postgres_database
from tests.example_systems import (
    BURST,
    SINGLE,
    WHOLE_SYSTEM,
    accepted,
    converge,
    created,
    decided_views,
    get_json,
    new_uuid,
    replay_saga,
    running,
)

SOME_UUID = "3f1c9b1e-6a55-4c7e-9d0e-123456789abc"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with running(FlightSystem, tmp_path) as (_, http, _):
        yield http


async def flight(client: httpx.AsyncClient, seats: int, price: int = 100) -> dict[str, Any]:
    response = await client.post("/flights", json={"seatCount": seats, "seatPrice": price})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert isinstance(body["id"], str)
    assert body["seatCount"] == seats
    assert body["seatPrice"] == price
    return body


async def customer(client: httpx.AsyncClient, balance: int) -> str:
    return str((await created(client, "/customers", {"name": "ada", "balance": balance}))["id"])


async def book(client: httpx.AsyncClient, customer_id: str, flight_id: str, seat: str, booking_id: str = "") -> str:
    booking_id = booking_id or new_uuid()
    body = {"bookingId": booking_id, "customerId": customer_id, "flightId": flight_id, "seat": seat}
    placed = await accepted(client, "/bookings", body)
    assert placed["bookingId"] == booking_id
    return booking_id


async def decided(client: httpx.AsyncClient, ids: list[str], timeout: float = BURST) -> list[dict[str, Any]]:
    """The views of the bookings ``ids`` once every one of them shows a decision."""
    return await decided_views(client, "bookings", ids, timeout)


async def stats(client: httpx.AsyncClient) -> dict[str, int]:
    found: dict[str, int] = await get_json(client, "/stats/bookings")
    return found


def plus(stats: dict[str, int], confirmed: int, rejected: int, revenue: int) -> dict[str, int]:
    """``stats`` after that many more decisions and that much more revenue."""
    return {
        "confirmed": stats["confirmed"] + confirmed,
        "rejected": stats["rejected"] + rejected,
        "revenue": stats["revenue"] + revenue,
    }


def taken(flight_view: dict[str, Any]) -> dict[str, str | None]:
    """Seat label → owning booking (None while held) of the seats that are not available."""
    return {s["seat"]: s.get("bookingId") for s in flight_view["seats"] if not s["available"]}


# --- part A and the seat map ------------------------------------------------------------------------------------------


async def test_bad_bodies_are_400_never_422(client: httpx.AsyncClient) -> None:
    customer_id = await customer(client, 100)
    booking = {"bookingId": SOME_UUID, "customerId": customer_id, "flightId": "f", "seat": "1A"}
    for path, body in [
        ("/flights", {"seatCount": 0, "seatPrice": 1}),
        ("/flights", {"seatCount": 3, "seatPrice": 0}),
        ("/flights", {"seatCount": 3}),
        ("/flights", {"seatCount": True, "seatPrice": 5}),
        ("/flights", {"seatCount": 10**9, "seatPrice": 5}),
        ("/bookings", {k: v for k, v in booking.items() if k != "seat"}),
        ("/bookings", {**booking, "bookingId": "b-1"}),
        ("/bookings", {**booking, "seat": 1}),
        (f"/customers/{customer_id}/deposit", {"amount": 0}),
        ("/customers/nope/deposit", {"amount": -5}),
        (f"/bookings/{SOME_UUID}/change-seat", {}),
    ]:
        response = await client.post(path, json=body)
        assert response.status_code == 400, (path, body, response.text)
    assert (
        await client.post("/flights", content=b"[", headers={"Content-Type": "application/json"})
    ).status_code == 400


async def test_a_new_flight_lists_its_labelled_seats(client: httpx.AsyncClient) -> None:
    created_flight = await flight(client, 8, 250)
    labels = ["1A", "1B", "1C", "1D", "1E", "1F", "2A", "2B"]
    assert created_flight["seats"] == [{"seat": label, "available": True} for label in labels]
    assert await get_json(client, f"/flights/{created_flight['id']}") == created_flight
    for path in ["/flights/nope", f"/bookings/{new_uuid()}", "/customers/nope"]:
        assert (await client.get(path)).status_code == 404
    assert await stats(client) == {"confirmed": 0, "rejected": 0, "revenue": 0}


# --- C.3: the saga ----------------------------------------------------------------------------------------------------


async def test_each_decision_of_the_saga(client: httpx.AsyncClient) -> None:
    flight_id = (await flight(client, 6, 300))["id"]
    rich, poor = await customer(client, 1000), await customer(client, 100)
    before = await stats(client)
    won = await book(client, rich, flight_id, "1A")
    (view,) = await decided(client, [won], SINGLE)
    assert view == {
        "bookingId": won, "customerId": rich, "flightId": flight_id, "seat": "1A", "status": "CONFIRMED",
        "total": 300,
    }  # fmt: skip
    seat_taken = await book(client, poor, flight_id, "1A")
    no_money = await book(client, poor, flight_id, "1B")
    no_such_seat = await book(client, rich, flight_id, "9Z")
    views = await decided(client, [seat_taken, no_money, no_such_seat], SINGLE)
    assert [(v["status"], v.get("reason")) for v in views] == [
        ("REJECTED", "SEAT_TAKEN"), ("REJECTED", "INSUFFICIENT_FUNDS"), ("REJECTED", "SEAT_TAKEN"),
    ]  # fmt: skip
    seat_map = await converge(
        lambda: get_json(client, f"/flights/{flight_id}"), lambda f: taken(f) == {"1A": won}, SINGLE, "seat map"
    )
    assert seat_map["seats"][0] == {"seat": "1A", "available": False, "bookingId": won}
    assert (await get_json(client, f"/customers/{poor}"))["balance"] == 100
    await converge(lambda: get_json(client, f"/customers/{rich}"), lambda c: c["balance"] == 700, SINGLE, "charge")
    await converge(lambda: stats(client), lambda s: s == plus(before, 1, 3, 300), SINGLE, "statistics")
    notes = await converge(
        lambda: get_json(client, f"/customers/{poor}/notifications"), lambda n: len(n) == 2, SINGLE, "notes"
    )
    assert notes == [
        {"bookingId": seat_taken, "status": "REJECTED", "reason": "SEAT_TAKEN"},
        {"bookingId": no_money, "status": "REJECTED", "reason": "INSUFFICIENT_FUNDS"},
    ]


async def test_sixteen_racers_for_one_seat(client: httpx.AsyncClient) -> None:
    flight_id = (await flight(client, 6, 500))["id"]
    racers = [await customer(client, 1000) for _ in range(16)]
    before = await stats(client)
    ids = await asyncio.gather(*(book(client, c, flight_id, "1C") for c in racers))
    views = await decided(client, list(ids))
    winners = [v for v in views if v["status"] == "CONFIRMED"]
    assert len(winners) == 1
    assert all(v["reason"] == "SEAT_TAKEN" for v in views if v["status"] == "REJECTED")
    await converge(
        lambda: get_json(client, f"/flights/{flight_id}"),
        lambda f: taken(f) == {"1C": winners[0]["bookingId"]},
        BURST,
        "one owner",
    )

    async def balances() -> list[int]:
        return sorted([(await get_json(client, f"/customers/{c}"))["balance"] for c in racers])

    await converge(balances, lambda b: b == [500] + [1000] * 15, BURST, "one charge, the winner's")
    assert await stats(client) == plus(before, 1, 15, 500)


async def test_replays_of_one_booking_id_never_compete_with_their_own_hold(client: httpx.AsyncClient) -> None:
    flight_id, customer_id = (await flight(client, 6, 400))["id"], await customer(client, 1000)
    booking_id, before = new_uuid(), await stats(client)
    body = {"bookingId": booking_id, "customerId": customer_id, "flightId": flight_id, "seat": "1D"}
    responses = await asyncio.gather(*(client.post("/bookings", json=body) for _ in range(12)))
    assert all(r.status_code in (200, 202) and r.json()["bookingId"] == booking_id for r in responses)
    (view,) = await decided(client, [booking_id], SINGLE)
    assert view["status"] == "CONFIRMED"
    replay = await client.post("/bookings", json={**body, "seat": "1E"})
    assert replay.status_code in (200, 202)
    assert replay.json()["seat"] == "1D"
    await converge(lambda: get_json(client, f"/customers/{customer_id}"), lambda c: c["balance"] == 600, SINGLE, "$")
    notes = await converge(
        lambda: get_json(client, f"/customers/{customer_id}/notifications"), lambda n: len(n) >= 1, SINGLE, "notes"
    )
    assert notes == [{"bookingId": booking_id, "status": "CONFIRMED"}]
    assert await stats(client) == plus(before, 1, 0, 400)


async def test_a_hold_expires_while_payments_is_away_and_the_late_charge_is_refunded(tmp_path: Path) -> None:
    """The charge cannot run (payments stopped), so the hold expires and frees the seat; when payments comes
    back the charge goes through, the flight refuses to confirm the expired hold, and the saga refunds it."""
    async with running(FlightSystem, tmp_path, hold_timeout=1.0) as (system, client, server):
        flight_id, customer_id = (await flight(client, 6, 250))["id"], await customer(client, 1000)
        index = next(n for n, b in enumerate(system.bundles) if b.bundle_id == "payments")
        await system.bundles[index].stop()
        booking_id = await book(client, customer_id, flight_id, "1E")

        async def story() -> list[str]:
            return [e.event_name for e in (await server.store.load_story(flight_id, use_snapshot=False)).events]

        await converge(story, lambda names: "HoldExpiredEvent" in names, SINGLE, "the hold expired")
        assert (await story())[-2:] == ["SeatHeldEvent", "HoldExpiredEvent"]
        await converge(lambda: get_json(client, f"/flights/{flight_id}"), lambda f: taken(f) == {}, SINGLE, "freed")
        assert (await get_json(client, f"/bookings/{booking_id}"))["status"] == "PENDING"
        system.bundles[index] = flight_system.payments(ExampleConfig(tmp_path, hold_timeout=1.0))
        await system.bundles[index].start(server)
        (view,) = await decided(client, [booking_id], SINGLE)
        assert view["status"] == "REJECTED"
        await converge(
            lambda: get_json(client, f"/customers/{customer_id}"), lambda c: c["balance"] == 1000, SINGLE, "refund"
        )
        assert "SeatConfirmRefusedEvent" in await story()  # the charge came back after the expiry: refused, refunded
        assert taken(await get_json(client, f"/flights/{flight_id}")) == {}
        # The seat is free for the next booking, which has time to confirm.
        again = await book(client, customer_id, flight_id, "1E")
        assert (await decided(client, [again], SINGLE))[0]["status"] == "CONFIRMED"


# --- T2: seat change --------------------------------------------------------------------------------------------------


async def test_a_confirmed_booking_changes_seat(client: httpx.AsyncClient) -> None:
    flight_id, customer_id = (await flight(client, 6, 100))["id"], await customer(client, 1000)
    mine, other = await book(client, customer_id, flight_id, "1A"), await book(client, customer_id, flight_id, "1B")
    await decided(client, [mine, other], SINGLE)
    before = await stats(client)
    responses = await asyncio.gather(
        *(client.post(f"/bookings/{mine}/change-seat", json={"newSeat": "1C"}) for _ in range(8))
    )
    assert {r.status_code for r in responses} == {202}
    view = await converge(
        lambda: get_json(client, f"/bookings/{mine}"), lambda b: b["seat"] == "1C", SINGLE, "booking moved"
    )
    assert view["status"] == "CONFIRMED"
    await converge(
        lambda: get_json(client, f"/flights/{flight_id}"),
        lambda f: taken(f) == {"1B": other, "1C": mine},
        SINGLE,
        "seat map",
    )
    assert (await client.post(f"/bookings/{mine}/change-seat", json={"newSeat": "1C"})).status_code == 202  # no-op
    assert (await client.post(f"/bookings/{mine}/change-seat", json={"newSeat": "1B"})).status_code == 409  # taken
    assert (await client.post(f"/bookings/{new_uuid()}/change-seat", json={"newSeat": "1D"})).status_code == 404
    assert await stats(client) == before
    notes = await converge(
        lambda: get_json(client, f"/customers/{customer_id}/notifications"), lambda n: len(n) >= 2, SINGLE, "notes"
    )
    assert len(notes) == 2  # confirmations only: a seat change tells nobody
    await converge(lambda: get_json(client, f"/customers/{customer_id}"), lambda c: c["balance"] == 800, SINGLE, "$")


async def test_two_bookings_racing_into_one_free_seat(client: httpx.AsyncClient) -> None:
    flight_id, customer_id = (await flight(client, 6, 100))["id"], await customer(client, 1000)
    first, second = await book(client, customer_id, flight_id, "1A"), await book(client, customer_id, flight_id, "1B")
    rejected = await book(client, await customer(client, 0), flight_id, "1E")
    await decided(client, [first, second, rejected], SINGLE)
    responses = await asyncio.gather(
        client.post(f"/bookings/{first}/change-seat", json={"newSeat": "1F"}),
        client.post(f"/bookings/{second}/change-seat", json={"newSeat": "1F"}),
    )
    assert sorted(r.status_code for r in responses) == [202, 409]
    winner, loser = (first, second) if responses[0].status_code == 202 else (second, first)
    kept = "1A" if loser == first else "1B"
    await converge(
        lambda: get_json(client, f"/flights/{flight_id}"),
        lambda f: taken(f) == {"1F": winner, kept: loser},
        SINGLE,
        "one winner, the other keeps its seat",
    )
    assert (await client.post(f"/bookings/{rejected}/change-seat", json={"newSeat": "1D"})).status_code == 409


# --- C.4 under random interleavings -----------------------------------------------------------------------------------

Step = tuple[str, int, int]  # (kind, customer, seat or amount)

steps = st.lists(
    st.one_of(
        st.tuples(st.just("book"), st.integers(0, 2), st.integers(0, 7)),
        st.tuples(st.just("deposit"), st.integers(0, 2), st.integers(1, 300)),
        st.tuples(st.just("change"), st.integers(0, 30), st.integers(0, 7)),
    ),
    min_size=8,
    max_size=24,
)


@settings(WHOLE_SYSTEM, max_examples=4)
@given(plan=steps, seed=st.integers(0, 2**16))
def test_invariants_hold_at_convergence_under_any_interleaving(
    tmp_path_factory: Any, plan: list[Step], seed: int
) -> None:
    """Bookings of eight contended seats by three customers (one poor), deposits and seat changes, concurrently
    in a random order: at convergence no seat has two owners, seats taken = confirmed bookings, money adds up,
    one notification per decision (C.4)."""
    asyncio.run(_check_invariants(tmp_path_factory.mktemp("fl"), plan, random.Random(seed)))


async def _check_invariants(data_dir: Path, plan: list[Step], rng: random.Random) -> None:
    async with running(FlightSystem, data_dir) as (_, client, _):
        flight_view = await flight(client, 8, 150)
        flight_id = flight_view["id"]
        labels = [s["seat"] for s in flight_view["seats"]]
        initial = [400, 1000, 100]
        customers = [await customer(client, amount) for amount in initial]
        deposited = [0, 0, 0]
        bookings: list[str] = []

        async def run(step: Step) -> None:
            kind, who, value = step
            await asyncio.sleep(rng.random() * 0.05)
            if kind == "book":
                bookings.append(await book(client, customers[who], flight_id, labels[value]))
            elif kind == "deposit":
                await accepted(client, f"/customers/{customers[who]}/deposit", {"amount": value})
                deposited[who] += value
            elif bookings:
                target = bookings[who % len(bookings)]
                response = await client.post(f"/bookings/{target}/change-seat", json={"newSeat": labels[value]})
                assert response.status_code in (202, 404, 409), response.text

        await asyncio.gather(*(run(step) for step in plan))
        views = {v["bookingId"]: v for v in await decided(client, bookings)}
        confirmed = [v for v in views.values() if v["status"] == "CONFIRMED"]
        assert all(v["reason"] in {"SEAT_TAKEN", "INSUFFICIENT_FUNDS"} for v in views.values() if "reason" in v)
        await converge(
            lambda: stats(client),
            lambda s: s["confirmed"] == len(confirmed) and s["confirmed"] + s["rejected"] == len(bookings),
            BURST,
            "statistics",
        )
        final = await converge(
            lambda: get_json(client, f"/flights/{flight_id}"),
            lambda f: (
                sorted(b for b in taken(f).values() if b) == sorted(v["bookingId"] for v in confirmed)
                and len(taken(f)) == len(confirmed)
            ),
            BURST,
            "seats taken = confirmed bookings",
        )
        assert {v["seat"]: v["bookingId"] for v in confirmed} == taken(final)
        for n, customer_id in enumerate(customers):
            paid = sum(v["total"] for v in confirmed if v["customerId"] == customer_id)
            await converge(
                lambda c=customer_id: get_json(client, f"/customers/{c}"),
                lambda c, i=initial[n], d=deposited[n], p=paid: c["balance"] == i + d - p,
                BURST,
                f"money of customer {n}",
            )
            mine = sorted((b, v["status"]) for b, v in views.items() if v["customerId"] == customer_id)
            await converge(
                lambda c=customer_id: get_json(client, f"/customers/{c}/notifications"),
                lambda notes, m=mine: sorted((x["bookingId"], x["status"]) for x in notes) == m,
                BURST,
                f"one notification per decision of customer {n}",
            )
        assert (await stats(client))["revenue"] == 150 * len(confirmed)


# --- durability -------------------------------------------------------------------------------------------------------


async def test_every_state_is_back_after_a_restart(tmp_path: Path) -> None:
    async with running(FlightSystem, tmp_path) as (_, client, _):
        flight_id, customer_id = (await flight(client, 12, 120))["id"], await customer(client, 1000)
        ids = [await book(client, customer_id, flight_id, seat) for seat in ("1A", "1A", "1B")]
        await decided(client, ids, SINGLE)
        await accepted(client, f"/bookings/{ids[0]}/change-seat", {"newSeat": "2A"})
        await converge(lambda: get_json(client, f"/bookings/{ids[0]}"), lambda b: b["seat"] == "2A", SINGLE, "moved")

        async def everything() -> dict[str, Any]:
            return {
                "bookings": [await get_json(client, f"/bookings/{b}") for b in ids],
                "flight": await get_json(client, f"/flights/{flight_id}"),
                "stats": await stats(client),
                "customer": await get_json(client, f"/customers/{customer_id}"),
                "notes": await get_json(client, f"/customers/{customer_id}/notifications"),
            }

        before = await converge(
            everything, lambda e: e["customer"]["balance"] == 760 and len(e["notes"]) == 3, SINGLE, "charges, notes"
        )
    async with running(FlightSystem, tmp_path) as (_, client, _):
        assert await everything() == before
        assert taken(before["flight"]) == {"1B": ids[2], "2A": ids[0]}
        # The flight aggregate came back too: 1A is free again, 2A is not.
        free, full = await book(client, customer_id, flight_id, "1A"), await book(client, customer_id, flight_id, "2A")
        assert [v["status"] for v in await decided(client, [free, full], SINGLE)] == ["CONFIRMED", "REJECTED"]


async def test_a_saga_handling_every_event_again_changes_nothing(tmp_path: Path) -> None:
    """The booking saga replays the whole log: every resent step is refused as already taken (a resent hold
    never competes with its own hold), so seats, money, statuses, notifications and statistics stay."""
    async with running(FlightSystem, tmp_path) as (system, client, server):
        flight_id, rich, poor = (
            (await flight(client, 6, 100))["id"],
            await customer(client, 1000),
            await customer(client, 50),
        )
        seats = ["1A", "1A", "1B", "1C", "1D"]
        ids = await asyncio.gather(*(book(client, rich if n < 4 else poor, flight_id, s) for n, s in enumerate(seats)))
        await decided(client, list(ids))

        async def everything() -> dict[str, Any]:
            return {
                "bookings": [await get_json(client, f"/bookings/{b}") for b in ids],
                "stats": await stats(client),
                "flight": await get_json(client, f"/flights/{flight_id}"),
                "customers": [await get_json(client, f"/customers/{c}") for c in (rich, poor)],
                "notes": [await get_json(client, f"/customers/{c}/notifications") for c in (rich, poor)],
            }

        before = await converge(
            everything, lambda e: sum(map(len, e["notes"])) == 5 and e["customers"][0]["balance"] == 700, SINGLE, "ok"
        )
        assert len(taken(before["flight"])) == 3
        await replay_saga(system, server, "bookings", "BookingProcessingSaga")
        assert await everything() == before


async def test_on_postgresql(tmp_path: Path) -> None:
    """``--store postgresql://``: events, consumer state and views in PostgreSQL; racers and a seat change."""
    with postgres_database() as url:
        async with running(FlightSystem, tmp_path, store=url, consumer_store=url) as (_, client, _):
            flight_id, customer_id = (await flight(client, 6, 100))["id"], await customer(client, 1000)
            ids = await asyncio.gather(*(book(client, customer_id, flight_id, "1A") for _ in range(5)))
            views = await decided(client, list(ids))
            (winner,) = [v["bookingId"] for v in views if v["status"] == "CONFIRMED"]
            await accepted(client, f"/bookings/{winner}/change-seat", {"newSeat": "1F"})
            await converge(
                lambda: get_json(client, f"/flights/{flight_id}"), lambda f: taken(f) == {"1F": winner}, SINGLE, "moved"
            )
            assert await stats(client) == {"confirmed": 1, "rejected": 4, "revenue": 100}
