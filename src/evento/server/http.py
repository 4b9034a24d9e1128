"""The server's HTTP surface: the REST API (and the GUI) served by an embedded uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import TYPE_CHECKING, Any

import uvicorn

from evento.server.api import ApiContext, ApiSettings, create_api
from evento.server.gui import mount_gui

if TYPE_CHECKING:
    from collections.abc import Generator

    from fastapi import FastAPI

    from evento.server.server import EventoServer

__all__ = ["MAX_REQUEST_HEAD_BYTES", "EmbeddedUvicorn", "ServerHttp", "create_server_app"]

#: A request head (request line and headers) still incomplete past this many bytes is refused (400) and its
#: connection closed: h11's bound, named so it holds even where httptools is installed (uvicorn would pick that
#: parser, which has none). Applications bound the heads that do arrive whole (the TodoList API: 4 + 8 KiB).
MAX_REQUEST_HEAD_BYTES = 16 * 1024


def create_server_app(server: EventoServer, settings: ApiSettings | None = None) -> FastAPI:
    """The server's HTTP app: the REST API (:mod:`evento.server.api`), ``/metrics`` and the GUI at ``/``."""
    return mount_gui(create_api(server, settings))


class EmbeddedUvicorn(uvicorn.Server):
    """A uvicorn server that runs as one task among others: the process owner handles the signals.

    ``await http.start()`` returns once it listens (or raises why it could not: an :class:`OSError` when the
    address cannot be bound, before uvicorn logs anything or exits); ``await http.stop()`` ends it.
    """

    def __init__(self, app: Any, host: str, port: int, *, graceful_shutdown_seconds: int | None = None) -> None:
        config = uvicorn.Config(
            app,
            host,
            port,
            log_level="warning",
            http="h11",
            h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,
            timeout_graceful_shutdown=graceful_shutdown_seconds,
        )
        super().__init__(config)
        self._serving: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def start(self) -> None:
        self._serving = asyncio.create_task(self.serve(sockets=_bind(self.config.host, self.config.port)))
        while not self.started:
            if self._serving.done():
                self._serving.result()  # raises the startup error, if any
                raise RuntimeError(f"HTTP server on {self.config.host}:{self.config.port} stopped while starting")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.should_exit = True
        if self._serving is not None:
            await asyncio.gather(self._serving, return_exceptions=True)

    @property
    def port(self) -> int:
        """The port it listens on (the one the OS chose when started on port 0)."""
        port: int = self.servers[0].sockets[0].getsockname()[1]
        return port


class ServerHttp:
    """The server's HTTP surface as a runner starts it: the API's state first (users, the admin login, the token
    key: a database that fails says so here, not in uvicorn's log), then the listener; on stop, the API's
    long-lived responses (server-sent events) end before uvicorn waits for its connections to finish."""

    def __init__(self, server: EventoServer, settings: ApiSettings, host: str, port: int) -> None:
        self.app = create_server_app(server, settings)
        self.context: ApiContext = self.app.state.evento
        # Past this, connections still open at stop are closed: a stop never hangs on a client.
        self.uvicorn = EmbeddedUvicorn(self.app, host, port, graceful_shutdown_seconds=5)

    @property
    def port(self) -> int:
        return self.uvicorn.port

    def url(self, host: str | None = None) -> str:
        """``http://host:port`` of the listener (``host`` as clients should name it; default the bound one)."""
        host = host or self.uvicorn.config.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def advertised_url(self) -> str:
        """Where the other servers of a cluster reach this API (to relay admin requests): the settings' URL when
        given (``--advertised-url``), else the listener's, with this machine's name for a wildcard address."""
        if self.context.settings.advertised_url:
            return self.context.settings.advertised_url
        host = self.uvicorn.config.host
        return self.url(socket.gethostname() if host in ("", "0.0.0.0", "::") else host)

    async def start(self) -> None:
        await self.context.start()
        await self.uvicorn.start()

    async def stop(self) -> None:
        await self.context.stop()
        await self.uvicorn.stop()


def _bind(host: str, port: int) -> list[socket.socket]:
    """Sockets bound to every address of ``host`` on ``port``, as uvicorn's own ``create_server`` would bind,
    but here: uvicorn logs a bind error and calls ``sys.exit``, while the caller of this gets the
    :class:`OSError` and can name the option that chose the port."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    listeners: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            listener = socket.socket(family, kind, proto)
            listeners.append(listener)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # as asyncio does: a v6 socket beside the v4 one serves only v6
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            listener.bind(address)
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    return listeners
