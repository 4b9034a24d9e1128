"""The HTTP rules both example edges follow (the published contract, part A).

Bodies are read by hand and decoded by msgspec into typed structs, before the path is looked at: a bad body is
400 whether or not the path's resource exists, and FastAPI's own validation (422) never runs. Errors are
``{"error": message}`` with a 4xx (or 503/504 when a service does not answer), never a traceback.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, TypeVar

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from evento.demo.shared.errors import DomainRuleError, NotFoundError
from evento.errors import (
    AggregateNotInitializedError,
    ConnectionLostError,
    LockTimeoutError,
    NoHandlerError,
    RequestTimeoutError,
    TooManyPendingRequestsError,
)

__all__ = ["MAX_BODY", "BadRequest", "json_response", "new_id", "read_body", "require_uuid", "with_error_handlers"]

log = logging.getLogger(__name__)

#: Bodies are a few fields: anything larger is refused before it is decoded.
MAX_BODY = 16 * 1024
B = TypeVar("B")

_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}


class BadRequest(Exception):
    """The request's body is not what the route takes (HTTP 400)."""


def new_id() -> str:
    """A server-made id: a version 4 UUID, URL safe and returned as a JSON string."""
    return str(uuid.uuid4())


def require_uuid(value: str, field: str) -> str:
    """``value`` if it is a UUID in canonical text, else :class:`BadRequest` naming ``field``."""
    try:
        canonical = str(uuid.UUID(value))
    except ValueError:
        raise BadRequest(f"{field} must be a UUID") from None
    if canonical != value.lower():
        raise BadRequest(f"{field} must be a UUID in canonical form")
    return value


async def read_body(request: Request, body_type: type[B]) -> B:
    """The request body decoded as ``body_type`` (a msgspec struct): JSON, an object, every field of its type."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise BadRequest(f"the body must be a JSON object of at most {MAX_BODY} bytes")
    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY:
            raise BadRequest(f"the body must be a JSON object of at most {MAX_BODY} bytes")
    decoder = _decoders.get(body_type)
    if decoder is None:
        decoder = _decoders[body_type] = msgspec.json.Decoder(body_type)
    try:
        body: B = decoder.decode(data)
    except msgspec.DecodeError as exc:  # ValidationError included: it names the field and the expected type
        raise BadRequest(str(exc) if data.strip() else "the body must be a JSON object") from None
    return body


def json_response(content: Any, status_code: int = 200) -> Response:
    """A JSON response of msgspec structs, lists or dicts, encoded by msgspec (a seat map is 200 000 seats)."""
    return Response(msgspec.json.encode(content), status_code=status_code, media_type="application/json")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


_STATUS: list[tuple[type[Exception], int]] = [
    (BadRequest, 400),
    (NotFoundError, 404),
    (AggregateNotInitializedError, 404),
    (DomainRuleError, 409),
    (RequestTimeoutError, 504),
    (LockTimeoutError, 503),
    (NoHandlerError, 503),
    (ConnectionLostError, 503),
    (TooManyPendingRequestsError, 503),
]


def with_error_handlers(app: FastAPI) -> FastAPI:
    """Map the examples' errors to statuses; FastAPI's 422 becomes 400; anything else a one-line 500."""

    async def known(request: Request, exc: Exception) -> JSONResponse:
        status = next(code for cls, code in _STATUS if isinstance(exc, cls))
        return _error(status, str(exc) or type(exc).__name__)

    for cls, _ in _STATUS:
        app.add_exception_handler(cls, known)

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        return _error(400, "invalid request")

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, str(exc.detail))

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed: %r", request.method, request.url.path, exc)
        return _error(500, f"internal error ({type(exc).__name__})")

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
    return app
