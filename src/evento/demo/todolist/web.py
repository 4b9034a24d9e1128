"""The TodoList HTTP API (FastAPI): the invoker's surface to the outside world.

The user is the token of ``Authorization: Bearer <user>``. Commands return once their event is stored; reads
follow the projector (eventually consistent). Errors are ``{"error": message, "type": class name}``.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, StrictStr

from evento.demo.todolist.aggregate import TodoListRuleError
from evento.demo.todolist.invoker import TodoListInvoker
from evento.demo.todolist.projection import TodoListNotFoundError
from evento.errors import (
    AggregateDeletedError,
    AggregateInitializedError,
    AggregateNotInitializedError,
    InvalidPayloadError,
    NoHandlerError,
    RequestTimeoutError,
    TooManyPendingRequestsError,
)

_STATUS: list[tuple[type[Exception], int]] = [
    (InvalidPayloadError, 400),
    (TodoListRuleError, 409),
    (AggregateInitializedError, 409),
    (AggregateNotInitializedError, 404),
    (AggregateDeletedError, 404),
    (TodoListNotFoundError, 404),
    (RequestTimeoutError, 504),
    (NoHandlerError, 503),
    (TooManyPendingRequestsError, 503),
]


MAX_PAGE = 1_000_000


class _Unauthorized(Exception):
    pass


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


NonBlank = Annotated[StrictStr, AfterValidator(_not_blank)]


class NameBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: NonBlank


class ContentBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    content: NonBlank


def _error(status: int, exc: BaseException | str, kind: str | None = None) -> JSONResponse:
    message = exc if isinstance(exc, str) else str(exc)
    return JSONResponse({"error": message, "type": kind or type(exc).__name__}, status_code=status)


def user_of(authorization: Annotated[str | None, Header()] = None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _Unauthorized("missing 'Authorization: Bearer <user>'")
    return token.strip()


User = Annotated[str, Depends(user_of)]


def create_app(invoker: TodoListInvoker) -> FastAPI:
    """The HTTP API bound to an invoker of a started bundle."""
    app = FastAPI(title="TodoList", description="The Evento TodoList tutorial over HTTP.")

    @app.exception_handler(_Unauthorized)
    async def unauthorized(request: Request, exc: _Unauthorized) -> JSONResponse:
        return _error(401, exc, "Unauthorized")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors())
        return _error(400, details or "invalid request", "ValidationError")

    async def known_error(request: Request, exc: Exception) -> JSONResponse:
        status = next(code for cls, code in _STATUS if isinstance(exc, cls))
        return _error(status, exc)

    for cls, _ in _STATUS:
        app.add_exception_handler(cls, known_error)

    @app.post("/todo-list/", status_code=201)
    async def create(body: NameBody, user: User) -> dict[str, str]:
        return {"identifier": await invoker.create_todo_list(body.name, user)}

    @app.get("/todo-list/")
    async def search(
        user: User,
        nameLike: str = "",
        page: Annotated[int, Query(le=MAX_PAGE)] = 0,
    ) -> Any:
        return msgspec.to_builtins(await invoker.search_todo_lists(nameLike, max(page, 0)))

    @app.get("/todo-list/{identifier}")
    async def find(identifier: str, user: User) -> Any:
        return msgspec.to_builtins(await invoker.find_todo_list(identifier))

    @app.delete("/todo-list/{identifier}", status_code=204)
    async def delete(identifier: str, user: User) -> Response:
        await invoker.delete_todo_list(identifier, user)
        return Response(status_code=204)

    @app.post("/todo-list/{identifier}/todo/", status_code=201)
    async def add_todo(identifier: str, body: ContentBody, user: User) -> dict[str, str]:
        return {"identifier": await invoker.add_todo(identifier, body.content, user)}

    @app.delete("/todo-list/{identifier}/todo/{todo_identifier}", status_code=204)
    async def remove_todo(identifier: str, todo_identifier: str, user: User) -> Response:
        await invoker.remove_todo(identifier, todo_identifier, user)
        return Response(status_code=204)

    @app.put("/todo-list/{identifier}/todo/{todo_identifier}", status_code=202)
    async def check_todo(identifier: str, todo_identifier: str, user: User) -> Response:
        await invoker.check_todo(identifier, todo_identifier, user)
        return Response(status_code=202)

    return app
