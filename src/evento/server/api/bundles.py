"""The bundle catalog: ``GET /api/bundle/`` (every bundle the cluster has seen, online or not), ``GET
/api/bundle/{bundleId}`` (one, with its components and handlers) and ``DELETE /api/bundle/{bundleId}`` (admin:
forget an offline bundle; 409 while instances of it are online).

Running bundles (:mod:`evento.server.deploy`): ``GET /api/bundle/{bundleId}/deployment`` (bounds, instances
wanted and online, the supervisor's decisions), and for admins ``PUT /api/bundle/{bundleId}`` (deploy, or change
min, max, autorun, environment), ``POST /api/bundle/{bundleId}/spawn`` and
``POST /api/bundle/{bundleId}/instance/{instanceId}/kill`` (graceful)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasicCredentials
from pydantic import Field

from evento.discovery import BundleRegistration
from evento.server.api._context import ApiContext, api_context
from evento.server.api._models import ApiModel, Page, PageQuery, instant
from evento.server.api._security import (
    Admin,
    Viewer,
    authenticate,
    basic_credentials,
    bearer_credentials,
    unauthorized,
)
from evento.server.api.catalog import ID_PATTERN, ComponentItem, HandlerItem, component_item, handler_item
from evento.server.catalog import BundleNotFoundError, BundleRecord, InstanceRecord
from evento.server.deploy.artifacts import MAX_WHEEL_BYTES, valid_wheel_name
from evento.server.deploy.spec import BundleSpec
from evento.server.deploy.store import DeployState
from evento.server.deploy.supervisor import DeployRefusedError, Supervisor

__all__ = ["BundleDetail", "BundleItem", "DeploymentUpdate", "DeploymentView", "InstanceItem", "router"]

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


def instance_item(record: InstanceRecord) -> InstanceItem:
    return InstanceItem(
        instance_id=record.instance_id,
        server_id=record.server_id,
        bundle_version=record.bundle_version,
        enabled=record.enabled,
        joined_at=instant(record.joined_ms),
    )


def bundle_item(record: BundleRecord) -> BundleItem:
    return BundleItem(
        bundle_id=record.bundle_id,
        version=record.version,
        description=record.description,
        detail=record.detail,
        repository_url=record.repository_url,
        line_prefix=record.line_prefix,
        first_seen_at=instant(record.first_seen_ms),
        last_seen_at=instant(record.last_seen_ms),
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


# --- running bundles: deployment, spawn, kill (issue 12) -----------------------------------------------------------


class DeploymentUpdate(ApiModel):
    """What ``PUT /api/bundle/{bundleId}`` changes: the instances' bounds, autorun and environment of a deployed
    bundle; with ``entryPoint`` (and ``version``) it deploys a bundle importable where the instances run, without
    a published artifact."""

    entry_point: str | None = Field(default=None, max_length=512)
    version: str | None = Field(default=None, max_length=64)
    description: str | None = Field(default=None, max_length=4096)
    min_instances: int | None = Field(default=None, ge=0, le=1000)
    max_instances: int | None = Field(default=None, ge=1, le=1000)
    autorun: bool | None = None
    environment: dict[str, str] | None = None
    interpreter_options: list[str] | None = Field(default=None, max_length=64)


class DecisionItem(ApiModel):
    """One decision of the supervisor about a bundle (spawn, joined, spawn-failed, lost, kill, killed, scale-up,
    deploy), by the server that took it."""

    at: datetime
    action: str
    instance_id: str | None
    server_id: str
    reason: str


class DeploymentView(ApiModel):
    """A deployed bundle: its description, the instances wanted and online, its last failure to start and the
    latest decisions, newest first."""

    bundle_id: str
    version: str
    entry_point: str
    min_instances: int
    max_instances: int
    autorun: bool
    environment: dict[str, str]
    interpreter_options: list[str]
    wanted: int
    online: int
    last_error: str | None
    decisions: list[DecisionItem]


def _supervisor(context: ApiContext) -> Supervisor:
    supervisor = context.server.deploy
    if supervisor is None:
        raise DeployRefusedError("this server runs no bundles: start it with `evento server`")
    return supervisor


async def _view(supervisor: Supervisor, state: DeployState) -> DeploymentView:
    spec = state.spec
    online = {i.instance_id for i in await supervisor.server.catalog.instances() if i.bundle_id == spec.bundle_id}
    decisions = await supervisor.store.decisions(spec.bundle_id)
    return DeploymentView(
        bundle_id=spec.bundle_id,
        version=spec.version,
        entry_point=spec.entry_point,
        min_instances=spec.min_instances,
        max_instances=spec.max_instances,
        autorun=spec.autorun,
        environment=spec.environment,
        interpreter_options=spec.interpreter_options,
        wanted=state.wanted,
        online=len(online),
        last_error=state.last_error,
        decisions=[
            DecisionItem(at=instant(d.at_ms), action=d.action, instance_id=d.instance_id, server_id=d.server_id,
                         reason=d.reason)
            for d in decisions
        ],
    )  # fmt: skip


_DEPLOY_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Not deployed, or no such instance connected"},
    409: {"description": "Refused: at a bound, or this server runs no bundles"},
}


@router.get("/{bundle_id}/deployment", summary="A deployed bundle", responses=_DEPLOY_ERRORS)
async def deployment(
    bundle_id: BundleId, context: Annotated[ApiContext, Depends(api_context)], principal: Viewer
) -> DeploymentView:
    """The bundle's deployment: bounds, instances wanted and online, last error, latest decisions."""
    supervisor = _supervisor(context)
    state = await supervisor.store.get(bundle_id)
    if state is None:
        raise BundleNotFoundError(f"bundle {bundle_id!r} is not deployed")
    return await _view(supervisor, state)


@router.put("/{bundle_id}", summary="Deploy or change a bundle", responses=_DEPLOY_ERRORS)
async def update_deployment(
    bundle_id: BundleId,
    update: DeploymentUpdate,
    context: Annotated[ApiContext, Depends(api_context)],
    principal: Admin,
) -> DeploymentView:
    """Change a deployed bundle's instances' bounds, autorun, environment (the supervisor acts at its next
    round); with ``entryPoint``, deploy a bundle that is not deployed yet."""
    supervisor = _supervisor(context)
    current = await supervisor.store.get(bundle_id)
    if current is None and update.entry_point is None:
        raise BundleNotFoundError(f"bundle {bundle_id!r} is not deployed: give its entryPoint to deploy it")
    base = current.spec if current is not None else None
    changes = update.model_dump(by_alias=False, exclude_none=True)
    if base is not None and changes.get("version", base.version) != base.version:
        changes["artifact"] = None  # the published wheel is of the previous version
    try:
        spec = (
            msgspec.structs.replace(base, **changes) if base is not None else BundleSpec(bundle_id=bundle_id, **changes)
        )
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    return await _view(supervisor, await supervisor.deploy(spec))


@router.post("/{bundle_id}/spawn", summary="Start one more instance", status_code=202, responses=_DEPLOY_ERRORS)
async def spawn(
    bundle_id: BundleId, context: Annotated[ApiContext, Depends(api_context)], principal: Admin
) -> DeploymentView:
    """One more instance wanted (refused at the maximum); the spawning server starts it at its next round."""
    supervisor = _supervisor(context)
    return await _view(supervisor, await supervisor.spawn(bundle_id, f"asked by {principal.username}"))


@router.post(
    "/{bundle_id}/instance/{instance_id}/kill", summary="Stop an instance", status_code=202, responses=_DEPLOY_ERRORS
)
async def kill(
    bundle_id: BundleId,
    instance_id: Annotated[str, Path(min_length=1, max_length=256, pattern=ID_PATTERN)],
    context: Annotated[ApiContext, Depends(api_context)],
    principal: Admin,
) -> DeploymentView:
    """Ask the instance to leave gracefully (it finishes its work and releases its consumer locks; killed after
    the grace period). One fewer instance wanted, down to the minimum: at the minimum a replacement starts."""
    supervisor = _supervisor(context)
    return await _view(supervisor, await supervisor.kill(bundle_id, instance_id, f"asked by {principal.username}"))


# --- publishing: a version's wheel and description, served to deploy scripts ---------------------------------------


class PublishRequest(ApiModel):
    """What ``evento publish`` uploads: the bundle's deployable description (``[[tool.evento.bundle]]`` as the
    deploy script receives it), its discovery description (what an instance sends when it joins), and the wheel,
    base64-encoded."""

    spec: dict[str, Any]
    registration: dict[str, Any]
    wheel_name: str = Field(min_length=5, max_length=255)
    wheel: str = Field(min_length=4, max_length=(MAX_WHEEL_BYTES + 2) // 3 * 4)


def _checked(request: PublishRequest) -> tuple[BundleSpec, BundleRegistration, bytes]:
    """The request's parts decoded, or a 422 saying what is wrong with them."""
    try:
        spec = msgspec.convert(request.spec, BundleSpec)
    except (msgspec.ValidationError, ValueError) as exc:
        raise HTTPException(422, f"spec: {exc}") from exc
    try:
        registration = msgspec.convert(request.registration, BundleRegistration)
    except (msgspec.ValidationError, ValueError) as exc:
        raise HTTPException(422, f"registration: {exc}") from exc
    if registration.bundle_id != spec.bundle_id:
        raise HTTPException(
            422, f"the description is of bundle {registration.bundle_id!r}, the spec of {spec.bundle_id!r}"
        )
    if spec.version.isdigit() and int(spec.version) != registration.bundle_version:
        raise HTTPException(
            422, f"the description is of version {registration.bundle_version}, the spec of {spec.version}"
        )
    if not valid_wheel_name(request.wheel_name):
        raise HTTPException(422, f"{request.wheel_name!r} is not a wheel's file name")
    try:
        wheel = base64.b64decode(request.wheel, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise HTTPException(422, "wheel: not base64") from exc
    if not wheel.startswith(b"PK\x03\x04"):
        raise HTTPException(422, "wheel: not a zip archive")
    return spec, registration, wheel


@router.post("/", summary="Publish a bundle version", responses=_DEPLOY_ERRORS)
async def publish(
    request: PublishRequest, context: Annotated[ApiContext, Depends(api_context)], principal: Admin
) -> DeploymentView:
    """Keep a bundle version's wheel and description (the catalog shows it before an instance runs) and deploy
    it: its instances are started from the wheel."""
    supervisor = _supervisor(context)
    spec, registration, wheel = _checked(request)
    state = await supervisor.publish(spec, registration, request.wheel_name, wheel)
    return await _view(supervisor, state)


@router.get(
    "/{bundle_id}/artifact",
    summary="A published wheel, for a deploy script",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}},
        401: {"description": "Token bad or spent, or no credentials"},
        404: {"description": "Nothing published"},
    },
)
async def artifact(
    bundle_id: BundleId,
    context: Annotated[ApiContext, Depends(api_context)],
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_credentials)],
    basic: Annotated[HTTPBasicCredentials | None, Depends(basic_credentials)],
    token: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
) -> Response:
    """The wheel of the version a spawn's ``token`` names (good once, for a short time: what deploy scripts use);
    without a token, a user of the API gets the deployed version's wheel."""
    if token is None:
        await authenticate(request, bearer, basic)  # 401 without credentials, like every read of the API
    supervisor = _supervisor(context)
    if token is not None:
        version = await supervisor.artifacts.redeem(token, bundle_id)
        if version is None:
            raise unauthorized(f"artifact token for bundle {bundle_id!r} unknown, expired or already used")
    else:
        state = await supervisor.store.get(bundle_id)
        if state is None or state.spec.artifact is None:
            raise BundleNotFoundError(f"bundle {bundle_id!r} has no published version deployed")
        version = state.spec.version
    found = await supervisor.artifacts.get(bundle_id, version)
    if found is None:
        raise BundleNotFoundError(f"bundle {bundle_id!r} has no published version {version}")
    return Response(
        found.wheel,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{found.wheel_name}"'},
    )
