"""Who is calling: the API's authentication (Bearer tokens and HTTP Basic) and its two roles.

A route declares what it needs by a parameter: ``principal: Viewer`` (any user: every read) or ``principal:
Admin`` (the ``admin`` role: every change), or for a whole router ``APIRouter(dependencies=[ViewerRequired])``.
Anonymous or wrong credentials answer 401 with ``WWW-Authenticate``, a viewer on an admin route 403.

Tokens come from ``POST /api/auth/login``: JWTs signed (HS256) with a key kept in the server's database, so every
server of a cluster accepts every token, and expiring after ``ApiSettings.token_ttl_seconds``. Scripts may send
``Authorization: Basic`` instead. Passwords are checked in constant time (argon2, and the same time for unknown
names); after ``max_auth_failures`` failures within a window, by one user name or from one client address, further
attempts get 429 for ``auth_lockout_seconds``, right or wrong.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer

from evento.server.users import Role, User

if TYPE_CHECKING:
    from evento.server.api._context import ApiContext

__all__ = [
    "Admin",
    "AdminRequired",
    "LoginThrottle",
    "Principal",
    "TokenIssuer",
    "Viewer",
    "ViewerRequired",
    "authenticate",
    "basic_credentials",
    "bearer_credentials",
    "require_admin",
    "require_viewer",
]

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="evento"'}
_ISSUER = "evento"
_ALGORITHM = "HS256"


@dataclass(frozen=True)
class Principal:
    """The authenticated user of a request and the roles it holds (an admin holds ``viewer`` too)."""

    username: str
    roles: tuple[str, ...]

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN.value in self.roles

    @classmethod
    def of(cls, user: User) -> Principal:
        return cls(user.name, user.roles)


class InvalidTokenError(Exception):
    """A token that does not authenticate; the message says why in words a client can show."""


class TokenIssuer:
    """Signs and checks the API's tokens (JWT, HS256): the user name as subject, an expiry, this API as issuer."""

    def __init__(self, key: bytes, ttl_seconds: float) -> None:
        self._key = key
        self.ttl_seconds = ttl_seconds

    def issue(self, username: str, now: float | None = None) -> tuple[str, datetime]:
        """A token for ``username`` and when it expires; ``now`` (epoch seconds) only for tests of expiry."""
        issued = time.time() if now is None else now
        expires = issued + self.ttl_seconds
        claims = {"sub": username, "iss": _ISSUER, "iat": int(issued), "exp": int(expires)}
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM), datetime.fromtimestamp(int(expires), UTC)

    def subject(self, token: str) -> str:
        """The user name a valid token was issued to; raises :class:`InvalidTokenError` saying why not."""
        try:
            claims = jwt.decode(
                token, self._key, algorithms=[_ALGORITHM], issuer=_ISSUER, options={"require": ["exp", "sub", "iss"]}
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidTokenError("the token expired: log in again") from exc
        except jwt.InvalidTokenError as exc:
            raise InvalidTokenError("the token is not valid") from exc
        return str(claims["sub"])


class LoginThrottle:
    """Counts failed authentications per key (a user name, a client address): ``max_failures`` within ``window``
    seconds lock the key for ``lockout`` seconds. In memory, per server: an attacker spreading attempts over the
    servers of a cluster gets the limit once per server."""

    MAX_KEYS = 100_000

    def __init__(
        self,
        max_failures: int = 10,
        window: float = 60.0,
        lockout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}

    def retry_after(self, *keys: str) -> float | None:
        """Seconds until the most locked of ``keys`` may try again; ``None`` when none is locked."""
        now = self._clock()
        waits = [until - now for key in keys if (until := self._locked_until.get(key, 0.0)) > now]
        return max(waits) if waits else None

    def failed(self, *keys: str) -> None:
        now = self._clock()
        if len(self._failures) > self.MAX_KEYS:
            self._forget_before(now - self.window)
        for key in keys:
            failures = self._failures.setdefault(key, deque())
            failures.append(now)
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            if len(failures) >= self.max_failures:
                self._locked_until[key] = now + self.lockout
                failures.clear()

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)

    def _forget_before(self, horizon: float) -> None:
        now = self._clock()
        self._failures = {key: times for key, times in self._failures.items() if times and times[-1] > horizon}
        self._locked_until = {key: until for key, until in self._locked_until.items() if until > now}


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.evento
    return context


def _client(request: Request) -> str:
    return f"address:{request.client.host if request.client else 'unknown'}"


def unauthorized(detail: str) -> HTTPException:
    """A 401 carrying the challenge a client answers with credentials."""
    return HTTPException(401, detail, headers=CHALLENGE)


def check_throttle(context: ApiContext, *keys: str) -> None:
    """Raise 429 (with ``Retry-After``) while any of ``keys`` is locked by too many failures."""
    wait = context.throttle.retry_after(*keys)
    if wait is not None:
        raise HTTPException(
            429,
            f"too many failed logins: try again in {math.ceil(wait)} s",
            headers={"Retry-After": str(math.ceil(wait))},
        )


async def check_password(context: ApiContext, request: Request, username: str, password: str) -> User:
    """The user whose password this is (throttled, constant-time); raises 401 or 429."""
    user_key, address_key = f"user:{username}", _client(request)
    check_throttle(context, user_key, address_key)
    user = await context.users.verify(username, password)
    if user is None:
        context.throttle.failed(user_key, address_key)
        raise unauthorized("wrong user name or password")
    context.throttle.succeeded(user_key)
    return user


#: The two ways to authenticate, as FastAPI dependencies (``None`` when absent), documented in the OpenAPI.
bearer_credentials = HTTPBearer(auto_error=False, description="A token from POST /api/auth/login")
basic_credentials = HTTPBasic(auto_error=False, description="User name and password, for scripts")


async def authenticate(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_credentials)],
    basic: Annotated[HTTPBasicCredentials | None, Depends(basic_credentials)],
) -> Principal:
    """The user a request authenticates as, by Bearer token or HTTP Basic; raises 401 (or 429) otherwise."""
    context = _context(request)
    if bearer is not None:
        # A valid token passes whatever others did from the same address; a bad one is throttled like a password.
        try:
            username = context.tokens.subject(bearer.credentials)
        except InvalidTokenError as exc:
            address_key = _client(request)
            check_throttle(context, address_key)
            if "expired" not in str(exc):  # an expired token is ordinary; a forged one is an attempt
                context.throttle.failed(address_key)
            raise unauthorized(str(exc)) from exc
        user = await context.users.get(username)
        if user is None:
            raise unauthorized("the token's user no longer exists")
        return Principal.of(user)
    if basic is not None:
        return Principal.of(await check_password(context, request, basic.username, basic.password))
    raise unauthorized("credentials required: a Bearer token from POST /api/auth/login, or HTTP Basic")


async def require_viewer(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    """Any authenticated user (both roles read)."""
    return principal


async def require_admin(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    """An authenticated user with the ``admin`` role; 403 for a viewer."""
    if not principal.is_admin:
        raise HTTPException(403, f"the user {principal.username!r} is a viewer: this needs the admin role")
    return principal


#: A route parameter for any authenticated user: ``principal: Viewer``.
Viewer = Annotated[Principal, Depends(require_viewer)]
#: A route parameter for an admin: ``principal: Admin``.
Admin = Annotated[Principal, Depends(require_admin)]
#: For ``APIRouter(dependencies=[...])`` or a route's ``dependencies=[...]`` when the principal is not needed.
ViewerRequired = Depends(require_viewer)
AdminRequired = Depends(require_admin)
