"""The event browser: ``/api/system-state-store`` shows the stored events (filtered, paged) with their payloads
decoded as JSON, one event by sequence number, and an aggregate's snapshot. Read-only, for viewers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Path, Query

from evento.event_stores.base import EventFilter
from evento.messages import StoredEvent
from evento.server.api._context import ApiContext, api_context
from evento.server.api._models import ApiModel, Page, PageQuery, epoch_ms, instant
from evento.server.api._security import ViewerRequired

__all__ = ["router"]

router = APIRouter(prefix="/system-state-store", tags=["system state store"], dependencies=[ViewerRequired])

#: Sequence numbers are 64-bit signed in every store.
MAX_SEQUENCE = 2**63 - 1
#: Text a filter compares with stored text: bounded, and without NUL (no database stores it in text).
_TEXT = {"max_length": 256, "pattern": r"^[^\x00]*$"}
#: Dates a filter accepts: those whose epoch milliseconds every store compares.
_EARLIEST, _LATEST = datetime(1, 1, 2), datetime(9999, 12, 30)


class StoredEventView(ApiModel):
    """A stored event: where it is in the log, what it says (its payload as JSON) and its metadata."""

    sequence_number: int
    aggregate_id: str | None
    aggregate_version: int | None
    event_name: str
    context: str
    timestamp: datetime
    message_id: str
    payload: Any
    metadata: dict[str, str]


class SnapshotView(ApiModel):
    """An aggregate's latest snapshot: its state (as JSON), the version and event it was taken at."""

    aggregate_id: str
    aggregate_version: int
    sequence_number: int
    updated_at: datetime
    deleted: bool
    state: Any


def decoded(data: bytes) -> Any:
    """Stored JSON as a value; text that is not JSON stays a string (shown, not lost)."""
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        return data.decode("utf-8", errors="replace")


def event_view(event: StoredEvent) -> StoredEventView:
    return StoredEventView(
        sequence_number=event.sequence_number,
        aggregate_id=event.aggregate_id,
        aggregate_version=event.aggregate_version,
        event_name=event.event_name,
        context=event.context,
        timestamp=instant(event.timestamp),
        message_id=event.message_id,
        payload=decoded(event.payload),
        metadata=event.metadata,
    )


def _moment(value: datetime | None, name: str) -> int | None:
    if value is None:
        return None
    if not _EARLIEST <= value.replace(tzinfo=None) <= _LATEST:
        raise HTTPException(422, f"Expected a date-time between years 1 and 9999 - at query `{name}`")
    return epoch_ms(value)


@router.get("/event", summary="Browse the stored events")
async def events(
    context: Annotated[ApiContext, Depends(api_context)],
    paging: PageQuery,
    aggregate_id: Annotated[str | None, Query(alias="aggregateId", **_TEXT)] = None,
    event_name: Annotated[str | None, Query(alias="eventName", **_TEXT)] = None,
    event_context: Annotated[str | None, Query(alias="context", **_TEXT)] = None,
    from_seq: Annotated[int | None, Query(alias="fromSeq", ge=0, le=MAX_SEQUENCE)] = None,
    to_seq: Annotated[int | None, Query(alias="toSeq", ge=0, le=MAX_SEQUENCE)] = None,
    from_time: Annotated[datetime | None, Query(alias="from", description="Timestamp at or after (ISO 8601)")] = None,
    to_time: Annotated[datetime | None, Query(alias="to", description="Timestamp at or before (ISO 8601)")] = None,
    q: Annotated[str | None, Query(description="Literal text in the payload, any case", **_TEXT)] = None,
    sort: Annotated[Literal["asc", "desc"], Query(description="By sequence number")] = "desc",
) -> Page[StoredEventView]:
    """The events matching every filter given, newest first unless ``sort=asc``."""
    where = EventFilter(
        aggregate_id=aggregate_id,
        event_name=event_name,
        context=event_context,
        from_sequence=from_seq,
        to_sequence=to_seq,
        from_ms=_moment(from_time, "from"),
        to_ms=_moment(to_time, "to"),
        text=q or None,
        descending=sort == "desc",
    )
    found, total = await context.server.store.browse_events(where, paging.offset, paging.size)
    return Page[StoredEventView].sliced([event_view(event) for event in found], total, paging)


@router.get("/event/{seq}", summary="One stored event", responses={404: {"description": "No such event"}})
async def event(
    seq: Annotated[int, Path(ge=0, le=MAX_SEQUENCE, description="Sequence number")],
    context: Annotated[ApiContext, Depends(api_context)],
) -> StoredEventView:
    """The event of sequence number ``seq``."""
    stored = await context.server.store.event(seq)
    if stored is None:
        raise HTTPException(404, f"no event has sequence number {seq}")
    return event_view(stored)


@router.get("/snapshot", summary="An aggregate's snapshot", responses={404: {"description": "No snapshot"}})
async def snapshot(
    aggregate_id: Annotated[str, Query(alias="aggregateId", min_length=1, **_TEXT)],
    context: Annotated[ApiContext, Depends(api_context)],
) -> SnapshotView:
    """The latest snapshot of the aggregate (aggregates take one every so many events, if at all)."""
    record = await context.server.store.snapshot(aggregate_id)
    if record is None:
        raise HTTPException(404, f"the aggregate {aggregate_id!r} has no snapshot")
    return SnapshotView(
        aggregate_id=record.aggregate_id,
        aggregate_version=record.aggregate_version,
        sequence_number=record.sequence_number,
        updated_at=instant(record.updated_ms),
        deleted=record.deleted,
        state=decoded(record.state),
    )
