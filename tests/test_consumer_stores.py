"""Runs the shared consumer state store cases against every backend.

To add a backend, add its :class:`Backend` to ``BACKENDS`` and its name to the params of ``consumer_store``; the
cases themselves live in ``tests/consumer_store_cases.py``. PostgreSQL and MariaDB/MySQL cases get a throwaway
database each (``tests/databases.py``); the durable case reopens the same database through the test's
``tmp_path``, which names it here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import pytest

from evento.consumer_stores.base import ConsumerStateStore
from evento.consumer_stores.memory import MemoryConsumerStateStore
from evento.consumer_stores.mysql import MySQLConsumerStateStore
from evento.consumer_stores.postgres import PostgresConsumerStateStore
from evento.consumer_stores.sqlite import SQLiteConsumerStateStore
from tests.consumer_store_cases import *  # noqa: F403
from tests.consumer_store_cases import Backend
from tests.databases import mysql_database, postgres_database

# The database URL of each running test, by its tmp_path, so Backend.open can reopen the same database.
_URLS: dict[Path, str] = {}

BACKENDS: dict[str, Backend] = {
    "memory": Backend("memory", durable=False, open=lambda _tmp_path: MemoryConsumerStateStore()),
    "sqlite": Backend(
        "sqlite", durable=True, open=lambda tmp_path: SQLiteConsumerStateStore(tmp_path / "consumer-state.db")
    ),
    "postgres": Backend("postgres", durable=True, open=lambda tmp_path: PostgresConsumerStateStore(_URLS[tmp_path])),
    "mysql": Backend("mysql", durable=True, open=lambda tmp_path: MySQLConsumerStateStore(_URLS[tmp_path])),
}

_DATABASES: dict[str, Callable[[], AbstractContextManager[str]]] = {
    "postgres": postgres_database,
    "mysql": mysql_database,
}

# consumer_store records which backend it opened here, so consumer_backend names the same one.
_BACKEND_KEY = pytest.StashKey[Backend]()


@pytest.fixture
def _database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    name = request.node.callspec.params["consumer_store"]
    database = _DATABASES.get(name, lambda: nullcontext(""))
    with database() as url:
        _URLS[tmp_path] = url
        try:
            yield
        finally:
            del _URLS[tmp_path]


@pytest.fixture(params=["memory", "sqlite", "postgres", "mysql"])
async def consumer_store(
    request: pytest.FixtureRequest, tmp_path: Path, _database: None
) -> AsyncIterator[ConsumerStateStore]:
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
