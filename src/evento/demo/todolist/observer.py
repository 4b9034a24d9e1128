"""The notification observer: tells users when a todo is checked."""

from __future__ import annotations

from evento import CommandGateway, QueryGateway, TransientConsumerError, event_handler, observer
from evento.demo.todolist.payloads import (
    NotificationSendCommand,
    TodoListTodoCheckedEvent,
    TodoListViewFindByIdentifierQuery,
)


@observer(version=1)
class TodoListNotificationObserver:
    """Sends a notification for every checked todo."""

    @event_handler(retry=3, retry_delay=0.5)
    async def on_todo_checked(
        self, event: TodoListTodoCheckedEvent, commands: CommandGateway, queries: QueryGateway
    ) -> None:
        found = await queries.query(TodoListViewFindByIdentifierQuery(identifier=event.identifier))
        todo = next((t for t in found.data.todos if t.identifier == event.todo_identifier), None)
        if todo is None:
            # The projector (another consumer) has not projected the todo yet: try again after retry_delay
            # rather than notify without its text.
            raise TransientConsumerError(f"todo {event.todo_identifier} is not in the read model yet")
        await commands.send(
            NotificationSendCommand(body=f"You have checked the todo '{todo.content}' of '{found.data.name}'")
        )
