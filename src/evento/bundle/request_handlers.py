"""Bundle side of commands and queries: aggregates, services and projections.

Aggregates hold no state between commands: the server sends the story (snapshot + later events) with each
command, the aggregate replays it, runs the handler and returns the one event, the new snapshot when due, and
whether the aggregate is now deleted. The server stores; the bundle never writes the event store.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Generator
from typing import Any

from evento.bundle.calls import CallContext, HandlerRunner
from evento.components.model import ComponentSpec, HandlerSpec
from evento.discovery import HandlerKind
from evento.errors import (
    AggregateDeletedError,
    AggregateInitializedError,
    AggregateNotInitializedError,
    EventoError,
    HandlerNotFoundError,
)
from evento.gateways import CommandGateway, gateways_for
from evento.messages import (
    AggregateCommandRequest,
    AggregateCommandResponse,
    CommandMessage,
    EventMessage,
    QueryMessage,
    QueryRequest,
    QueryResult,
    ServiceCommandRequest,
    ServiceCommandResponse,
    new_message_id,
    now_ms,
)
from evento.payloads import (
    DomainEvent,
    Event,
    QueryResponse,
    ServiceEvent,
    decode_payload,
    encode_payload,
    payload_name,
)

if typing.TYPE_CHECKING:
    from evento.bundle.autoscaling import AutoscalingProtocol
    from evento.outbox import Outbox

__all__ = ["RequestHandlers"]

_Steps = Generator[tuple[HandlerSpec, CallContext], Any, AggregateCommandResponse]
_UNIONS = (typing.Union, types.UnionType)


def _new_state(current: Any, returned: Any) -> Any:
    """Event-sourcing handlers return the new state, or ``None`` after mutating the current one."""
    return current if returned is None else returned


def _returned_events(annotation: Any, default: type[Event]) -> set[type[Event]]:
    """The event classes a handler's return annotation admits: each event class of a union, with its loaded
    subclasses (a handler annotated with a base returns any of them); an unannotated handler any ``default``."""
    if annotation is None:
        roots: list[type[Event]] = [default]
    else:
        members = typing.get_args(annotation) if typing.get_origin(annotation) in _UNIONS else (annotation,)
        roots = [m for m in members if isinstance(m, type) and issubclass(m, Event)]
    found: set[type[Event]] = set()
    while roots:
        cls = roots.pop()
        if cls not in found:
            found.add(cls)
            roots.extend(cls.__subclasses__())
    return found


class RequestHandlers:
    """Routes server requests to the handler that owns the payload type."""

    def __init__(
        self,
        components: list[tuple[ComponentSpec, Any]],
        runner: HandlerRunner,
        outbox: Outbox,
        autoscaling: AutoscalingProtocol | None = None,
    ) -> None:
        self._runner = runner
        self._outbox = outbox
        # Told of every request's arrival and departure; None (the default) costs one test per request.
        self.autoscaling = autoscaling
        # Requests are timed here, whole (decoding, an aggregate's replay, the handler, encoding the answer).
        self._telemetry = runner.telemetry
        self._owners: dict[tuple[HandlerKind, str], tuple[ComponentSpec, Any, HandlerSpec]] = {}
        for spec, instance in components:
            for (kind, name), handler in spec.handlers.items():
                if kind in (HandlerKind.AGGREGATE_COMMAND, HandlerKind.COMMAND, HandlerKind.QUERY):
                    # One handler per payload type in a bundle; the last component listed wins, as in Evento.
                    self._owners[(kind, name)] = (spec, instance, handler)

    def returned_event_names(self) -> set[str]:
        """The event types the aggregate and service handlers may return, declared in the bundle's registration
        (the server stores only events of a type their bundle declared, checked against the type's schema)."""
        names: set[str] = set()
        for _, _, handler in self._owners.values():
            if handler.kind is HandlerKind.AGGREGATE_COMMAND:
                names.update(cls.__name__ for cls in _returned_events(handler.return_type, DomainEvent))
            elif handler.kind is HandlerKind.COMMAND:
                names.update(cls.__name__ for cls in _returned_events(handler.return_type, ServiceEvent))
        return names

    def _owner(self, kind: HandlerKind, name: str) -> tuple[ComponentSpec, Any, HandlerSpec]:
        owner = self._owners.get((kind, name))
        if owner is None:
            raise HandlerNotFoundError(f"this bundle has no {kind} for {name}")
        return owner

    # --- aggregates --------------------------------------------------------------------------------------------

    async def aggregate_command(self, request: AggregateCommandRequest) -> AggregateCommandResponse:
        scaling = self.autoscaling
        if scaling is None:
            return await self._aggregate_command(request)
        scaling.arrival()
        try:
            return await self._aggregate_command(request)
        finally:
            scaling.departure()

    async def _aggregate_command(self, request: AggregateCommandRequest) -> AggregateCommandResponse:
        spec, instance, handler = self._owner(HandlerKind.AGGREGATE_COMMAND, request.command.payload_name)
        telemetry = self._telemetry
        sample = telemetry.begin(telemetry.key_of(handler)) if telemetry is not None else None
        try:
            commands, _ = gateways_for(self._outbox, request.command, sample.sends if sample is not None else None)
            steps = self._aggregate_steps(spec, handler, request, commands)
            if handler.is_async or any(h.is_async for h in spec.handlers_of(HandlerKind.EVENT_SOURCING)):
                return await self._drive_async(steps, instance)
            # Aggregates are pure: their state comes only from the story and RECQ forbids side channels, so plain
            # def handlers run inline. A hop to a worker thread per command measured ~40% of the command's cost.
            return self._drive_sync(steps, instance)
        finally:
            if sample is not None and telemetry is not None:
                telemetry.end(sample)

    def _drive_sync(self, steps: _Steps, instance: Any) -> AggregateCommandResponse:
        try:
            call = next(steps)
            while True:
                call = steps.send(self._runner.run_sync(call[0], instance, call[1]))
        except StopIteration as done:
            response: AggregateCommandResponse = done.value
            return response

    async def _drive_async(self, steps: _Steps, instance: Any) -> AggregateCommandResponse:
        try:
            call = next(steps)
            while True:
                call = steps.send(await self._runner.run(call[0], instance, call[1]))
        except StopIteration as done:
            response: AggregateCommandResponse = done.value
            return response

    def _aggregate_steps(
        self, spec: ComponentSpec, handler: HandlerSpec, request: AggregateCommandRequest, commands: CommandGateway
    ) -> _Steps:
        """The aggregate algorithm, written once: it yields each handler call and receives its result, so the same
        steps run on a worker thread (plain handlers) or on the loop (async handlers)."""
        message = request.command
        assert handler.payload_type is not None
        command = decode_payload(message.payload, handler.payload_type)
        exists = request.snapshot is not None or bool(request.events)
        if not exists and not handler.options.init:
            raise AggregateNotInitializedError(f"aggregate {message.aggregate_id} does not exist")
        if exists and handler.options.init:
            raise AggregateInitializedError(f"aggregate {message.aggregate_id} already exists")
        state = None
        if request.snapshot is not None:
            if spec.state_type is None:
                raise EventoError(f"{spec.name} received a snapshot but declares no state type")
            state = decode_payload(request.snapshot, spec.state_type)

        for stored in request.events:
            es = spec.handler_for(HandlerKind.EVENT_SOURCING, stored.event_name)
            if es is None:
                continue  # events without an event-sourcing handler do not change the state
            assert es.payload_type is not None
            event = decode_payload(stored.payload, es.payload_type)
            state = _new_state(
                state, (yield es, CallContext(event, None, stored.metadata, stored.timestamp, state=state))
            )
            if state is not None and state.deleted:
                raise AggregateDeletedError(f"aggregate {message.aggregate_id} was deleted")

        ctx = CallContext(command, message, message.metadata, message.timestamp, state=state, commands=commands)
        produced = self._check_event(handler, (yield handler, ctx))
        event_message = self._event_message(message, produced)
        es = spec.handler_for(HandlerKind.EVENT_SOURCING, payload_name(produced))
        if es is not None:
            applied = CallContext(produced, None, event_message.metadata, event_message.timestamp, state=state)
            state = _new_state(state, (yield es, applied))
        return self._response(spec, request, event_message, state)

    @staticmethod
    def _check_event(handler: HandlerSpec, event: Any) -> DomainEvent:
        if not isinstance(event, DomainEvent):
            raise EventoError(
                f"{handler.qualname} must return exactly one DomainEvent, returned {type(event).__name__}"
            )
        return event

    def _event_message(self, command: CommandMessage, event: Event) -> EventMessage:
        return EventMessage(
            payload_name=payload_name(event),
            payload=encode_payload(event),
            message_id=new_message_id(),
            metadata=self._outbox.correlate(None, command),  # an event inherits its command's metadata
            timestamp=now_ms(),
            context=event.context,
        )

    @staticmethod
    def _response(
        spec: ComponentSpec, request: AggregateCommandRequest, message: EventMessage, state: Any
    ) -> AggregateCommandResponse:
        frequency = spec.options.snapshot_frequency
        since_snapshot = len(request.events) + 1
        snapshot = None
        if state is not None and frequency >= 0 and since_snapshot >= frequency:
            snapshot = encode_payload(state)
        deleted = bool(state is not None and state.deleted)
        return AggregateCommandResponse(message, snapshot, deleted)

    # --- services ----------------------------------------------------------------------------------------------

    async def service_command(self, request: ServiceCommandRequest) -> ServiceCommandResponse:
        handler, result = await self._run(HandlerKind.COMMAND, request.command)
        if result is None:
            return ServiceCommandResponse(None)
        if not isinstance(result, ServiceEvent):
            raise EventoError(
                f"{handler.qualname} must return a ServiceEvent or None, returned {type(result).__name__}"
            )
        return ServiceCommandResponse(self._event_message(request.command, result))

    # --- projections -------------------------------------------------------------------------------------------

    async def query(self, request: QueryRequest) -> QueryResult:
        handler, result = await self._run(HandlerKind.QUERY, request.query)
        if not isinstance(result, QueryResponse):
            raise EventoError(f"{handler.qualname} must return Single or Multiple, returned {type(result).__name__}")
        return QueryResult(encode_payload(result))

    async def _run(self, kind: HandlerKind, message: CommandMessage | QueryMessage) -> tuple[HandlerSpec, Any]:
        """Run the handler owning ``message``'s payload type; returns it with its result. Its gateways are made
        only if it asks for one (which ones it may ask for was checked when the bundle was built)."""
        scaling = self.autoscaling
        if scaling is None:
            return await self._run_handler(kind, message)
        scaling.arrival()
        try:
            return await self._run_handler(kind, message)
        finally:
            scaling.departure()

    async def _run_handler(self, kind: HandlerKind, message: CommandMessage | QueryMessage) -> tuple[HandlerSpec, Any]:
        _, instance, handler = self._owner(kind, message.payload_name)
        telemetry = self._telemetry
        sample = telemetry.begin(telemetry.key_of(handler)) if telemetry is not None else None
        try:
            assert handler.payload_type is not None
            payload = decode_payload(message.payload, handler.payload_type)
            ctx = CallContext(payload, message, message.metadata, message.timestamp, outbox=self._outbox)
            if sample is not None:
                ctx.sends = sample.sends
            return handler, await self._runner.run(handler, instance, ctx)
        finally:
            if sample is not None:
                assert telemetry is not None
                telemetry.end(sample)
