"""The TodoList read model on its own: schema creation by replicas starting together, upgrades of older read
models, its own transactions, and ``:memory:``. Real SQLite files, PostgreSQL and MariaDB databases."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from evento.consumer_stores.mysql import parse_mysql_url
from evento.demo.todolist.payloads import TodoListListItemViewSearchQuery, TodoListViewFindByIdentifierQuery
from evento.demo.todolist.projection import TodoListProjection
from evento.demo.todolist.read_model import Session, TodoListReadModel
from evento.testing.databases import mysql_database, postgres_database

Fresh = Callable[[], AbstractContextManager[str]]

# The tables as the version before todo positions wrote them: no position column, todos indexed by created_at.
_OLD_SCHEMA = [
    "CREATE TABLE todolist_list (identifier VARCHAR(100) PRIMARY KEY, name TEXT NOT NULL,"
    " status VARCHAR(32) NOT NULL DEFAULT 'WIP', created_by TEXT, updated_by TEXT, created_at VARCHAR(32),"
    " updated_at VARCHAR(32), registered_at VARCHAR(32))",
    "CREATE TABLE todolist_todo (identifier VARCHAR(100) PRIMARY KEY, list_identifier VARCHAR(100) NOT NULL,"
    " content TEXT NOT NULL, completed INTEGER NOT NULL DEFAULT 0, created_by TEXT, completed_by TEXT,"
    " created_at VARCHAR(32), completed_at VARCHAR(32))",
    "CREATE INDEX todolist_list_created ON todolist_list (created_at, identifier)",
    "CREATE INDEX todolist_todo_list ON todolist_todo (list_identifier, created_at)",
    "INSERT INTO todolist_todo (identifier, list_identifier, content, created_at)"
    " VALUES ('TODO_1', 'TDLS_1', 'milk', '2024-01-01T00:00:00.000Z')",
]

# The columns of each index on todolist_todo, in index order.
_INDEX_CATALOG = {
    "sqlite": "SELECT m.name, i.name FROM sqlite_master m, pragma_index_info(m.name) i"
    " WHERE m.type = 'index' AND m.tbl_name = 'todolist_todo' ORDER BY m.name, i.seqno",
    "postgresql": "SELECT i.relname, a.attname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
    " JOIN pg_class t ON t.oid = x.indrelid JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, n) ON true"
    " JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum"
    " WHERE t.relname = 'todolist_todo' ORDER BY i.relname, k.n",
    "mysql": "SELECT index_name, column_name FROM information_schema.statistics"
    " WHERE table_schema = DATABASE() AND table_name = 'todolist_todo' ORDER BY index_name, seq_in_index",
}


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Fresh:
    """Opens a new empty database each time it is called (a file, or a throwaway server database)."""
    if request.param == "postgresql":
        return postgres_database
    if request.param == "mysql":
        return mysql_database
    files = iter(range(1_000))

    @contextlib.contextmanager
    def sqlite_file() -> Iterator[str]:
        yield str(tmp_path / f"read-model-{next(files)}.db")

    return sqlite_file


def _run_old_schema(database: str) -> None:
    """Write the older read model with the database's own driver, as the earlier version left it."""
    if database.startswith("postgresql://"):
        with psycopg.connect(database, autocommit=True) as pg:
            for statement in _OLD_SCHEMA:
                pg.execute(statement)
    elif database.startswith("mysql://"):
        with contextlib.closing(pymysql.connect(**parse_mysql_url(database), autocommit=True)) as my:
            for statement in _OLD_SCHEMA:
                my.cursor().execute(statement)
    else:
        with contextlib.closing(sqlite3.connect(database)) as lite:
            lite.executescript(";".join(_OLD_SCHEMA))


def _open_together(database: str, replicas: int = 4) -> list[str]:
    """Open the read model from ``replicas`` threads released at once, each with its own connections, as replicas
    starting together would; the errors they met."""
    errors: list[str] = []
    start = threading.Barrier(replicas)

    def replica() -> None:
        model = TodoListReadModel(database)
        start.wait()
        try:
            model.open()
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            model.close()

    threads = [threading.Thread(target=replica) for _ in range(replicas)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def _todo_indexes(session: Session) -> dict[str, list[str]]:
    indexes: dict[str, list[str]] = {}
    for name, column in session.rows(_INDEX_CATALOG[session.dialect]):
        indexes.setdefault(str(name), []).append(str(column))
    return indexes


def test_replicas_creating_the_schema_together_all_succeed(fresh: Fresh) -> None:
    for _ in range(5):  # the race needs a fresh database each time; five rounds made it show on every server
        with fresh() as database:
            assert _open_together(database) == []
            model = TodoListReadModel(database)
            try:
                model.write(lambda db: db.insert_new("todolist_list", identifier="TDLS_1", name="groceries"))
                assert model.read(lambda db: db.rows("SELECT identifier, name FROM todolist_list")) == [
                    ("TDLS_1", "groceries")
                ]
            finally:
                model.close()


def test_replicas_upgrading_an_older_read_model_together_all_succeed(fresh: Fresh) -> None:
    """Replicas of the new version meeting an older read model all upgrade it (one adds the column, the others
    find it); its rows are kept, and the todos of a list are indexed in the order the projection reads them."""
    for _ in range(3):
        with fresh() as database:
            _run_old_schema(database)
            assert _open_together(database) == []
            model = TodoListReadModel(database)
            try:
                rows = model.read(lambda db: db.rows("SELECT identifier, content, position FROM todolist_todo"))
                assert rows == [("TODO_1", "milk", 0)]
                indexes = model.read(_todo_indexes)
            finally:
                model.close()
            assert indexes["todolist_todo_order"] == ["list_identifier", "position", "created_at"]
            assert "todolist_todo_list" not in indexes  # the created_at index no query uses any more


def test_a_new_read_model_indexes_todos_in_position_order(fresh: Fresh) -> None:
    with fresh() as database:
        model = TodoListReadModel(database)
        try:
            indexes = model.read(_todo_indexes)
        finally:
            model.close()
    assert indexes["todolist_todo_order"] == ["list_identifier", "position", "created_at"]


def test_a_write_whose_commit_fails_leaves_no_transaction_behind(tmp_path: Path) -> None:
    """SQLite keeps the transaction open when COMMIT fails on a deferred constraint; the connection must not go
    back to the pool that way (the next write would find a transaction already open, other connections a held
    write lock)."""
    path = tmp_path / "todolist-query.db"
    model = TodoListReadModel(path)
    other = TodoListReadModel(path)
    try:
        model.write(
            lambda db: db.execute(
                "CREATE TABLE todolist_note (id TEXT PRIMARY KEY, list_identifier TEXT"
                " REFERENCES todolist_list (identifier) DEFERRABLE INITIALLY DEFERRED)"
            )
        )
        # Foreign keys are a setting of the connection, made outside a transaction: on the pool's one connection.
        model.read(lambda db: db.execute("PRAGMA foreign_keys = ON"))
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            model.write(lambda db: db.execute("INSERT INTO todolist_note VALUES ('n1', 'TDLS_missing')"))
        model.write(lambda db: db.insert_new("todolist_list", identifier="TDLS_1", name="groceries"))
        other.write(lambda db: db.insert_new("todolist_list", identifier="TDLS_2", name="hardware"))
        assert other.read(lambda db: db.rows("SELECT id FROM todolist_note")) == []
        assert other.read(lambda db: db.rows("SELECT identifier FROM todolist_list ORDER BY identifier")) == [
            ("TDLS_1",),
            ("TDLS_2",),
        ]
    finally:
        model.close()
        other.close()


def test_an_in_memory_read_model_is_one_database() -> None:
    """``:memory:`` is one database for every call, nested or concurrent, until close()."""
    model = TodoListReadModel(":memory:")
    try:
        model.write(lambda db: db.insert_new("todolist_list", identifier="TDLS_0", name="first"))

        def add(n: int) -> None:
            model.write(lambda db: db.insert_new("todolist_list", identifier=f"TDLS_{n}", name=f"list {n}"))

        threads = [threading.Thread(target=add, args=(n,)) for n in range(1, 9)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # A read made while another call holds a connection (here: inside a read) sees the same database.
        nested = model.read(lambda _: model.read(lambda db: db.rows("SELECT COUNT(*) FROM todolist_list")))
        assert nested == [(9,)]
    finally:
        model.close()
    reopened: Any = model.read(lambda db: db.rows("SELECT COUNT(*) FROM todolist_list"))
    model.close()
    assert reopened == [(0,)]  # close() dropped it, as closing an in-memory database does


def test_the_search_takes_its_text_literally(fresh: Fresh) -> None:
    """The projection's name search matches a substring, ignoring case, with ``%``, ``_``, ``\\`` and NUL standing
    for themselves on every database (SQLite's LIKE ended its pattern at a NUL: every name matched). PostgreSQL
    text cannot hold a NUL, so there a NUL matches nothing."""
    names = ["100% done", "1000 things", "a_c", "abc", "back\\slash", "backslash", "Mixed CASE", "nul\x00byte"]
    with fresh() as database:
        model = TodoListReadModel(database)
        try:
            stored = [n for n in names if not (model.dialect == "postgresql" and "\x00" in n)]
            for n, name in enumerate(stored):
                model.write(lambda db, n=n, name=name: db.insert_new("todolist_list", identifier=f"L{n}", name=name))
            projection = TodoListProjection(model)

            def found(text: str) -> set[str]:
                query = TodoListListItemViewSearchQuery(name_like=text, size=100)
                return {item.name for item in projection.search(query).data}

            assert found("") == set(stored)
            assert found("%") == {"100% done"}
            assert found("_") == {"a_c"}
            assert found("\\") == {"back\\slash"}
            assert found("%_") == found("_%") == set()
            assert found("mixed case") == {"Mixed CASE"}
            assert found("\x00") == found("l\x00b") == ({"nul\x00byte"} if model.dialect != "postgresql" else set())
        finally:
            model.close()


def test_a_list_and_its_todos_are_read_from_one_snapshot(tmp_path: Path) -> None:
    """A todo's addition committed while a list is being read shows whole or not at all: never the todo beside
    audit fields from before it (the list and its todos used to be two reads, with commits possible between)."""
    path = tmp_path / "todolist-query.db"
    model, projector = TodoListReadModel(path), TodoListReadModel(path)
    try:
        model.write(lambda db: db.insert_new("todolist_list", identifier="L", name="groceries", updated_by="alice"))
        committed: list[str] = []

        def add_milk_by_bob(db: Session) -> None:
            db.insert_new("todolist_todo", identifier="T", list_identifier="L", position=1, content="milk")
            db.execute("UPDATE todolist_list SET updated_by = 'bob' WHERE identifier = 'L'")

        def commit_as_the_todos_are_read(sql: str) -> None:
            # SQLite calls this as a statement starts, on the reading connection: the projector commits then.
            if "todolist_todo" in sql and not committed:
                committed.append(sql)
                projector.write(add_milk_by_bob)

        model.read(lambda db: db.connection.set_trace_callback(commit_as_the_todos_are_read))
        query = TodoListViewFindByIdentifierQuery(identifier="L")
        view = TodoListProjection(model).find_by_identifier(query).data
        assert committed
        assert (view.updated_by, [t.content for t in view.todos]) in [("alice", []), ("bob", ["milk"])]
    finally:
        model.close()
        projector.close()
