"""Runs the event store contract (:class:`evento.testing.event_store_cases.EventStoreCases`) on every event store
backend of the registry (:data:`evento.testing.databases.EVENT_STORE_BACKENDS`), PostgreSQL in both sequence modes,
each opened from its store URL; then what the stores' error translation promises."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from evento import errors
from evento.event_stores import EventStore, SQLiteEventStore, open_event_store
from evento.event_stores.postgres import PostgresEventStore
from evento.testing.databases import EVENT_STORE_BACKENDS, postgres_url, store_url  # noqa: F401  (fixture)
from evento.testing.event_store_cases import EventStoreCases, aggregate_event

_MODES = {"sqlite": ("cpes",), "postgres": ("cpes", "apes")}
_PARAMS = [
    pytest.param((backend, mode), id=backend if len(_MODES[backend]) == 1 else f"{backend}-{mode}")
    for backend in EVENT_STORE_BACKENDS
    for mode in _MODES[backend]
]


class TestEventStores(EventStoreCases):
    url = ""
    mode = "cpes"

    @pytest.fixture(autouse=True, params=_PARAMS)
    def _backend(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
        backend, self.mode = request.param
        with store_url(backend, tmp_path, "events.db") as url:
            self.url = url
            yield

    def create_store(self, storage: Path) -> EventStore:
        return open_event_store(self.url, data_dir=storage, mode=self.mode)


async def test_a_refused_sqlite_statement_is_an_event_store_error_not_a_driver_error(tmp_path: Path) -> None:
    """What a caller catches is Evento's: a damaged store (its table dropped behind its back) fails reads and
    appends with EventStoreError, chained to the driver's error, and not as a transient ConnectionError."""
    store = SQLiteEventStore(tmp_path / "events.db")
    await store.start()
    try:
        with sqlite3.connect(tmp_path / "events.db") as other:
            other.execute("DROP TABLE es_events")
        with pytest.raises(errors.EventStoreError) as read:
            await store.fetch("*", 0, 10)
        assert isinstance(read.value.__cause__, sqlite3.OperationalError)
        assert not isinstance(read.value, ConnectionError)
        with pytest.raises(errors.EventStoreError):
            await store.append(aggregate_event("order-1", 1))
    finally:
        await store.stop()


async def test_a_dropped_postgres_connection_is_unavailable_and_a_connection_error(postgres_url: str) -> None:  # noqa: F811
    """The database ending the store's sessions (a restart, an administrator) is EventStoreUnavailableError: an
    EventStoreError and a ConnectionError, so consumers and callers retry it; the next call reconnects."""
    store = PostgresEventStore(postgres_url, pool_size=2)
    await store.start()
    try:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )

        async def fetch_through_every_connection() -> None:
            for _ in range(4):  # every pooled connection was ended; the listener's reconnects on its own
                await store.fetch("*", 0, 10)

        with pytest.raises(errors.EventStoreUnavailableError) as info:
            await fetch_through_every_connection()
        assert isinstance(info.value, errors.EventStoreError)
        assert isinstance(info.value, ConnectionError)
        assert isinstance(info.value.__cause__, psycopg.OperationalError)
    finally:
        await store.stop()


def test_every_store_error_is_importable_from_evento_errors() -> None:
    assert issubclass(errors.EventStoreUnavailableError, errors.EventStoreError)
    assert issubclass(errors.ConsumerStoreUnavailableError, errors.ConsumerStoreError)
    assert issubclass(errors.ConsumerStoreUnavailableError, ConnectionError)
