"""Public health checks: ``/api/health`` (the process is live) and ``/api/health/ready`` (it can serve: the event
store answers). Deliberately without credentials, for load balancers and orchestrators."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from evento.errors import EventoError
from evento.server.api._context import ApiContext, api_context

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness")
async def health(context: Annotated[ApiContext, Depends(api_context)]) -> dict[str, object]:
    """The server id, the event store's head and how many bundle instances are connected."""
    server = context.server
    return {
        "status": "UP",
        "serverId": server.server_id,
        "head": await server.store.head(),
        "nodes": len(server.registry.nodes),
    }


@router.get("/health/ready", summary="Readiness", responses={503: {"description": "The event store is unreachable"}})
async def ready(context: Annotated[ApiContext, Depends(api_context)]) -> JSONResponse:
    """Ready when the event store answers a read; 503 with the reason otherwise."""
    try:
        head = await context.server.store.head()
    except EventoError as exc:
        return JSONResponse({"status": "DOWN", "reason": str(exc)}, status_code=503)
    return JSONResponse({"status": "UP", "head": head})
