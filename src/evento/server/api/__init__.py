"""The server's REST API (FastAPI, under ``/api``): the control plane the GUI, the CLI and users' scripts share.

JSON in camelCase, lists paged as ``{items, total, page, size}``, errors as ``application/problem+json``, OpenAPI
at ``/api/openapi.json`` and interactive docs at ``/api/docs``. Every route but ``/api/health*`` needs a user with
the ``viewer`` role, and every change the ``admin`` role (:mod:`evento.server.api._security`). Each area of the
API is one module with its own router.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from evento._version import __version__
from evento.server.api import (
    auth,
    bundles,
    catalog,
    cluster,
    consumers,
    dashboard,
    flows,
    health,
    metrics,
    performance,
    state_store,
)
from evento.server.api._context import ApiContext, ApiSettings
from evento.server.api._problems import install_problem_handlers

if TYPE_CHECKING:
    from evento.server.server import EventoServer

__all__ = ["ApiContext", "ApiSettings", "create_api"]


def create_api(server: EventoServer, settings: ApiSettings | None = None) -> FastAPI:
    """The HTTP app of ``server``: the REST API under ``/api`` and ``/metrics``. Its users and token keys are
    kept in the server's database (:meth:`ApiContext.start` runs on the app's startup)."""
    context = ApiContext(server, settings or ApiSettings())
    app = FastAPI(
        title="Evento Server",
        version=__version__,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,  # no OAuth2 flows: tokens come from /api/auth/login
        lifespan=context.lifespan,
    )
    app.state.evento = context
    install_problem_handlers(app)
    if context.settings.cors_origins:  # off unless asked: a browser page elsewhere may not call the API
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(context.settings.cors_origins),
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type"],
        )
    for module in (
        health,
        auth,
        dashboard,
        cluster,
        bundles,
        catalog,
        consumers,
        flows,
        performance,
        state_store,
    ):
        app.include_router(module.router, prefix="/api")
    app.include_router(metrics.router)
    return app
