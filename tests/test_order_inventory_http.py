"""The order-inventory example through its HTTP API, in one process (contract part B): the rules of part A,
the saga's decisions, the races, replays of one order id, cancellation (T2), the invariants of B.4 at convergence
and durability across a restart."""

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

from evento.demo.order_inventory.system import OrderInventorySystem
from evento.testing.databases import mysql_database, postgres_database
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

DECIDED = {"CONFIRMED", "REJECTED", "CANCELLED"}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with running(OrderInventorySystem, tmp_path) as (_, http, _):
        yield http


async def product(client: httpx.AsyncClient, stock: int, unit_price: int = 100) -> str:
    body = await created(client, "/products", {"name": "widget", "unitPrice": unit_price, "stock": stock})
    assert body == {"id": body["id"], "name": "widget", "unitPrice": unit_price, "stock": stock}
    return str(body["id"])


async def customer(client: httpx.AsyncClient, balance: int) -> str:
    body = await created(client, "/customers", {"name": "ada", "balance": balance})
    assert body == {"id": body["id"], "name": "ada", "balance": balance}
    return str(body["id"])


async def order(client: httpx.AsyncClient, customer_id: str, product_id: str, quantity: int = 1) -> str:
    order_id = new_uuid()
    body = {"orderId": order_id, "customerId": customer_id, "productId": product_id, "quantity": quantity}
    placed = await accepted(client, "/orders", body)
    assert placed["orderId"] == order_id
    assert placed["status"] in {"PENDING", *DECIDED}
    return order_id


async def decided(client: httpx.AsyncClient, order_ids: list[str], timeout: float = BURST) -> list[dict[str, Any]]:
    """The views of ``order_ids`` once every one of them shows a decision."""
    return await decided_views(client, "orders", order_ids, timeout)


async def stats(client: httpx.AsyncClient) -> dict[str, int]:
    found: dict[str, int] = await get_json(client, "/stats/orders")
    return found


# --- part A: the HTTP rules -----------------------------------------------------------------------------------------

SOME_UUID = "3f1c9b1e-6a55-4c7e-9d0e-123456789abc"
BAD_BODIES: list[tuple[str, bytes | dict[str, Any] | list[Any]]] = [
    ("/products", b"not json"),
    ("/products", [1, 2]),
    ("/products", {"name": "w", "unitPrice": 100}),
    ("/products", {"name": "", "unitPrice": 100, "stock": 1}),
    ("/products", {"name": "w", "unitPrice": 0, "stock": 1}),
    ("/products", {"name": "w", "unitPrice": 100, "stock": -1}),
    ("/products", {"name": "w", "unitPrice": True, "stock": 1}),
    ("/products", {"name": "w", "unitPrice": 1.5, "stock": 1}),
    ("/products", {"name": "w", "unitPrice": "100", "stock": 1}),
    ("/products", {"name": 7, "unitPrice": 100, "stock": 1}),
    ("/products", {"name": "w", "unitPrice": 10**30, "stock": 1}),
    ("/customers", {"name": "ada"}),
    ("/customers", {"name": "ada", "balance": -1}),
    ("/customers", {"name": "", "balance": 1}),
    ("/customers", b""),
    ("/orders", {"orderId": "not-a-uuid", "customerId": "c", "productId": "p", "quantity": 1}),
    ("/orders", {"orderId": SOME_UUID, "customerId": "c", "productId": "p"}),
    (
        "/orders",
        {"orderId": SOME_UUID, "customerId": "c", "productId": "p", "quantity": 0},
    ),
    ("/orders", {"orderId": 12, "customerId": "c", "productId": "p", "quantity": 1}),
    (
        "/orders",
        {"orderId": SOME_UUID, "customerId": "c", "productId": "p", "quantity": False},
    ),
]


async def post_raw(client: httpx.AsyncClient, path: str, body: object) -> httpx.Response:
    if isinstance(body, bytes):
        return await client.post(path, content=body, headers={"Content-Type": "application/json"})
    return await client.post(path, json=body)


async def test_bad_bodies_are_400_never_422(client: httpx.AsyncClient) -> None:
    for path, body in BAD_BODIES:
        response = await post_raw(client, path, body)
        assert response.status_code == 400, (path, body, response.status_code, response.text)
        assert "error" in response.json()


async def test_a_bad_body_is_400_before_the_path_is_looked_at(client: httpx.AsyncClient) -> None:
    product_id, customer_id = await product(client, 1), await customer(client, 1)
    for path, bad in [
        ("/products/nope/restock", {"units": 0}),
        ("/products/nope/restock", {}),
        (f"/products/{product_id}/restock", {"units": -3}),
        ("/customers/nope/deposit", {"amount": 0}),
        (f"/customers/{customer_id}/deposit", {"amount": -1}),
        ("/customers/nope/deposit", {"amount": True}),
    ]:
        response = await post_raw(client, path, bad)
        assert response.status_code == 400, (path, bad, response.text)


async def test_unknown_ids_are_404(client: httpx.AsyncClient) -> None:
    for path in ["/products/nope", "/customers/nope", "/customers/nope/notifications", f"/orders/{new_uuid()}"]:
        assert (await client.get(path)).status_code == 404, path
    assert (await client.post("/products/nope/restock", json={"units": 1})).status_code == 404
    assert (await client.post("/customers/nope/deposit", json={"amount": 1})).status_code == 404
    assert (await client.post(f"/orders/{new_uuid()}/cancel")).status_code == 404


async def test_stats_read_zero_at_start_with_every_field(client: httpx.AsyncClient) -> None:
    assert await stats(client) == {"confirmed": 0, "rejected": 0, "revenue": 0, "cancelled": 0}


async def test_created_entities_are_readable_and_writable_at_once(client: httpx.AsyncClient) -> None:
    product_id, customer_id = await product(client, 3, 250), await customer(client, 1000)
    # Write-side consistency: a write right after the 201 is processed against the new entity.
    await accepted(client, f"/products/{product_id}/restock", {"units": 2})
    await accepted(client, f"/customers/{customer_id}/deposit", {"amount": 5})
    assert (await get_json(client, f"/customers/{customer_id}/notifications")) == []
    await converge(lambda: get_json(client, f"/products/{product_id}"), lambda p: p["stock"] == 5, SINGLE, "restock")
    view = await converge(
        lambda: get_json(client, f"/customers/{customer_id}"), lambda c: c["balance"] == 1005, SINGLE, "deposit"
    )
    assert view == {"id": customer_id, "name": "ada", "balance": 1005}


# --- B.3: the saga ---------------------------------------------------------------------------------------------------


async def test_each_decision_of_the_saga(client: httpx.AsyncClient) -> None:
    product_id, rich, poor = await product(client, 2, 300), await customer(client, 10_000), await customer(client, 100)
    before = await stats(client)
    confirmed = await order(client, rich, product_id)
    (view,) = await decided(client, [confirmed], SINGLE)
    assert view == {
        "orderId": confirmed, "customerId": rich, "productId": product_id, "quantity": 1, "status": "CONFIRMED",
        "total": 300,
    }  # fmt: skip
    too_many = await order(client, rich, product_id, 2)  # all or nothing: 2 > the 1 unit left
    fails_both = await order(client, poor, product_id, 2)  # no stock and no funds: stock is checked first
    for view in await decided(client, [too_many, fails_both], SINGLE):
        assert view["status"] == "REJECTED"
        assert view["reason"] == "OUT_OF_STOCK"
        assert "total" not in view
    after = await converge(lambda: stats(client), lambda s: s["rejected"] == before["rejected"] + 2, SINGLE, "stats")
    assert after["confirmed"] - before["confirmed"] == 1
    assert after["revenue"] - before["revenue"] == 300
    await converge(lambda: get_json(client, f"/products/{product_id}"), lambda p: p["stock"] == 1, SINGLE, "stock")
    assert (await get_json(client, f"/customers/{poor}"))["balance"] == 100
    notes = await converge(
        lambda: get_json(client, f"/customers/{rich}/notifications"), lambda n: len(n) == 2, SINGLE, "notifications"
    )
    assert notes == [
        {"orderId": confirmed, "status": "CONFIRMED"},
        {"orderId": too_many, "status": "REJECTED", "reason": "OUT_OF_STOCK"},
    ]


async def test_insufficient_funds_releases_the_reservation(client: httpx.AsyncClient) -> None:
    product_id, poor = await product(client, 5, 300), await customer(client, 500)
    order_id = await order(client, poor, product_id, 2)  # 600 > 500
    (view,) = await decided(client, [order_id], SINGLE)
    assert view["status"] == "REJECTED"
    assert view["reason"] == "INSUFFICIENT_FUNDS"
    await converge(lambda: get_json(client, f"/products/{product_id}"), lambda p: p["stock"] == 5, SINGLE, "released")
    assert (await get_json(client, f"/customers/{poor}"))["balance"] == 500
    notes = await converge(
        lambda: get_json(client, f"/customers/{poor}/notifications"), lambda n: len(n) == 1, SINGLE, "notification"
    )
    assert notes == [{"orderId": order_id, "status": "REJECTED", "reason": "INSUFFICIENT_FUNDS"}]


async def test_unknown_customer_or_product_is_rejected(client: httpx.AsyncClient) -> None:
    product_id, customer_id = await product(client, 5), await customer(client, 1000)
    no_product = await order(client, customer_id, "no-such-product")
    no_customer = await order(client, "no-such-customer", product_id)
    views = await decided(client, [no_product, no_customer], SINGLE)
    assert [v["status"] for v in views] == ["REJECTED", "REJECTED"]
    await converge(lambda: get_json(client, f"/products/{product_id}"), lambda p: p["stock"] == 5, SINGLE, "released")


# --- races and replays ----------------------------------------------------------------------------------------------


async def test_twenty_concurrent_orders_on_a_short_stock(client: httpx.AsyncClient) -> None:
    product_id, customer_id = await product(client, 7, 100), await customer(client, 1_000_000)
    before = await stats(client)
    order_ids = await asyncio.gather(*(order(client, customer_id, product_id) for _ in range(20)))
    views = await decided(client, list(order_ids))
    confirmed = [v for v in views if v["status"] == "CONFIRMED"]
    assert len(confirmed) == 7
    assert all(v["reason"] == "OUT_OF_STOCK" for v in views if v["status"] == "REJECTED")
    await converge(lambda: stats(client), lambda s: s["confirmed"] - before["confirmed"] == 7, BURST, "stats")
    assert (await stats(client))["rejected"] - before["rejected"] == 13
    await converge(lambda: get_json(client, f"/products/{product_id}"), lambda p: p["stock"] == 0, BURST, "stock")
    await converge(
        lambda: get_json(client, f"/customers/{customer_id}"), lambda c: c["balance"] == 999_300, BURST, "charges"
    )
    notes = await converge(
        lambda: get_json(client, f"/customers/{customer_id}/notifications"), lambda n: len(n) >= 20, BURST, "notes"
    )
    assert sorted(n["orderId"] for n in notes) == sorted(order_ids)


async def test_replays_of_one_order_id_make_one_order(client: httpx.AsyncClient) -> None:
    product_id, customer_id = await product(client, 10, 100), await customer(client, 1000)
    order_id, before = new_uuid(), await stats(client)
    body = {"orderId": order_id, "customerId": customer_id, "productId": product_id, "quantity": 2}
    responses = await asyncio.gather(*(client.post("/orders", json=body) for _ in range(12)))
    assert all(r.status_code in (200, 202) and r.json()["orderId"] == order_id for r in responses)
    (view,) = await decided(client, [order_id], SINGLE)
    assert view["status"] == "CONFIRMED"
    assert view["total"] == 200
    # Replays after the decision, one with another payload: the first order stands.
    for replay in (body, {**body, "quantity": 5}):
        response = await client.post("/orders", json=replay)
        assert response.status_code in (200, 202)
        assert response.json()["status"] == "CONFIRMED"
        assert response.json()["quantity"] == 2
    await converge(lambda: get_json(client, f"/customers/{customer_id}"), lambda c: c["balance"] == 800, SINGLE, "one")
    await converge(lambda: get_json(client, f"/products/{product_id}"), lambda p: p["stock"] == 8, SINGLE, "stock")
    await converge(lambda: stats(client), lambda s: s["confirmed"] == before["confirmed"] + 1, SINGLE, "statistics")
    notes = await converge(
        lambda: get_json(client, f"/customers/{customer_id}/notifications"), lambda n: len(n) >= 1, SINGLE, "notes"
    )
    assert notes == [{"orderId": order_id, "status": "CONFIRMED"}]


async def test_concurrent_restocks_and_deposits_all_count(client: httpx.AsyncClient) -> None:
    product_id, customer_id = await product(client, 0), await customer(client, 0)
    await asyncio.gather(
        *(accepted(client, f"/products/{product_id}/restock", {"units": 2}) for _ in range(20)),
        *(accepted(client, f"/customers/{customer_id}/deposit", {"amount": 3}) for _ in range(20)),
    )
    await converge(lambda: get_json(client, f"/products/{product_id}"), lambda p: p["stock"] == 40, BURST, "stock")
    await converge(lambda: get_json(client, f"/customers/{customer_id}"), lambda c: c["balance"] == 60, BURST, "money")


# --- T2: cancellation ------------------------------------------------------------------------------------------------


async def test_cancelling_a_confirmed_order_refunds_and_restocks_once(client: httpx.AsyncClient) -> None:
    product_id, customer_id = await product(client, 4, 250), await customer(client, 1000)
    order_id = await order(client, customer_id, product_id, 2)
    await decided(client, [order_id], SINGLE)
    before = await stats(client)
    responses = await asyncio.gather(*(client.post(f"/orders/{order_id}/cancel") for _ in range(10)))
    assert {r.status_code for r in responses} == {202}
    view = await converge(
        lambda: get_json(client, f"/orders/{order_id}"), lambda o: o["status"] == "CANCELLED", SINGLE, "cancelled"
    )
    assert view["total"] == 500
    await converge(lambda: get_json(client, f"/customers/{customer_id}"), lambda c: c["balance"] == 1000, SINGLE, "$")
    await converge(lambda: get_json(client, f"/products/{product_id}"), lambda p: p["stock"] == 4, SINGLE, "restock")
    after = await converge(lambda: stats(client), lambda s: s["cancelled"] == before["cancelled"] + 1, SINGLE, "stat")
    assert after["revenue"] == before["revenue"] - 500
    assert after["confirmed"] == before["confirmed"]
    notes = await converge(
        lambda: get_json(client, f"/customers/{customer_id}/notifications"), lambda n: len(n) >= 2, SINGLE, "notes"
    )
    assert [n["status"] for n in notes] == ["CONFIRMED", "CANCELLED"]
    assert (await client.post(f"/orders/{order_id}/cancel")).status_code == 202  # idempotent, changes nothing
    assert (await stats(client))["cancelled"] == before["cancelled"] + 1


async def test_a_rejected_order_cannot_be_cancelled(client: httpx.AsyncClient) -> None:
    product_id, customer_id = await product(client, 0), await customer(client, 1000)
    order_id = await order(client, customer_id, product_id)
    await decided(client, [order_id], SINGLE)
    assert (await client.post(f"/orders/{order_id}/cancel")).status_code in (202, 409)
    assert (await get_json(client, f"/orders/{order_id}"))["status"] == "REJECTED"
    assert (await stats(client))["cancelled"] == 0


# --- B.4 under random interleavings ---------------------------------------------------------------------------------

Step = tuple[str, int, int]  # (kind, who, amount)

steps = st.lists(
    st.one_of(
        st.tuples(st.just("order"), st.integers(0, 2), st.integers(1, 3)),
        st.tuples(st.just("restock"), st.integers(0, 1), st.integers(1, 3)),
        st.tuples(st.just("deposit"), st.integers(0, 2), st.integers(1, 400)),
        st.tuples(st.just("cancel"), st.integers(0, 30), st.just(0)),
    ),
    min_size=8,
    max_size=24,
)


@settings(WHOLE_SYSTEM, max_examples=4)
@given(plan=steps, seed=st.integers(0, 2**16))
def test_invariants_hold_at_convergence_under_any_interleaving(
    tmp_path_factory: Any, plan: list[Step], seed: int
) -> None:
    """Orders, restocks, deposits and cancellations of two products and three customers, issued concurrently in a
    random order: at convergence units and money add up (B.4), each decision has one notification, and rejected
    orders left no trace."""
    asyncio.run(_check_invariants(tmp_path_factory.mktemp("oi"), plan, random.Random(seed)))


async def _check_invariants(data_dir: Path, plan: list[Step], rng: random.Random) -> None:
    async with running(OrderInventorySystem, data_dir) as (_, client, _):
        products = [await product(client, 3, 100), await product(client, 2, 170)]
        customers = [await customer(client, 300), await customer(client, 500), await customer(client, 50)]
        restocked, deposited = [0, 0], [0, 0, 0]
        orders: list[str] = []

        async def run(step: Step) -> None:
            kind, who, amount = step
            await asyncio.sleep(rng.random() * 0.05)
            if kind == "order":
                orders.append(await order(client, customers[who], products[who % 2], amount))
            elif kind == "restock":
                await accepted(client, f"/products/{products[who]}/restock", {"units": amount})
                restocked[who] += amount
            elif kind == "deposit":
                await accepted(client, f"/customers/{customers[who]}/deposit", {"amount": amount})
                deposited[who] += amount
            elif orders:
                response = await client.post(f"/orders/{orders[who % len(orders)]}/cancel")
                assert response.status_code in (202, 409), response.text

        await asyncio.gather(*(run(step) for step in plan))
        views = await decided(client, orders)
        final = {v["orderId"]: v for v in views}
        live = [v for v in final.values() if v["status"] == "CONFIRMED"]
        total = await converge(
            lambda: stats(client),
            lambda s: (
                s["confirmed"] + s["rejected"] == len(orders)
                and s["cancelled"] == sum(v["status"] == "CANCELLED" for v in final.values())
            ),
            BURST,
            "statistics",
        )
        for n, product_id in enumerate(products):
            sold = sum(v["quantity"] for v in live if v["productId"] == product_id)
            initial = [3, 2][n]
            await converge(
                lambda p=product_id: get_json(client, f"/products/{p}"),
                lambda p, i=initial, r=restocked[n], s=sold: p["stock"] == i + r - s,
                BURST,
                f"units of product {n}",
            )
        spent = 0
        for n, customer_id in enumerate(customers):
            paid = sum(v["total"] for v in live if v["customerId"] == customer_id)
            spent += paid
            initial = [300, 500, 50][n]
            await converge(
                lambda c=customer_id: get_json(client, f"/customers/{c}"),
                lambda c, i=initial, d=deposited[n], p=paid: c["balance"] == i + d - p and c["balance"] >= 0,
                BURST,
                f"money of customer {n}",
            )
            mine = [v for v in final.values() if v["customerId"] == customer_id]
            expected = sorted((v["orderId"], s) for v in mine for s in _notified(v["status"]))
            await converge(
                lambda c=customer_id: get_json(client, f"/customers/{c}/notifications"),
                lambda notes, e=expected: sorted((x["orderId"], x["status"]) for x in notes) == e,
                BURST,
                f"one notification per decision of customer {n}",
            )
        assert total["revenue"] == spent


def _notified(status: str) -> list[str]:
    return ["CONFIRMED", "CANCELLED"] if status == "CANCELLED" else [status]


# --- durability -------------------------------------------------------------------------------------------------------


async def test_every_state_is_back_after_a_restart(tmp_path: Path) -> None:
    async with running(OrderInventorySystem, tmp_path) as (_, client, _):
        product_id, customer_id = await product(client, 2, 100), await customer(client, 1000)
        order_ids = [await order(client, customer_id, product_id) for _ in range(3)]
        await decided(client, order_ids, SINGLE)
        await accepted(client, f"/orders/{order_ids[0]}/cancel")
        await converge(lambda: stats(client), lambda s: s["cancelled"] == 1, SINGLE, "cancel")
        await converge(  # three decisions and a cancellation told
            lambda: get_json(client, f"/customers/{customer_id}/notifications"), lambda n: len(n) == 4, SINGLE, "notes"
        )
        await converge(lambda: get_json(client, f"/products/{product_id}"), lambda p: p["stock"] == 1, SINGLE, "stock")
        await converge(lambda: get_json(client, f"/customers/{customer_id}"), lambda c: c["balance"] == 900, SINGLE, "")
        before = {
            "orders": await decided(client, order_ids),
            "stats": await stats(client),
            "product": await get_json(client, f"/products/{product_id}"),
            "customer": await get_json(client, f"/customers/{customer_id}"),
            "notes": await get_json(client, f"/customers/{customer_id}/notifications"),
        }
    async with running(OrderInventorySystem, tmp_path) as (_, client, _):
        after = {
            "orders": [await get_json(client, f"/orders/{o}") for o in order_ids],
            "stats": await stats(client),
            "product": await get_json(client, f"/products/{product_id}"),
            "customer": await get_json(client, f"/customers/{customer_id}"),
            "notes": await get_json(client, f"/customers/{customer_id}/notifications"),
        }
        assert after == before
        # The aggregates came back too: a replay is still a replay, and the stock left is still 0 + 1 returned.
        replay = {"orderId": order_ids[1], "customerId": customer_id, "productId": product_id, "quantity": 1}
        assert (await client.post("/orders", json=replay)).json()["status"] == before["orders"][1]["status"]
        assert before["product"]["stock"] == 1


async def test_a_saga_handling_every_event_again_changes_nothing(tmp_path: Path) -> None:
    """The order saga replays the whole log (its checkpoint moved back to 0): each step it resends is refused by
    its aggregate as already taken, so stock, money, statuses, notifications and statistics stay as they were."""
    async with running(OrderInventorySystem, tmp_path) as (system, client, server):
        product_id, rich, poor = await product(client, 3, 100), await customer(client, 1000), await customer(client, 50)
        order_ids = await asyncio.gather(*(order(client, c, product_id) for c in [rich] * 4 + [poor] * 2))
        views = await decided(client, list(order_ids))
        cancelled = next(v["orderId"] for v in views if v["status"] == "CONFIRMED")
        await accepted(client, f"/orders/{cancelled}/cancel")
        await converge(lambda: stats(client), lambda s: s["cancelled"] == 1, SINGLE, "cancelled")

        async def everything() -> dict[str, Any]:
            return {
                "orders": [await get_json(client, f"/orders/{o}") for o in order_ids],
                "stats": await stats(client),
                "product": await get_json(client, f"/products/{product_id}"),
                "customers": [await get_json(client, f"/customers/{c}") for c in (rich, poor)],
                "notes": [await get_json(client, f"/customers/{c}/notifications") for c in (rich, poor)],
            }

        before = await converge(
            everything, lambda e: sum(map(len, e["notes"])) == 7 and e["product"]["stock"] == 1, SINGLE, "settled"
        )
        await replay_saga(system, server, "orders", "OrderProcessingSaga")
        assert await everything() == before


@pytest.mark.parametrize("database", ["postgresql", "mysql"])
async def test_on_postgresql_or_mysql(tmp_path: Path, database: str) -> None:
    """``--store postgresql://`` (events, consumer state and views in PostgreSQL) and ``--consumer-store mysql://``
    (consumer state and views in MariaDB): the race on a short stock and a cancellation come out the same."""
    with postgres_database() if database == "postgresql" else mysql_database() as url:
        store = url if database == "postgresql" else ""
        async with running(OrderInventorySystem, tmp_path, store=store, consumer_store=url) as (_, client, _):
            product_id, customer_id = await product(client, 3, 100), await customer(client, 1000)
            order_ids = await asyncio.gather(*(order(client, customer_id, product_id) for _ in range(6)))
            views = await decided(client, list(order_ids))
            assert sorted(v["status"] for v in views) == ["CONFIRMED"] * 3 + ["REJECTED"] * 3
            cancelled = next(v["orderId"] for v in views if v["status"] == "CONFIRMED")
            await accepted(client, f"/orders/{cancelled}/cancel")
            await converge(lambda: stats(client), lambda s: s["cancelled"] == 1 and s["revenue"] == 200, SINGLE, "")
            await converge(lambda: get_json(client, f"/products/{product_id}"), lambda p: p["stock"] == 1, SINGLE, "")
            await converge(
                lambda: get_json(client, f"/customers/{customer_id}"), lambda c: c["balance"] == 800, SINGLE, ""
            )
            notes = await converge(
                lambda: get_json(client, f"/customers/{customer_id}/notifications"), lambda n: len(n) == 7, SINGLE, "n"
            )
            assert sorted(n["status"] for n in notes) == ["CANCELLED"] + ["CONFIRMED"] * 3 + ["REJECTED"] * 3


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
field_names = st.sampled_from(["name", "unitPrice", "stock", "units", "balance", "amount", "orderId", "customerId",
                               "productId", "quantity", "x"])  # fmt: skip
bodies = st.one_of(json_values, st.dictionaries(field_names, json_values, max_size=5), st.binary(max_size=24))


@settings(WHOLE_SYSTEM, max_examples=3)
@given(sent=st.lists(st.tuples(st.integers(0, 6), bodies), min_size=25, max_size=25))
def test_any_body_gets_a_json_answer_and_never_a_server_error(
    tmp_path_factory: Any, sent: list[tuple[int, Any]]
) -> None:
    """Whatever JSON (or bytes) arrives on a write route, the answer is a 2xx or 4xx with a JSON body."""
    asyncio.run(_send_anything(tmp_path_factory.mktemp("fuzz"), sent))


async def _send_anything(data_dir: Path, sent: list[tuple[int, Any]]) -> None:
    async with running(OrderInventorySystem, data_dir) as (_, client, _):
        product_id, customer_id = await product(client, 5), await customer(client, 100)
        routes = ["/products", f"/products/{product_id}/restock", "/customers", f"/customers/{customer_id}/deposit",
                  "/orders", f"/orders/{new_uuid()}/cancel", "/products/nope/restock"]  # fmt: skip
        for route, body in sent:
            if isinstance(body, bytes):
                response = await client.post(routes[route], content=body)
            else:
                response = await client.post(routes[route], json=body)
            assert response.status_code < 500, (routes[route], body, response.text)
            assert isinstance(response.json(), dict | list)
