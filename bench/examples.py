"""``order_inventory_orders_per_s`` and ``flight_bookings_per_s``: decisions per second of the two example
systems of the published contract, as ``evento demo order-inventory`` / ``evento demo flight`` run them (one
process, SQLite, started here as a child on free ports), driven over HTTP by 20 concurrent clients on keep-alive
connections from this process (so the clients' work does not share the demo's interpreter).

Each client places orders (quantity 1, one product with ample stock, one customer with ample funds) or books
seats (each booking a different seat of one flight, one rich customer) back to back. The clock runs from the
first request to the last decision: the moment the statistics count every order or booking as confirmed or
rejected. Each decision is the whole saga (reserve or hold, charge, confirm: three or four commands, their events,
and every projector's work).

Baseline ``accepted``: the rate at which the same run's requests were answered 202 (placing only records the
order or booking), so the ratio says how closely the sagas keep up with the edge.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from bench.common import Figure, RunConfig

__all__ = ["FIGURES", "run"]

FIGURES = ("order_inventory_orders_per_s", "flight_bookings_per_s")
CLIENTS = 20
DECISION_DEADLINE = 300.0
READY_DEADLINE = 60.0
STOP_DEADLINE = 30.0

#: Prepares the system's entities; returns a function making the body of request number n.
Setup = Callable[[httpx.AsyncClient, int], Awaitable[Callable[[int], tuple[str, dict[str, Any]]]]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _orders(client: httpx.AsyncClient, count: int) -> Callable[[int], tuple[str, dict[str, Any]]]:
    product = (await client.post("/products", json={"name": "bench", "unitPrice": 1, "stock": 10_000_000})).json()
    customer = (await client.post("/customers", json={"name": "bench", "balance": 2_000_000_000})).json()

    def body(n: int) -> tuple[str, dict[str, Any]]:
        return "/orders", {
            "orderId": str(uuid.uuid4()), "customerId": customer["id"], "productId": product["id"], "quantity": 1,
        }  # fmt: skip

    return body


async def _bookings(client: httpx.AsyncClient, count: int) -> Callable[[int], tuple[str, dict[str, Any]]]:
    flight = (await client.post("/flights", json={"seatCount": count, "seatPrice": 1})).json()
    customer = (await client.post("/customers", json={"name": "bench", "balance": 2_000_000_000})).json()
    labels = [seat["seat"] for seat in flight["seats"]]

    def body(n: int) -> tuple[str, dict[str, Any]]:
        return "/bookings", {
            "bookingId": str(uuid.uuid4()), "customerId": customer["id"], "flightId": flight["id"], "seat": labels[n],
        }  # fmt: skip

    return body


async def _start_demo(directory: Path, system: str) -> tuple[subprocess.Popen[bytes], str]:
    """``evento demo SYSTEM`` on free ports with its data under ``directory``; it and its API's URL once Ready."""
    app_port = _free_port()
    log = directory / "demo.out"
    command = [
        sys.executable, "-m", "evento.cli", "--log-level", "WARNING", "demo", system,
        "--data-dir", str(directory / "data"), "--port", str(_free_port()), "--bus-port", str(_free_port()),
        "--app-port", str(app_port),
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + READY_DEADLINE
    while "Ready." not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"evento demo {system} did not start:\n{log.read_text(errors='replace')}")
        await asyncio.sleep(0.05)
    return process, f"http://127.0.0.1:{app_port}"


async def _measure(directory: Path, system: str, setup: Setup, stats_path: str, count: int) -> tuple[float, float]:
    """(decisions per second to the last decision, requests accepted per second) for ``count`` requests."""
    process, url = await _start_demo(directory, system)
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    try:
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as c:
            body = await setup(c, count)
            numbers = iter(range(count))

            async def client() -> None:
                for n in numbers:
                    path, payload = body(n)
                    response = await c.post(path, json=payload)
                    if response.status_code != 202:
                        raise RuntimeError(f"POST {path}: {response.status_code} {response.text}")

            started = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(CLIENTS)))
            accepted = time.perf_counter() - started
            while True:
                stats = (await c.get(stats_path)).json()
                if stats["confirmed"] + stats["rejected"] >= count:
                    break
                if time.perf_counter() - started > DECISION_DEADLINE:
                    raise RuntimeError(f"not every decision within {DECISION_DEADLINE}s: {stats}")
                await asyncio.sleep(0.01)
            decided = time.perf_counter() - started
            if stats["rejected"]:
                raise RuntimeError(f"the benchmark expects every request confirmed: {stats}")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return count / decided, count / accepted


def run(config: RunConfig, figures: frozenset[str] = frozenset(FIGURES)) -> list[Figure]:
    count = 200 if config.quick else 1000
    cases: dict[str, tuple[str, Setup, str]] = {
        "order_inventory_orders_per_s": ("order-inventory", _orders, "/stats/orders"),
        "flight_bookings_per_s": ("flight", _bookings, "/stats/bookings"),
    }
    results: list[Figure] = []
    details: dict[str, object] = {"clients": CLIENTS, "requests": count}
    for name, (system, setup, stats_path) in cases.items():
        if name not in figures:
            continue
        decided, accepted = asyncio.run(_measure(config.scratch(name), system, setup, stats_path, count))
        details[name] = {"decided_per_s": round(decided, 1), "accepted_per_s": round(accepted, 1)}
        results.append(Figure.compare(name, decided, "decisions/s", "accepted", accepted))
    config.details["examples"] = details
    return results
