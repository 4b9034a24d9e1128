"""``evento demo order-inventory``: the embedded demo process, and ``--distributed`` with one process per service
of the contract's topology, through the faults of B.6: ``customers`` paused (SIGSTOP) during a saga,
``inventory`` killed (kill -9) in the middle of a burst, and a full restart."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import test_order_inventory_http as contract
from tests.example_systems import RECOVERY, SINGLE, accepted, converge, created, demo, get_json, new_uuid

pytestmark = pytest.mark.slow

SERVICES = {"server", "edge", "orders", "inventory", "customers"}
CONTRACT = [
    contract.test_each_decision_of_the_saga,
    contract.test_twenty_concurrent_orders_on_a_short_stock,
    contract.test_replays_of_one_order_id_make_one_order,
    contract.test_cancelling_a_confirmed_order_refunds_and_restocks_once,
    contract.test_concurrent_restocks_and_deposits_all_count,
]


async def place(client: httpx.AsyncClient, customer_id: str, product_id: str) -> str:
    order_id = new_uuid()
    body = {"orderId": order_id, "customerId": customer_id, "productId": product_id, "quantity": 1}
    await accepted(client, "/orders", body)
    return order_id


async def decisions(client: httpx.AsyncClient, order_ids: list[str], timeout: float) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any] | None]:
        found = [await client.get(f"/orders/{o}") for o in order_ids]
        return [r.json() if r.status_code == 200 else None for r in found]

    views = await converge(read, lambda vs: all(v and v["status"] != "PENDING" for v in vs), timeout, "decisions")
    return [v for v in views if v is not None]


async def test_the_embedded_demo_keeps_everything_across_a_sigterm(tmp_path: Path) -> None:
    async with demo(tmp_path, "order-inventory", distributed=False) as (process, client):
        assert await get_json(client, "/stats/orders") == {"confirmed": 0, "rejected": 0, "revenue": 0, "cancelled": 0}
        product_id = (await created(client, "/products", {"name": "w", "unitPrice": 70, "stock": 1}))["id"]
        customer_id = (await created(client, "/customers", {"name": "c", "balance": 100}))["id"]
        order_ids = [await place(client, customer_id, product_id) for _ in range(2)]
        before = await decisions(client, order_ids, SINGLE)
        assert sorted(v["status"] for v in before) == ["CONFIRMED", "REJECTED"]
        assert await process.stop() == 0
        await process.start()
        assert await decisions(client, order_ids, SINGLE) == before
        assert await get_json(client, "/stats/orders") == {"confirmed": 1, "rejected": 1, "revenue": 70, "cancelled": 0}
        assert (await get_json(client, f"/customers/{customer_id}"))["balance"] == 30


async def test_distributed_services_survive_the_faults_of_b6(tmp_path: Path) -> None:
    async with demo(tmp_path, "order-inventory") as (process, client):
        assert set(process.pids()) == SERVICES, process.describe()

        # customers stopped before an order is placed, back 2 s later: the order is accepted, then decided once.
        product_id = (await created(client, "/products", {"name": "w", "unitPrice": 100, "stock": 5}))["id"]
        customer_id = (await created(client, "/customers", {"name": "c", "balance": 10_000}))["id"]
        process.signal("customers", signal.SIGSTOP)
        try:
            paused_order = await place(client, customer_id, product_id)
            await asyncio.sleep(2.0)  # the fault's length, as the contract describes it
        finally:
            process.signal("customers", signal.SIGCONT)
        (view,) = await decisions(client, [paused_order], RECOVERY)
        stock, balance = (5 - 1, 9_900) if view["status"] == "CONFIRMED" else (5, 10_000)
        await converge(
            lambda: get_json(client, f"/products/{product_id}"), lambda p: p["stock"] == stock, SINGLE, "stock"
        )
        await converge(
            lambda: get_json(client, f"/customers/{customer_id}"),
            lambda c: c["balance"] == balance,
            SINGLE,
            "one charge",
        )

        # inventory killed 0.3 s into a burst of 14 single-unit orders on 8 units: all accepted, all decided,
        # the 8 units sold exactly once.
        product_id = (await created(client, "/products", {"name": "w", "unitPrice": 10, "stock": 8}))["id"]
        before = await get_json(client, "/stats/orders")
        burst = asyncio.gather(*(place(client, customer_id, product_id) for _ in range(14)))
        await asyncio.sleep(0.3)
        killed = process.signal("inventory", signal.SIGKILL)
        order_ids = list(await burst)
        await process.restarted("inventory", killed)
        views = await decisions(client, order_ids, RECOVERY)
        confirmed = sum(v["status"] == "CONFIRMED" for v in views)
        assert confirmed == 8, views
        assert all(v["reason"] == "OUT_OF_STOCK" for v in views if v["status"] == "REJECTED")
        await converge(lambda: get_json(client, f"/products/{product_id}"), lambda p: p["stock"] == 0, SINGLE, "sold")
        after = await converge(
            lambda: get_json(client, "/stats/orders"),
            lambda s: s["confirmed"] + s["rejected"] == before["confirmed"] + before["rejected"] + 14,
            SINGLE,
            "statistics",
        )
        assert after["confirmed"] - before["confirmed"] == 8

        # The contract's flows and races through the processes, as in one process.
        for scenario in CONTRACT:
            await scenario(client)

        # Full restart: every decided order keeps its status, the statistics still count them.
        every = [paused_order, *order_ids]
        decided = await decisions(client, every, SINGLE)
        counted = await get_json(client, "/stats/orders")
        assert await process.stop() == 0
        await process.start()
        assert await decisions(client, every, RECOVERY) == decided
        assert await get_json(client, "/stats/orders") == counted
