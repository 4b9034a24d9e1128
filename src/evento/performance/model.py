"""The pieces of a performance model: what goes in (handlers, their statistics, the server's own stations) and the
network of sources, stations and edges that flows are drawn as (reference §5 "Flows", "Performance evaluation").

A *flow* starts at a :class:`Source` (an invoker handler, or a payload that enters the system from outside) and
runs through :class:`Station` s joined by :class:`Edge` s: the server's gateway, the handler, the gateway's
response (the event, view or nothing the handler answers), the event store, then the asynchronous consumers of
the event and, recursively, what they send. Every path is its own copy of the stations it passes (the network is
a forest, one tree per source), so one handler reached by two paths is two stations; what they share — the one
active consumer of a projector or a saga — is accounted for by the evaluation, which groups stations by consumer.

Units: service times in milliseconds (as the telemetry measures them), rates in requests per second.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from evento.discovery import ComponentKind, HandlerInfo, HandlerKind

__all__ = [
    "Edge",
    "Handler",
    "HandlerStatistics",
    "Network",
    "ServerStationTimes",
    "Source",
    "Station",
    "StationKind",
    "handler_id",
]


def handler_id(bundle_id: str, component: str, payload: str) -> str:
    """The id of a handler across the system: ``bundle:component:payload`` (as the catalog and telemetry name it)."""
    return f"{bundle_id}:{component}:{payload}"


@dataclass(frozen=True)
class Handler:
    """One handler of the system: its discovery description and the bundle it runs in (a catalog handler row)."""

    bundle_id: str
    info: HandlerInfo

    @property
    def handler_id(self) -> str:
        """``bundle:component:payload``."""
        return handler_id(self.bundle_id, self.info.component, self.info.payload)

    @property
    def component(self) -> str:
        """The component's name."""
        return self.info.component

    @property
    def payload(self) -> str:
        """The payload it handles."""
        return self.info.payload

    @property
    def sends(self) -> tuple[str, ...]:
        """The commands and queries it sends, commands first, each once, in name order within its kind."""
        commands = sorted(self.info.invoked_commands)
        return (*commands, *sorted(q for q in self.info.invoked_queries if q not in self.info.invoked_commands))

    @property
    def emitted_event(self) -> str | None:
        """The event the server appends for it: what an aggregate or service command handler returns."""
        if self.info.handler_kind in (HandlerKind.AGGREGATE_COMMAND, HandlerKind.COMMAND):
            return self.info.return_type
        return None

    @property
    def is_consumer(self) -> bool:
        """Whether it handles events from the store (a projector's, saga's or observer's event handler)."""
        return self.info.handler_kind in (HandlerKind.EVENT, HandlerKind.SAGA_EVENT)

    @property
    def has_one_active_consumer(self) -> bool:
        """Whether one instance at a time runs it: a projector's or saga's event handler holds its consumer's lock
        and handles events one after the other, so its station has one server whatever the number of instances.

        An observer holds the lock too, but hands each event to a task of its own (up to ``observer_concurrency``
        at once), so, as in the original, its station is an infinite-server one.
        """
        return self.is_consumer and self.info.component_kind in (ComponentKind.PROJECTOR, ComponentKind.SAGA)


@dataclass(frozen=True)
class HandlerStatistics:
    """What telemetry knows of one handler: its mean service time (the aged mean) and how many of each payload it
    sends per handling (``invocation_probability``: 2.0 means two sends per handling on average)."""

    bundle_id: str
    component: str
    payload: str
    mean_service_ms: float | None
    invocation_probability: Mapping[str, float] = field(default_factory=dict)

    @property
    def handler_id(self) -> str:
        """``bundle:component:payload``."""
        return handler_id(self.bundle_id, self.component, self.payload)


@dataclass(frozen=True)
class ServerStationTimes:
    """The server's own time per request, as its telemetry measures it: the broker's time per command (locking,
    loading the aggregate's story, publishing, without the bundle's handler), the event store's append per event
    and the query router's time per query. ``None``: not measured (the station then takes no time)."""

    gateway_ms: float | None = None
    event_store_ms: float | None = None
    query_gateway_ms: float | None = None


class StationKind(enum.StrEnum):
    """What a station stands for."""

    #: The server receiving a command or query (the broker, or the query router).
    GATEWAY = "Gateway"
    #: A handler answering a request: an invoker's, an aggregate's, a service's or a projection's.
    HANDLER = "Handler"
    #: The server receiving the handler's answer: the event (or "Void") of a command, the view of a query.
    RESPONSE = "GatewayResponse"
    #: The event store appending an event.
    EVENT_STORE = "EventStore"
    #: An asynchronous consumer's event handler: a projector's, a saga's or an observer's.
    CONSUMER = "Consumer"


@dataclass(frozen=True)
class Source:
    """Where a flow starts: an invoker handler (or any handler a selection starts from), or a payload entering the
    system from outside. ``key`` names it for what-if overrides: the handler id, or the payload's name."""

    id: int
    key: str
    payload: str
    payload_kind: str | None
    handler: Handler | None = None


@dataclass(frozen=True)
class Station:
    """One station of one path: the server's gateway, response or event store for ``payload``, or ``handler``.

    ``one_active_consumer``: a finite station with a single server (a projector's or saga's event handler).
    ``repeated``: the cycle guard stopped here, because the handler already runs further up the same path; the
    station counts its work once and is not expanded again. ``is_query``: a gateway receiving a query (the query
    router's time, not the command broker's).
    """

    id: int
    kind: StationKind
    flow: str
    payload: str
    payload_kind: str | None
    handler: Handler | None = None
    one_active_consumer: bool = False
    repeated: bool = False
    is_query: bool = False

    @property
    def bundle_id(self) -> str | None:
        """The bundle whose handler this is; ``None`` for the server's own stations."""
        return self.handler.bundle_id if self.handler else None

    @property
    def is_async(self) -> bool:
        """Whether the station runs decoupled from its caller (a consumer reading events from the store)."""
        return self.kind is StationKind.CONSUMER


@dataclass(frozen=True)
class Edge:
    """A path from a source or station (``origin``) to a station (``target``).

    ``sender`` and ``sent`` name the invocation the edge stands for when a handler sends a command or query
    (``sender`` the handler id, ``sent`` the payload): its probability is how many the handler sends per handling.
    Every other edge carries each request once.
    """

    origin: int
    target: int
    sender: str | None = None
    sent: str | None = None


@dataclass
class Network:
    """The sources, stations and edges of the selected flows, in breadth-first order from each source (a parent
    before its children). ``truncated``: the network reached :data:`~evento.performance.flows.MAX_STATIONS` and
    stopped growing."""

    sources: list[Source] = field(default_factory=list)
    stations: list[Station] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    truncated: bool = False
