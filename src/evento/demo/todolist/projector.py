"""The TodoList projector: keeps the read model in step with the events, audit fields from the metadata."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from evento import Metadata, event_handler, projector
from evento.demo.todolist.payloads import (
    ErpUserActivityRegisteredEvent,
    TodoListCreatedEvent,
    TodoListDeletedEvent,
    TodoListTodoAddedEvent,
    TodoListTodoCheckedEvent,
    TodoListTodoRemovedEvent,
)
from evento.demo.todolist.read_model import TodoListReadModel, iso


@projector(version=1)
class TodoListProjector:
    """Projects todo lists and their todos into the SQLite read model."""

    def __init__(self, read_model: TodoListReadModel) -> None:
        self.read_model = read_model

    @event_handler
    def on_created(self, event: TodoListCreatedEvent, metadata: Metadata, at: datetime) -> None:
        user, when = metadata.get("user"), iso(at)
        self.read_model.write(
            lambda c: c.execute(
                "INSERT OR IGNORE INTO todolist_list (identifier, name, status, created_by, updated_by,"
                " created_at, updated_at) VALUES (?, ?, 'WIP', ?, ?, ?, ?)",
                (event.identifier, event.content, user, user, when, when),
            )
        )

    @event_handler
    def on_deleted(self, event: TodoListDeletedEvent) -> None:
        def delete(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM todolist_todo WHERE list_identifier = ?", (event.identifier,))
            c.execute("DELETE FROM todolist_list WHERE identifier = ?", (event.identifier,))

        self.read_model.write(delete)

    @event_handler
    def on_todo_added(self, event: TodoListTodoAddedEvent, metadata: Metadata, at: datetime) -> None:
        user, when = metadata.get("user"), iso(at)

        def add(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT OR IGNORE INTO todolist_todo (identifier, list_identifier, content, completed,"
                " created_by, created_at) VALUES (?, ?, ?, 0, ?, ?)",
                (event.todo_identifier, event.identifier, event.content, user, when),
            )
            _touch(c, event.identifier, user, when)

        self.read_model.write(add)

    @event_handler
    def on_todo_removed(self, event: TodoListTodoRemovedEvent, metadata: Metadata, at: datetime) -> None:
        def remove(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM todolist_todo WHERE identifier = ?", (event.todo_identifier,))
            _touch(c, event.identifier, metadata.get("user"), iso(at))

        self.read_model.write(remove)

    @event_handler
    def on_todo_checked(self, event: TodoListTodoCheckedEvent, metadata: Metadata, at: datetime) -> None:
        user, when = metadata.get("user"), iso(at)

        def check(c: sqlite3.Connection) -> None:
            c.execute(
                "UPDATE todolist_todo SET completed = 1, completed_by = ?, completed_at = ? WHERE identifier = ?",
                (user, when, event.todo_identifier),
            )
            _touch(c, event.identifier, user, when)
            if event.all_checked:
                c.execute(
                    "UPDATE todolist_list SET status = 'REGISTRATION_PENDING' WHERE identifier = ? AND status = 'WIP'",
                    (event.identifier,),
                )

        self.read_model.write(check)

    @event_handler
    def on_registered(self, event: ErpUserActivityRegisteredEvent, at: datetime) -> None:
        if event.resource_type != "TodoList":
            return
        self.read_model.write(
            lambda c: c.execute(
                "UPDATE todolist_list SET status = 'REGISTERED', registered_at = ? WHERE identifier = ?",
                (iso(at), event.resource_identifier),
            )
        )


def _touch(c: sqlite3.Connection, identifier: str, user: str | None, when: str) -> None:
    c.execute("UPDATE todolist_list SET updated_by = ?, updated_at = ? WHERE identifier = ?", (user, when, identifier))
