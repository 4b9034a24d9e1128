"""Logging in: ``POST /api/auth/login`` trades a user name and password for a token, ``GET /api/auth/me`` says who
a token (or HTTP Basic) authenticates as."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from evento.server.api._context import ApiContext, api_context
from evento.server.api._models import ApiModel
from evento.server.api._security import Viewer, check_password

__all__ = ["router"]

router = APIRouter(prefix="/auth", tags=["auth"])


class LoginRequest(ApiModel):
    """A user name and its password."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class LoginResponse(ApiModel):
    """A token to send as ``Authorization: Bearer …``, when it expires, and the roles it carries."""

    token: str
    expires_at: datetime
    roles: list[str]


class Me(ApiModel):
    """The user a request authenticates as, and its roles."""

    username: str
    roles: list[str]


@router.post(
    "/login",
    summary="Log in",
    responses={401: {"description": "Wrong user name or password"}, 429: {"description": "Too many failures"}},
)
async def login(
    body: LoginRequest, request: Request, context: Annotated[ApiContext, Depends(api_context)]
) -> LoginResponse:
    """A token for the user, valid for the server's token lifetime on every server of its cluster."""
    user = await check_password(context, request, body.username, body.password)
    token, expires_at = context.tokens.issue(user.name)
    return LoginResponse(token=token, expires_at=expires_at, roles=list(user.roles))


@router.get("/me", summary="Who am I")
async def me(principal: Viewer) -> Me:
    """The authenticated user and its roles."""
    return Me(username=principal.username, roles=list(principal.roles))
