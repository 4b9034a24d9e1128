"""The TodoList projection: answers queries from the read model."""

from __future__ import annotations

from typing import Any

from evento import Multiple, Single, projection, query_handler
from evento.demo.todolist.payloads import (
    TodoListListItemView,
    TodoListListItemViewSearchQuery,
    TodoListView,
    TodoListViewFindByIdentifierQuery,
    TodoView,
)
from evento.demo.todolist.read_model import TodoListReadModel


class TodoListNotFoundError(LookupError):
    """No todo list with this identifier in the read model (HTTP 404)."""


@projection()
class TodoListProjection:
    """Reads todo lists by identifier and searches them by name."""

    def __init__(self, read_model: TodoListReadModel) -> None:
        self.read_model = read_model

    @query_handler
    def find_by_identifier(self, query: TodoListViewFindByIdentifierQuery) -> Single[TodoListView]:
        # One statement, so the list and its todos come from one snapshot: two would let a projection commit in
        # between show a todo whose addition the list's audit fields (updatedBy, updatedAt) do not yet reflect.
        rows = self.read_model.read(
            lambda db: db.rows(
                "SELECT l.identifier, l.name, l.created_by, l.updated_by, l.created_at, l.updated_at, l.status,"
                " t.identifier, t.content, t.completed, t.created_by, t.completed_by, t.created_at, t.completed_at"
                " FROM todolist_list l LEFT JOIN todolist_todo t ON t.list_identifier = l.identifier"
                " WHERE l.identifier = ? ORDER BY t.position, t.created_at",
                query.identifier,
            )
        )
        if not rows:
            raise TodoListNotFoundError(f"todo list {query.identifier} not found")
        todos = [_todo(row[7:]) for row in rows if row[7] is not None]
        first = rows[0]
        return Single(
            TodoListView(
                identifier=first[0],
                name=first[1],
                todos=todos,
                created_by=first[2],
                updated_by=first[3],
                created_at=first[4],
                updated_at=first[5],
                status=first[6],
            )
        )

    @query_handler
    def search(self, query: TodoListListItemViewSearchQuery) -> Multiple[TodoListListItemView]:
        size = max(1, min(query.size, 100))
        if "\x00" in query.name_like and self.read_model.dialect == "postgresql":
            # PostgreSQL text cannot hold a NUL, so no name contains one (and its driver refuses one as a parameter).
            return Multiple([])
        rows = self.read_model.read(
            lambda db: db.rows(
                f"SELECT identifier, name FROM todolist_list WHERE {db.contains('name')}"
                " ORDER BY created_at DESC, identifier LIMIT ? OFFSET ?",
                query.name_like,
                size,
                max(0, query.page) * size,
            )
        )
        return Multiple([TodoListListItemView(identifier=r[0], name=r[1]) for r in rows])


def _todo(columns: tuple[Any, ...]) -> TodoView:
    identifier, content, completed, created_by, completed_by, created_at, completed_at = columns
    return TodoView(
        identifier=identifier,
        content=content,
        completed=bool(completed),
        created_by=created_by,
        completed_by=completed_by,
        created_at=created_at,
        completed_at=completed_at,
    )
