"""Errors as ``application/problem+json`` (RFC 9457): every client mistake a 4xx with one readable line, every
failure a JSON body, never a traceback.

A route signals a client mistake with :class:`fastapi.HTTPException` (its ``detail`` becomes the problem's) or
lets an :class:`~evento.errors.EventoError` escape: its status comes from, in order, the error's ``http_status``
class attribute, the table below (core errors, and by name the control plane's: an unknown consumer 404, a bundle
still online 409, an instance out of reach 503), or its kind (a :class:`LookupError` 404, a
:class:`ConnectionError` 503, a :class:`TimeoutError` 504, anything else 500). Invalid input is a 422 naming the
first wrong field, in msgspec's words: ``Expected `int`, got `str` - at query `size```.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from evento.errors import (
    AggregateDeletedError,
    AggregateInitializedError,
    AggregateNotInitializedError,
    EventoError,
    InvalidPayloadError,
    NoHandlerError,
    TooManyPendingRequestsError,
)
from evento.server.api._models import Problem
from evento.storage.urls import without_passwords

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from fastapi import FastAPI, Request

__all__ = ["PROBLEM_MEDIA_TYPE", "install_problem_handlers", "problem_response", "status_of"]

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"

#: Statuses of errors, by class (``module:qualname``, so the control plane's errors are known without importing
#: them here); a subclass takes its nearest listed base's.
_STATUSES: dict[str, int] = {
    f"{cls.__module__}:{cls.__qualname__}": status
    for cls, status in (
        (InvalidPayloadError, 422),
        (AggregateNotInitializedError, 404),
        (AggregateDeletedError, 410),
        (AggregateInitializedError, 409),
        (NoHandlerError, 503),
        (TooManyPendingRequestsError, 503),
    )
} | {
    "evento.server.admin:ConsumerNotFoundError": 404,
    "evento.server.admin:ConsumerUnreachableError": 503,
    "evento.server.catalog:BundleOnlineError": 409,
    "evento.server.catalog:BundleNotFoundError": 404,
    "evento.server.users:UserExistsError": 409,
    "evento.server.users:UserNotFoundError": 404,
}


def status_of(error: BaseException) -> int:
    """The HTTP status an error escaping a route answers with (see the module's docstring)."""
    declared = getattr(type(error), "http_status", None)
    if isinstance(declared, int):
        return declared
    for cls in type(error).__mro__:
        status = _STATUSES.get(f"{cls.__module__}:{cls.__qualname__}")
        if status is not None:
            return status
    if isinstance(error, EventoError):
        if isinstance(error, LookupError):
            return 404
        if isinstance(error, TimeoutError):
            return 504
        if isinstance(error, ConnectionError):
            return 503
    return 500


def problem_response(status: int, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """A problem document answering with ``status``: its title the status's phrase, ``detail`` one line."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body = Problem(title=title, status=status, detail=" ".join(detail.split()) or title)
    return JSONResponse(body.model_dump(), status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as a problem document, and say so in its OpenAPI document (every operation's
    422 and other error answers are :class:`Problem`)."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(EventoError, _evento_error)
    app.add_exception_handler(Exception, _unexpected_error)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _document_problems(generate())
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return problem_response(exc.status_code, detail, exc.headers)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return problem_response(422, validation_line(exc.errors()))


async def _evento_error(request: Request, exc: Exception) -> JSONResponse:
    status = status_of(exc)
    if status >= 500:
        log.warning("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    return problem_response(status, without_passwords(str(exc)) or type(exc).__name__)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # A bug: its traceback goes to the log, the client learns only that it happened.
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return problem_response(500, "the server failed to answer this request; its log says why")


# --- validation errors in one line ---------------------------------------------------------------------------

_EXPECTED = {
    "int_parsing": "int",
    "int_type": "int",
    "int_from_float": "int",
    "float_parsing": "number",
    "float_type": "number",
    "bool_parsing": "bool",
    "bool_type": "bool",
    "string_type": "str",
    "dict_type": "object",
    "model_type": "object",
    "model_attributes_type": "object",
    "list_type": "array",
    "enum": "enum",
    "literal_error": "enum",
}


def validation_line(errors: Sequence[Any]) -> str:
    """The first of pydantic's validation errors as one line naming the field (and how many more there are)."""
    if not errors:
        return "invalid request"
    first = errors[0]
    kind = str(first.get("type", ""))
    loc = tuple(first.get("loc", ()))
    message = _message(kind, first, loc)
    if kind == "json_invalid":  # its location is a character position, not a field
        return message
    more = len(errors) - 1
    suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
    return f"{message} - at {_where(loc)}{suffix}"


def _message(kind: str, error: Mapping[str, Any], loc: tuple[Any, ...]) -> str:
    expected = _EXPECTED.get(kind)
    if kind == "missing":
        return f"Missing required {'field' if loc[:1] == ('body',) else 'parameter'}"
    if kind == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "")
        where = f" at character {loc[1]}" if len(loc) > 1 else ""
        return f"Invalid JSON{where}: {reason}" if reason else f"Invalid JSON{where}"
    if kind.startswith(("datetime_", "date_")) and kind.endswith("parsing"):
        return "Expected an ISO 8601 date-time (2026-01-31T12:00:00Z)"
    if expected == "enum":
        return f"Expected {(error.get('ctx') or {}).get('expected', 'one of the listed values')}"
    if expected is not None:
        return f"Expected `{expected}`, got `{_json_type(error.get('input'))}`"
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str | bytes):
        return "str"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _where(loc: tuple[Any, ...]) -> str:
    """``$.a.b[0]`` in the body, or ``query `size``` (path, header, cookie) for a parameter."""
    if not loc:
        return "`$`"
    source, rest = loc[0], loc[1:]
    if source == "body":
        path = "$"
        for part in rest:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        return f"`{path}`"
    return f"{source} `{'.'.join(str(part) for part in rest)}`"


# --- the OpenAPI document ------------------------------------------------------------------------------------


def _document_problems(schema: dict[str, Any]) -> None:
    """Every operation's error answers described as what they are: a :class:`Problem` document. FastAPI documents
    its own 422 body, which this API never sends; a ``default`` answer covers the other errors (401, 403, 404, 429,
    503…), so a client and schemathesis know their shape."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    problem = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, response in responses.items():
                if status == "422" or (status[:1] in "45" and "content" not in response):
                    response["content"] = problem
            responses.setdefault("default", {"description": "An error, as a problem document", "content": problem})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
