"""The notification observer: tells users when a todo is checked."""

from __future__ import annotations

from evento import CommandGateway, QueryGateway, event_handler, observer
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
        content = todo.content if todo is not None else event.todo_identifier
        await commands.send(
            NotificationSendCommand(body=f"You have checked the todo '{content}' of '{found.data.name}'")
        )
