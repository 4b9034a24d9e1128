"""The TodoList HTTP API (FastAPI): the invoker's surface to the outside world.

The user is the token of ``Authorization: Bearer <user>``. Commands return once their event is stored; reads
follow the projector (eventually consistent). Every input is bounded (see :mod:`~evento.demo.todolist.guard` for
the request itself, the models below for its fields) and every error is ``{"error": message, "type": kind}``.
The OpenAPI document (``/openapi.json``) states all of it, the success bodies taken from the view payloads.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fastapi import Depends, FastAPI, Path, Query, Security
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr, StringConstraints

from evento.demo.todolist import guard
from evento.demo.todolist.invoker import TodoListInvoker
from evento.demo.todolist.payloads import TodoListListItemView, TodoListView

__all__ = ["IDENTIFIER_PATTERN", "MAX_PAGE", "MAX_SEARCH", "MAX_TEXT", "TEXT_PATTERN", "create_app"]

MAX_PAGE = 1_000_000
#: The longest todo-list name and todo content, in characters.
MAX_TEXT = 1_000
#: The longest search text (``nameLike``), in characters.
MAX_SEARCH = 200
#: Identifiers of lists and todos, as the API creates them (``TDLS_…``, ``TODO_…``) and the read model stores them.
IDENTIFIER_PATTERN = r"^[A-Za-z0-9_-]{1,100}$"
# The characters str.isspace() calls whitespace, which str.strip() (and so the aggregate's own rule) removes.
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: A name or content as the OpenAPI document states it: no NUL (PostgreSQL cannot store one), not blank.
TEXT_PATTERN = rf"^[^\x00]*[^\x00{_SPACE}][^\x00]*$"


def _text(value: str) -> str:
    # The same rule as TEXT_PATTERN, with a message per cause.
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Text = Annotated[
    StrictStr,
    StringConstraints(max_length=MAX_TEXT),
    AfterValidator(_text),
    Field(json_schema_extra={"pattern": TEXT_PATTERN}),
]
Identifier = Annotated[str, Path(pattern=IDENTIFIER_PATTERN)]


class NameBody(BaseModel):
    """The body of a new todo list."""

    model_config = ConfigDict(extra="ignore")
    name: Text


class ContentBody(BaseModel):
    """The body of a new todo."""

    model_config = ConfigDict(extra="ignore")
    content: Text


class CreatedBody(BaseModel):
    """The identifier of what a POST created."""

    identifier: str


_bearer = HTTPBearer(auto_error=False, description="The user: `Authorization: Bearer <user>`.")


def user_of(credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]) -> str:
    """The acting user: the token of ``Authorization: Bearer <user>`` (401 without one)."""
    if credentials is None:
        raise guard.Unauthorized("missing 'Authorization: Bearer <user>'")
    return credentials.credentials


User = Annotated[str, Depends(user_of)]

_ERRORS = {
    400: "Invalid input; the message names the field and the rule.",
    401: "No `Authorization: Bearer <user>`.",
    404: "No such todo list.",
    409: "A rule of the list refused the command, or another command changed the list first.",
    413: f"Request body over {guard.MAX_BODY_BYTES} bytes.",
    414: f"Request target over {guard.MAX_TARGET_BYTES} bytes.",
    431: f"Request headers over {guard.MAX_HEADER_BYTES} bytes.",
    500: "A fault on the server side.",
    503: "No handler is available, or storage failed; nothing was done, retry later.",
    504: "The deadline passed; the command may still complete.",
}
_ANY_REQUEST = (400, 401, 413, 414, 431, 500, 503, 504)


def _documented(*statuses: int, success: tuple[int, str, Any] | None = None) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of an operation: its errors (those of any request too), and a success body schema."""
    responses: dict[int | str, dict[str, Any]] = {
        status: {"model": guard.ErrorBody, "description": _ERRORS[status]}
        for status in sorted({*_ANY_REQUEST, *statuses})
    }
    if success is not None:
        status, description, schema = success
        responses[status] = {"description": description, "content": {"application/json": {"schema": schema}}}
    return responses


# The view payloads' own JSON schemas (msgspec's, the encoder the responses go through) as OpenAPI components.
(_LIST_SCHEMA, _SEARCH_SCHEMA), _VIEW_COMPONENTS = msgspec.json.schema_components(
    [TodoListView, list[TodoListListItemView]], ref_template="#/components/schemas/{name}"
)


class _TodoListApp(FastAPI):
    def openapi(self) -> dict[str, Any]:
        """FastAPI's document, with the view schemas, and without the 422 responses FastAPI adds to every
        operation that has parameters (this API answers invalid input with 400)."""
        if self.openapi_schema is None:
            document = super().openapi()
            for operations in document["paths"].values():
                for operation in operations.values():
                    operation["responses"].pop("422", None)
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            schemas.update(_VIEW_COMPONENTS)
        return self.openapi_schema or document


def create_app(invoker: TodoListInvoker) -> FastAPI:
    """The HTTP API bound to an invoker of a started bundle."""
    app = _TodoListApp(title="TodoList", description="The Evento TodoList tutorial over HTTP.")
    guard.install(app)

    @app.post("/todo-list/", status_code=201, responses=_documented(409))
    async def create(body: NameBody, user: User) -> CreatedBody:
        """Create a todo list named ``name``."""
        return CreatedBody(identifier=await invoker.create_todo_list(body.name, user))

    @app.get("/todo-list/", responses=_documented(success=(200, "A page of lists.", _SEARCH_SCHEMA)))
    async def search(
        user: User,
        nameLike: Annotated[str, Query(max_length=MAX_SEARCH)] = "",
        page: Annotated[int, Query(le=MAX_PAGE)] = 0,
    ) -> Response:
        """The lists whose name contains ``nameLike`` (case-insensitively, taken literally), 15 a page."""
        return _json(await invoker.search_todo_lists(nameLike, max(page, 0)))

    @app.get("/todo-list/{identifier}", responses=_documented(404, success=(200, "The list.", _LIST_SCHEMA)))
    async def find(identifier: Identifier, user: User) -> Response:
        """The todo list with its todos."""
        return _json(await invoker.find_todo_list(identifier))

    @app.delete("/todo-list/{identifier}", status_code=204, responses=_documented(404, 409))
    async def delete(identifier: Identifier, user: User) -> Response:
        """Delete a todo list (refused while it holds a checked todo)."""
        await invoker.delete_todo_list(identifier, user)
        return Response(status_code=204)

    @app.post("/todo-list/{identifier}/todo/", status_code=201, responses=_documented(404, 409))
    async def add_todo(identifier: Identifier, body: ContentBody, user: User) -> CreatedBody:
        """Add a todo to a list (at most five)."""
        return CreatedBody(identifier=await invoker.add_todo(identifier, body.content, user))

    @app.delete("/todo-list/{identifier}/todo/{todo_identifier}", status_code=204, responses=_documented(404, 409))
    async def remove_todo(identifier: Identifier, todo_identifier: Identifier, user: User) -> Response:
        """Remove an unchecked todo from a list."""
        await invoker.remove_todo(identifier, todo_identifier, user)
        return Response(status_code=204)

    @app.put(
        "/todo-list/{identifier}/todo/{todo_identifier}",
        status_code=202,
        response_class=Response,
        responses={**_documented(404, 409), 202: {"description": "Checked.", "content": None}},
    )
    async def check_todo(identifier: Identifier, todo_identifier: Identifier, user: User) -> Response:
        """Check a todo of a list."""
        await invoker.check_todo(identifier, todo_identifier, user)
        return Response(status_code=202)

    return app


def _json(view: Any) -> Response:
    return Response(msgspec.json.encode(view), media_type="application/json")
