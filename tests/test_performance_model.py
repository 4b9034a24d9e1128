"""The performance model (reference §5) on small networks whose every figure is computed by hand in the test.

Units: service times in ms, rates in requests per second; a one-consumer station (a projector's or saga's event
handler) has capacity ``servers × 1000 / S`` per second. The systems are made of handler descriptions as
discovery reports them, so the flows are built exactly as for a real system.
"""

from __future__ import annotations

import itertools

import pytest

from evento.discovery import ComponentKind, HandlerInfo, HandlerKind
from evento.performance import (
    MAX_STATIONS,
    Evaluation,
    Handler,
    HandlerStatistics,
    InvalidInputError,
    Network,
    PerformanceInputs,
    Provenance,
    Selection,
    SelectionKind,
    ServerStationTimes,
    StationKind,
    StationResult,
    UnknownSelectionError,
    WhatIf,
    build_network,
    evaluate,
)

# --- a small vocabulary of handlers ------------------------------------------------------------------------------


def invoker(bundle: str, name: str, commands: tuple[str, ...] = (), queries: tuple[str, ...] = ()) -> Handler:
    return Handler(
        bundle,
        HandlerInfo(
            component="Api",
            component_kind=ComponentKind.INVOKER,
            handler_kind=HandlerKind.INVOCATION,
            payload=f"Api::{name}",
            payload_kind="Invocation",
            handler_name=name,
            invoked_commands=dict.fromkeys(commands, "1"),
            invoked_queries=dict.fromkeys(queries, "1"),
        ),
    )


def aggregate(bundle: str, component: str, command: str, event: str) -> Handler:
    return Handler(
        bundle,
        HandlerInfo(
            component=component,
            component_kind=ComponentKind.AGGREGATE,
            handler_kind=HandlerKind.AGGREGATE_COMMAND,
            payload=command,
            payload_kind="DomainCommand",
            handler_name=f"on_{command}",
            return_type=event,
        ),
    )


def event_sourcing(bundle: str, component: str, event: str) -> Handler:
    return Handler(
        bundle,
        HandlerInfo(
            component=component,
            component_kind=ComponentKind.AGGREGATE,
            handler_kind=HandlerKind.EVENT_SOURCING,
            payload=event,
            payload_kind="DomainEvent",
            handler_name=f"apply_{event}",
        ),
    )


def service(
    bundle: str, component: str, command: str, event: str | None = None, commands: tuple[str, ...] = ()
) -> Handler:
    return Handler(
        bundle,
        HandlerInfo(
            component=component,
            component_kind=ComponentKind.SERVICE,
            handler_kind=HandlerKind.COMMAND,
            payload=command,
            payload_kind="ServiceCommand",
            handler_name=f"on_{command}",
            return_type=event,
            invoked_commands=dict.fromkeys(commands, "1"),
        ),
    )


def projection(bundle: str, component: str, query: str, view: str) -> Handler:
    return Handler(
        bundle,
        HandlerInfo(
            component=component,
            component_kind=ComponentKind.PROJECTION,
            handler_kind=HandlerKind.QUERY,
            payload=query,
            payload_kind="Query",
            handler_name=f"on_{query}",
            return_type=view,
        ),
    )


def consumer(bundle: str, component: str, kind: ComponentKind, event: str, commands: tuple[str, ...] = ()) -> Handler:
    return Handler(
        bundle,
        HandlerInfo(
            component=component,
            component_kind=kind,
            handler_kind=HandlerKind.SAGA_EVENT if kind is ComponentKind.SAGA else HandlerKind.EVENT,
            payload=event,
            payload_kind="DomainEvent",
            handler_name=f"on_{event}",
            invoked_commands=dict.fromkeys(commands, "1"),
        ),
    )


def projector(bundle: str, component: str, event: str) -> Handler:
    return consumer(bundle, component, ComponentKind.PROJECTOR, event)


def saga(bundle: str, component: str, event: str, commands: tuple[str, ...] = ()) -> Handler:
    return consumer(bundle, component, ComponentKind.SAGA, event, commands)


def observer(bundle: str, component: str, event: str, commands: tuple[str, ...] = ()) -> Handler:
    return consumer(bundle, component, ComponentKind.OBSERVER, event, commands)


def stats(handler: Handler, ms: float | None, **sends: float) -> HandlerStatistics:
    return HandlerStatistics(handler.bundle_id, handler.component, handler.payload, ms, sends)


def only(evaluation: Evaluation, handler: Handler) -> StationResult:
    """The one station of ``handler`` in the evaluation."""
    found = [r for r in evaluation.stations if r.station.handler == handler]
    assert len(found) == 1, found
    return found[0]


def of_kind(evaluation: Evaluation, kind: StationKind, payload: str) -> StationResult:
    found = [r for r in evaluation.stations if r.station.kind is kind and r.station.payload == payload]
    assert len(found) == 1, found
    return found[0]


def chain(network: Network) -> list[tuple[StationKind, str]]:
    return [(s.kind, s.payload) for s in network.stations]


approx = pytest.approx

# --- a chain with no bottleneck -----------------------------------------------------------------------------------

API = invoker("web", "create", commands=("Create",))
AGG = aggregate("command", "Todo", "Create", "Created")
AGG_ES = event_sourcing("command", "Todo", "Created")
PROJ = projector("query", "TodoProjector", "Created")


def test_a_command_flow_runs_gateway_handler_response_event_store_and_consumer_in_order() -> None:
    network = build_network([AGG_ES, PROJ, AGG, API], Selection(SelectionKind.ALL))
    assert [s.key for s in network.sources] == [API.handler_id]
    assert chain(network) == [
        (StationKind.HANDLER, "Api::create"),
        (StationKind.GATEWAY, "Create"),
        (StationKind.HANDLER, "Create"),
        (StationKind.RESPONSE, "Created"),
        (StationKind.EVENT_STORE, "Created"),
        (StationKind.CONSUMER, "Created"),
    ]
    # A straight line: each station's one edge comes from the node before it (the source first).
    ids = [network.sources[0].id, *(s.id for s in network.stations)]
    assert [(e.origin, e.target) for e in network.edges] == list(itertools.pairwise(ids))
    assert [s.one_active_consumer for s in network.stations] == [False] * 5 + [True]
    assert network.stations[-1].is_async
    # The invoker's edge to the gateway is the invocation the telemetry counts.
    assert (network.edges[1].sender, network.edges[1].sent) == (API.handler_id, "Create")


def test_a_chain_without_bottleneck_carries_the_source_rate_everywhere_and_littles_law_gives_the_customers() -> None:
    """Source every 20 ms: λ = 1000/20 = 50/s everywhere (every probability 1).

    Customers L = λ·S: invoker 50 × 3 ms = 0.15, gateway 50 × 1 ms = 0.05, aggregate 50 × 2 ms = 0.1, response 0,
    event store 50 × 0.5 ms = 0.025, projector 50 × 4 ms = 0.2. The projector's consumer is offered 0.2 < 1
    server, so the re-split gives it servers = 0.2, capacity 0.2 × 1000 / 4 = 50/s: exactly its workload, no
    bottleneck. Per bundle: web 0.15, command 0.1, query 0.2; the server's stations 0.05 + 0 + 0.025 = 0.075.
    The flow alone saturates the projector at 1 / 4 ms = 250 requests/s.
    """
    network = build_network([API, AGG, AGG_ES, PROJ], Selection(SelectionKind.ALL))
    inputs = PerformanceInputs(
        [stats(API, 3.0), stats(AGG, 2.0), stats(PROJ, 4.0)],
        ServerStationTimes(gateway_ms=1.0, event_store_ms=0.5),
        instances={"web": 1, "command": 1, "query": 1},
    )
    result = evaluate(network, inputs, WhatIf(default_inter_arrival_ms=20.0))

    assert [r.workload_per_s for r in result.stations] == approx([50.0] * 6)
    assert [r.throughput_per_s for r in result.stations] == approx([50.0] * 6)
    assert not any(r.bottleneck for r in result.stations)
    assert [r.customers for r in result.stations] == approx([0.15, 0.05, 0.1, 0.0, 0.025, 0.2])
    assert [r.service_time_provenance for r in result.stations] == [
        Provenance.MEASURED,
        Provenance.MEASURED,
        Provenance.MEASURED,
        Provenance.DEFAULT,
        Provenance.MEASURED,
        Provenance.MEASURED,
    ]
    proj = only(result, PROJ)
    assert proj.servers == approx(0.2)
    assert proj.capacity_per_s == approx(50.0)
    assert proj.queue_growth_per_s == approx(0.0)
    assert only(result, AGG).servers is None
    assert only(result, AGG).capacity_per_s is None
    assert {b.bundle_id: b.customers for b in result.bundles} == approx({"web": 0.15, "command": 0.1, "query": 0.2})
    assert result.server_customers == approx(0.075)
    flow = result.flow(API.handler_id)
    assert flow.inter_arrival_ms == approx(20.0)
    assert flow.workload_per_s == approx(50.0)
    assert flow.main_bottleneck is None
    assert flow.max_throughput_per_s is None
    assert flow.sustained_rate_per_s == approx(50.0)
    assert flow.saturation_rate_per_s == approx(250.0)
    assert [e.rate_per_s for e in result.edges] == approx([50.0] * 6)
    assert result.converged


# --- a projector bottleneck ---------------------------------------------------------------------------------------

SAGA = saga("process", "Process", "Created", commands=("Register",))
REG = aggregate("command", "Registry", "Register", "Registered")
SLOW = projector("query", "RegistryProjector", "Registered")


def test_a_saga_bottleneck_caps_the_rates_after_it_and_is_the_flows_main_bottleneck() -> None:
    """Source every 20 ms: 50/s. The saga takes 25 ms: demand 50 × 0.025 = 1.25 > 1 server, so it keeps its whole
    server (1.25 / max(1, 1.25) = 1), capacity 1000 / 25 = 40/s < 50: a bottleneck, throughput 40, its queue grows
    by 50 − 40 = 10/s, customers min(1, 1.25) = 1. Everything after it sees 40/s. The projector of the saga's
    event takes 50 ms: capacity 1000 / 50 = 20/s < 40, a second bottleneck, throughput 20 — but the saga is
    upstream of it, so its main bottleneck is the saga, and the flow's main bottleneck is the saga with throughput
    40; the flow sustains 50 × 40/50 = 40 source requests/s up to the saga. Alone, the flow saturates its busiest
    consumer, the projector at 50 ms per source request, at 1 / 0.05 = 20/s.
    """
    handlers = [API, AGG, SAGA, REG, SLOW]
    network = build_network(handlers, Selection(SelectionKind.HANDLER, API.handler_id))
    inputs = PerformanceInputs([stats(SAGA, 25.0), stats(SLOW, 50.0)])
    result = evaluate(network, inputs, WhatIf(default_inter_arrival_ms=20.0))

    saga_result = only(result, SAGA)
    assert saga_result.workload_per_s == approx(50.0)
    assert saga_result.servers == approx(1.0)
    assert saga_result.capacity_per_s == approx(40.0)
    assert saga_result.throughput_per_s == approx(40.0)
    assert saga_result.bottleneck
    assert saga_result.main_bottleneck is None
    assert saga_result.queue_growth_per_s == approx(10.0)
    assert saga_result.customers == approx(1.0)

    after = [of_kind(result, StationKind.GATEWAY, "Register"), only(result, REG)]
    assert [r.workload_per_s for r in after] == approx([40.0, 40.0])
    assert all(r.main_bottleneck == saga_result.station.id for r in after)

    slow = only(result, SLOW)
    assert slow.workload_per_s == approx(40.0)
    assert slow.throughput_per_s == approx(20.0)
    assert slow.bottleneck
    assert slow.main_bottleneck == saga_result.station.id

    flow = result.flow(API.handler_id)
    assert flow.main_bottleneck == saga_result.station.id
    assert flow.max_throughput_per_s == approx(40.0)
    assert flow.sustained_rate_per_s == approx(40.0)
    assert flow.saturation_rate_per_s == approx(20.0)
    # The edge into the saga carries what the event store passes on (50/s), the one out of it the capped 40/s.
    into = next(e for e in result.edges if e.edge.target == saga_result.station.id)
    out = next(e for e in result.edges if e.edge.origin == saga_result.station.id)
    assert (into.rate_per_s, out.rate_per_s) == approx((50.0, 40.0))


def test_the_main_bottleneck_of_a_flow_is_the_first_one_that_holds_it_back_most() -> None:
    """Two consumers of the same event, side by side (neither upstream of the other), at 150/s (every 1000/150 ms):
    the projector (10 ms, capacity 100/s) passes 100/150 of it, the saga (40 ms, capacity 25/s) 25/150: the saga
    holds the flow back most, so it is the main bottleneck; the flow sustains 150 × 25/150 = 25/s."""
    fast = projector("query", "Fast", "Created")
    slow = saga("process", "Slow", "Created")
    network = build_network([API, AGG, fast, slow], Selection(SelectionKind.ALL))
    result = evaluate(
        network,
        PerformanceInputs([stats(fast, 10.0), stats(slow, 40.0)]),
        WhatIf(default_inter_arrival_ms=1000 / 150),
    )
    assert only(result, fast).throughput_per_s == approx(100.0)
    assert only(result, slow).throughput_per_s == approx(25.0)
    flow = result.flow(API.handler_id)
    assert flow.main_bottleneck == only(result, slow).station.id
    assert flow.max_throughput_per_s == approx(25.0)
    assert flow.sustained_rate_per_s == approx(25.0)


# --- the server re-split ------------------------------------------------------------------------------------------


def test_two_handlers_of_one_projector_share_its_one_server_in_proportion_to_their_demand() -> None:
    """Two flows, each creating its own kind of list; one projector handles both events.

    A: every 10 ms = 100/s, the projector's handler takes 6 ms → demand 100 × 0.006 = 0.6.
    B: every 20 ms = 50/s, its handler takes 10 ms → demand 50 × 0.010 = 0.5.
    Pass 1 (one server each): capacities 1000/6 = 166.7 and 1000/10 = 100, no bottleneck. Total demand 1.1 > 1:
    shares 0.6/1.1 = 6/11 and 0.5/1.1 = 5/11, moved by 5/11 + 6/11 = 1 in total.
    Pass 2: capacities (6/11)·1000/6 = 1000/11 = 90.909 < 100 and (5/11)·1000/10 = 500/11 = 45.455 < 50: both
    bottlenecks. The workloads did not change (nothing before them is capped), so the shares stay: converged
    after 2 passes. Check: the server is busy 90.909 × 0.006 + 45.455 × 0.010 = 6/11 + 5/11 = 1 of the time.
    Customers: min(share, λ·S) = 6/11 and 5/11.
    """
    api_b = invoker("web", "create_b", commands=("CreateB",))
    agg_b = aggregate("command", "TodoB", "CreateB", "CreatedB")
    proj_a = projector("query", "Lists", "Created")
    proj_b = projector("query", "Lists", "CreatedB")
    network = build_network([API, AGG, api_b, agg_b, proj_a, proj_b], Selection(SelectionKind.ALL))
    what_if = WhatIf(inter_arrival_ms={API.handler_id: 10.0, api_b.handler_id: 20.0})
    result = evaluate(network, PerformanceInputs([stats(proj_a, 6.0), stats(proj_b, 10.0)]), what_if)

    a, b = only(result, proj_a), only(result, proj_b)
    assert (a.servers, b.servers) == approx((6 / 11, 5 / 11))
    assert (a.throughput_per_s, b.throughput_per_s) == approx((1000 / 11, 500 / 11))
    assert a.bottleneck
    assert b.bottleneck
    assert a.throughput_per_s * 0.006 + b.throughput_per_s * 0.010 == approx(1.0)
    assert (a.customers, b.customers) == approx((6 / 11, 5 / 11))
    assert result.iterations == 2
    assert result.converged
    assert result.flow(API.handler_id).max_throughput_per_s == approx(1000 / 11)
    assert result.flow(api_b.handler_id).max_throughput_per_s == approx(500 / 11)


def test_the_re_split_shares_out_the_rates_that_reach_the_consumer_after_upstream_caps() -> None:
    """Flow A every 10 ms = 100/s: a saga (another consumer, 20 ms: capacity 50/s, a bottleneck passing 50/s)
    sends Register; the projector handles Registered in 8 ms. Flow B every 20 ms = 50/s: the same projector
    handles Created2 in 10 ms.

    Pass 1 (one server each): the projector is offered 50/s on each handler (A's capped by the saga): capacities
    1000/8 = 125 and 1000/10 = 100, no bottleneck. Its demands 50 × 0.008 = 0.4 and 50 × 0.010 = 0.5, total
    0.9 < 1: each gets what it needs, shares 0.4 and 0.5 (moved by 0.6 + 0.5 = 1.1; the saga, alone in its
    consumer, keeps 2 / max(1, 2) = 1).
    Pass 2: capacities 0.4 × 125 = 50 and 0.5 × 100 = 50, exactly their workloads: no bottleneck, the same
    shares, converged after 2 passes. Had the re-split counted A's 100/s offered before the saga, the projector
    (0.8 + 0.5 = 1.3 > 1) would wrongly be a bottleneck.
    """
    gate = saga("process", "Gate", "Created", commands=("Register",))
    on_registered = projector("query", "Lists", "Registered")
    api_b = invoker("web", "create_b", commands=("CreateB",))
    agg_b = aggregate("command", "TodoB", "CreateB", "Created2")
    on_created2 = projector("query", "Lists", "Created2")
    network = build_network(
        [API, AGG, gate, REG, on_registered, api_b, agg_b, on_created2], Selection(SelectionKind.ALL)
    )
    inputs = PerformanceInputs([stats(gate, 20.0), stats(on_registered, 8.0), stats(on_created2, 10.0)])
    result = evaluate(network, inputs, WhatIf(inter_arrival_ms={API.handler_id: 10.0, api_b.handler_id: 20.0}))

    assert only(result, gate).throughput_per_s == approx(50.0)
    assert only(result, gate).servers == approx(1.0)
    one, two = only(result, on_registered), only(result, on_created2)
    assert (one.workload_per_s, two.workload_per_s) == approx((50.0, 50.0))
    assert (one.servers, two.servers) == approx((0.4, 0.5))
    assert (one.capacity_per_s, two.capacity_per_s) == approx((50.0, 50.0))
    assert not one.bottleneck
    assert not two.bottleneck
    assert one.main_bottleneck == only(result, gate).station.id
    assert result.iterations == 2
    assert result.converged
    assert result.flow(api_b.handler_id).main_bottleneck is None


def test_a_flow_through_two_handlers_of_one_saga_uses_its_whole_server_within_ten_passes() -> None:
    """One flow through two handlers of one saga: Created (4 ms), then, after its command, Registered (12 ms);
    every 10 ms = 100/s. A request needs 16 ms of the saga's one server: the bottleneck law gives 1000/16 = 62.5
    requests/s (``saturation_rate_per_s``). The re-split, as the original's, shares the server by the offered
    demands: the first handler is offered all 100/s (0.4) while the second only gets what the first passes, so
    the shares swing around their fixed point and the iteration stops after its ten passes, unconverged; the
    saga is over-committed all along (total demand above 1), so the shares always add up to one whole server."""
    first = saga("process", "Process", "Created", commands=("Register",))
    second = saga("process", "Process", "Registered")
    network = build_network([API, AGG, REG, first, second], Selection(SelectionKind.ALL))
    result = evaluate(
        network, PerformanceInputs([stats(first, 4.0), stats(second, 12.0)]), WhatIf(default_inter_arrival_ms=10.0)
    )
    one, two = only(result, first), only(result, second)
    assert result.iterations == 10
    assert not result.converged
    assert (one.servers or 0) + (two.servers or 0) == approx(1.0)
    assert result.flow(API.handler_id).saturation_rate_per_s == approx(62.5)
    assert two.workload_per_s == approx(one.throughput_per_s)


# --- invocation probabilities -------------------------------------------------------------------------------------


def test_invocation_probabilities_below_and_above_one_scale_the_rates() -> None:
    """Source every 10 ms = 100/s. The invoker sends Create on half of its handlings (telemetry: 0.5): the gateway,
    the aggregate, the event store and the saga see 100 × 0.5 = 50/s. The saga sends Register twice per handling
    (telemetry: 2.0): 50 × 2 = 100/s reach Register's gateway and the registry. The registry's event goes to a
    projector: 100/s. An edge's rate is its origin's throughput times its probability."""
    network = build_network([API, AGG, SAGA, REG, SLOW], Selection(SelectionKind.ALL))
    inputs = PerformanceInputs([stats(API, None, Create=0.5), stats(SAGA, 1.0, Register=2.0)])
    result = evaluate(network, inputs, WhatIf(default_inter_arrival_ms=10.0))

    assert of_kind(result, StationKind.GATEWAY, "Create").workload_per_s == approx(50.0)
    assert only(result, AGG).workload_per_s == approx(50.0)
    assert of_kind(result, StationKind.EVENT_STORE, "Created").workload_per_s == approx(50.0)
    assert only(result, SAGA).workload_per_s == approx(50.0)
    assert of_kind(result, StationKind.GATEWAY, "Register").workload_per_s == approx(100.0)
    assert only(result, REG).workload_per_s == approx(100.0)
    assert only(result, SLOW).workload_per_s == approx(100.0)
    sent = {(e.edge.sender, e.edge.sent): e for e in result.edges if e.edge.sender}
    assert sent[API.handler_id, "Create"].probability == 0.5
    assert sent[API.handler_id, "Create"].probability_provenance is Provenance.MEASURED
    assert sent[API.handler_id, "Create"].rate_per_s == approx(50.0)
    assert sent[SAGA.handler_id, "Register"].probability == 2.0
    assert sent[SAGA.handler_id, "Register"].rate_per_s == approx(100.0)
    # Without telemetry the code's sends count once per handling.
    bare = evaluate(network)
    assert {e.probability for e in bare.edges} == {1.0}
    assert {e.probability_provenance for e in bare.edges if e.edge.sender} == {Provenance.DEFAULT}


# --- the cycle guard ----------------------------------------------------------------------------------------------


def test_a_cycle_is_drawn_once_more_as_a_repeated_station_and_not_expanded_again() -> None:
    """The saga handles Created and sends Create, whose aggregate emits Created again. On the path invoker →
    Create → aggregate → Created → saga → Create → aggregate, the aggregate is already upstream: it is drawn as a
    repeated station and the flow stops there. With the invoker every 10 ms (100/s) and the saga sending Create
    on 30 % of its events, the repeated aggregate is offered 100 × 0.3 = 30/s, counted once."""
    looping = saga("process", "Loop", "Created", commands=("Create",))
    network = build_network([API, AGG, looping], Selection(SelectionKind.ALL))
    assert chain(network) == [
        (StationKind.HANDLER, "Api::create"),
        (StationKind.GATEWAY, "Create"),
        (StationKind.HANDLER, "Create"),
        (StationKind.RESPONSE, "Created"),
        (StationKind.EVENT_STORE, "Created"),
        (StationKind.CONSUMER, "Created"),
        (StationKind.GATEWAY, "Create"),
        (StationKind.HANDLER, "Create"),
    ]
    assert [s.repeated for s in network.stations] == [False] * 7 + [True]
    result = evaluate(
        network, PerformanceInputs([stats(looping, 1.0, Create=0.3)]), WhatIf(default_inter_arrival_ms=10.0)
    )
    assert result.stations[-1].workload_per_s == approx(30.0)


def test_a_network_stops_growing_at_the_station_limit() -> None:
    """A fan-out of ten consumers at every level grows tenfold per level: the builder stops at MAX_STATIONS."""
    handlers = [AGG, API]
    events = ["Created"]
    for level in range(5):
        nxt = []
        for n in range(10):
            command, event = f"C{level}_{n}", f"E{level}_{n}"
            handlers.append(aggregate("command", f"A{level}_{n}", command, event))
            nxt.append(event)
        commands = tuple(f"C{level}_{n}" for n in range(10))
        handlers.extend(observer("obs", f"O_{event}", event, commands=commands) for event in events)
        events = nxt
    network = build_network(handlers, Selection(SelectionKind.ALL))
    assert network.truncated
    assert len(network.stations) == MAX_STATIONS
    assert evaluate(network).stations[-1].workload_per_s == approx(1.0)


# --- what-if --------------------------------------------------------------------------------------------------------

FAST = projector("query", "Lists", "Created")
NOTIFY = saga("process", "Notify", "Created")


def _what_if_base() -> tuple[Network, PerformanceInputs]:
    network = build_network([API, AGG, FAST, NOTIFY], Selection(SelectionKind.ALL))
    return network, PerformanceInputs([stats(FAST, 10.0), stats(NOTIFY, 5.0)], instances={"query": 1})


def test_what_if_overrides_change_the_bottleneck() -> None:
    """Base: every 20 ms = 50/s to a projector at 10 ms (capacity 100/s) and a saga at 5 ms (200/s): no bottleneck.

    - the saga at 40 ms: capacity 1000/40 = 25/s < 50: the saga is the bottleneck, throughput 25.
    - the projector at 30 ms: 1000/30 = 33.3/s < 50: the projector is.
    - the invoker sending Create three times per handling: 150/s reach both; the projector (100/s) is a
      bottleneck, the saga (200/s) is not.
    - a source every 4 ms = 250/s: both are (100 and 200 < 250); the projector holds the flow back most.
    """
    network, inputs = _what_if_base()
    base = evaluate(network, inputs, WhatIf(default_inter_arrival_ms=20.0))
    assert not any(r.bottleneck for r in base.stations)

    slow_saga = evaluate(
        network, inputs, WhatIf(default_inter_arrival_ms=20.0, service_times_ms={NOTIFY.handler_id: 40.0})
    )
    assert only(slow_saga, NOTIFY).bottleneck
    assert only(slow_saga, NOTIFY).throughput_per_s == approx(25.0)
    assert only(slow_saga, NOTIFY).service_time_provenance is Provenance.OVERRIDE
    assert not only(slow_saga, FAST).bottleneck
    assert slow_saga.flow(API.handler_id).main_bottleneck == only(slow_saga, NOTIFY).station.id

    slow_projector = evaluate(
        network, inputs, WhatIf(default_inter_arrival_ms=20.0, service_times_ms={FAST.handler_id: 30.0})
    )
    assert only(slow_projector, FAST).throughput_per_s == approx(1000 / 30)
    assert slow_projector.flow(API.handler_id).main_bottleneck == only(slow_projector, FAST).station.id

    tripled = evaluate(
        network,
        inputs,
        WhatIf(default_inter_arrival_ms=20.0, invocation_probabilities={API.handler_id: {"Create": 3.0}}),
    )
    assert only(tripled, FAST).workload_per_s == approx(150.0)
    assert only(tripled, FAST).bottleneck
    assert not only(tripled, NOTIFY).bottleneck
    assert next(e for e in tripled.edges if e.edge.sender).probability_provenance is Provenance.OVERRIDE

    faster_source = evaluate(network, inputs, WhatIf(inter_arrival_ms={API.handler_id: 4.0}))
    assert faster_source.flow(API.handler_id).workload_per_s == approx(250.0)
    assert only(faster_source, FAST).bottleneck
    assert only(faster_source, NOTIFY).bottleneck
    assert faster_source.flow(API.handler_id).main_bottleneck == only(faster_source, FAST).station.id
    assert faster_source.flow(API.handler_id).sustained_rate_per_s == approx(100.0)


def test_more_instances_divide_a_bundles_concurrency_but_add_no_capacity_to_a_projector() -> None:
    """Every 5 ms = 200/s to the projector at 10 ms: capacity 100/s with one instance — and with three, since one
    consumer holds the lock. The query bundle's customers: min(1 server, 200 × 0.010 = 2) = 1; per instance 1/3."""
    network, inputs = _what_if_base()
    one = evaluate(network, inputs, WhatIf(default_inter_arrival_ms=5.0))
    three = evaluate(network, inputs, WhatIf(default_inter_arrival_ms=5.0, instances={"query": 3}))
    for result in (one, three):
        assert only(result, FAST).throughput_per_s == approx(100.0)
    query = {b.bundle_id: b for b in three.bundles}["query"]
    assert (query.customers, query.instances, query.customers_per_instance) == approx((1.0, 3, 1 / 3))
    assert {b.bundle_id: b for b in one.bundles}["query"].customers_per_instance == approx(1.0)


def test_the_servers_own_stations_take_their_measured_times_and_what_if_replaces_them() -> None:
    """A command's gateway takes the broker's time, a query's the query router's, the event store its append; a
    what-if value replaces a measurement. At 50/s (every 20 ms): customers 50 × 2 ms = 0.1 at the command
    gateway, 50 × 0.4 ms = 0.02 at the query gateway, 50 × 1 ms = 0.05 at the event store; with the event store
    at 3 ms instead: 0.15."""
    finder = invoker("web", "find", queries=("Find",))
    proj = projection("query", "Lists", "Find", "ListView")
    network = build_network([API, AGG, finder, proj], Selection(SelectionKind.ALL))
    measured = PerformanceInputs(
        server_stations=ServerStationTimes(gateway_ms=2.0, event_store_ms=1.0, query_gateway_ms=0.4)
    )
    result = evaluate(network, measured, WhatIf(default_inter_arrival_ms=20.0))
    assert of_kind(result, StationKind.GATEWAY, "Create").customers == approx(0.1)
    assert of_kind(result, StationKind.GATEWAY, "Find").customers == approx(0.02)
    assert of_kind(result, StationKind.GATEWAY, "Find").station.is_query
    assert of_kind(result, StationKind.EVENT_STORE, "Created").customers == approx(0.05)
    assert of_kind(result, StationKind.RESPONSE, "ListView").workload_per_s == approx(50.0)
    slower = evaluate(
        network, measured, WhatIf(default_inter_arrival_ms=20.0, server_stations=ServerStationTimes(event_store_ms=3.0))
    )
    assert of_kind(slower, StationKind.EVENT_STORE, "Created").customers == approx(0.15)
    assert of_kind(slower, StationKind.EVENT_STORE, "Created").service_time_provenance is Provenance.OVERRIDE
    assert of_kind(slower, StationKind.GATEWAY, "Create").customers == approx(0.1)


def test_a_consumer_nobody_measured_is_estimated_from_what_it_waits_for() -> None:
    """The saga has no telemetry; it sends Register twice per handling to an aggregate measured at 3 ms: it is
    assumed to take 2 × 3 = 6 ms (at least 1 ms, as the original). A projector sending nothing: 1 ms."""
    network = build_network([API, AGG, SAGA, REG, SLOW], Selection(SelectionKind.ALL))
    result = evaluate(network, PerformanceInputs([stats(SAGA, None, Register=2.0), stats(REG, 3.0)]))
    assert only(result, SAGA).service_time_ms == approx(6.0)
    assert only(result, SAGA).service_time_provenance is Provenance.ESTIMATE
    assert only(result, SLOW).service_time_ms == approx(1.0)


@pytest.mark.parametrize(
    ("what_if", "message"),
    [
        (WhatIf(service_times_ms={"h": -1.0}), "service time of h"),
        (WhatIf(service_times_ms={"h": float("nan")}), "service time of h"),
        (WhatIf(invocation_probabilities={"h": {"P": -0.5}}), "probability of P by h"),
        (WhatIf(inter_arrival_ms={"s": 0.0}), "inter-arrival time of s"),
        (WhatIf(default_inter_arrival_ms=float("inf")), "inter-arrival time of the default"),
        (WhatIf(instances={"b": 0}), "instance count of b"),
        (WhatIf(server_stations=ServerStationTimes(gateway_ms=-2.0)), "server's gateway time"),
    ],
)
def test_what_if_values_out_of_range_are_refused(what_if: WhatIf, message: str) -> None:
    network = build_network([API, AGG], Selection(SelectionKind.ALL))
    with pytest.raises(InvalidInputError, match=message):
        evaluate(network, what_if=what_if)


# --- selections -----------------------------------------------------------------------------------------------------


def test_selections_start_from_a_handler_a_payload_a_component_a_bundle_or_every_entry_point() -> None:
    external = service("process", "Mailer", "SendMail")  # handled here, sent by nobody: an external entry point
    handlers = [API, AGG, AGG_ES, PROJ, SAGA, REG, external]

    everything = build_network(handlers, Selection(SelectionKind.ALL))
    assert [s.key for s in everything.sources] == [API.handler_id, "SendMail"]

    # A command handler's flow enters through the gateway; a consumer's starts at the consumer.
    by_handler = build_network(handlers, Selection(SelectionKind.HANDLER, REG.handler_id))
    assert chain(by_handler)[:2] == [(StationKind.GATEWAY, "Register"), (StationKind.HANDLER, "Register")]
    by_consumer = build_network(handlers, Selection(SelectionKind.HANDLER, SAGA.handler_id))
    assert chain(by_consumer)[0] == (StationKind.CONSUMER, "Created")

    # An event payload enters at the event store and reaches every consumer.
    by_event = build_network(handlers, Selection(SelectionKind.PAYLOAD, "Created"))
    assert [s.key for s in by_event.sources] == ["Created"]
    assert chain(by_event)[:3] == [
        (StationKind.EVENT_STORE, "Created"),
        (StationKind.CONSUMER, "Created"),
        (StationKind.CONSUMER, "Created"),
    ]

    # A component's and a bundle's flows start at each of their handlers, event-sourcing handlers excepted.
    by_component = build_network(handlers, Selection(SelectionKind.COMPONENT, "Todo"))
    assert [s.key for s in by_component.sources] == [AGG.handler_id]
    by_bundle = build_network(handlers, Selection(SelectionKind.BUNDLE, "command"))
    assert [s.key for s in by_bundle.sources] == [REG.handler_id, AGG.handler_id]  # in handler id order

    for selection in (
        Selection(SelectionKind.HANDLER, "nope:nope:nope"),
        Selection(SelectionKind.PAYLOAD, "Nothing"),
        Selection(SelectionKind.COMPONENT, "Nobody"),
        Selection(SelectionKind.BUNDLE, "missing"),
    ):
        with pytest.raises(UnknownSelectionError):
            build_network(handlers, selection)


def test_rates_that_overflow_are_refused_rather_than_answered_as_infinity() -> None:
    """A chain of 120 commands each sent 1000 times per handling: 1000^120 = 1e360 requests per source request,
    beyond a float (about 1.8e308)."""
    handlers = [invoker("web", "start", commands=("C0",))]
    handlers += [service("svc", f"S{n}", f"C{n}", commands=(f"C{n + 1}",)) for n in range(120)]
    network = build_network(handlers, Selection(SelectionKind.ALL))
    probabilities = {h.handler_id: dict.fromkeys(h.info.invoked_commands, 1000.0) for h in handlers}
    with pytest.raises(InvalidInputError, match="overflow"):
        evaluate(network, what_if=WhatIf(invocation_probabilities=probabilities))
