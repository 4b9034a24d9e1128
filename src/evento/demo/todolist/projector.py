"""The TodoList projector: keeps the read model in step with the events, audit fields from the metadata.

Each handler writes through :meth:`TodoListReadModel.write`; with the read model in the consumer store's database,
that is the projection transaction, committed together with the projector's checkpoint.
"""

from __future__ import annotations

from datetime import datetime

from evento import Metadata, SequenceNumber, event_handler, projector
from evento.demo.todolist.payloads import (
    ErpUserActivityRegisteredEvent,
    TodoListCreatedEvent,
    TodoListDeletedEvent,
    TodoListTodoAddedEvent,
    TodoListTodoCheckedEvent,
    TodoListTodoRemovedEvent,
)
from evento.demo.todolist.read_model import Session, TodoListReadModel, iso


@projector(version=1, exactly_once=True)
class TodoListProjector:
    """Projects todo lists and their todos into the read model."""

    def __init__(self, read_model: TodoListReadModel) -> None:
        self.read_model = read_model

    @event_handler
    def on_created(self, event: TodoListCreatedEvent, metadata: Metadata, at: datetime) -> None:
        user, when = metadata.get("user"), iso(at)
        self.read_model.write(
            lambda db: db.insert_new(
                "todolist_list",
                identifier=event.identifier,
                name=event.content,
                status="WIP",
                created_by=user,
                updated_by=user,
                created_at=when,
                updated_at=when,
            )
        )

    @event_handler
    def on_deleted(self, event: TodoListDeletedEvent) -> None:
        def delete(db: Session) -> None:
            db.execute("DELETE FROM todolist_todo WHERE list_identifier = ?", event.identifier)
            db.execute("DELETE FROM todolist_list WHERE identifier = ?", event.identifier)

        self.read_model.write(delete)

    @event_handler
    def on_todo_added(
        self, event: TodoListTodoAddedEvent, metadata: Metadata, at: datetime, seq: SequenceNumber
    ) -> None:
        user, when = metadata.get("user"), iso(at)

        def add(db: Session) -> None:
            # The event's sequence number orders a list's todos as they were added, whatever the clock said.
            db.insert_new(
                "todolist_todo",
                identifier=event.todo_identifier,
                list_identifier=event.identifier,
                position=seq,
                content=event.content,
                completed=0,
                created_by=user,
                created_at=when,
            )
            _touch(db, event.identifier, user, when)

        self.read_model.write(add)

    @event_handler
    def on_todo_removed(self, event: TodoListTodoRemovedEvent, metadata: Metadata, at: datetime) -> None:
        def remove(db: Session) -> None:
            db.execute("DELETE FROM todolist_todo WHERE identifier = ?", event.todo_identifier)
            _touch(db, event.identifier, metadata.get("user"), iso(at))
            if event.all_checked:
                _registration_pending(db, event.identifier)

        self.read_model.write(remove)

    @event_handler
    def on_todo_checked(self, event: TodoListTodoCheckedEvent, metadata: Metadata, at: datetime) -> None:
        user, when = metadata.get("user"), iso(at)

        def check(db: Session) -> None:
            db.execute(
                "UPDATE todolist_todo SET completed = 1, completed_by = ?, completed_at = ? WHERE identifier = ?",
                user,
                when,
                event.todo_identifier,
            )
            _touch(db, event.identifier, user, when)
            if event.all_checked:
                _registration_pending(db, event.identifier)

        self.read_model.write(check)

    @event_handler
    def on_registered(self, event: ErpUserActivityRegisteredEvent, at: datetime) -> None:
        if event.resource_type != "TodoList":
            return
        self.read_model.write(
            lambda db: db.execute(
                "UPDATE todolist_list SET status = 'REGISTERED', registered_at = ? WHERE identifier = ?",
                iso(at),
                event.resource_identifier,
            )
        )


def _touch(db: Session, identifier: str, user: str | None, when: str) -> None:
    db.execute("UPDATE todolist_list SET updated_by = ?, updated_at = ? WHERE identifier = ?", user, when, identifier)


def _registration_pending(db: Session, identifier: str) -> None:
    """Every todo of the list is checked: the ERP registration is under way (unless it already answered)."""
    db.execute(
        "UPDATE todolist_list SET status = 'REGISTRATION_PENDING' WHERE identifier = ? AND status = 'WIP'", identifier
    )
