"""The TodoList invoker: the operations the HTTP API offers, as commands and queries with the user attached."""

from __future__ import annotations

import uuid

from evento import Invoker, invocation_handler, invoker
from evento.demo.todolist.payloads import (
    TodoListAddTodoCommand,
    TodoListCheckTodoCommand,
    TodoListCreateCommand,
    TodoListDeleteCommand,
    TodoListListItemView,
    TodoListListItemViewSearchQuery,
    TodoListRemoveTodoCommand,
    TodoListView,
    TodoListViewFindByIdentifierQuery,
)

PAGE_SIZE = 15


@invoker()
class TodoListInvoker(Invoker):
    """Entry point of the TodoList system; every command carries the acting user in its metadata."""

    timeout = 30.0

    @invocation_handler
    async def create_todo_list(self, name: str, user: str) -> str:
        identifier = "TDLS_" + uuid.uuid4().hex
        await self.commands.send(TodoListCreateCommand(identifier=identifier, name=name), {"user": user}, self.timeout)
        return identifier

    @invocation_handler
    async def delete_todo_list(self, identifier: str, user: str) -> None:
        await self.commands.send(TodoListDeleteCommand(identifier=identifier), {"user": user}, self.timeout)

    @invocation_handler
    async def add_todo(self, identifier: str, content: str, user: str) -> str:
        todo_identifier = "TODO_" + uuid.uuid4().hex
        command = TodoListAddTodoCommand(identifier=identifier, todo_identifier=todo_identifier, content=content)
        await self.commands.send(command, {"user": user}, self.timeout)
        return todo_identifier

    @invocation_handler
    async def check_todo(self, identifier: str, todo_identifier: str, user: str) -> None:
        command = TodoListCheckTodoCommand(identifier=identifier, todo_identifier=todo_identifier)
        await self.commands.send(command, {"user": user}, self.timeout)

    @invocation_handler
    async def remove_todo(self, identifier: str, todo_identifier: str, user: str) -> None:
        command = TodoListRemoveTodoCommand(identifier=identifier, todo_identifier=todo_identifier)
        await self.commands.send(command, {"user": user}, self.timeout)

    @invocation_handler
    async def find_todo_list(self, identifier: str) -> TodoListView:
        result = await self.queries.query(TodoListViewFindByIdentifierQuery(identifier=identifier))
        return result.data

    @invocation_handler
    async def search_todo_lists(self, name_like: str, page: int) -> list[TodoListListItemView]:
        query = TodoListListItemViewSearchQuery(name_like=name_like, page=page, size=PAGE_SIZE)
        return (await self.queries.query(query)).data
