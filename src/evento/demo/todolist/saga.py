"""The ERP registration saga: counts who worked on a list and registers it with the ERP once all is checked."""

from __future__ import annotations

from evento import CommandGateway, Metadata, SagaState, saga, saga_event_handler
from evento.demo.todolist.payloads import (
    ErpUserActivityRegisterCommand,
    ErpUserActivityRegisteredEvent,
    TodoListCreatedEvent,
    TodoListDeletedEvent,
    TodoListTodoAddedEvent,
    TodoListTodoCheckedEvent,
    TodoListTodoRemovedEvent,
)


class ErpRegistrationState(SagaState):
    """Contributions per user to one todo list."""

    todo_list_identifier: str = ""
    usages: dict[str, int] = {}

    def count(self, metadata: Metadata) -> None:
        user = metadata.get("user", "anonymous")
        self.usages[user] = self.usages.get(user, 0) + 1


@saga(version=1)
class ErpTodoListActivityRegistrationSaga:
    """Follows a todo list from creation until the ERP registered its contributors (or the list is deleted)."""

    @saga_event_handler(init=True, association_property="identifier")
    def on_created(self, event: TodoListCreatedEvent) -> ErpRegistrationState:
        state = ErpRegistrationState(todo_list_identifier=event.identifier)
        state.set_association("identifier", event.identifier)
        return state

    @saga_event_handler(association_property="identifier")
    def on_todo_added(self, event: TodoListTodoAddedEvent, state: ErpRegistrationState, metadata: Metadata) -> None:
        state.count(metadata)

    @saga_event_handler(association_property="identifier")
    async def on_todo_removed(
        self,
        event: TodoListTodoRemovedEvent,
        state: ErpRegistrationState,
        metadata: Metadata,
        commands: CommandGateway,
    ) -> None:
        state.count(metadata)
        if event.all_checked:
            await _register(event.identifier, state, commands)

    @saga_event_handler(association_property="identifier")
    async def on_todo_checked(
        self,
        event: TodoListTodoCheckedEvent,
        state: ErpRegistrationState,
        metadata: Metadata,
        commands: CommandGateway,
    ) -> None:
        state.count(metadata)
        if event.all_checked:
            await _register(event.identifier, state, commands)

    @saga_event_handler(association_property="identifier")
    def on_deleted(self, event: TodoListDeletedEvent, state: ErpRegistrationState) -> None:
        state.ended = True

    @saga_event_handler(association_property="resource_identifier")
    def on_registered(self, event: ErpUserActivityRegisteredEvent, state: ErpRegistrationState) -> None:
        state.ended = True


async def _register(identifier: str, state: ErpRegistrationState, commands: CommandGateway) -> None:
    """The list is complete: register its contributors with the ERP and wait for its answer."""
    state.set_association("resource_identifier", identifier)
    await commands.send(
        ErpUserActivityRegisterCommand(
            resource_type="TodoList", resource_identifier=identifier, contributions=dict(state.usages)
        )
    )
