"""Telemetry over time (reference §4.8, the component catalog's charts): ``GET /api/performance/component`` (per
handler of a component, time buckets of hits and service time), ``GET /api/performance/aggregate`` (an
aggregate's commands as the server's broker saw them: lock, retrieve, compute, publish) and ``GET
/api/performance/handler`` (every handler's statistics: count, mean, aged mean, min, max, last, arrival rate,
invocation probabilities).

The buckets are ``interval`` seconds wide over ``[from, to)`` (default: the hour up to now); ``aggregation`` (``AVG``,
``MAX``, ``MIN``) says how the service times inside a bucket combine. Hits count every handling, sampled or not;
service times only the sampled ones (a bucket without samples has ``null``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from evento.server.api._context import ApiContext, api_context
from evento.server.api._models import ApiModel, Page, PageQuery, instant
from evento.server.api._security import Viewer
from evento.server.api._time_range import BAD_RANGE, From, Interval, To, time_range
from evento.server.telemetry import Aggregation, HandlerStats

__all__ = [
    "AggregatePerformance",
    "ComponentPerformance",
    "HandlerPerformance",
    "HandlerStatistics",
    "PhaseTimes",
    "ServiceTimes",
    "router",
]

router = APIRouter(prefix="/performance", tags=["performance"])

BundleId = Annotated[str, Query(alias="bundleId", min_length=1, max_length=256, description="The bundle's id")]
ComponentId = Annotated[
    str, Query(alias="componentId", min_length=1, max_length=256, description="The component's name")
]
AggregationQuery = Annotated[
    Aggregation, Query(description="How service times inside a bucket combine: AVG, MAX or MIN")
]


class ServiceTimes(ApiModel):
    """One time bucket of a handler: ``hits`` handlings, and their service time in ms (``null`` without a
    sample)."""

    timestamp: datetime
    hits: int
    service_time_ms: float | None


class HandlerPerformance(ApiModel):
    """A handler of the component and its buckets."""

    handler_id: str
    component_kind: str
    handler_kind: str
    payload: str
    points: list[ServiceTimes]


class ComponentPerformance(ApiModel):
    """The buckets of every handler of a component that reported in the range."""

    bundle_id: str
    component_id: str
    aggregation: Aggregation
    interval: int
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    handlers: list[HandlerPerformance]


class PhaseTimes(ApiModel):
    """One time bucket of an aggregate command type, in ms (``null`` without a sample): the whole command as the
    server handled it, the wait for its lock, reading the story, the bundle's round trip and the append."""

    timestamp: datetime
    hits: int
    total_ms: float | None
    lock_ms: float | None
    retrieve_ms: float | None
    compute_ms: float | None
    publish_ms: float | None


class CommandPhases(ApiModel):
    """The buckets of one command type of the aggregate."""

    payload: str
    points: list[PhaseTimes]


class AggregatePerformance(ApiModel):
    """The server's phases of an aggregate's commands over time."""

    bundle_id: str
    component_id: str
    aggregation: Aggregation
    interval: int
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    commands: list[CommandPhases]


class HandlerStatistics(ApiModel):
    """What telemetry knows of a handler (ms): ``count`` sampled handlings, their mean, aged mean (0.67 · new +
    0.33 · old per report), min, max and last; ``arrivals`` every handling; ``arrivalRatePerS`` summed over the
    instances reporting; ``invocationProbability`` the mean sends of each payload per handling."""

    handler_id: str
    bundle_id: str
    component: str
    component_kind: str
    handler_kind: str
    payload: str
    count: int
    arrivals: int
    mean_ms: float
    aged_mean_ms: float
    min_ms: float
    max_ms: float
    last_ms: float
    arrival_rate_per_s: float
    invocation_probability: dict[str, float]
    updated_at: datetime


@router.get("/component", summary="Hits and service times of a component's handlers over time", responses=BAD_RANGE)
async def component_performance(
    context: Annotated[ApiContext, Depends(api_context)],
    principal: Viewer,
    bundle_id: BundleId,
    component_id: ComponentId,
    aggregation: AggregationQuery = Aggregation.AVG,
    interval: Interval = 60,
    start: From = None,
    end: To = None,
) -> ComponentPerformance:
    """Per handler of the component, the buckets of ``interval`` seconds over ``[from, to)``: hits and service
    time combined by ``aggregation``. Handlers without a report in the range are left out."""
    from_ms, to_ms = time_range(interval, start, end)
    series = await context.server.telemetry.series(bundle_id, component_id, aggregation, interval, from_ms, to_ms)
    return ComponentPerformance(
        bundle_id=bundle_id,
        component_id=component_id,
        aggregation=aggregation,
        interval=interval,
        from_=instant(from_ms),
        to=instant(to_ms),
        handlers=[
            HandlerPerformance(
                handler_id=f"{bundle_id}:{component_id}:{s.payload}",
                component_kind=s.component_kind,
                handler_kind=s.handler_kind,
                payload=s.payload,
                points=[
                    ServiceTimes(timestamp=instant(p.start_ms), hits=p.hits, service_time_ms=p.service_time_ms)
                    for p in s.points
                ],
            )
            for s in series
        ],
    )


@router.get("/aggregate", summary="The server's phases of an aggregate's commands over time", responses=BAD_RANGE)
async def aggregate_performance(
    context: Annotated[ApiContext, Depends(api_context)],
    principal: Viewer,
    bundle_id: BundleId,
    component_id: ComponentId,
    aggregation: AggregationQuery = Aggregation.AVG,
    interval: Interval = 60,
    start: From = None,
    end: To = None,
) -> AggregatePerformance:
    """Per command type of the aggregate, the buckets of ``interval`` seconds over ``[from, to)``: commands
    timed, and their lock wait, story retrieval, bundle round trip (compute) and append (publish) combined by
    ``aggregation``."""
    from_ms, to_ms = time_range(interval, start, end)
    telemetry = context.server.telemetry
    series = await telemetry.aggregate_phases(bundle_id, component_id, aggregation, interval, from_ms, to_ms)
    return AggregatePerformance(
        bundle_id=bundle_id,
        component_id=component_id,
        aggregation=aggregation,
        interval=interval,
        from_=instant(from_ms),
        to=instant(to_ms),
        commands=[
            CommandPhases(
                payload=s.payload,
                points=[
                    PhaseTimes(
                        timestamp=instant(p.start_ms),
                        hits=p.hits,
                        total_ms=p.total_ms,
                        lock_ms=p.lock_ms,
                        retrieve_ms=p.retrieve_ms,
                        compute_ms=p.compute_ms,
                        publish_ms=p.publish_ms,
                    )
                    for p in s.points
                ],
            )
            for s in series
        ],
    )


def statistics(stats: HandlerStats) -> HandlerStatistics:
    """The API's view of a handler's statistics."""
    return HandlerStatistics(
        handler_id=stats.handler_id,
        bundle_id=stats.bundle_id,
        component=stats.component,
        component_kind=stats.component_kind,
        handler_kind=stats.handler_kind,
        payload=stats.payload,
        count=stats.count,
        arrivals=stats.arrivals,
        mean_ms=stats.mean_ms,
        aged_mean_ms=stats.aged_mean_ms,
        min_ms=stats.min_ms,
        max_ms=stats.max_ms,
        last_ms=stats.last_ms,
        arrival_rate_per_s=stats.arrival_rate_per_s,
        invocation_probability=stats.invocation_probability,
        updated_at=instant(stats.updated_ms),
    )


@router.get("/handler", summary="Every handler's statistics")
async def handler_statistics(
    context: Annotated[ApiContext, Depends(api_context)],
    principal: Viewer,
    paging: PageQuery,
    bundle_id: Annotated[
        str | None, Query(alias="bundleId", min_length=1, max_length=256, description="Only this bundle's")
    ] = None,
) -> Page[HandlerStatistics]:
    """The statistics of every handler that reported telemetry (of one bundle with ``bundleId``), then the
    server's own stations (``gateway``, ``event_store``, under the bundle id ``""``)."""
    telemetry = context.server.telemetry
    handlers = await telemetry.handler_stats(bundle_id)
    stations = list((await telemetry.server_stations()).values()) if bundle_id is None else []
    return Page[HandlerStatistics].of([statistics(s) for s in [*handlers, *stations]], paging)
