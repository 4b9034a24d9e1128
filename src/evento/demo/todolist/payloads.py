"""TodoList payloads: the commands, events, queries and views of the tutorial (domain "TodoList")."""

from __future__ import annotations

from typing import Literal

from evento import (
    DomainCommand,
    DomainEvent,
    Multiple,
    Query,
    ServiceCommand,
    ServiceEvent,
    Single,
    View,
    domain,
)

Status = Literal["WIP", "REGISTRATION_PENDING", "REGISTERED"]


class TodoListCommand(DomainCommand):
    """Base of the commands on one todo list: ``identifier`` is the aggregate id."""

    identifier: str

    @property
    def aggregate_id(self) -> str:
        return self.identifier


@domain("TodoList")
class TodoListCreateCommand(TodoListCommand):
    """Create a todo list."""

    name: str


@domain("TodoList")
class TodoListDeleteCommand(TodoListCommand):
    """Delete a todo list (refused while it holds a checked todo)."""


@domain("TodoList")
class TodoListAddTodoCommand(TodoListCommand):
    """Add a todo to a list (at most five per list)."""

    todo_identifier: str
    content: str


@domain("TodoList")
class TodoListRemoveTodoCommand(TodoListCommand):
    """Remove an unchecked todo from a list."""

    todo_identifier: str


@domain("TodoList")
class TodoListCheckTodoCommand(TodoListCommand):
    """Check a todo of a list."""

    todo_identifier: str


@domain("TodoList")
class TodoListCreatedEvent(DomainEvent):
    """A todo list was created; ``content`` is its name."""

    identifier: str
    content: str


@domain("TodoList")
class TodoListDeletedEvent(DomainEvent):
    """A todo list was deleted."""

    identifier: str


@domain("TodoList")
class TodoListTodoAddedEvent(DomainEvent):
    """A todo was added to a list."""

    identifier: str
    todo_identifier: str
    content: str


@domain("TodoList")
class TodoListTodoRemovedEvent(DomainEvent):
    """A todo was removed from a list; ``all_checked`` tells whether the todos left are all checked (and there is
    at least one), which completes the list just as the final check does."""

    identifier: str
    todo_identifier: str
    all_checked: bool = False  # absent from events stored before removals could complete a list


@domain("TodoList")
class TodoListTodoCheckedEvent(DomainEvent):
    """A todo was checked; ``all_checked`` tells whether every todo of the list is now checked."""

    identifier: str
    todo_identifier: str
    all_checked: bool


@domain("TodoList")
class ErpUserActivityRegisterCommand(ServiceCommand):
    """Register users' contributions to a resource with the ERP."""

    resource_type: str
    resource_identifier: str
    contributions: dict[str, int]

    @property
    def lock_id(self) -> str:
        return f"ACT_{self.resource_type}_{self.resource_identifier}"


@domain("TodoList")
class ErpUserActivityRegisteredEvent(ServiceEvent):
    """The ERP registered the contributions to a resource."""

    resource_type: str
    resource_identifier: str
    contributions: dict[str, int]


@domain("TodoList")
class NotificationSendCommand(ServiceCommand):
    """Send a notification to the users."""

    body: str


@domain("TodoList")
class TodoView(View, rename="camel"):
    """One todo of a list, with its audit fields."""

    identifier: str
    content: str
    completed: bool
    created_by: str | None
    completed_by: str | None
    created_at: str | None
    completed_at: str | None


@domain("TodoList")
class TodoListView(View, rename="camel"):
    """A todo list with its todos."""

    identifier: str
    name: str
    todos: list[TodoView]
    created_by: str | None
    updated_by: str | None
    created_at: str | None
    updated_at: str | None
    status: Status


@domain("TodoList")
class TodoListListItemView(View, rename="camel"):
    """A todo list in search results."""

    identifier: str
    name: str


@domain("TodoList")
class TodoListViewFindByIdentifierQuery(Query[Single[TodoListView]]):
    """Find a todo list by its identifier."""

    identifier: str


@domain("TodoList")
class TodoListListItemViewSearchQuery(Query[Multiple[TodoListListItemView]]):
    """Search todo lists whose name contains ``name_like``, one page at a time."""

    name_like: str = ""
    page: int = 0
    size: int = 15
