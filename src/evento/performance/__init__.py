"""The performance model of an Evento application (reference §5): flows of stations built from the system's
handlers, and their evaluation as an open queueing network, with what-if overrides.

A pure computation over discovery data (:mod:`evento.discovery`) and plain numbers: the server feeds it its
catalog and telemetry, tests feed it hand-made systems.

>>> from evento.discovery import ComponentKind, HandlerInfo, HandlerKind
>>> projector = Handler("query", HandlerInfo(component="Projector", component_kind=ComponentKind.PROJECTOR,
...     handler_kind=HandlerKind.EVENT, payload="Created", payload_kind="DomainEvent", handler_name="on_created"))
>>> network = build_network([projector], Selection(SelectionKind.PAYLOAD, "Created"))
>>> stats = HandlerStatistics("query", "Projector", "Created", mean_service_ms=5.0)
>>> result = evaluate(network, PerformanceInputs([stats]), WhatIf(default_inter_arrival_ms=2.0))
>>> result.flow("Created").max_throughput_per_s  # one consumer at 5 ms an event, offered 500 a second
200.0
"""

from evento.performance.evaluation import (
    DEFAULT_INTER_ARRIVAL_MS,
    BundleLoad,
    EdgeResult,
    Evaluation,
    FlowResult,
    InvalidInputError,
    PerformanceInputs,
    Provenance,
    StationResult,
    WhatIf,
    evaluate,
)
from evento.performance.flows import MAX_STATIONS, Selection, SelectionKind, UnknownSelectionError, build_network
from evento.performance.model import (
    Edge,
    Handler,
    HandlerStatistics,
    Network,
    ServerStationTimes,
    Source,
    Station,
    StationKind,
    handler_id,
)

__all__ = [
    "DEFAULT_INTER_ARRIVAL_MS",
    "MAX_STATIONS",
    "BundleLoad",
    "Edge",
    "EdgeResult",
    "Evaluation",
    "FlowResult",
    "Handler",
    "HandlerStatistics",
    "InvalidInputError",
    "Network",
    "PerformanceInputs",
    "Provenance",
    "Selection",
    "SelectionKind",
    "ServerStationTimes",
    "Source",
    "Station",
    "StationKind",
    "StationResult",
    "UnknownSelectionError",
    "WhatIf",
    "build_network",
    "evaluate",
    "handler_id",
]
