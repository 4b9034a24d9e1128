"""The payload, component and handler catalogs, as the bundles of the cluster declared them: ``GET
/api/catalog/payload/`` (``?kind=&domain=&q=``) and ``/api/catalog/payload/{name}`` (with its JSON Schema), ``GET
/api/catalog/component/`` (``?kind=&bundleId=&domain=&q=``) and ``/api/catalog/component/{name}``, ``GET
/api/handler/`` (what each handler handles, returns and sends: the AST analysis's finds with their line, what
telemetry learned at run time without one)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from evento.server.api._context import ApiContext, api_context
from evento.server.api._models import ApiModel, Page, PageQuery
from evento.server.api._security import Viewer
from evento.server.catalog import CatalogNotFoundError, ComponentRecord, HandlerRecord, PayloadRecord

__all__ = ["ID_PATTERN", "ComponentDetail", "ComponentItem", "HandlerItem", "PayloadDetail", "PayloadItem", "router"]

router = APIRouter(tags=["catalog"])

#: What an id may hold: no control characters (PostgreSQL's text refuses NUL, and no id the bus takes has them).
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
#: A payload or component name in a path (class names: bounded).
Name = Annotated[str, Path(min_length=1, max_length=256)]
#: A filter on a name or kind (bounded like one).
Filter = Annotated[str | None, Query(min_length=1, max_length=256)]
#: A free-text search (case-insensitive, in names and descriptions).
Search = Annotated[str | None, Query(min_length=1, max_length=256, description="Text in the name or description")]


class Invocation(ApiModel):
    """A payload a handler sends: ``line`` where its body sends it (the AST analysis), or ``null`` when only
    telemetry saw it sent, at run time (``learned``)."""

    payload: str
    line: int | None
    learned: bool


class HandlerItem(ApiModel):
    """A handler: the payload it handles, what it returns and what it sends; ``handlerId`` is
    ``bundleId:component:payload``."""

    handler_id: str
    bundle_id: str
    component: str
    component_kind: str
    handler_kind: str
    handler_name: str
    payload: str
    payload_kind: str
    return_type: str | None
    return_is_multiple: bool
    association_property: str | None
    init: bool
    description: str | None
    source_file: str | None
    line: int | None
    invoked_commands: list[Invocation]
    invoked_queries: list[Invocation]


class ComponentItem(ApiModel):
    """A component: its kind, bundle, domain, docstring (``description`` its first line, ``detail`` the rest) and
    where its source is."""

    name: str
    kind: str
    bundle_id: str
    domain: str | None
    description: str | None
    detail: str | None
    source_file: str | None
    line: int | None


class ComponentDetail(ComponentItem):
    """A component with its handlers."""

    handlers: list[HandlerItem]


class PayloadItem(ApiModel):
    """A payload type: kind, domain, docstring, the bundles declaring it, the components producing it (returning
    or sending it) and those consuming it (handling it)."""

    name: str
    kind: str
    domain: str | None
    description: str | None
    detail: str | None
    source_file: str | None
    line: int | None
    bundle_ids: list[str]
    producers: list[str]
    consumers: list[str]


class PayloadDetail(PayloadItem):
    """A payload type with its JSON Schema and the handlers that handle it."""

    json_schema: dict[str, Any]
    handlers: list[HandlerItem]


def _invocations(sends: dict[str, str]) -> list[Invocation]:
    return [
        Invocation(payload=name, line=int(line) if line.isdigit() else None, learned=not line)
        for name, line in sorted(sends.items())
    ]


def handler_item(record: HandlerRecord) -> HandlerItem:
    info = record.info
    return HandlerItem(
        handler_id=record.handler_id,
        bundle_id=record.bundle_id,
        component=info.component,
        component_kind=str(info.component_kind),
        handler_kind=str(info.handler_kind),
        handler_name=info.handler_name,
        payload=info.payload,
        payload_kind=info.payload_kind,
        return_type=info.return_type,
        return_is_multiple=info.return_is_multiple,
        association_property=info.association_property,
        init=info.init,
        description=info.description,
        source_file=info.source_file,
        line=info.line,
        invoked_commands=_invocations(info.invoked_commands),
        invoked_queries=_invocations(info.invoked_queries),
    )


def component_item(record: ComponentRecord) -> ComponentItem:
    info = record.info
    return ComponentItem(
        name=info.name,
        kind=str(info.kind),
        bundle_id=record.bundle_id,
        domain=info.domain,
        description=info.description,
        detail=info.detail,
        source_file=info.source_file,
        line=info.line,
    )


def payload_item(record: PayloadRecord) -> PayloadItem:
    info = record.info
    return PayloadItem(
        name=info.name,
        kind=info.kind,
        domain=info.domain,
        description=info.description,
        detail=info.detail,
        source_file=info.source_file,
        line=info.line,
        bundle_ids=list(record.bundle_ids),
        producers=list(record.producers),
        consumers=list(record.consumers),
    )


def _matches(text: str | None, *fields: str | None) -> bool:
    if text is None:
        return True
    needle = text.casefold()
    return any(needle in field.casefold() for field in fields if field)


def _same(wanted: str | None, value: str | None) -> bool:
    return wanted is None or (value is not None and wanted.casefold() == value.casefold())


@router.get("/catalog/payload/", summary="Payloads")
async def payloads(
    context: Annotated[ApiContext, Depends(api_context)],
    principal: Viewer,
    paging: PageQuery,
    kind: Filter = None,
    domain: Filter = None,
    q: Search = None,
) -> Page[PayloadItem]:
    """Every payload type of the cluster's bundles, by name; ``kind`` (``DomainCommand``, ``View``…) and
    ``domain`` filter exactly (ignoring case), ``q`` searches names and descriptions."""
    found = [
        payload_item(record)
        for record in await context.server.catalog.payloads()
        if _same(kind, record.info.kind)
        and _same(domain, record.info.domain)
        and _matches(q, record.info.name, record.info.description)
    ]
    return Page[PayloadItem].of(found, paging)


@router.get("/catalog/payload/{name}", summary="One payload", responses={404: {"description": "No such payload"}})
async def payload(name: Name, context: Annotated[ApiContext, Depends(api_context)], principal: Viewer) -> PayloadDetail:
    """A payload type with its JSON Schema and the handlers that handle it."""
    catalog = context.server.catalog
    record = next((p for p in await catalog.payloads() if p.info.name == name), None)
    if record is None:
        raise CatalogNotFoundError(f"no payload {name!r} in the catalog")
    handlers = [handler_item(h) for h in await catalog.handlers() if h.info.payload == name]
    return PayloadDetail(**payload_item(record).model_dump(), json_schema=record.info.json_schema, handlers=handlers)


@router.get("/catalog/component/", summary="Components")
async def components(
    context: Annotated[ApiContext, Depends(api_context)],
    principal: Viewer,
    paging: PageQuery,
    kind: Filter = None,
    bundle_id: Annotated[str | None, Query(alias="bundleId", min_length=1, max_length=256)] = None,
    domain: Filter = None,
    q: Search = None,
) -> Page[ComponentItem]:
    """Every component of the cluster's bundles, by bundle and name; ``kind`` (``Aggregate``, ``Projector``…),
    ``bundleId`` and ``domain`` filter, ``q`` searches names and descriptions."""
    found = [
        component_item(record)
        for record in await context.server.catalog.components()
        if _same(kind, str(record.info.kind))
        and (bundle_id is None or record.bundle_id == bundle_id)
        and _same(domain, record.info.domain)
        and _matches(q, record.info.name, record.info.description)
    ]
    return Page[ComponentItem].of(found, paging)


@router.get("/catalog/component/{name}", summary="One component", responses={404: {"description": "No such component"}})
async def component(
    name: Name,
    context: Annotated[ApiContext, Depends(api_context)],
    principal: Viewer,
    bundle_id: Annotated[
        str | None,
        Query(alias="bundleId", min_length=1, max_length=256, description="The bundle, when several have the name"),
    ] = None,
) -> ComponentDetail:
    """A component with its handlers (the first bundle's by id when several bundles have a component so named,
    unless ``bundleId`` says which)."""
    catalog = context.server.catalog
    record = next(
        (
            c
            for c in await catalog.components()
            if c.info.name == name and (bundle_id is None or c.bundle_id == bundle_id)
        ),
        None,
    )
    if record is None:
        raise CatalogNotFoundError(f"no component {name!r} in the catalog")
    handlers = [handler_item(h) for h in await catalog.handlers(record.bundle_id) if h.info.component == name]
    return ComponentDetail(**component_item(record).model_dump(), handlers=handlers)


@router.get("/handler/", summary="Handlers")
async def handlers(
    context: Annotated[ApiContext, Depends(api_context)],
    principal: Viewer,
    paging: PageQuery,
    bundle_id: Annotated[str | None, Query(alias="bundleId", min_length=1, max_length=256, pattern=ID_PATTERN)] = None,
    component: Filter = None,
    payload: Filter = None,
    kind: Annotated[str | None, Query(min_length=1, max_length=64, description="The handler kind")] = None,
) -> Page[HandlerItem]:
    """Every handler of the cluster's bundles, with what it sends (``bundleId``, ``component``, ``payload`` and
    ``kind`` filter)."""
    found = [
        handler_item(record)
        for record in await context.server.catalog.handlers(bundle_id)
        if (component is None or record.info.component == component)
        and (payload is None or record.info.payload == payload)
        and _same(kind, str(record.info.handler_kind))
    ]
    return Page[HandlerItem].of(found, paging)
