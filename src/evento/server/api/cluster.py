"""The cluster's membership: ``GET /api/cluster-status/view`` (every server and every online bundle instance, on
any server of the cluster, with its enabled state) and ``GET /api/cluster-status/stream``, the same as server-sent
events: the whole view first (``view``), then ``join``, ``leave``, ``enable`` and ``disable`` of instances and
``server-up`` / ``server-down`` of servers as they happen.

The stream compares the catalog's rows (shared by the cluster) every ``ApiSettings.cluster_poll_seconds``, so it
sees the instances of every server, not only this one's; it ends when the client leaves or the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.sse import EventSourceResponse, ServerSentEvent

from evento.errors import EventoError
from evento.server.api._context import ApiContext, api_context
from evento.server.api._models import ApiModel, instant
from evento.server.api._security import ViewerRequired
from evento.server.catalog import InstanceRecord, ServerRecord

__all__ = ["ClusterView", "cluster_view", "router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/cluster-status", tags=["cluster"], dependencies=[ViewerRequired])


class InstanceView(ApiModel):
    """An online bundle instance, on the server it is connected to."""

    bundle_id: str
    instance_id: str
    bundle_version: int
    server_id: str
    enabled: bool
    joined_at: datetime


class ServerView(ApiModel):
    """A server of the cluster: online while it beats its heartbeat."""

    server_id: str
    http_url: str | None
    started_at: datetime
    last_seen_at: datetime
    online: bool


class ClusterView(ApiModel):
    """Every server of the cluster and every online bundle instance."""

    servers: list[ServerView]
    instances: list[InstanceView]


def _instance(record: InstanceRecord) -> InstanceView:
    return InstanceView(
        bundle_id=record.bundle_id,
        instance_id=record.instance_id,
        bundle_version=record.bundle_version,
        server_id=record.server_id,
        enabled=record.enabled,
        joined_at=instant(record.joined_ms),
    )


def _server(record: ServerRecord) -> ServerView:
    return ServerView(
        server_id=record.server_id,
        http_url=record.http_url,
        started_at=instant(record.started_ms),
        last_seen_at=instant(record.last_seen_ms),
        online=record.online,
    )


async def cluster_view(context: ApiContext) -> ClusterView:
    """The cluster as the catalog shows it now, in a stable order."""
    catalog = context.server.catalog
    servers = sorted(await catalog.servers(), key=lambda s: s.server_id)
    instances = sorted(await catalog.instances(), key=lambda i: (i.bundle_id, i.instance_id, i.server_id))
    return ClusterView(servers=[_server(s) for s in servers], instances=[_instance(i) for i in instances])


@router.get("/view", summary="Servers and bundle instances")
async def view(context: Annotated[ApiContext, Depends(api_context)]) -> ClusterView:
    """Every server of the cluster and every online bundle instance, wherever it is connected."""
    return await cluster_view(context)


def changes(before: ClusterView, after: ClusterView) -> list[ServerSentEvent]:
    """The events that turn ``before`` into ``after``: instances that joined, left, were enabled or disabled, and
    servers that came up or went down."""
    events: list[ServerSentEvent] = []
    old = {(i.bundle_id, i.instance_id, i.server_id): i for i in before.instances}
    new = {(i.bundle_id, i.instance_id, i.server_id): i for i in after.instances}
    for key, instance in old.items():
        if key not in new:
            events.append(ServerSentEvent(event="leave", data=instance))
    for key, instance in new.items():
        previous = old.get(key)
        if previous is None:
            events.append(ServerSentEvent(event="join", data=instance))
        elif previous.enabled != instance.enabled:
            events.append(ServerSentEvent(event="enable" if instance.enabled else "disable", data=instance))
    old_servers = {s.server_id: s.online for s in before.servers}
    events.extend(
        ServerSentEvent(event="server-up" if server.online else "server-down", data=server)
        for server in after.servers
        if old_servers.get(server.server_id, False) != server.online
    )
    return events


@router.get(
    "/stream",
    summary="Membership changes as server-sent events",
    response_class=EventSourceResponse,
    responses={200: {"description": "`view` (a ClusterView), then `join`, `leave`, `enable`, `disable` (an "
                     "InstanceView) and `server-up`, `server-down` (a ServerView)"}},
)  # fmt: skip
async def stream(context: Annotated[ApiContext, Depends(api_context)]) -> AsyncIterator[ServerSentEvent]:
    """The cluster's view, then each change to it, until the client leaves or the server stops."""
    known = await cluster_view(context)
    yield ServerSentEvent(event="view", data=known)
    stopping = context.stopping
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), context.settings.cluster_poll_seconds)
        if stopping.is_set():
            return
        try:
            current = await cluster_view(context)
        except EventoError as exc:  # the database is away for a moment: the next look may succeed
            log.warning("cluster status stream: cannot read the catalog: %s", exc)
            continue
        for event in changes(known, current):
            yield event
        known = current
