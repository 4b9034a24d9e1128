"""open_consumer_store: every accepted spelling opens the backend it names; anything else is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from evento.consumer_stores import (
    Checkpoint,
    MemoryConsumerStateStore,
    SQLiteConsumerStateStore,
    open_consumer_store,
)
from evento.consumer_stores.mysql import MySQLConsumerStateStore
from evento.consumer_stores.postgres import PostgresConsumerStateStore
from evento.testing.databases import mysql_url, postgres_url  # noqa: F401  (fixtures)


def test_memory() -> None:
    assert isinstance(open_consumer_store("memory"), MemoryConsumerStateStore)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("sqlite:///srv/evento/state.db", Path("/srv/evento/state.db")),
        ("sqlite:state.db", Path("/data/state.db")),
        ("sqlite:nested/state.db", Path("/data/nested/state.db")),
        ("consumers.db", Path("/data/consumers.db")),
        ("/abs/consumers.db", Path("/abs/consumers.db")),
        ("SQLITE:state.db", Path("/data/state.db")),
    ],
)
def test_sqlite_paths(spec: str, expected: Path) -> None:
    store = open_consumer_store(spec, data_dir=Path("/data"))
    assert isinstance(store, SQLiteConsumerStateStore)
    assert store.path == expected


def test_relative_sqlite_path_without_data_dir_is_the_working_directory() -> None:
    store = open_consumer_store("sqlite:state.db")
    assert isinstance(store, SQLiteConsumerStateStore)
    assert store.path == Path("state.db")


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_postgres(scheme: str) -> None:
    store = open_consumer_store(f"{scheme}://evento:secret@db.example:5432/evento")
    assert isinstance(store, PostgresConsumerStateStore)
    assert store.dialect == "postgresql"


@pytest.mark.parametrize("scheme", ["mysql", "mariadb"])
def test_mysql(scheme: str) -> None:
    store = open_consumer_store(f"{scheme}://evento:s%40cret@db.example:3307/evento")
    assert isinstance(store, MySQLConsumerStateStore)
    assert store.dialect == "mysql"


@pytest.mark.parametrize(
    "spec",
    ["", "redis://localhost", "sqlite://host/state.db", "sqlite:", "consumers.txt", "file:///x.db", "Memory"],
)
def test_unknown_spec_names_the_accepted_forms(spec: str) -> None:
    with pytest.raises(ValueError, match=r"memory, sqlite:///absolute/path\.db.*mysql://") as info:
        open_consumer_store(spec)
    assert repr(spec) in str(info.value)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("mysql://root@127.0.0.1:3306/", "names one database"),
        ("mysql://root@127.0.0.1:3306/db?ssl=1", "no query"),
        ("mysql://root@127.0.0.1:port/db", "bad port"),
        ("postgresql://127.0.0.1:port/db", "bad port"),
    ],
)
def test_bad_database_urls_are_refused_before_connecting(spec: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        open_consumer_store(spec)


async def test_opened_stores_work(postgres_url: str, mysql_url: str, tmp_path: Path) -> None:  # noqa: F811
    for spec in ("memory", "sqlite:state.db", postgres_url, mysql_url):
        store = open_consumer_store(spec, data_dir=tmp_path)
        await store.start()
        try:
            seeded = await store.seed_checkpoint("projector", 3)
            assert await store.commit_checkpoint("projector", 4, seeded.version) == Checkpoint(4, 1)
        finally:
            await store.stop()
    assert (tmp_path / "state.db").exists()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("sqlite:///srv/evento/x.db", Path("/srv/evento/x.db")),
        ("SQLite:x.db", Path("/data/x.db")),
        ("nested/x.db", Path("/data/nested/x.db")),
        ("~/x.db", Path.home() / "x.db"),
    ],
)
def test_event_store_and_consumer_store_read_a_sqlite_url_the_same_way(spec: str, expected: Path) -> None:
    """One set of rules: a ``--store`` value names the same file for the event store, a consumer store and a
    read model (before, the event store read scheme case, ``~`` and relative bare paths differently)."""
    from evento.demo.todolist.read_model import TodoListReadModel
    from evento.event_stores import SQLiteEventStore, open_event_store

    event_store = open_event_store(spec, data_dir=Path("/data"))
    consumer_store = open_consumer_store(spec, data_dir=Path("/data"))
    assert isinstance(event_store, SQLiteEventStore)
    assert isinstance(consumer_store, SQLiteConsumerStateStore)
    assert event_store.path == consumer_store.path == expected
    assert TodoListReadModel(spec, data_dir=Path("/data")).database == str(expected)


@pytest.mark.parametrize("spec", ["memory", "mysql://root@127.0.0.1/db", "redis://x", "events.txt"])
def test_the_event_store_refuses_what_it_cannot_be_in_one_line(spec: str) -> None:
    from evento.event_stores import open_event_store

    with pytest.raises(ValueError, match=repr(spec).replace("(", r"\(")):
        open_event_store(spec, data_dir=Path("/data"))
