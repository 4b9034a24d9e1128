"""Given/when/then fixtures for aggregates and sagas, on the real handler code paths.

An :class:`AggregateFixture` runs a command exactly as a bundle does when the server forwards it: the given
events are the aggregate's story, the command goes through the same replay, checks and interceptors, and you
assert on the one event it returns (or the error it raises) and the state it leaves.

>>> from evento.demo.todolist.aggregate import TodoListAggregate, TodoListRuleError
>>> from evento.demo.todolist.payloads import TodoListCreatedEvent, TodoListAddTodoCommand, TodoListTodoAddedEvent
>>> fixture = AggregateFixture(TodoListAggregate)
>>> result = fixture.given(TodoListCreatedEvent(identifier="L1", content="groceries")).when(
...     TodoListAddTodoCommand(identifier="L1", todo_identifier="T1", content="milk"))
>>> result.expect_event(TodoListTodoAddedEvent(identifier="L1", todo_identifier="T1", content="milk")).state.todos
{'T1': False}

A :class:`SagaFixture` feeds events through the saga engine with an in-memory store and records the commands
the saga sends instead of delivering them (queries are answered by the responders you register).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from evento.bundle.calls import HandlerRunner
from evento.bundle.consumers import ConsumerEngine, ConsumerSettings
from evento.bundle.outbox import BundleOutbox
from evento.bundle.request_handlers import RequestHandlers
from evento.bundle.tracing import MessageHandlerInterceptor, TracingAgent
from evento.components.model import ComponentSpec, instantiate, read_component
from evento.consumer_stores.memory import MemoryConsumerStateStore
from evento.discovery import ComponentKind, HandlerKind, NodeInfo
from evento.errors import Failure, RegistrationError
from evento.messages import (
    AggregateCommandRequest,
    CommandMessage,
    CommandResult,
    Metadata,
    QueryResult,
    SendCommand,
    SendQuery,
    ServerRequest,
    ServerResponse,
    StoredEvent,
    new_message_id,
    now_ms,
)
from evento.payloads import (
    Command,
    DomainCommand,
    DomainEvent,
    Event,
    Query,
    QueryResponse,
    decode_payload,
    encode_payload,
    payload_class,
    payload_name,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

__all__ = ["AggregateFixture", "AggregateResult", "SagaFixture", "SagaResult"]

T = TypeVar("T")
Q = TypeVar("Q", bound=Query[Any])

_BUNDLE_ID = "evento-testing"
#: The Bundle's default; a fixture's consumer engine never fetches (events are handed to it), so it never waits.
_REQUEST_TIMEOUT = 30.0


def _run(coro: Coroutine[Any, Any, T]) -> T:
    # A fresh loop on a helper thread: works from plain tests and from inside a running event loop alike.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class _RecordingServer:
    """Stands in for the server: records the commands handlers send, answers queries from registered responders."""

    def __init__(self, responders: dict[type[Any], Callable[[Any], QueryResponse[Any]]]) -> None:
        self.sent: list[Command] = []
        self.responders = responders

    async def request(self, message: ServerRequest, timeout: float) -> ServerResponse:
        if isinstance(message, SendCommand):
            cls = payload_class(message.command.payload_name)
            assert cls is not None
            self.sent.append(decode_payload(message.command.payload, cls))
            return CommandResult(None)
        if isinstance(message, SendQuery):
            cls = payload_class(message.query.payload_name)
            responder = self.responders.get(cls) if cls is not None else None
            if responder is None or cls is None:
                raise LookupError(f"no responder for {message.query.payload_name}: use fixture.on_query()")
            return QueryResult(encode_payload(responder(decode_payload(message.query.payload, cls))))
        raise TypeError(f"the test fixture does not serve {type(message).__name__}")


def _outbox(server: _RecordingServer) -> BundleOutbox:
    """The bundle's own outbox (default tracing agent), sending to ``server`` on the running loop."""
    outbox = BundleOutbox(NodeInfo(_BUNDLE_ID, 1, _BUNDLE_ID), TracingAgent())
    outbox.connect(server.request, asyncio.get_running_loop())
    return outbox


def _stored(events: list[tuple[Event, dict[str, str]]], aggregate_id: str | None) -> list[StoredEvent]:
    return [
        StoredEvent(
            sequence_number=index,
            aggregate_id=aggregate_id,
            aggregate_version=index,
            event_name=payload_name(event),
            context=event.context,
            payload=encode_payload(event),
            metadata=metadata,
            message_id=new_message_id(),
            timestamp=now_ms(),
        )
        for index, (event, metadata) in enumerate(events, start=1)
    ]


def _component(cls: type[Any], kind: ComponentKind, injector: Callable[[Any], Any] | None) -> tuple[ComponentSpec, Any]:
    def dependency(annotation: Any) -> Any:
        value = injector(annotation) if injector is not None else None
        if value is None:
            raise RegistrationError(f"nothing to inject for {annotation!r}: pass injector=")
        return value

    spec = read_component(cls, dependency)
    if spec.kind is not kind:
        raise RegistrationError(f"{cls.__name__} is a {spec.kind}, not a {kind}")
    return spec, instantiate(cls, dependency)


@dataclass
class AggregateResult:
    """What a command did: the event it produced or the error it raised, and the state afterwards."""

    event: DomainEvent | None
    error: BaseException | None
    state: Any
    deleted: bool
    snapshot_taken: bool
    sent: list[Command] = field(default_factory=list)

    def expect_event(self, expected: DomainEvent) -> AggregateResult:
        if self.error is not None:
            raise AssertionError(f"expected {expected!r}, but the command failed with {self.error!r}")
        if self.event != expected:
            raise AssertionError(f"expected event {expected!r}, got {self.event!r}")
        return self

    def expect_error(self, error_type: type[BaseException], match: str | None = None) -> AggregateResult:
        if self.error is None:
            raise AssertionError(f"expected {error_type.__name__}, but the command produced {self.event!r}")
        if not isinstance(self.error, error_type):
            raise AssertionError(f"expected {error_type.__name__}, got {type(self.error).__name__}: {self.error}")
        if match is not None and not re.search(match, str(self.error)):
            raise AssertionError(f"error message {str(self.error)!r} does not match {match!r}")
        return self

    def expect_deleted(self) -> AggregateResult:
        if not self.deleted:
            raise AssertionError("expected the aggregate to be deleted")
        return self


class AggregateFixture:
    """Runs commands against an aggregate given its past events."""

    def __init__(
        self,
        aggregate_class: type[Any],
        *,
        injector: Callable[[Any], Any] | None = None,
        interceptors: list[MessageHandlerInterceptor] | None = None,
    ) -> None:
        self.spec, self.instance = _component(aggregate_class, ComponentKind.AGGREGATE, injector)
        self._interceptors = interceptors or []
        self._given: list[tuple[Event, dict[str, str]]] = []

    def given(self, *events: DomainEvent, metadata: dict[str, str] | None = None) -> AggregateFixture:
        """Past events of the aggregate, oldest first (none: the aggregate does not exist yet)."""
        self._given.extend((event, dict(metadata or {})) for event in events)
        return self

    def when(self, command: DomainCommand, metadata: dict[str, str] | None = None) -> AggregateResult:
        """Run the command against the given story."""
        given, self._given = self._given, []
        return _run(self._execute(command, given, dict(metadata or {})))

    async def _execute(
        self, command: DomainCommand, given: list[tuple[Event, dict[str, str]]], metadata: dict[str, str]
    ) -> AggregateResult:
        server = _RecordingServer({})
        outbox = _outbox(server)
        runner = HandlerRunner(self._interceptors, outbox.tracing_agent)
        # The probe snapshots after every command, so the response carries the resulting state to assert on.
        probe = dataclasses.replace(self.spec, options=dataclasses.replace(self.spec.options, snapshot_frequency=0))
        handlers = RequestHandlers([(probe, self.instance)], runner, outbox)
        story = _stored(given, command.aggregate_id)  # stamped before the command: a story precedes its command
        message = CommandMessage(
            payload_name=payload_name(command),
            payload=encode_payload(command),
            message_id=new_message_id(),
            metadata=outbox.correlate(Metadata(metadata), None),
            timestamp=now_ms(),
            domain=True,
            aggregate_id=command.aggregate_id,
            lock_id=command.lock_id,
        )
        try:
            response = await handlers.aggregate_command(AggregateCommandRequest(message, None, 0, story))
        except Exception as exc:
            # The caller of a real system sees the error rebuilt from the wire: check the same thing here.
            error = Failure.from_exception(exc).to_exception()
            return AggregateResult(None, error, None, False, False, server.sent)
        cls = payload_class(response.event.payload_name)
        assert cls is not None
        event = decode_payload(response.event.payload, cls)
        state = None
        if response.snapshot is not None and self.spec.state_type is not None:
            state = decode_payload(response.snapshot, self.spec.state_type)
        frequency = self.spec.options.snapshot_frequency
        snapshot_due = frequency >= 0 and len(story) + 1 >= frequency
        return AggregateResult(event, None, state, response.deleted, snapshot_due, server.sent)


@dataclass
class SagaResult(Generic[T]):
    """What an event did to a saga: its state afterwards (``None`` if none or ended) and the commands it sent."""

    state: T | None
    sent: list[Command]
    ended: bool
    handled: bool

    def expect_commands(self, *commands: Command) -> SagaResult[T]:
        if list(commands) != self.sent:
            raise AssertionError(f"expected commands {list(commands)!r}, got {self.sent!r}")
        return self

    def expect_no_commands(self) -> SagaResult[T]:
        return self.expect_commands()

    def expect_ended(self) -> SagaResult[T]:
        if not self.ended:
            raise AssertionError("expected the saga instance to have ended")
        return self

    def expect_ignored(self) -> SagaResult[T]:
        if self.handled:
            raise AssertionError("expected no saga instance to handle the event")
        return self


class SagaFixture:
    """Feeds events to a saga and records what it does; the saga state lives in a memory consumer store."""

    def __init__(self, saga_class: type[Any], *, injector: Callable[[Any], Any] | None = None) -> None:
        self.spec, self.instance = _component(saga_class, ComponentKind.SAGA, injector)
        self._responders: dict[type[Any], Callable[[Any], QueryResponse[Any]]] = {}
        self._given: list[tuple[Event, dict[str, str]]] = []
        self._store = MemoryConsumerStateStore()

    def on_query(self, query_type: type[Q], responder: Callable[[Q], QueryResponse[Any]]) -> SagaFixture:
        """Answer queries of this type the saga sends."""
        self._responders[query_type] = responder
        return self

    def given(self, *events: Event, metadata: dict[str, str] | None = None) -> SagaFixture:
        """Events the saga already handled (their commands are not reported)."""
        self._given.extend((event, dict(metadata or {})) for event in events)
        return self

    def when(self, event: Event, metadata: dict[str, str] | None = None) -> SagaResult[Any]:
        given, self._given = self._given, []
        return _run(self._execute(given, (event, dict(metadata or {}))))

    async def _execute(
        self, given: list[tuple[Event, dict[str, str]]], when: tuple[Event, dict[str, str]]
    ) -> SagaResult[Any]:
        server = _RecordingServer(self._responders)
        outbox = _outbox(server)
        engine = ConsumerEngine(
            bundle_id=_BUNDLE_ID,
            spec=self.spec,
            instance=self.instance,
            context="*",
            store=self._store,
            outbox=outbox,
            runner=HandlerRunner([], outbox.tracing_agent),
            settings=ConsumerSettings(),
            request_timeout=_REQUEST_TIMEOUT,
        )
        events = _stored([*given, when], None)
        for stored in events[:-1]:
            await engine._process(stored)
        server.sent.clear()
        last = events[-1]
        handler = self.spec.handler_for(HandlerKind.SAGA_EVENT, last.event_name)
        if handler is None:
            return SagaResult(None, [], False, False)
        prop = handler.options.association_property
        assert prop is not None
        value = str(getattr(when[0], prop))
        before = await self._store.find_saga(self.spec.name, prop, value)
        await engine._process(last)
        after = await self._store.find_saga(self.spec.name, prop, value)
        handled = before is not None or after is not None
        state = decode_payload(after.state, self.spec.state_type) if after is not None else None
        ended = before is not None and after is None
        return SagaResult(state, list(server.sent), ended, handled)
