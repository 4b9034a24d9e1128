"""Building flows from the system's handlers (reference §5 "Flows"): which sources a selection starts from, and the
stations each source's requests pass through.

A command travels ``Gateway`` (the server's broker) → the handler → ``GatewayResponse`` (its event, or "Void") →
``EventStore`` (events only) → every asynchronous consumer of the event (projectors, sagas, observers), and on
from what each of them sends, recursively. A query travels ``Gateway`` → the projection's handler →
``GatewayResponse`` (its view). An invoker's handler is where a flow starts: it has no gateway before it.

The cycle guard: a handler already on the current path (a saga whose command produces an event the same saga
handles) is drawn once more as a *repeated* station and not expanded again, so every flow is finite.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeAlias

from evento.discovery import HandlerKind
from evento.performance.model import Edge, Handler, Network, Source, Station, StationKind

__all__ = ["MAX_STATIONS", "Selection", "SelectionKind", "UnknownSelectionError", "build_network"]

#: The most stations one network gets: a system whose handlers fan out at every step grows exponentially with
#: the depth of its flows, and a drawing of ten thousand stations says nothing more than one of a few hundred.
MAX_STATIONS = 10_000


class SelectionKind(enum.StrEnum):
    """What a selection of flows names."""

    ALL = "all"
    HANDLER = "handler"
    PAYLOAD = "payload"
    COMPONENT = "component"
    BUNDLE = "bundle"


@dataclass(frozen=True)
class Selection:
    """Which flows to build: every entry point of the system (``ALL``), or the flows starting at one handler (its
    id), at one payload (its name), or at every handler of one component or of one bundle."""

    kind: SelectionKind
    value: str = ""


class UnknownSelectionError(LookupError):
    """The selection names no handler, payload, component or bundle of the handlers given."""


def build_network(
    handlers: Sequence[Handler], selection: Selection, payload_kinds: Mapping[str, str] | None = None
) -> Network:
    """The flows of ``selection`` over the system made of ``handlers``.

    ``payload_kinds`` (payload name → kind, e.g. from the payload catalog) labels payloads no handler declares,
    such as a command nobody handles; otherwise their kind is guessed from how they are used.

    Raises :class:`UnknownSelectionError` when the selection matches nothing in ``handlers``.
    """
    return _Builder(handlers, payload_kinds or {}).build(selection)


#: One step of the breadth-first expansion (a station to add, with its origin, flow and path bound in).
_Task: TypeAlias = Callable[[], None]


class _Builder:
    def __init__(self, handlers: Sequence[Handler], payload_kinds: Mapping[str, str]) -> None:
        self.handlers = sorted(handlers, key=lambda h: h.handler_id)
        self.by_id = {h.handler_id: h for h in self.handlers}
        self.routing: dict[str, Handler] = {}
        self.consumers: dict[str, list[Handler]] = {}
        self.kinds: dict[str, str] = {}
        self.sent: set[str] = set()
        self.emitted: set[str] = set()
        for h in self.handlers:
            self.kinds.setdefault(h.payload, h.info.payload_kind)
            if h.info.routes_requests:
                # The server routes a payload to one handler; a second one (another bundle's copy) is never chosen
                # here either, so the flow is the same whichever the broker picks.
                self.routing.setdefault(h.payload, h)
            elif h.is_consumer:
                self.consumers.setdefault(h.payload, []).append(h)
            self.sent.update(h.sends)
            for name in h.info.invoked_commands:
                self.kinds.setdefault(name, "Command")
            for name in h.info.invoked_queries:
                self.kinds.setdefault(name, "Query")
            if h.emitted_event is not None:
                self.emitted.add(h.emitted_event)
                self.kinds.setdefault(h.emitted_event, "Event")
            if h.info.handler_kind is HandlerKind.QUERY and h.info.return_type is not None:
                self.kinds.setdefault(h.info.return_type, "View")
        self.kinds.update(payload_kinds)
        self.network = Network()
        self.queue: deque[_Task] = deque()
        self.keys: set[str] = set()

    # --- selections ----------------------------------------------------------------------------------------

    def build(self, selection: Selection) -> Network:
        if selection.kind is SelectionKind.ALL:
            self._start_all()
        elif selection.kind is SelectionKind.HANDLER:
            handler = self.by_id.get(selection.value)
            if handler is None:
                raise UnknownSelectionError(f"no handler {selection.value!r}")
            self._start_handler(handler)
        elif selection.kind is SelectionKind.PAYLOAD:
            if not self._known_payload(selection.value):
                raise UnknownSelectionError(f"no handler handles, sends or emits the payload {selection.value!r}")
            self._start_payload(selection.value)
        else:
            if selection.kind is SelectionKind.COMPONENT:
                chosen = [h for h in self.handlers if h.component == selection.value]
            else:
                chosen = [h for h in self.handlers if h.bundle_id == selection.value]
            if not chosen:
                raise UnknownSelectionError(f"no handler in the {selection.kind.value} {selection.value!r}")
            # An event-sourcing handler runs inside its aggregate's command handling: it is no entry point.
            for handler in chosen:
                if handler.info.handler_kind is not HandlerKind.EVENT_SOURCING:
                    self._start_handler(handler)
        while self.queue and not self.network.truncated:
            self.queue.popleft()()
        return self.network

    def _start_all(self) -> None:
        """Every invoker handler, then every payload that enters from outside: handled here, sent or emitted by
        no handler of the system (a command an HTTP endpoint of another process sends, say)."""
        for handler in self.handlers:
            if handler.info.handler_kind is HandlerKind.INVOCATION:
                self._start_handler(handler)
        external = sorted(
            {
                h.payload
                for h in self.handlers
                if (h.info.routes_requests or h.is_consumer)
                and h.payload not in self.sent
                and h.payload not in self.emitted
            }
        )
        for payload in external:
            self._start_payload(payload)

    def _start_handler(self, handler: Handler) -> None:
        source = self._source(handler.handler_id, handler.payload, handler)
        if source is None:
            return
        flow = source.key
        if handler.info.routes_requests:
            self.queue.append(partial(self._request, source.id, flow, handler.payload, None, frozenset(), handler))
        else:
            self.queue.append(partial(self._handle, source.id, flow, handler, frozenset()))

    def _start_payload(self, payload: str) -> None:
        source = self._source(payload, payload, None)
        if source is None:
            return
        flow = source.key
        invokers = [h for h in self.handlers if h.payload == payload and h.info.handler_kind is HandlerKind.INVOCATION]
        if payload in self.routing or payload in self.sent:
            self.queue.append(partial(self._request, source.id, flow, payload, None, frozenset()))
        elif payload in self.consumers or payload in self.emitted:
            self.queue.append(partial(self._event, source.id, flow, payload, frozenset()))
        for handler in invokers:
            self.queue.append(partial(self._handle, source.id, flow, handler, frozenset()))

    def _known_payload(self, payload: str) -> bool:
        return any(h.payload == payload for h in self.handlers) or payload in self.sent or payload in self.emitted

    # --- expansion -----------------------------------------------------------------------------------------

    def _request(
        self,
        origin: int,
        flow: str,
        payload: str,
        sender: Handler | None,
        path: frozenset[str],
        handler: Handler | None = None,
    ) -> None:
        """A command or query reaching the server's gateway, then the handler it is routed to (if any)."""
        gateway = self._station(StationKind.GATEWAY, flow, payload, is_query=self.kinds.get(payload) == "Query")
        if gateway is None:
            return
        self._edge(origin, gateway.id, sender, payload)
        target = handler or self.routing.get(payload)
        if target is not None:
            self.queue.append(partial(self._handle, gateway.id, flow, target, path))

    def _handle(self, origin: int, flow: str, handler: Handler, path: frozenset[str]) -> None:
        """The handler's station, then what it sends and what the server does with its answer."""
        repeated = handler.handler_id in path
        station = self._station(
            StationKind.CONSUMER if handler.is_consumer else StationKind.HANDLER,
            flow,
            handler.payload,
            handler=handler,
            one_active_consumer=handler.has_one_active_consumer,
            repeated=repeated,
        )
        if station is None:
            return
        self._edge(origin, station.id)
        if repeated:
            return
        inner = path | {handler.handler_id}
        for sent in handler.sends:
            self.queue.append(partial(self._request, station.id, flow, sent, handler, inner))
        if handler.info.routes_requests:
            answer = handler.info.return_type or "Void"
            self.queue.append(partial(self._respond, station.id, flow, answer, handler.emitted_event, inner))

    def _respond(self, origin: int, flow: str, answer: str, event: str | None, path: frozenset[str]) -> None:
        """The server receiving a handler's answer; an event goes on to the event store."""
        response = self._station(StationKind.RESPONSE, flow, answer)
        if response is None:
            return
        self._edge(origin, response.id)
        if event is not None:
            self.queue.append(partial(self._event, response.id, flow, event, path))

    def _event(self, origin: int, flow: str, event: str, path: frozenset[str]) -> None:
        """The event store appending an event, then each of its consumers."""
        store = self._station(StationKind.EVENT_STORE, flow, event)
        if store is None:
            return
        self._edge(origin, store.id)
        for consumer in self.consumers.get(event, ()):
            self.queue.append(partial(self._handle, store.id, flow, consumer, path))

    # --- nodes ---------------------------------------------------------------------------------------------

    def _next_id(self) -> int:
        return len(self.network.sources) + len(self.network.stations)

    def _source(self, key: str, payload: str, handler: Handler | None) -> Source | None:
        if key in self.keys:
            return None
        self.keys.add(key)
        source = Source(self._next_id(), key, payload, self.kinds.get(payload), handler)
        self.network.sources.append(source)
        return source

    def _station(
        self,
        kind: StationKind,
        flow: str,
        payload: str,
        *,
        handler: Handler | None = None,
        one_active_consumer: bool = False,
        repeated: bool = False,
        is_query: bool = False,
    ) -> Station | None:
        if len(self.network.stations) >= MAX_STATIONS:
            self.network.truncated = True
            return None
        station = Station(
            self._next_id(),
            kind,
            flow,
            payload,
            self.kinds.get(payload),
            handler=handler,
            one_active_consumer=one_active_consumer,
            repeated=repeated,
            is_query=is_query,
        )
        self.network.stations.append(station)
        return station

    def _edge(self, origin: int, target: int, sender: Handler | None = None, sent: str | None = None) -> None:
        self.network.edges.append(Edge(origin, target, sender.handler_id if sender else None, sent if sender else None))
