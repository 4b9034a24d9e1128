"""Runs the shared consumer state store cases against every backend.

To add a backend (PostgreSQL, MySQL), add its :class:`Backend` to ``BACKENDS`` and its name to the params of
``consumer_store``; the cases themselves live in ``tests/consumer_store_cases.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from evento.consumer_stores.base import ConsumerStateStore
from evento.consumer_stores.memory import MemoryConsumerStateStore
from evento.consumer_stores.sqlite import SQLiteConsumerStateStore
from tests.consumer_store_cases import *  # noqa: F403
from tests.consumer_store_cases import Backend

BACKENDS: dict[str, Backend] = {
    "memory": Backend("memory", durable=False, open=lambda _tmp_path: MemoryConsumerStateStore()),
    "sqlite": Backend(
        "sqlite", durable=True, open=lambda tmp_path: SQLiteConsumerStateStore(tmp_path / "consumer-state.db")
    ),
}

# consumer_store records which backend it opened here, so consumer_backend names the same one.
_BACKEND_KEY = pytest.StashKey[Backend]()


@pytest.fixture(params=["memory", "sqlite"])
async def consumer_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ConsumerStateStore]:
    backend = BACKENDS[request.param]
    request.node.stash[_BACKEND_KEY] = backend
    store = backend.open(tmp_path)
    await store.start()
    try:
        yield store
    finally:
        await store.stop()  # stop() is idempotent: a case may already have stopped the store


@pytest.fixture
def consumer_backend(request: pytest.FixtureRequest, consumer_store: ConsumerStateStore) -> Backend:
    return request.node.stash[_BACKEND_KEY]
