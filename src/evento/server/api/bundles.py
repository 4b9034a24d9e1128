"""The bundle catalog: ``GET /api/bundle/`` (every bundle the cluster has seen, online or not), ``GET
/api/bundle/{bundleId}`` (one, with its components and handlers) and ``DELETE /api/bundle/{bundleId}`` (admin:
forget an offline bundle; 409 while instances of it are online)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from evento.server.api._context import ApiContext, api_context
from evento.server.api._models import ApiModel, Page, PageQuery
from evento.server.api._security import Admin, Viewer
from evento.server.api.catalog import ID_PATTERN, ComponentItem, HandlerItem, component_item, handler_item
from evento.server.catalog import BundleNotFoundError, BundleRecord, InstanceRecord

__all__ = ["BundleDetail", "BundleItem", "InstanceItem", "router"]

router = APIRouter(prefix="/bundle", tags=["bundles"])

#: A bundle id in a path: bounded like the ids the bus accepts.
BundleId = Annotated[str, Path(min_length=1, max_length=256, pattern=ID_PATTERN, description="The bundle's id")]


class InstanceItem(ApiModel):
    """An online instance of a bundle, as one server of the cluster sees it (an instance connected to two servers
    is listed once per server)."""

    instance_id: str
    server_id: str
    bundle_version: int
    enabled: bool
    joined_at: datetime


class BundleItem(ApiModel):
    """A bundle: what it declared last, when it was first and last seen, and its online instances (none:
    offline). ``repositoryUrl`` + a file + ``linePrefix`` + a line number link its source."""

    bundle_id: str
    version: int
    description: str | None
    detail: str | None
    repository_url: str | None
    line_prefix: str | None
    first_seen_at: datetime
    last_seen_at: datetime
    online: bool
    instances: list[InstanceItem]


class BundleDetail(BundleItem):
    """A bundle with its components and their handlers."""

    components: list[ComponentItem]
    handlers: list[HandlerItem]


def at(ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC datetime (how the API writes times)."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def instance_item(record: InstanceRecord) -> InstanceItem:
    return InstanceItem(
        instance_id=record.instance_id,
        server_id=record.server_id,
        bundle_version=record.bundle_version,
        enabled=record.enabled,
        joined_at=at(record.joined_ms),
    )


def bundle_item(record: BundleRecord) -> BundleItem:
    return BundleItem(
        bundle_id=record.bundle_id,
        version=record.version,
        description=record.description,
        detail=record.detail,
        repository_url=record.repository_url,
        line_prefix=record.line_prefix,
        first_seen_at=at(record.first_seen_ms),
        last_seen_at=at(record.last_seen_ms),
        online=record.online,
        instances=[instance_item(instance) for instance in record.instances],
    )


@router.get("/", summary="Bundles")
async def bundles(
    context: Annotated[ApiContext, Depends(api_context)], principal: Viewer, paging: PageQuery
) -> Page[BundleItem]:
    """Every bundle in the catalog, by id, online or offline."""
    return Page[BundleItem].of([bundle_item(record) for record in await context.server.catalog.bundles()], paging)


@router.get("/{bundle_id}", summary="One bundle", responses={404: {"description": "No such bundle"}})
async def bundle(
    bundle_id: BundleId, context: Annotated[ApiContext, Depends(api_context)], principal: Viewer
) -> BundleDetail:
    """The bundle with its components and handlers."""
    catalog = context.server.catalog
    record = await catalog.bundle(bundle_id)
    if record is None:
        raise BundleNotFoundError(f"no bundle {bundle_id!r} in the catalog")
    components = [component_item(c) for c in await catalog.components() if c.bundle_id == bundle_id]
    handlers = [handler_item(h) for h in await catalog.handlers(bundle_id)]
    return BundleDetail(**bundle_item(record).model_dump(), components=components, handlers=handlers)


@router.delete(
    "/{bundle_id}",
    summary="Forget a bundle",
    status_code=204,
    responses={404: {"description": "No such bundle"}, 409: {"description": "Instances of it are online"}},
)
async def delete_bundle(
    bundle_id: BundleId, context: Annotated[ApiContext, Depends(api_context)], principal: Admin
) -> Response:
    """Remove an offline bundle and everything it declared from the catalog (it comes back if it connects again);
    refused while instances of it are online."""
    await context.server.catalog.delete_bundle(bundle_id)
    return Response(status_code=204)
