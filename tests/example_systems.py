"""Helpers of the order-inventory and flight tests: an example system started in this process on a SQLite event
store, an HTTP client of its API, and waiting for views to converge under a deadline."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

from evento.demo.shared.system import ExampleConfig, ExampleSystem
from evento.server import EventoServer, SQLiteEventStore

T = TypeVar("T")

#: The contract's convergence bounds: a single decision, and a burst of 20.
SINGLE = 10.0
BURST = 30.0


async def converge(read: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float, what: str) -> T:
    """``read()`` again (every 50 ms, as a client polls) until ``done`` holds for its value; fails after
    ``timeout`` seconds with the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last value {value!r})")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running(
    make: Callable[[ExampleConfig], ExampleSystem], data_dir: Path, **config: Any
) -> AsyncIterator[tuple[ExampleSystem, httpx.AsyncClient, EventoServer]]:
    """An example system on a server in this process, everything under ``data_dir``, a client of its API, and
    the server (to start a replacement bundle on)."""
    server = EventoServer(SQLiteEventStore(data_dir / "events.db"))
    await server.start()
    system = make(ExampleConfig(data_dir, **config))
    try:
        await system.start(server)
        await system.wait_for_head(SINGLE)  # sagas fix their start position in their first cycle
        transport = httpx.ASGITransport(app=system.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://example", timeout=30) as client:
            yield system, client, server
    finally:
        await system.stop()
        await server.stop()


def new_uuid() -> str:
    return str(uuid.uuid4())


async def get_json(client: httpx.AsyncClient, path: str) -> Any:
    response = await client.get(path)
    assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
    return response.json()


async def created(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert response.status_code == 201, f"POST {path}: {response.status_code} {response.text}"
    found: dict[str, Any] = response.json()
    assert isinstance(found["id"], str)
    return found


async def accepted(client: httpx.AsyncClient, path: str, body: dict[str, Any] | None = None) -> Any:
    response = await client.post(path, json=body) if body is not None else await client.post(path)
    assert response.status_code == 202, f"POST {path}: {response.status_code} {response.text}"
    return response.json()
