"""Read models of the examples: the TodoList read model's connection handling (pools, dialects, joining the
projection transaction when it shares the consumer store's database) over tables each service declares."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

from evento.demo.todolist.read_model import Session, TodoListReadModel

__all__ = ["ExampleReadModel", "Session"]


class ExampleReadModel(TodoListReadModel):
    """A read model whose schema is ``tables`` (``CREATE TABLE IF NOT EXISTS`` statements in the SQL the three
    dialects share). One process creates them: the examples run one instance of each service."""

    def __init__(self, database: str | Path, *, tables: Sequence[str], data_dir: Path | None = None) -> None:
        super().__init__(database, data_dir=data_dir)
        self.tables = tuple(tables)

    def open(self) -> None:
        """Create the tables if they are missing (before the projectors start, as for the TodoList)."""
        with self._lock:
            if self._schema_ready:
                return
        with self._connection() as session:
            transactional = session.dialect != "mysql"  # MySQL commits DDL on its own
            if transactional:
                session.execute("BEGIN IMMEDIATE" if session.dialect == "sqlite" else "BEGIN")
            try:
                for table in self.tables:
                    session.execute(table)
            except BaseException:
                if transactional:
                    with contextlib.suppress(Exception):
                        session.execute("ROLLBACK")
                raise
            if transactional:
                session.execute("COMMIT")
        with self._lock:
            self._schema_ready = True
