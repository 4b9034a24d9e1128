"""The TodoList projection: answers queries from the read model."""

from __future__ import annotations

from evento import Multiple, Single, projection, query_handler
from evento.demo.todolist.payloads import (
    TodoListListItemView,
    TodoListListItemViewSearchQuery,
    TodoListView,
    TodoListViewFindByIdentifierQuery,
    TodoView,
)
from evento.demo.todolist.read_model import Session, TodoListReadModel


class TodoListNotFoundError(LookupError):
    """No todo list with this identifier in the read model (HTTP 404)."""


@projection()
class TodoListProjection:
    """Reads todo lists by identifier and searches them by name."""

    def __init__(self, read_model: TodoListReadModel) -> None:
        self.read_model = read_model

    @query_handler
    def find_by_identifier(self, query: TodoListViewFindByIdentifierQuery) -> Single[TodoListView]:
        def find(db: Session) -> TodoListView:
            row = db.row(
                "SELECT identifier, name, created_by, updated_by, created_at, updated_at, status"
                " FROM todolist_list WHERE identifier = ?",
                query.identifier,
            )
            if row is None:
                raise TodoListNotFoundError(f"todo list {query.identifier} not found")
            todos = [
                TodoView(
                    identifier=t[0],
                    content=t[1],
                    completed=bool(t[2]),
                    created_by=t[3],
                    completed_by=t[4],
                    created_at=t[5],
                    completed_at=t[6],
                )
                for t in db.rows(
                    "SELECT identifier, content, completed, created_by, completed_by, created_at, completed_at"
                    " FROM todolist_todo WHERE list_identifier = ? ORDER BY position, created_at",
                    query.identifier,
                )
            ]
            return TodoListView(
                identifier=row[0],
                name=row[1],
                todos=todos,
                created_by=row[2],
                updated_by=row[3],
                created_at=row[4],
                updated_at=row[5],
                status=row[6],
            )

        return Single(self.read_model.read(find))

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
