"""Flows and their performance evaluation (reference §5): ``GET /api/flows/`` (every entry point of the system),
``/api/flows/handler/{handlerId}``, ``/payload/{name}``, ``/component/{name}``, ``/bundle/{bundleId}`` (the flows
starting there), each evaluated with the telemetry's measurements and a source inter-arrival time
(``?interArrivalMs=``, 1000 by default as the original's flow page); ``POST /api/flows/evaluate`` evaluates a
selection with what-if values instead of measured ones (it changes nothing, so a viewer may).

The model is built from the catalog's handlers (what each sends, as analysis and telemetry found it), the
telemetry's per-handler aged mean service times (a consumer's handlers with its overhead per event added) and
invocation probabilities, the server's own stations (the broker per command, the event store's append) and the
online instances per bundle; see :mod:`evento.performance` for what is computed. Rates are in requests per
second, times in milliseconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import ConfigDict, Field

from evento.performance import (
    DEFAULT_INTER_ARRIVAL_MS,
    Evaluation,
    Handler,
    HandlerStatistics,
    InvalidInputError,
    PerformanceInputs,
    Provenance,
    Selection,
    SelectionKind,
    ServerStationTimes,
    StationKind,
    UnknownSelectionError,
    WhatIf,
    build_network,
    evaluate,
)
from evento.server.api._context import ApiContext, api_context
from evento.server.api._models import ApiModel
from evento.server.api._security import ViewerRequired
from evento.server.catalog import HandlerRecord
from evento.server.telemetry import CONSUMER_KINDS

if TYPE_CHECKING:
    from evento.server.server import EventoServer

__all__ = [
    "BundleLoadItem",
    "EdgeItem",
    "EvaluateRequest",
    "FlowItem",
    "FlowModel",
    "SelectionBody",
    "ServerStationsBody",
    "SourceItem",
    "StationItem",
    "measured_inputs",
    "router",
    "system_handlers",
]

router = APIRouter(prefix="/flows", tags=["flows"], dependencies=[ViewerRequired])

#: Bounds of what-if values: wide enough for any real system, narrow enough that no product of them overflows.
MAX_TIME_MS = 1e7
MAX_INTER_ARRIVAL_MS = 1e9
MIN_INTER_ARRIVAL_MS = 1e-3
MAX_PROBABILITY = 1e3
MAX_INSTANCES = 10_000

Name = Annotated[str, Path(min_length=1, max_length=1024)]
InterArrival = Annotated[
    float,
    Query(
        alias="interArrivalMs",
        ge=MIN_INTER_ARRIVAL_MS,
        le=MAX_INTER_ARRIVAL_MS,
        allow_inf_nan=False,
        description="Milliseconds between two requests of every source (1000: one a second)",
    ),
]
Time = Annotated[float, Field(ge=0, le=MAX_TIME_MS, allow_inf_nan=False)]
Probability = Annotated[float, Field(ge=0, le=MAX_PROBABILITY, allow_inf_nan=False)]
Gap = Annotated[float, Field(ge=MIN_INTER_ARRIVAL_MS, le=MAX_INTER_ARRIVAL_MS, allow_inf_nan=False)]
Key = Annotated[str, Field(min_length=1, max_length=1024)]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such handler, payload, component or bundle"}}


# --- bodies ----------------------------------------------------------------------------------------------------


class _StrictBody(ApiModel):
    """A request body taken as its schema says: no ``false`` read as 0 or ``"3"`` as 3."""

    model_config = ConfigDict(**ApiModel.model_config, strict=True)


class SelectionBody(_StrictBody):
    """Which flows: ``all`` entry points, or those starting at one ``handler`` (its id), ``payload``, or every
    handler of one ``component`` or ``bundle`` (``value`` names it)."""

    # An enum arrives as its JSON string, which strict validation would refuse.
    kind: Annotated[SelectionKind, Field(strict=False)] = SelectionKind.ALL
    value: str = Field(default="", max_length=1024)


class ServerStationsBody(_StrictBody):
    """What-if times of the server's own stations (ms); those left out keep their measured time."""

    gateway_ms: Time | None = None
    event_store_ms: Time | None = None
    query_gateway_ms: Time | None = None


class EvaluateRequest(_StrictBody):
    """A selection of flows and what-if values to evaluate it with.

    ``serviceTimesMs``: handler id → mean service time. ``invocationProbabilities``: handler id → sent payload →
    requests per handling. ``sourceInterArrivalMs``: source key (a handler id or payload name, as ``sources``
    lists them) → ms between two requests; ``interArrivalMs`` for the other sources. ``instances``: bundle id →
    instance count. Every key must name a handler, payload sent, source or bundle of the system.
    """

    selection: SelectionBody = Field(default_factory=SelectionBody)
    inter_arrival_ms: Gap = DEFAULT_INTER_ARRIVAL_MS
    source_inter_arrival_ms: dict[Key, Gap] = Field(default_factory=dict, max_length=10_000)
    service_times_ms: dict[Key, Time] = Field(default_factory=dict, max_length=10_000)
    invocation_probabilities: dict[Key, dict[Key, Probability]] = Field(default_factory=dict, max_length=10_000)
    instances: dict[Key, Annotated[int, Field(ge=1, le=MAX_INSTANCES)]] = Field(default_factory=dict, max_length=10_000)
    server_stations: ServerStationsBody = Field(default_factory=ServerStationsBody)


# --- answers ---------------------------------------------------------------------------------------------------


class SourceItem(ApiModel):
    """Where a flow starts: an invoker's (or the selected) handler, or a payload entering from outside. ``key``
    names it in ``sourceInterArrivalMs``; ``ratePerS`` = 1000 ÷ ``interArrivalMs``."""

    id: int
    key: str
    payload: str
    payload_kind: str | None
    handler_id: str | None
    bundle_id: str | None
    component: str | None
    inter_arrival_ms: float
    rate_per_s: float


class StationItem(ApiModel):
    """One station of one path, evaluated.

    ``kind``: ``Gateway`` (the server receiving a command or query), ``Handler``, ``GatewayResponse`` (the answer:
    an event, a view or ``Void``), ``EventStore``, ``Consumer`` (a projector's, saga's or observer's event
    handler, asynchronous). ``oneActiveConsumer``: a projector or saga handler, one server per context whatever
    the instances; ``servers`` its share of that server, ``null`` for infinite-server stations, as
    ``capacityPerS``. ``repeated``: the cycle guard stopped here. ``mainBottleneck``: the id of the first
    bottleneck upstream. ``customers``: Little's law, ``workloadPerS`` × ``serviceTimeMs`` ÷ 1000.
    """

    id: int
    kind: StationKind
    flow: str
    payload: str
    payload_kind: str | None
    handler_id: str | None
    bundle_id: str | None
    component: str | None
    component_kind: str | None
    handler_kind: str | None
    source_file: str | None
    line: int | None
    is_async: bool
    one_active_consumer: bool
    repeated: bool
    service_time_ms: float
    service_time_provenance: Provenance
    servers: float | None
    capacity_per_s: float | None
    workload_per_s: float
    throughput_per_s: float
    queue_growth_per_s: float
    bottleneck: bool
    main_bottleneck: int | None
    customers: float


class EdgeItem(ApiModel):
    """A path from ``origin`` (a source or station id) to ``target``: ``probability`` requests per origin
    handling (an invocation when ``sender`` sends ``sent``, else 1), ``ratePerS`` what it carries."""

    origin: int
    target: int
    sender: str | None
    sent: str | None
    is_async: bool
    probability: float
    probability_provenance: Provenance
    rate_per_s: float


class FlowItem(ApiModel):
    """One flow evaluated: its ``mainBottleneck`` (station id), the throughput there (``maxThroughputPerS``, the
    original's "max throughput"; ``null`` without bottleneck), the source rate it sustains, and
    ``saturationRatePerS``: the source rate at which it alone keeps its busiest one-consumer component busy all
    the time (``null`` when it passes none)."""

    source: str
    source_id: int
    inter_arrival_ms: float
    workload_per_s: float
    main_bottleneck: int | None
    max_throughput_per_s: float | None
    sustained_rate_per_s: float
    saturation_rate_per_s: float | None


class BundleLoadItem(ApiModel):
    """A bundle's concurrent requests (``Σ customers`` of its stations), and per instance (instances add no
    capacity in the model: see :mod:`evento.performance.evaluation`)."""

    bundle_id: str
    customers: float
    instances: int
    customers_per_instance: float | None


class FlowModel(ApiModel):
    """The flows of a selection, evaluated: ``sources``, ``stations`` and ``edges`` (a parent before its
    children), per-flow and per-bundle figures, the customers of the server's own stations, and how the re-split
    of one-consumer stations ended (``converged`` within ``iterations`` passes). ``truncated``: the network hit
    its station limit."""

    selection: SelectionBody
    sources: list[SourceItem]
    stations: list[StationItem]
    edges: list[EdgeItem]
    flows: list[FlowItem]
    bundles: list[BundleLoadItem]
    server_customers: float
    iterations: int
    converged: bool
    truncated: bool


# --- routes ----------------------------------------------------------------------------------------------------

Context = Annotated[ApiContext, Depends(api_context)]


@router.get("/", summary="Every flow")
async def all_flows(context: Context, inter_arrival_ms: InterArrival = DEFAULT_INTER_ARRIVAL_MS) -> FlowModel:
    """The flows of every entry point: each invoker handler, and each payload handled here that no handler of
    the system sends."""
    return await _model(context, Selection(SelectionKind.ALL), WhatIf(default_inter_arrival_ms=inter_arrival_ms))


@router.get("/handler/{handler_id}", summary="Flows from a handler", responses=_NOT_FOUND)
async def handler_flows(
    handler_id: Name, context: Context, inter_arrival_ms: InterArrival = DEFAULT_INTER_ARRIVAL_MS
) -> FlowModel:
    """The flow starting at one handler (``bundle:component:payload``): through the server's gateway for a
    command or query handler, at the handler itself for an invoker or consumer."""
    selection = Selection(SelectionKind.HANDLER, handler_id)
    return await _model(context, selection, WhatIf(default_inter_arrival_ms=inter_arrival_ms))


@router.get("/payload/{name}", summary="Flows from a payload", responses=_NOT_FOUND)
async def payload_flows(
    name: Name, context: Context, inter_arrival_ms: InterArrival = DEFAULT_INTER_ARRIVAL_MS
) -> FlowModel:
    """The flow of one payload entering the system: a command or query at the server's gateway, an event at the
    event store."""
    return await _model(
        context, Selection(SelectionKind.PAYLOAD, name), WhatIf(default_inter_arrival_ms=inter_arrival_ms)
    )


@router.get("/component/{name}", summary="Flows from a component", responses=_NOT_FOUND)
async def component_flows(
    name: Name, context: Context, inter_arrival_ms: InterArrival = DEFAULT_INTER_ARRIVAL_MS
) -> FlowModel:
    """The flows starting at each handler of a component."""
    selection = Selection(SelectionKind.COMPONENT, name)
    return await _model(context, selection, WhatIf(default_inter_arrival_ms=inter_arrival_ms))


@router.get("/bundle/{bundle_id}", summary="Flows from a bundle", responses=_NOT_FOUND)
async def bundle_flows(
    bundle_id: Name, context: Context, inter_arrival_ms: InterArrival = DEFAULT_INTER_ARRIVAL_MS
) -> FlowModel:
    """The flows starting at each handler of a bundle."""
    selection = Selection(SelectionKind.BUNDLE, bundle_id)
    return await _model(context, selection, WhatIf(default_inter_arrival_ms=inter_arrival_ms))


@router.post("/evaluate", summary="What-if evaluation", responses=_NOT_FOUND)
async def evaluate_flows(request: EvaluateRequest, context: Context) -> FlowModel:
    """Evaluate a selection with what-if values in place of the measured ones (nothing is changed). A key that
    names nothing of the system is refused (422), as is a selection of nothing (404)."""
    stations = request.server_stations
    what_if = WhatIf(
        service_times_ms=request.service_times_ms,
        invocation_probabilities=request.invocation_probabilities,
        inter_arrival_ms=request.source_inter_arrival_ms,
        default_inter_arrival_ms=request.inter_arrival_ms,
        instances=request.instances,
        server_stations=ServerStationTimes(stations.gateway_ms, stations.event_store_ms, stations.query_gateway_ms),
    )
    if request.selection.kind is not SelectionKind.ALL and not request.selection.value:
        raise HTTPException(422, f"the selection {request.selection.kind.value!r} needs a value naming what it selects")
    return await _model(context, Selection(request.selection.kind, request.selection.value), what_if, checked=True)


# --- building the model ------------------------------------------------------------------------------------------


async def _model(context: ApiContext, selection: Selection, what_if: WhatIf, *, checked: bool = False) -> FlowModel:
    """Build and evaluate the flows of ``selection`` from the catalog and the telemetry; ``checked``: refuse
    what-if keys that name nothing."""
    server = context.server
    records = await server.catalog.handlers()
    handlers = [Handler(r.bundle_id, r.info) for r in records]
    kinds = {p.info.name: p.info.kind for p in await server.catalog.payloads()}
    try:
        network = build_network(handlers, selection, kinds)
    except UnknownSelectionError as exc:
        if not await _known(context, selection, kinds):
            raise HTTPException(404, str(exc)) from None
        network = build_network([], Selection(SelectionKind.ALL))  # known, but no handler starts a flow there
    if checked:
        _check_keys(what_if, records, {s.key for s in network.sources})
    try:
        result = evaluate(network, await measured_inputs(server), what_if)
    except InvalidInputError as exc:
        raise HTTPException(422, str(exc)) from None
    return _answer(selection, result)


async def measured_inputs(server: EventoServer) -> PerformanceInputs:
    """What the running cluster reports for the model: every handler's aged mean service time and invocation
    probabilities, the server's own stations (the broker per command, the event store's append, the query router
    when measured), and the online instances per bundle.

    A projector's, saga's or observer's handler station serves an event for longer than its handler runs: the
    consumer's overhead per event (thread hops, the checkpoint commit, a saga's state, an observer's claim; see
    :meth:`~evento.server.telemetry.TelemetryStore.consumer_overheads`) is added to the handler's aged mean."""
    overheads = await server.telemetry.consumer_overheads()
    statistics = [
        HandlerStatistics(
            s.bundle_id,
            s.component,
            s.payload,
            s.aged_mean_ms
            + (overheads.get((s.bundle_id, s.component), 0.0) if s.component_kind in CONSUMER_KINDS else 0.0),
            s.invocation_probability,
        )
        for s in await server.telemetry.handler_stats()
    ]
    own = await server.telemetry.server_stations()
    measured = ServerStationTimes(
        gateway_ms=own["gateway"].aged_mean_ms if "gateway" in own else None,
        event_store_ms=own["event_store"].aged_mean_ms if "event_store" in own else None,
        query_gateway_ms=own["query_gateway"].aged_mean_ms if "query_gateway" in own else None,
    )
    # An instance connected to two servers of the cluster is listed by both: count it once.
    online = {(i.bundle_id, i.instance_id) for i in await server.catalog.instances()}
    instances: dict[str, int] = {}
    for bundle_id, _ in online:
        instances[bundle_id] = instances.get(bundle_id, 0) + 1
    return PerformanceInputs(statistics, measured, instances)


async def system_handlers(server: EventoServer) -> list[Handler]:
    """Every handler of the cluster's catalog, for :func:`~evento.performance.build_network`."""
    return [Handler(r.bundle_id, r.info) for r in await server.catalog.handlers()]


async def _known(context: ApiContext, selection: Selection, kinds: dict[str, str]) -> bool:
    """Whether the catalog knows what ``selection`` names even though no flow starts there (a view, a bundle
    whose handlers are gone)."""
    if selection.kind is SelectionKind.PAYLOAD:
        return selection.value in kinds
    if selection.kind is SelectionKind.COMPONENT:
        return any(c.info.name == selection.value for c in await context.server.catalog.components())
    if selection.kind is SelectionKind.BUNDLE:
        return await context.server.catalog.bundle(selection.value) is not None
    return False


def _check_keys(what_if: WhatIf, records: list[HandlerRecord], sources: set[str]) -> None:
    by_id = {r.handler_id: r for r in records}
    bundles = {r.bundle_id for r in records}
    for handler_id in what_if.service_times_ms:
        if handler_id not in by_id:
            raise HTTPException(422, f"serviceTimesMs: no handler {handler_id!r}")
    for handler_id, sent in what_if.invocation_probabilities.items():
        record = by_id.get(handler_id)
        if record is None:
            raise HTTPException(422, f"invocationProbabilities: no handler {handler_id!r}")
        for payload in sent:
            if payload not in record.info.invoked_commands and payload not in record.info.invoked_queries:
                raise HTTPException(422, f"invocationProbabilities: {handler_id!r} does not send {payload!r}")
    for key in what_if.inter_arrival_ms:
        if key not in sources:
            raise HTTPException(422, f"sourceInterArrivalMs: no source {key!r} in the selected flows")
    for bundle_id in what_if.instances:
        if bundle_id not in bundles:
            raise HTTPException(422, f"instances: no bundle {bundle_id!r} with handlers")


def _answer(selection: Selection, result: Evaluation) -> FlowModel:
    rates = {f.source.id: f for f in result.flows}
    sources = [
        SourceItem(
            id=s.id,
            key=s.key,
            payload=s.payload,
            payload_kind=s.payload_kind,
            handler_id=s.handler.handler_id if s.handler else None,
            bundle_id=s.handler.bundle_id if s.handler else None,
            component=s.handler.component if s.handler else None,
            inter_arrival_ms=rates[s.id].inter_arrival_ms,
            rate_per_s=rates[s.id].workload_per_s,
        )
        for s in result.network.sources
    ]
    stations = []
    for r in result.stations:
        station, handler = r.station, r.station.handler
        info = handler.info if handler else None
        stations.append(
            StationItem(
                id=station.id,
                kind=station.kind,
                flow=station.flow,
                payload=station.payload,
                payload_kind=station.payload_kind,
                handler_id=handler.handler_id if handler else None,
                bundle_id=station.bundle_id,
                component=info.component if info else None,
                component_kind=info.component_kind.value if info else None,
                handler_kind=info.handler_kind.value if info else None,
                source_file=info.source_file if info else None,
                line=info.line if info else None,
                is_async=station.is_async,
                one_active_consumer=station.one_active_consumer,
                repeated=station.repeated,
                service_time_ms=r.service_time_ms,
                service_time_provenance=r.service_time_provenance,
                servers=r.servers,
                capacity_per_s=r.capacity_per_s,
                workload_per_s=r.workload_per_s,
                throughput_per_s=r.throughput_per_s,
                queue_growth_per_s=r.queue_growth_per_s,
                bottleneck=r.bottleneck,
                main_bottleneck=r.main_bottleneck,
                customers=r.customers,
            )
        )
    asynchronous = {r.station.id for r in result.stations if r.station.is_async}
    edges = [
        EdgeItem(
            origin=e.edge.origin,
            target=e.edge.target,
            sender=e.edge.sender,
            sent=e.edge.sent,
            is_async=e.edge.target in asynchronous,
            probability=e.probability,
            probability_provenance=e.probability_provenance,
            rate_per_s=e.rate_per_s,
        )
        for e in result.edges
    ]
    flows = [
        FlowItem(
            source=f.source.key,
            source_id=f.source.id,
            inter_arrival_ms=f.inter_arrival_ms,
            workload_per_s=f.workload_per_s,
            main_bottleneck=f.main_bottleneck,
            max_throughput_per_s=f.max_throughput_per_s,
            sustained_rate_per_s=f.sustained_rate_per_s,
            saturation_rate_per_s=f.saturation_rate_per_s,
        )
        for f in result.flows
    ]
    bundles = [
        BundleLoadItem(
            bundle_id=b.bundle_id,
            customers=b.customers,
            instances=b.instances,
            customers_per_instance=b.customers_per_instance,
        )
        for b in result.bundles
    ]
    return FlowModel(
        selection=SelectionBody(kind=selection.kind, value=selection.value),
        sources=sources,
        stations=stations,
        edges=edges,
        flows=flows,
        bundles=bundles,
        server_customers=result.server_customers,
        iterations=result.iterations,
        converged=result.converged,
        truncated=result.network.truncated,
    )
