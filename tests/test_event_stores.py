"""Runs the shared event store cases against every backend: SQLite, and PostgreSQL in both sequence modes.

To add a backend, add a param to ``open_store``; the cases themselves live in ``tests/event_store_cases.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack
from pathlib import Path

import pytest

from evento.event_stores import SQLiteEventStore
from evento.event_stores.base import EventStore
from evento.event_stores.postgres import PostgresEventStore
from tests.databases import postgres_database
from tests.event_store_cases import *  # noqa: F403
from tests.event_store_cases import StoreOpener


@pytest.fixture(params=["sqlite", "postgres-cpes", "postgres-apes"])
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreOpener]:
    opened: list[EventStore] = []
    with ExitStack() as stack:
        if request.param == "sqlite":
            make: Callable[[], EventStore] = lambda: SQLiteEventStore(tmp_path / "events.db")  # noqa: E731
        else:
            url = stack.enter_context(postgres_database())
            mode = request.param.removeprefix("postgres-")
            make = lambda: PostgresEventStore(url, mode=mode)  # type: ignore[arg-type]  # noqa: E731

        async def open_one() -> EventStore:
            store = make()
            await store.start()
            opened.append(store)
            return store

        try:
            yield open_one
        finally:
            for store in opened:
                await store.stop()
