"""Calling a handler: build its arguments from the injection plan, run it with interceptors and tracing.

``async def`` handlers run on the event loop; plain ``def`` handlers run on a worker thread so blocking code
(database drivers, HTTP clients) never stalls the loop. Interceptor hooks run on the handler's thread.

A projector's plain handler whose consumer store is a transactional database runs inside the transaction that
also commits the checkpoint (exactly-once projection); it reaches that transaction through
:func:`projection_transaction`.
"""

from __future__ import annotations

import asyncio
import contextvars
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any

from evento.bundle.tracing import MessageHandlerInterceptor, TracingAgent
from evento.components.model import HandlerSpec, Inject, ProjectorStatus, SequenceNumber
from evento.consumer_stores.base import ConsumerStateStore
from evento.discovery import HandlerKind
from evento.gateways import CommandGateway, QueryGateway, gateways_for
from evento.messages import HandledMessage, Metadata
from evento.outbox import Outbox

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from evento.bundle.telemetry import TelemetryCollector, TelemetryKey, TelemetrySample

__all__ = ["CallContext", "HandlerRunner", "ProjectionTransaction", "projection_transaction", "to_datetime"]


def to_datetime(timestamp_ms: int) -> datetime:
    """A timestamp in milliseconds since the epoch as an aware UTC :class:`~datetime.datetime`."""
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)


@dataclass(slots=True)
class CallContext:
    """Everything a handler may have injected for one call."""

    payload: Any
    message: HandledMessage | None
    metadata: dict[str, str]
    timestamp_ms: int
    state: Any = None
    commands: CommandGateway | None = None
    queries: QueryGateway | None = None
    sequence_number: int | None = None
    status: ProjectorStatus | None = None
    #: Makes ``commands``/``queries`` for ``message`` when a handler asks for one (most never do: consumers
    #: replaying thousands of events should not build gateways for each).
    outbox: Outbox | None = None
    #: Where the gateways made for this call count what they send, when telemetry times the call.
    sends: dict[str, int] | None = None

    def value(self, inject: Inject, dependency: Any) -> Any:
        if inject is Inject.PAYLOAD:
            return self.payload
        if inject is Inject.STATE:
            return self.state
        if inject in (Inject.COMMANDS, Inject.QUERIES):
            if self.commands is None and self.outbox is not None:
                self.commands, self.queries = gateways_for(self.outbox, self.message, self.sends)
            return self.commands if inject is Inject.COMMANDS else self.queries
        if inject is Inject.MESSAGE:
            return self.message
        if inject is Inject.METADATA:
            return Metadata(self.metadata)
        if inject is Inject.TIMESTAMP:
            return to_datetime(self.timestamp_ms)
        if inject is Inject.SEQUENCE:
            return SequenceNumber(self.sequence_number or 0)
        if inject is Inject.STATUS:
            return self.status
        return dependency


@dataclass(frozen=True, slots=True)
class ProjectionTransaction:
    """The open transaction a projector's event handler runs in, shared with the checkpoint commit.

    ``connection`` is the consumer store's own DB-API connection (``sqlite3``, ``psycopg`` or ``pymysql``, as
    ``dialect`` says: "sqlite", "postgresql" or "mysql") with the transaction open. Write through it and do not
    commit or roll back: the engine commits the writes together with the checkpoint of ``sequence_number``, or
    rolls both back when the handler raises, so a crash can never leave the writes without the checkpoint (or
    the checkpoint without the writes). ``store`` is the consumer store, so a read model can check that it
    lives in that database before it joins.
    """

    connection: Any
    dialect: str
    store: ConsumerStateStore
    consumer_id: str
    sequence_number: int


_current_transaction: contextvars.ContextVar[ProjectionTransaction | None] = contextvars.ContextVar(
    "evento_projection_transaction", default=None
)


def projection_transaction() -> ProjectionTransaction | None:
    """The transaction of the projector event being handled on this thread, or ``None`` outside one.

    Set while a plain ``def`` event handler of a projector runs and its bundle's consumer store supports
    transactions (SQLite, PostgreSQL, MySQL); ``None`` for ``async def`` handlers, an in-memory store, dead-event
    replays and everywhere else, where a read model writes on a connection of its own. Handlers need not know
    the engine: a repository asks for the transaction when it writes.

    The handler runs on the store's thread while the transaction is open, so it should be quick and must not
    write the store's database on another connection: on SQLite that connection would wait for the
    transaction's write lock. Create tables before the consumer starts (MySQL commits DDL at once). A runnable
    example, the read model in the consumer store's SQLite file::

        import asyncio, sqlite3, tempfile
        from pathlib import Path

        from evento import (Bundle, DomainCommand, DomainEvent, EventoServer, SQLiteEventStore, aggregate,
                            aggregate_command_handler, event_handler, projection_transaction, projector)
        from evento.consumer_stores import SQLiteConsumerStateStore

        class Greet(DomainCommand):
            name: str

            @property
            def aggregate_id(self) -> str:
                return self.name

        class Greeted(DomainEvent):
            name: str

        @aggregate()
        class Greeter:
            @aggregate_command_handler(init=True)
            def greet(self, command: Greet) -> Greeted:
                return Greeted(name=command.name)

        @projector(version=1, exactly_once=True)
        class Greetings:
            @event_handler
            def on_greeted(self, event: Greeted) -> None:
                tx = projection_transaction()
                assert tx is not None and tx.dialect == "sqlite"
                # Committed together with the checkpoint, or not at all.
                tx.connection.execute("INSERT INTO greeting (name) VALUES (?)", (event.name,))

        async def main(data: Path) -> list[tuple[str]]:
            with sqlite3.connect(data / "read.db") as db:  # tables first: see ConsumerStateStore.commit_with
                db.execute("CREATE TABLE greeting (name TEXT)")
            server = EventoServer(SQLiteEventStore(data / "events.db"))
            await server.start()
            writer = Bundle("greeter", components=[Greeter])
            await writer.start(server)
            commands, _ = writer.gateways(None)
            await commands.send(Greet(name="Ada"))
            reader = Bundle("greetings", components=[Greetings],
                            consumer_store=SQLiteConsumerStateStore(data / "read.db"))
            await reader.start(server)
            await reader.wait_for_head(10.0)
            for bundle in (reader, writer):
                await bundle.stop()
            await server.stop()
            with sqlite3.connect(data / "read.db") as db:
                return db.execute("SELECT name FROM greeting").fetchall()

        with tempfile.TemporaryDirectory() as data:
            assert asyncio.run(main(Path(data))) == [("Ada",)]
    """
    return _current_transaction.get()


@dataclass
class GroupProgress:
    """How far a group of handlers got: ``done`` succeeded, then ``error`` (if any) stopped the next one."""

    done: int = 0
    error: Exception | None = None


def _timed(handler: HandlerSpec) -> bool:
    """Whether the runner times this handler: consumers' event handlers. Aggregate, service and query handlers are
    timed per request by :class:`~evento.bundle.request_handlers.RequestHandlers` (replay and codec included),
    invokers per call by the bundle; event-sourcing handlers are part of their aggregate's request. (Kinds are
    compared by identity: an enum's hash is a Python call, and an aggregate's replay asks for every event.)"""
    kind = handler.options.kind
    return kind is HandlerKind.EVENT or kind is HandlerKind.SAGA_EVENT


class _TimedCall(tuple[Any, ...]):
    """A timed plain handler's call with nothing but its payload to inject: (collector, key, function, instance,
    payload, timed). :meth:`HandlerRunner.run_group` times it inline; called alone it times itself."""

    __slots__ = ()

    def __call__(self) -> Any:
        telemetry, key, function, instance, payload, timed = self
        if not timed:
            telemetry.add_tallies({key: [0, 0, 0, 0, 0, 1]})
            return function(instance, payload)
        start = perf_counter_ns()
        try:
            return function(instance, payload)
        finally:
            elapsed = perf_counter_ns() - start
            telemetry.add_tallies({key: [1, elapsed, elapsed, elapsed, elapsed, 1]})


_new_timed = tuple.__new__


class HandlerRunner:
    """Runs handlers of one bundle with its interceptors, tracing agent and telemetry."""

    def __init__(
        self,
        interceptors: Sequence[MessageHandlerInterceptor],
        agent: TracingAgent,
        telemetry: TelemetryCollector | None = None,
    ) -> None:
        self.interceptors = list(interceptors)
        self.agent = agent
        #: The bundle's collector, or ``None`` when telemetry is off (capture rate 0).
        self.telemetry = telemetry if telemetry is not None and telemetry.enabled else None
        # With no interceptor and an agent that tracks nothing, a call is just the call (replays make millions).
        self._plain = not self.interceptors and type(agent).track is TracingAgent.track
        # ... and with telemetry off nothing is added to it.
        self._bare = self._plain and self.telemetry is None

    async def run(self, handler: HandlerSpec, instance: Any, ctx: CallContext) -> Any:
        if handler.is_async:
            return await self._run_async(handler, instance, ctx)
        return await asyncio.to_thread(self.run_sync, handler, instance, ctx)

    def run_sync(self, handler: HandlerSpec, instance: Any, ctx: CallContext) -> Any:
        """Run a plain ``def`` handler on the calling thread (used inside a worker thread)."""
        if self._bare or (self._plain and not _timed(handler)):  # nothing to wrap it in
            args = [ctx.value(inject, dep) for inject, dep in handler.plan]
            return handler.function(instance, *args)
        sample = self._begin(handler, ctx, threaded=True)
        try:
            args = [ctx.value(inject, dep) for inject, dep in handler.plan]
            if self._plain:
                return handler.function(instance, *args)
            with self.agent.track(handler.component.name, handler.name, handler.payload_name, ctx.metadata):
                self._before(handler, ctx)
                try:
                    result = handler.function(instance, *args)
                except BaseException as exc:
                    raise self._on_exception(handler, ctx, exc) from None
                return self._after(handler, ctx, result)
        finally:
            if sample is not None:
                self._end(sample, threaded=True)

    def _begin(self, handler: HandlerSpec, ctx: CallContext, *, threaded: bool = False) -> TelemetrySample | None:
        """Start timing a consumer's handler call when telemetry samples it (its gateways then count sends).
        ``threaded``: on a worker thread (a plain handler), not on the event loop."""
        telemetry = self.telemetry
        if telemetry is None or not _timed(handler):
            return None
        key = telemetry.key_of(handler)
        sample = telemetry.begin_threadsafe(key) if threaded else telemetry.begin(key)
        if sample is not None:
            ctx.sends = sample.sends
        return sample

    def _end(self, sample: TelemetrySample, *, threaded: bool = False) -> None:
        telemetry = self.telemetry
        assert telemetry is not None
        if threaded:
            telemetry.end_threadsafe(sample)
        else:
            telemetry.end(sample)

    def sync_call(self, handler: HandlerSpec, instance: Any, ctx: CallContext) -> Callable[[], Any]:
        """The plain handler's call, ready to run on a worker thread (see :meth:`run_group`)."""
        if handler.payload_only and self._plain:
            telemetry = self.telemetry
            if telemetry is None or not _timed(handler):
                return partial(handler.function, instance, ctx.payload)  # nothing else to inject, nothing to wrap
            # Timed, and still nothing to inject (so nothing it could send): run_group times it inline.
            key = telemetry.key_of(handler)
            timed = telemetry.sampled()
            return _new_timed(_TimedCall, (telemetry, key, handler.function, instance, ctx.payload, timed))
        return partial(self.run_sync, handler, instance, ctx)

    def run_group(self, calls: Sequence[Callable[[], Any]]) -> GroupProgress:
        """Run handler calls (from :meth:`sync_call`) one after the other on this thread, stopping at the first
        that raises. Calls telemetry times are timed here and handed to it once for the whole group: replays run
        groups of a thousand events."""
        progress = GroupProgress()
        telemetry = self.telemetry
        if telemetry is None:
            for call in calls:
                try:
                    call()
                except Exception as exc:
                    progress.error = exc
                    return progress
                progress.done += 1
            return progress
        # Per handler: [timed, total ns, min, max, last, arrivals], handed over once for the whole group.
        tallies: dict[TelemetryKey, list[int]] = {}
        clock = perf_counter_ns
        try:
            for call in calls:
                try:
                    if type(call) is _TimedCall:
                        _, key, function, instance, payload, timed = call
                        tally = tallies.get(key)
                        if tally is None:
                            tally = tallies[key] = [0, 0, 0, 0, 0, 0]
                        tally[5] += 1
                        if not timed:
                            function(instance, payload)
                        else:
                            start = clock()
                            try:
                                function(instance, payload)
                            finally:
                                elapsed = clock() - start
                                if tally[0] == 0 or elapsed < tally[2]:
                                    tally[2] = elapsed
                                if elapsed > tally[3]:
                                    tally[3] = elapsed
                                tally[0] += 1
                                tally[1] += elapsed
                                tally[4] = elapsed
                    else:
                        call()
                except Exception as exc:
                    progress.error = exc
                    return progress
                progress.done += 1
            return progress
        finally:
            telemetry.add_tallies(tallies)

    def in_transaction(
        self, handler: HandlerSpec, instance: Any, ctx: CallContext, transaction: Callable[[Any], ProjectionTransaction]
    ) -> Callable[[Any], Any]:
        """The work a transactional consumer store runs on its own thread: the plain ``def`` handler, with
        ``transaction(conn)`` as :func:`projection_transaction`.

        The work runs in a copy of the caller's context, as :func:`asyncio.to_thread` would, so context
        variables (tracing spans and the like) reach the handler on the store's thread too.
        """
        context = contextvars.copy_context()

        def run(conn: Any) -> Any:
            _current_transaction.set(transaction(conn))
            return self.run_sync(handler, instance, ctx)

        return lambda conn: context.run(run, conn)

    async def _run_async(self, handler: HandlerSpec, instance: Any, ctx: CallContext) -> Any:
        sample = self._begin(handler, ctx) if self.telemetry is not None else None
        try:
            args = [ctx.value(inject, dep) for inject, dep in handler.plan]
            with self.agent.track(handler.component.name, handler.name, handler.payload_name, ctx.metadata):
                self._before(handler, ctx)
                try:
                    result = await handler.function(instance, *args)
                except BaseException as exc:
                    raise self._on_exception(handler, ctx, exc) from None
                return self._after(handler, ctx, result)
        finally:
            if sample is not None:
                self._end(sample)

    def _intercepted(self, handler: HandlerSpec) -> list[MessageHandlerInterceptor]:
        # Replaying an aggregate's story is not handling a message: event-sourcing handlers are not intercepted.
        return [] if handler.kind is HandlerKind.EVENT_SOURCING else self.interceptors

    def _before(self, handler: HandlerSpec, ctx: CallContext) -> None:
        for interceptor in self._intercepted(handler):
            interceptor.before(handler.kind, handler.component.name, ctx.payload, ctx.metadata)

    def _after(self, handler: HandlerSpec, ctx: CallContext, result: Any) -> Any:
        for interceptor in self._intercepted(handler):
            result = interceptor.after(handler.kind, handler.component.name, ctx.payload, result)
        return result

    def _on_exception(self, handler: HandlerSpec, ctx: CallContext, error: BaseException) -> BaseException:
        for interceptor in self._intercepted(handler):
            error = interceptor.on_exception(handler.kind, handler.component.name, ctx.payload, error)
        return error
