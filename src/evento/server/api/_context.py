"""What every route of the API reaches: the server, the API's settings, and (once started) its user store."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request

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
    """

    admin_password: str = ""
    token_ttl_seconds: int = 12 * 3600
    cors_origins: tuple[str, ...] = ()
    metrics_public: bool = False
    #: Where this server's API is reachable by the other servers of its cluster (for forwarded admin requests).
    advertised_url: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


class ApiContext:
    """The server behind the API and the API's own state."""

    def __init__(self, server: EventoServer, settings: ApiSettings) -> None:
        self.server = server
        self.settings = settings

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def api_context(request: Request) -> ApiContext:
    """The :class:`ApiContext` of the app serving ``request`` (a FastAPI dependency)."""
    context: ApiContext = request.app.state.evento
    return context
