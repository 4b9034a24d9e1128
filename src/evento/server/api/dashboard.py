"""``GET /api/dashboard``: the cluster at a glance — its servers, bundles and instances, what the catalog holds by
kind, how many events and aggregates the event store has, and how fast events are being published;
``GET /api/dashboard/publication-rate``: the publication rate over time, per bucket of the event store's
timestamps."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import Field

from evento._version import __version__
from evento.server.api._context import ApiContext, api_context
from evento.server.api._models import ApiModel, instant
from evento.server.api._security import ViewerRequired

# The performance API's range parameters, read and checked the same way (RFC 3339, at most MAX_BUCKETS buckets).
from evento.server.api._time_range import BAD_RANGE, From, Interval, To, time_range

__all__ = ["PublicationRate", "PublicationRateBucket", "publication_rate", "router"]

router = APIRouter(tags=["dashboard"], dependencies=[ViewerRequired])

#: The publication rate is measured over the events of the last this many seconds…
RATE_WINDOW_SECONDS = 60.0
#: …of which at most this many are read (a faster rate is measured over a shorter span).
RATE_SAMPLE = 2000


class Tally(ApiModel):
    """How many there are, and how many of them are online."""

    total: int
    online: int


class KindCounts(ApiModel):
    """How many there are, and how many of each kind."""

    total: int
    by_kind: dict[str, int]


class Dashboard(ApiModel):
    """The cluster at a glance. ``publicationRate``: events per second published lately (over the last
    ``publicationWindowSeconds``)."""

    cluster_name: str
    version: str
    server_id: str
    servers: Tally
    bundles: Tally
    instances: int
    components: KindCounts
    payloads: KindCounts
    handlers: int
    events: int
    aggregates: int
    head: int
    publication_rate: float
    publication_window_seconds: float


def publication_rate(
    timestamps: list[int], now_ms: int, window_seconds: float = RATE_WINDOW_SECONDS, sample: int = RATE_SAMPLE
) -> float:
    """Events per second over the recent past, from the timestamps of the newest events (newest first, at most
    ``sample`` of them). When all of a full sample is inside the window, the rate is measured over the sample's
    own span: more events than the sample arrived in the window.

    >>> publication_rate([10_000, 9_000, 8_000], now_ms=10_000, window_seconds=60)
    0.05
    >>> publication_rate([10_000, 9_500, 9_000, 8_500], now_ms=10_000, window_seconds=60, sample=4)
    2.667
    """
    horizon = now_ms - window_seconds * 1000
    recent = [stamp for stamp in timestamps if stamp >= horizon]
    if not recent:
        return 0.0
    if len(recent) >= sample:
        span = (now_ms - recent[-1]) / 1000
        return round(len(recent) / span, 3) if span > 0 else float(len(recent))
    return round(len(recent) / window_seconds, 3)


@router.get("/dashboard", summary="The cluster at a glance")
async def dashboard(context: Annotated[ApiContext, Depends(api_context)]) -> Dashboard:
    """Servers, bundles, instances, the catalog by kind, events, aggregates and the recent publication rate."""
    server, catalog, store = context.server, context.server.catalog, context.server.store
    servers = await catalog.servers()
    bundles = await catalog.bundles()
    components = await catalog.components()
    payloads = await catalog.payloads()
    handlers = await catalog.handlers()
    now = int(time.time() * 1000)
    return Dashboard(
        cluster_name=context.settings.cluster_name,
        version=__version__,
        server_id=server.server_id,
        servers=Tally(total=len(servers), online=sum(s.online for s in servers)),
        bundles=Tally(total=len(bundles), online=sum(b.online for b in bundles)),
        instances=len(await catalog.instances()),
        components=KindCounts(
            total=len(components), by_kind=dict(Counter(str(c.info.kind) for c in components).most_common())
        ),
        payloads=KindCounts(total=len(payloads), by_kind=dict(Counter(p.info.kind for p in payloads).most_common())),
        handlers=len(handlers),
        events=await store.count_events(),
        aggregates=await store.count_aggregates(),
        head=await store.head(),
        publication_rate=publication_rate(await store.recent_timestamps(RATE_SAMPLE), now),
        publication_window_seconds=RATE_WINDOW_SECONDS,
    )


class PublicationRateBucket(ApiModel):
    """One time bucket: the ``events`` whose timestamp falls in it, and their rate per second over the bucket's
    width (the last bucket of a range may be narrower than ``interval``)."""

    timestamp: datetime
    events: int
    rate_per_s: float


class PublicationRate(ApiModel):
    """The publication rate over ``[from, to)`` in buckets of ``interval`` seconds, every bucket listed (those
    without events at 0) so a chart draws the quiet spans too."""

    interval: int
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    events: int
    buckets: list[PublicationRateBucket]


@router.get("/dashboard/publication-rate", summary="The publication rate over time", responses=BAD_RANGE)
async def publication_rate_over_time(
    context: Annotated[ApiContext, Depends(api_context)],
    interval: Interval = 60,
    start: From = None,
    end: To = None,
) -> PublicationRate:
    """Events per second in buckets of ``interval`` seconds over ``[from, to)`` (default: the hour up to now), by
    the events' own timestamps."""
    from_ms, to_ms = time_range(interval, start, end)
    width = interval * 1000
    counts = await context.server.store.count_by_time(from_ms, to_ms, width)
    buckets = []
    for begin in range(from_ms, to_ms, width):
        events = counts.get(begin, 0)
        seconds = (min(begin + width, to_ms) - begin) / 1000
        at = instant(begin)
        buckets.append(PublicationRateBucket(timestamp=at, events=events, rate_per_s=round(events / seconds, 3)))
    return PublicationRate(
        interval=interval,
        from_=instant(from_ms),
        to=instant(to_ms),
        events=sum(b.events for b in buckets),
        buckets=buckets,
    )
