"""Consumer administration (reference §4.2, beyond it the reset): ``GET /api/consumer/`` (every consumer of the
cluster and the instances running it), ``GET /api/consumer/{consumerId}`` (its live status, from the instance
holding its lock), ``GET /api/consumer/{consumerId}/event`` (its dead event queue); as admin, ``PUT`` and
``DELETE /api/consumer/{consumerId}/event/{seq}`` (flag a dead event for retry, drop it), ``POST
…/consume-dead-queue``, ``POST …/reset`` ``{fromSequenceNumber}`` (replay), ``POST …/enable`` and ``…/disable``.

The instance is reached over the admin channel (:mod:`evento.server.admin`), on this server or, when it is
connected only to another server of the cluster, through that server's ``POST …/relay`` (not in the OpenAPI
document: servers use it with their caller's credentials, which every server of a cluster accepts).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BeforeValidator, Field

from evento.messages import AdminRequest, DeadEventView, GetConsumerStatus, ListDeadEvents
from evento.server.admin import ConsumerRecord, InstanceStatus
from evento.server.api._context import ApiContext, api_context
from evento.server.api._models import ApiModel, Page, PageQuery, instant
from evento.server.api._security import Admin, Viewer
from evento.server.api.catalog import ID_PATTERN

__all__ = ["ConsumerItem", "ConsumerStatus", "DeadEvent", "ResetAccepted", "ResetRequest", "router"]

router = APIRouter(prefix="/consumer", tags=["consumers"])

#: The largest sequence number (a signed 64-bit integer, as the stores keep it).
MAX_SEQUENCE = 2**63 - 1
#: Bytes of a relayed admin request: a few ids and numbers.
MAX_RELAY_BYTES = 16 * 1024

ConsumerId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=1024,
        pattern=ID_PATTERN,
        description="``bundle_Component_version_context``, as listed",
    ),
]
Sequence = Annotated[int, Path(ge=0, le=MAX_SEQUENCE, description="The dead event's sequence number")]


class ConsumerItem(ApiModel):
    """A consumer (component × context) of a bundle and the online instances that run it."""

    consumer_id: str
    component: str
    component_kind: str
    bundle_id: str
    bundle_version: int
    context: str
    instances: list[str]


class ConsumerStatus(ApiModel):
    """A consumer as the instance that answered sees it: the instance holding its lock when one does.
    ``checkpoint`` is the last sequence number it finished (``null`` before its first), ``lag`` how far the head
    is beyond it, ``inFlight`` the events being handled right now."""

    consumer_id: str
    component: str
    component_kind: str
    bundle_id: str
    context: str
    instance_id: str
    server_id: str
    checkpoint: int | None
    head: int
    lag: int
    head_reached: bool
    enabled: bool
    holds_lock: bool
    error_count: int
    error_message: str | None
    error_since: datetime | None
    last_error_at: datetime | None
    dead_events: int
    in_flight: int


class DeadEvent(ApiModel):
    """An event the consumer gave up on: the event (its payload decoded as JSON), why, when, and whether it is
    flagged for the next consumption of the queue."""

    sequence_number: int
    event_name: str
    aggregate_id: str | None
    aggregate_version: int | None
    context: str
    timestamp: datetime
    dead_at: datetime
    error: str
    retry: bool
    payload: Any
    metadata: dict[str, str]


class DeadQueueConsumed(ApiModel):
    """How many flagged dead events were handled successfully (the others are parked again)."""

    processed: int


def _no_bool(value: Any) -> Any:
    """JSON's ``false`` is not the number 0 (pydantic would take it for one); ``12.0`` is 12, as JSON Schema says."""
    if isinstance(value, bool):
        raise ValueError("Expected `int`, got `bool`")
    return value


def _int64(schema: dict[str, Any]) -> None:
    """Say "a signed 64-bit integer" as ``format: int64`` instead of a ``maximum`` of 2**63 - 1, which clients
    reading JSON numbers as doubles round up to 2**63 (and then take numbers above it for valid)."""
    schema.pop("maximum", None)
    schema["format"] = "int64"


class ResetRequest(ApiModel):
    """Where a replay starts: the consumer's next event is the first one after ``fromSequenceNumber`` (0: from
    the start)."""

    from_sequence_number: Annotated[int, BeforeValidator(_no_bool)] = Field(
        ge=0, le=MAX_SEQUENCE, json_schema_extra=_int64
    )


class ResetAccepted(ApiModel):
    """A reset under way: the consumer replays from ``fromSequenceNumber`` towards ``head`` (its status shows the
    progress)."""

    consumer_id: str
    from_sequence_number: int
    head: int


def consumer_item(record: ConsumerRecord) -> ConsumerItem:
    return ConsumerItem(
        consumer_id=record.consumer_id,
        component=record.component,
        component_kind=record.component_kind,
        bundle_id=record.bundle_id,
        bundle_version=record.bundle_version,
        context=record.context,
        instances=list(record.instances),
    )


def consumer_status(found: InstanceStatus) -> ConsumerStatus:
    status = found.status
    return ConsumerStatus(
        consumer_id=status.consumer_id,
        component=status.component,
        component_kind=status.component_kind,
        bundle_id=found.bundle_id,
        context=status.context,
        instance_id=found.instance_id,
        server_id=found.server_id,
        checkpoint=status.checkpoint,
        head=status.head,
        lag=found.lag,
        head_reached=status.head_reached,
        enabled=status.enabled,
        holds_lock=status.holds_lock,
        error_count=status.error_count,
        error_message=status.error_message,
        error_since=instant(status.error_since) if status.error_since is not None else None,
        last_error_at=instant(status.last_error_at) if status.last_error_at is not None else None,
        dead_events=status.dead_events,
        in_flight=status.in_flight,
    )


def dead_event(view: DeadEventView) -> DeadEvent:
    event = view.event
    try:
        payload: Any = msgspec.json.decode(event.payload)
    except msgspec.DecodeError:
        # Not JSON (the very reason it may be dead): shown as text rather than hidden.
        payload = event.payload.decode("utf-8", errors="replace")
    return DeadEvent(
        sequence_number=event.sequence_number,
        event_name=event.event_name,
        aggregate_id=event.aggregate_id,
        aggregate_version=event.aggregate_version,
        context=event.context,
        timestamp=instant(event.timestamp),
        dead_at=instant(view.dead_at),
        error=view.error,
        retry=view.retry,
        payload=payload,
        metadata=dict(event.metadata),
    )


def _authorization(request: Request) -> str | None:
    """The caller's credentials, presented again if the request must be relayed to another server."""
    return request.headers.get("authorization")


def _no_dead_event(consumer_id: str, sequence_number: int) -> HTTPException:
    return HTTPException(404, f"consumer {consumer_id} has no dead event {sequence_number}")


@router.get("/", summary="Consumers")
async def consumers(
    context: Annotated[ApiContext, Depends(api_context)], principal: Viewer, paging: PageQuery
) -> Page[ConsumerItem]:
    """Every consumer the cluster's bundles declare, by id, with the online instances running it."""
    return Page[ConsumerItem].of([consumer_item(r) for r in await context.server.admin.consumers()], paging)


_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No bundle declares this consumer"}}
_UNREACHABLE: dict[int | str, dict[str, Any]] = {503: {"description": "No instance running it answered"}}


@router.get("/{consumer_id}", summary="Consumer status", responses={**_NOT_FOUND, **_UNREACHABLE})
async def status(
    consumer_id: ConsumerId, request: Request, context: Annotated[ApiContext, Depends(api_context)], principal: Viewer
) -> ConsumerStatus:
    """The consumer's live status, asked of the instance holding its lock (any instance when none does)."""
    found = await context.server.admin.status(consumer_id, authorization=_authorization(request))
    return consumer_status(found)


@router.get("/{consumer_id}/event", summary="Dead events", responses={**_NOT_FOUND, **_UNREACHABLE})
async def dead_events(
    consumer_id: ConsumerId,
    request: Request,
    context: Annotated[ApiContext, Depends(api_context)],
    principal: Viewer,
    paging: PageQuery,
) -> Page[DeadEvent]:
    """The consumer's dead event queue, in sequence order, payloads decoded."""
    views = await context.server.admin.dead_events(consumer_id, authorization=_authorization(request))
    return Page[DeadEvent].of([dead_event(view) for view in views], paging)


@router.put(
    "/{consumer_id}/event/{sequence_number}",
    summary="Flag a dead event for retry",
    status_code=204,
    responses={404: {"description": "No such consumer or dead event"}, **_UNREACHABLE},
)
async def set_retry(
    consumer_id: ConsumerId,
    sequence_number: Sequence,
    request: Request,
    context: Annotated[ApiContext, Depends(api_context)],
    principal: Admin,
    retry: Annotated[bool, Query(description="Whether the next consumption of the queue retries it")] = True,
) -> Response:
    """Flag (``retry=true``) or unflag a dead event for the next ``consume-dead-queue``."""
    admin = context.server.admin
    if not await admin.set_dead_event_retry(consumer_id, sequence_number, retry, authorization=_authorization(request)):
        raise _no_dead_event(consumer_id, sequence_number)
    return Response(status_code=204)


@router.delete(
    "/{consumer_id}/event/{sequence_number}",
    summary="Delete a dead event",
    status_code=204,
    responses={404: {"description": "No such consumer or dead event"}, **_UNREACHABLE},
)
async def delete_dead_event(
    consumer_id: ConsumerId,
    sequence_number: Sequence,
    request: Request,
    context: Annotated[ApiContext, Depends(api_context)],
    principal: Admin,
) -> Response:
    """Drop a dead event for good (the consumer never handles it)."""
    admin = context.server.admin
    if not await admin.delete_dead_event(consumer_id, sequence_number, authorization=_authorization(request)):
        raise _no_dead_event(consumer_id, sequence_number)
    return Response(status_code=204)


@router.post(
    "/{consumer_id}/consume-dead-queue", summary="Consume the dead queue", responses={**_NOT_FOUND, **_UNREACHABLE}
)
async def consume_dead_queue(
    consumer_id: ConsumerId,
    request: Request,
    context: Annotated[ApiContext, Depends(api_context)],
    principal: Admin,
) -> DeadQueueConsumed:
    """Handle again the dead events flagged for retry; each one that succeeds leaves the queue."""
    processed = await context.server.admin.consume_dead_queue(consumer_id, authorization=_authorization(request))
    return DeadQueueConsumed(processed=processed)


@router.post(
    "/{consumer_id}/reset",
    summary="Replay from a sequence number",
    status_code=202,
    responses={**_NOT_FOUND, **_UNREACHABLE},
)
async def reset(
    consumer_id: ConsumerId,
    body: Annotated[ResetRequest, Body()],
    request: Request,
    context: Annotated[ApiContext, Depends(api_context)],
    principal: Admin,
) -> ResetAccepted:
    """Move the consumer's checkpoint to ``fromSequenceNumber``: it handles again every event after it (a projector
    rebuilding its read model from 0, say). Accepted at once; the replay runs in the consumer."""
    outcome = await context.server.admin.reset(
        consumer_id, body.from_sequence_number, authorization=_authorization(request)
    )
    return ResetAccepted(
        consumer_id=outcome.consumer_id, from_sequence_number=outcome.from_sequence_number, head=outcome.head
    )


async def _set_enabled(consumer_id: str, enabled: bool, request: Request, context: ApiContext) -> ConsumerStatus:
    found = await context.server.admin.set_enabled(consumer_id, enabled, authorization=_authorization(request))
    return consumer_status(found)


@router.post("/{consumer_id}/enable", summary="Enable a consumer", responses={**_NOT_FOUND, **_UNREACHABLE})
async def enable(
    consumer_id: ConsumerId, request: Request, context: Annotated[ApiContext, Depends(api_context)], principal: Admin
) -> ConsumerStatus:
    """Let the consumer consume again (on every instance: the flag is in its store); its status after."""
    return await _set_enabled(consumer_id, True, request, context)


@router.post("/{consumer_id}/disable", summary="Disable a consumer", responses={**_NOT_FOUND, **_UNREACHABLE})
async def disable(
    consumer_id: ConsumerId, request: Request, context: Annotated[ApiContext, Depends(api_context)], principal: Admin
) -> ConsumerStatus:
    """Pause the consumer after the events in hand; its status after."""
    return await _set_enabled(consumer_id, False, request, context)


_relay_decoder: msgspec.json.Decoder[AdminRequest] = msgspec.json.Decoder(AdminRequest)


@router.post("/{consumer_id}/relay", include_in_schema=False)
async def relay(
    consumer_id: ConsumerId, request: Request, context: Annotated[ApiContext, Depends(api_context)], principal: Viewer
) -> Response:
    """An admin request relayed by another server of the cluster, answered by an instance connected here (never
    relayed further). Reads need a viewer, changes an admin, as on the public routes."""
    body = await _bounded_body(request)
    try:
        admin_request = _relay_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise HTTPException(422, f"not an admin request: {exc}") from None
    if admin_request.consumer_id != consumer_id:
        raise HTTPException(422, f"the relayed request names consumer {admin_request.consumer_id!r}")
    if not isinstance(admin_request, GetConsumerStatus | ListDeadEvents) and not principal.is_admin:
        raise HTTPException(403, f"the user {principal.username!r} is a viewer: this needs the admin role")
    answer = await context.server.admin.relay(consumer_id, admin_request)
    return Response(msgspec.json.encode(answer), media_type="application/json")


async def _bounded_body(request: Request) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_RELAY_BYTES:
            raise HTTPException(413, f"a relayed admin request is at most {MAX_RELAY_BYTES} bytes")
    return body
