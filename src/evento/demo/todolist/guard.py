"""What the TodoList HTTP API does with requests it cannot serve: bounds checked before anything is read or
authenticated, and one JSON error shape for every failure.

Every error answers ``{"error": one-line message, "type": kind}``: 4xx for what the client caused, 5xx for a
fault of the server side (its message says what kind of fault without exposing internals; the traceback goes to
the server's log). :func:`install` wires both into an application.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from evento.demo.todolist.aggregate import TodoListRuleError
from evento.demo.todolist.projection import TodoListNotFoundError
from evento.errors import (
    AggregateDeletedError,
    AggregateInitializedError,
    AggregateNotInitializedError,
    ConnectionLostError,
    ConsumerStoreUnavailableError,
    EventoError,
    EventStoreError,
    InvalidEventError,
    InvalidPayloadError,
    LockTimeoutError,
    NoHandlerError,
    RequestTimeoutError,
    TooManyPendingRequestsError,
)
from evento.event_stores.base import VersionConflictError

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_TARGET_BYTES",
    "ErrorBody",
    "RequestLimits",
    "Unauthorized",
    "error_response",
    "install",
    "status_of",
]

log = logging.getLogger(__name__)

#: The largest request body accepted (declared or streamed).
MAX_BODY_BYTES = 64 * 1024
#: The largest header block accepted, counted as sent (each field's name, value, ": " and line end).
MAX_HEADER_BYTES = 8 * 1024
#: The longest request target (path and query string, as sent) accepted.
MAX_TARGET_BYTES = 4 * 1024
_MAX_MESSAGE = 300
_MAX_VALIDATION_ERRORS = 5

# The status of a handler error, looked up along its class's MRO so that a subclass nobody listed (an Evento error
# added later, say) gets the status of its nearest listed ancestor; an EventoError with none is a server fault.
_STATUS: dict[type[BaseException], int] = {
    InvalidPayloadError: 400,
    AggregateNotInitializedError: 404,
    AggregateDeletedError: 404,
    TodoListNotFoundError: 404,
    TodoListRuleError: 409,
    AggregateInitializedError: 409,
    VersionConflictError: 409,  # another command changed the list first: the caller may retry
    NoHandlerError: 503,
    TooManyPendingRequestsError: 503,
    ConnectionLostError: 503,
    LockTimeoutError: 503,  # nothing ran: retrying is safe
    EventStoreError: 503,  # nothing was stored: retrying is safe
    ConsumerStoreUnavailableError: 503,
    RequestTimeoutError: 504,
    InvalidEventError: 500,  # a handler answered with an event the server would not store: that bundle's fault
    EventoError: 500,
}


class ErrorBody(BaseModel):
    """The body of every error response: a one-line message and the kind of error."""

    error: str
    type: str


class Unauthorized(Exception):
    """The request carries no usable ``Authorization: Bearer <user>`` (HTTP 401)."""


def status_of(exc: BaseException) -> int:
    """The HTTP status of a handler error: that of the nearest class of its MRO in the table, else 500."""
    return next((_STATUS[cls] for cls in type(exc).__mro__ if cls in _STATUS), 500)


def _one_line(text: str) -> str:
    # Newlines and runs of blanks become one space; a lone surrogate (not encodable) an escape.
    line = " ".join(text.encode("utf-8", "backslashreplace").decode("utf-8").split())
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 1] + "…"


def error_response(status: int, message: str, kind: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """``{"error": message, "type": kind}`` with ``status``; the message is cut to one line."""
    body = {"error": _one_line(message) or HTTPStatus(status).phrase, "type": kind}
    return JSONResponse(body, status_code=status, headers=headers)


def _kind_of_status(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.title().replace(" ", "").replace("-", "")
    except ValueError:
        return f"HTTP{status}"


def _describe(exc: RequestValidationError) -> str:
    errors = exc.errors()
    described = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in errors]
    more = len(described) - _MAX_VALIDATION_ERRORS
    return "; ".join(described[:_MAX_VALIDATION_ERRORS]) + (f"; and {more} more" if more > 0 else "")


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(400, _describe(exc) or "invalid request", "ValidationError")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    # FastAPI's only 400 is a body it could not decode (not UTF-8, say): the same kind as a malformed one.
    kind = "ValidationError" if exc.status_code == 400 else _kind_of_status(exc.status_code)
    headers = exc.headers
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
    return error_response(exc.status_code, str(exc.detail), kind, headers)


def _allowed_methods(request: Request) -> list[str]:
    # Starlette's Allow names the methods of the first route with this path only; each method is a route here.
    routes = [route for route in request.app.routes if isinstance(route, Route)]
    return sorted(
        {method for route in routes if route.matches(request.scope)[0] != Match.NONE for method in route.methods or ()}
    )


async def _unauthorized(request: Request, exc: Exception) -> Response:
    return error_response(401, str(exc), "Unauthorized", {"WWW-Authenticate": "Bearer"})


async def _handler_error(request: Request, exc: Exception) -> Response:
    status = status_of(exc)
    if status == 500:
        # An Evento error of no listed kind: the framework failed, not the client; the detail stays in the log.
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error_response(500, f"internal server error ({type(exc).__name__})", "InternalServerError")
    return error_response(status, str(exc), type(exc).__name__)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Starlette re-raises the exception once this response is sent, so the server logs its traceback.
    return error_response(500, f"internal server error ({type(exc).__name__})", "InternalServerError")


def install(app: FastAPI) -> None:
    """Give ``app`` the request bounds (outermost, before authentication) and the JSON error handlers."""
    handlers: dict[type[Exception], Callable[[Request, Exception], Awaitable[Response]]] = {
        RequestValidationError: _invalid,
        HTTPException: _http_error,
        Unauthorized: _unauthorized,
        EventoError: _handler_error,
        TodoListRuleError: _handler_error,
        TodoListNotFoundError: _handler_error,
        Exception: _unexpected,  # Starlette's outermost layer: also catches what the others raise
    }
    for cls, handler in handlers.items():
        app.add_exception_handler(cls, handler)
    app.add_middleware(RequestLimits)


class RequestLimits:
    """ASGI middleware refusing oversized requests before the application reads them.

    A request target over ``max_target`` bytes answers 414, headers over ``max_headers`` bytes (as sent) 431, and a
    body over ``max_body`` bytes 413: at once when its ``Content-Length`` says so, else as soon as the streamed
    (chunked) body passes the bound; what is left of it is never read, and the connection is closed.
    Within the bounds the body is read whole (at most ``max_body`` bytes) and handed to the application.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body: int = MAX_BODY_BYTES,
        max_headers: int = MAX_HEADER_BYTES,
        max_target: int = MAX_TARGET_BYTES,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.max_headers = max_headers
        self.max_target = max_target

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refuse_head(scope)
        body: bytes | None = None
        if refusal is None:
            body, refusal = await self._read_body(receive)
        if refusal is not None:
            await refusal(scope, receive, send)
        elif body is not None:
            await self.app(scope, _replay(body, receive), send)

    def _refuse_head(self, scope: Scope) -> Response | None:
        target = len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string", b""))
        if target > self.max_target:
            return _refuse(414, f"request target longer than {self.max_target} bytes", "URITooLong")
        headers = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
        if headers > self.max_headers:
            return _refuse(431, f"request headers larger than {self.max_headers} bytes", "RequestHeaderFieldsTooLarge")
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_body:
            return self._too_large()
        return None

    async def _read_body(self, receive: Receive) -> tuple[bytes | None, Response | None]:
        """The whole body, or the refusal once it passes the bound; ``(None, None)`` if the client left."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None, None  # http.disconnect: nobody to answer
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None, self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None

    def _too_large(self) -> Response:
        return _refuse(413, f"request body larger than {self.max_body} bytes", "ContentTooLarge")


def _refuse(status: int, message: str, kind: str) -> Response:
    # The rest of the request is left unread: closing is the only way to not take it for the next request.
    return error_response(status, message, kind, {"Connection": "close"})


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed one; otherwise the bytes read are still counted
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields ``body`` as one message, then defers to ``receive`` (for the disconnect)."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
