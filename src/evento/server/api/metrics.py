"""``GET /metrics``: the server's figures in the Prometheus text format (:attr:`EventoServer.metrics`): bus
connections and in-flight requests, handler invocations and service times, consumer lag and dead events, event
store appends. Readable with viewer rights, or by anyone when the server runs with ``--metrics-public`` (a scraper
inside a trusted network)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasicCredentials
from prometheus_client import CONTENT_TYPE_LATEST

from evento.server.api._context import ApiContext, api_context
from evento.server.api._security import authenticate, basic_credentials, bearer_credentials

__all__ = ["router"]

router = APIRouter(tags=["metrics"])


async def metrics_reader(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_credentials)],
    basic: Annotated[HTTPBasicCredentials | None, Depends(basic_credentials)],
) -> None:
    """Anyone with ``--metrics-public``; otherwise an authenticated user (401 without credentials)."""
    if not api_context(request).settings.metrics_public:
        await authenticate(request, bearer, basic)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    dependencies=[Depends(metrics_reader)],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}, "description": "Metrics"}},
)
async def metrics(context: Annotated[ApiContext, Depends(api_context)]) -> Response:
    """Every metric of this server, in the Prometheus text exposition format."""
    body = context.server.metrics.render()
    return Response(body, media_type=CONTENT_TYPE_LATEST)
