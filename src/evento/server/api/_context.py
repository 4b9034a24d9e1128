"""What every route of the API reaches: the server, the API's settings, and (once started) its users, token
issuer and login throttle."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request

from evento.server.api._security import LoginThrottle, TokenIssuer
from evento.server.users import AdminLogin, UserStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from fastapi import FastAPI

    from evento.server.server import EventoServer

__all__ = ["ApiContext", "ApiSettings", "api_context"]


@dataclass(frozen=True)
class ApiSettings:
    """The API's options, as ``evento server`` and ``evento demo`` take them.

    ``admin_password``: the ``admin`` user's password (``--admin-password`` / ``EVENTO_ADMIN_PASSWORD``); when empty
    and no admin exists yet, one is generated at first start and printed once. ``cors_origins``: origins allowed
    to call the API from a browser (none by default). ``metrics_public``: ``/metrics`` without credentials.
    ``max_auth_failures`` failed logins by one name or from one address within ``auth_failure_window_seconds``
    lock it out for ``auth_lockout_seconds`` (429).
    """

    admin_password: str = ""
    #: The name the dashboard shows for the cluster (``--cluster-name``).
    cluster_name: str = "evento"
    token_ttl_seconds: int = 12 * 3600
    cors_origins: tuple[str, ...] = ()
    metrics_public: bool = False
    #: Where this server's API is reachable by the other servers of its cluster (for forwarded admin requests).
    advertised_url: str | None = None
    max_auth_failures: int = 10
    auth_failure_window_seconds: float = 60.0
    auth_lockout_seconds: float = 30.0
    #: Seconds between two looks at the cluster's membership for ``/api/cluster-status/stream``.
    cluster_poll_seconds: float = 1.0
    extra: dict[str, str] = field(default_factory=dict)


class ApiContext:
    """The server behind the API and the API's own state. :meth:`start` (idempotent; the app's lifespan calls it
    too) creates the users table, settles the admin login and the token key."""

    def __init__(self, server: EventoServer, settings: ApiSettings) -> None:
        self.server = server
        self.settings = settings
        self.throttle = LoginThrottle(
            settings.max_auth_failures, settings.auth_failure_window_seconds, settings.auth_lockout_seconds
        )
        #: Set when the API stops: long-lived responses (server-sent events) end on it.
        self.stopping = asyncio.Event()
        self._users: UserStore | None = None
        self._tokens: TokenIssuer | None = None
        self._admin_login: AdminLogin | None = None
        self._start_lock = asyncio.Lock()

    @property
    def users(self) -> UserStore:
        if self._users is None:
            raise RuntimeError("the API is not started: ApiContext.start() creates its user store")
        return self._users

    @property
    def tokens(self) -> TokenIssuer:
        if self._tokens is None:
            raise RuntimeError("the API is not started: ApiContext.start() reads its token key")
        return self._tokens

    @property
    def admin_login(self) -> AdminLogin:
        """The admin user, and its password when this start generated it (to print once)."""
        if self._admin_login is None:
            raise RuntimeError("the API is not started")
        return self._admin_login

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def start(self) -> None:
        async with self._start_lock:
            self.stopping.clear()
            if self._users is not None:
                return
            users = UserStore(self.server.database)
            await users.start()
            self._admin_login = await users.ensure_admin(self.settings.admin_password)
            self._tokens = TokenIssuer(await users.token_key(), self.settings.token_ttl_seconds)
            self._users = users

    async def stop(self) -> None:
        self.stopping.set()


def api_context(request: Request) -> ApiContext:
    """The :class:`ApiContext` of the app serving ``request`` (a FastAPI dependency)."""
    context: ApiContext = request.app.state.evento
    return context
