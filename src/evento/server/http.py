"""The server's HTTP surface. For now: the public health check; the REST API and GUI mount here."""

from __future__ import annotations

import contextlib
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI

from evento.server.server import EventoServer

__all__ = ["EmbeddedUvicorn", "create_server_app"]


def create_server_app(server: EventoServer) -> FastAPI:
    app = FastAPI(title="Evento Server", version="0.1.0")

    @app.get("/api/health")
    async def health() -> dict[str, object]:
        return {
            "status": "UP",
            "server_id": server.server_id,
            "head": await server.store.head(),
            "nodes": len(server.registry.nodes),
        }

    return app


class EmbeddedUvicorn(uvicorn.Server):
    """A uvicorn server that runs as one task among others: the process owner handles the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield
