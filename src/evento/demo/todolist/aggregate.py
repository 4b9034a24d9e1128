"""The TodoList aggregate: the rules of a list, enforced one command at a time."""

from __future__ import annotations

from evento import AggregateState, aggregate, aggregate_command_handler, event_sourcing_handler
from evento.demo.todolist.payloads import (
    TodoListAddTodoCommand,
    TodoListCheckTodoCommand,
    TodoListCreateCommand,
    TodoListCreatedEvent,
    TodoListDeleteCommand,
    TodoListDeletedEvent,
    TodoListRemoveTodoCommand,
    TodoListTodoAddedEvent,
    TodoListTodoCheckedEvent,
    TodoListTodoRemovedEvent,
)

MAX_TODOS = 5


class TodoListRuleError(Exception):
    """A command broke a rule of the todo list (HTTP 409)."""


class TodoListState(AggregateState):
    """Which todos the list holds and whether each is checked."""

    todos: dict[str, bool] = {}


@aggregate(snapshot_frequency=10)
class TodoListAggregate:
    """A todo list: at most five todos; a checked todo cannot be removed; a list with checked todos stays."""

    @aggregate_command_handler(init=True)
    def create(self, command: TodoListCreateCommand) -> TodoListCreatedEvent:
        if not command.identifier:
            raise TodoListRuleError("a todo list needs an identifier")
        if not command.name.strip():
            raise TodoListRuleError("a todo list needs a name")
        return TodoListCreatedEvent(identifier=command.identifier, content=command.name)

    @event_sourcing_handler
    def on_created(self, event: TodoListCreatedEvent) -> TodoListState:
        return TodoListState()

    @aggregate_command_handler
    def delete(self, command: TodoListDeleteCommand, state: TodoListState) -> TodoListDeletedEvent:
        if any(state.todos.values()):
            raise TodoListRuleError("a todo list holding a checked todo cannot be deleted")
        return TodoListDeletedEvent(identifier=command.identifier)

    @event_sourcing_handler
    def on_deleted(self, event: TodoListDeletedEvent, state: TodoListState) -> None:
        state.deleted = True

    @aggregate_command_handler
    def add_todo(self, command: TodoListAddTodoCommand, state: TodoListState) -> TodoListTodoAddedEvent:
        if not command.todo_identifier.strip() or not command.content.strip():
            raise TodoListRuleError("a todo needs an identifier and a content")
        if command.todo_identifier in state.todos:
            raise TodoListRuleError(f"todo {command.todo_identifier} is already in the list")
        if len(state.todos) >= MAX_TODOS:
            raise TodoListRuleError(f"a todo list holds at most {MAX_TODOS} todos")
        return TodoListTodoAddedEvent(
            identifier=command.identifier, todo_identifier=command.todo_identifier, content=command.content
        )

    @event_sourcing_handler
    def on_todo_added(self, event: TodoListTodoAddedEvent, state: TodoListState) -> None:
        state.todos[event.todo_identifier] = False

    @aggregate_command_handler
    def remove_todo(self, command: TodoListRemoveTodoCommand, state: TodoListState) -> TodoListTodoRemovedEvent:
        checked = state.todos.get(command.todo_identifier)
        if checked is None:
            raise TodoListRuleError(f"todo {command.todo_identifier} is not in the list")
        if checked:
            raise TodoListRuleError(f"todo {command.todo_identifier} is checked and cannot be removed")
        # Removing the last unchecked todo completes the list: nothing else could (only unchecked todos are checked).
        left = [done for todo, done in state.todos.items() if todo != command.todo_identifier]
        return TodoListTodoRemovedEvent(
            identifier=command.identifier, todo_identifier=command.todo_identifier, all_checked=bool(left) and all(left)
        )

    @event_sourcing_handler
    def on_todo_removed(self, event: TodoListTodoRemovedEvent, state: TodoListState) -> None:
        state.todos.pop(event.todo_identifier, None)

    @aggregate_command_handler
    def check_todo(self, command: TodoListCheckTodoCommand, state: TodoListState) -> TodoListTodoCheckedEvent:
        checked = state.todos.get(command.todo_identifier)
        if checked is None:
            raise TodoListRuleError(f"todo {command.todo_identifier} is not in the list")
        if checked:
            raise TodoListRuleError(f"todo {command.todo_identifier} is already checked")
        others_checked = all(done for todo, done in state.todos.items() if todo != command.todo_identifier)
        return TodoListTodoCheckedEvent(
            identifier=command.identifier, todo_identifier=command.todo_identifier, all_checked=others_checked
        )

    @event_sourcing_handler
    def on_todo_checked(self, event: TodoListTodoCheckedEvent, state: TodoListState) -> None:
        state.todos[event.todo_identifier] = True
