"""Consumer engines: projectors, sagas and observers pulling events from the server with a checkpoint.

One engine runs per consumer component and context. A cycle takes the consumer lock (a lease renewed every
cycle, so one instance consumes at a time and another takes over when it dies), reads the checkpoint, fetches
the next events of its context and handles them in order, committing the checkpoint after each one. Engines sleep
until the server pushes "events appended"; polling is only the fallback.

Failures (reference §3.4): a *transient* error (timeout, lost connection, :class:`TransientConsumerError`) leaves
the checkpoint where it is and the event is redelivered after an exponential backoff; any other error is
retried ``retry`` times ``retry_delay`` apart (-1: forever), then the event goes to the dead event queue and the
checkpoint moves on. An event that does not decode into the handler's payload class gets at most
``ConsumerSettings.decode_retries`` retries whatever the handler's policy: its bytes never change, and retrying it
forever would stop the consumer at it.

Exactly-once projections: for a projector declared ``exactly_once`` on a consumer store with transactions,
each plain ``def`` handler runs inside the store's transaction that also commits the checkpoint (``commit_with``),
so the read model's writes (through :func:`~evento.bundle.calls.projection_transaction`) and the checkpoint land
together or not at all. A failing attempt rolls its writes back; retries, dead-lettering and transient
redelivery are the same as for any other handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from dataclasses import dataclass
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any

from evento.bundle.calls import CallContext, HandlerRunner, ProjectionTransaction
from evento.components.model import ComponentSpec, HandlerSpec, ProjectorStatus
from evento.components.state import SagaState
from evento.consumer_stores.base import Checkpoint, ConsumerStateStore, DeadEvent, ErrorState, SagaInstance
from evento.discovery import ComponentKind, ConsumerInfo, HandlerKind
from evento.errors import (
    ConcurrentCheckpointError,
    ConsumerStoreUnavailableError,
    EventoError,
    EventStoreUnavailableError,
    InvalidPayloadError,
    TransientConsumerError,
    UndecodableEventError,
)
from evento.messages import EventBatch, FetchEvents, GetHead, Head, StoredEvent
from evento.payloads import decode_payload, encode_payload

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from evento.bundle.autoscaling import AutoscalingProtocol
    from evento.outbox import Outbox

__all__ = ["TRANSIENT_ERRORS", "ConsumerEngine", "ConsumerSettings", "ConsumerStatus", "consumer_id", "is_transient"]

log = logging.getLogger(__name__)

#: What ``ConsumerSettings.transient_errors`` holds unless set: errors meaning "try again later". The stores'
#: ``...UnavailableError`` are ConnectionErrors too, named here so that nobody has to know that.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientConsumerError,
    TimeoutError,
    ConnectionError,
    ConsumerStoreUnavailableError,
    EventStoreUnavailableError,
)


def is_transient(error: BaseException, kinds: tuple[type[BaseException], ...] = TRANSIENT_ERRORS) -> bool:
    """Whether an error (or one in its cause chain) is of a type in ``kinds``: "try again later" rather than
    "this event is bad". Decided by type only, never by message text: backends translate their drivers' errors
    into Evento's at their boundary (a database that is unreachable or locked becomes a ``...UnavailableError``).
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, kinds):
            return True
        current = current.__cause__ or current.__context__
    return False


def consumer_id(bundle_id: str, component: str, version: int, context: str) -> str:
    """``bundle_Component_version_context``: a new version is a new consumer (a projector then replays)."""
    return f"{bundle_id}_{component}_{version}_{context}"


@dataclass(frozen=True)
class ConsumerSettings:
    """How a bundle's consumers fetch, back off, lease and stop.

    A consumer fetches ``fetch_size`` events at a time; after a failed cycle it waits ``error_delay`` seconds,
    doubling up to ``max_backoff``; at the head, disabled or locked out, it polls every ``idle_poll`` seconds (new
    events wake it sooner). Its lock is leased for ``lease_seconds``; at most ``observer_concurrency`` observer
    handlers run at once; a stop waits ``stop_grace`` seconds for the event in hand before cancelling it."""

    fetch_size: int = 1000
    error_delay: float = 1.0
    max_backoff: float = 30.0
    idle_poll: float = 5.0
    lease_seconds: float = 15.0
    observer_concurrency: int = 32
    stop_grace: float = 10.0
    #: A projector with plain handlers on an in-memory store handles up to this many consecutive events per thread
    #: hop and per checkpoint commit: nothing of it survives a restart, so how often it commits is invisible.
    #: Durable stores commit after every event (reference semantics: at most one event redelivered after a
    #: crash, none with exactly-once projections). 1 turns grouping off.
    commit_group: int = 1000
    #: Retries of an event that does not decode into its handler's payload class before it goes to the dead event
    #: queue, also under a handler's retry-forever policy (fewer if the handler allows fewer).
    decode_retries: int = 3
    #: Errors (in a handler's error or its cause chain) that leave the event to be redelivered later instead of
    #: counting against the handler's retry policy: add a driver's errors here if handlers use a database of their
    #: own whose errors are not Evento's.
    transient_errors: tuple[type[BaseException], ...] = TRANSIENT_ERRORS


@dataclass(frozen=True)
class ConsumerStatus:
    """One consumer as its engine reports it: checkpoint (``None`` before the first commit), head reached,
    enabled, error state and the number of dead events."""

    consumer_id: str
    component: str
    kind: ComponentKind
    context: str
    checkpoint: int | None
    head_reached: bool
    enabled: bool
    error: ErrorState
    dead_events: int


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How handling one event ended: ``handled`` false when it went to the dead event queue; ``committed`` the
    checkpoint committed together with the handler's writes (exactly-once projections), if any; ``waited_ns`` the
    time spent waiting between attempts (not work: left out of the consumer's busy time)."""

    handled: bool
    committed: Checkpoint | None = None
    waited_ns: int = 0


class ConsumerEngine:
    """Runs one consumer (component × context)."""

    def __init__(
        self,
        *,
        bundle_id: str,
        spec: ComponentSpec,
        instance: Any,
        context: str,
        store: ConsumerStateStore,
        outbox: Outbox,
        runner: HandlerRunner,
        settings: ConsumerSettings,
        request_timeout: float,
        autoscaling: AutoscalingProtocol | None = None,
    ) -> None:
        self.spec = spec
        self.instance = instance
        self.context = context
        self.consumer_id = consumer_id(bundle_id, spec.name, spec.options.version, context)
        self.store = store
        self._outbox = outbox
        self._request_timeout = request_timeout  # of the engine's own requests: fetching events, reading the head
        self._runner = runner
        self.settings = settings
        self.status = ProjectorStatus()
        self.head_reached = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._stop_requested = asyncio.Event()
        # Set on stop, and while an admin action waits for the event in hand: a handler waiting to retry gives up
        # its turn instead of holding the consumer for as long as its retry policy says (forever, by default).
        self._interrupt = asyncio.Event()
        self._admin_waiting = 0
        self._task: asyncio.Task[None] | None = None
        self._cycle_lock = asyncio.Lock()
        self._lease_until = 0.0
        # The checkpoint as last committed by this engine, trusted while it holds the lock.
        self._checkpoint: Checkpoint | None = None
        self._observer_slots = asyncio.Semaphore(settings.observer_concurrency)
        self._observer_tasks: set[asyncio.Task[None]] = set()
        # The next batch, asked for while the current one is handled (catching up: the server's read overlaps
        # our handling), keyed by the sequence number it starts after.
        self._prefetch: tuple[int, asyncio.Task[EventBatch]] | None = None
        self._kind = spec.kind
        self._handler_kind = HandlerKind.SAGA_EVENT if self._kind is ComponentKind.SAGA else HandlerKind.EVENT
        # Events handed to handlers and not finished yet by the fetch loop (observers' run in their own tasks).
        self._in_hand = 0
        # Told of each event (or group of events) handled: one handler execution each.
        self._autoscaling = autoscaling
        # The consumer's load since telemetry last took it (take_load): events consumed, and the time spent
        # consuming them (from taking an event or group to its checkpoint committed; waits for new events, between
        # retries and for an observer slot left out). Busy time less the handlers' own is the consumer's overhead
        # per event (thread hops, checkpoint commits), which the performance model adds to its handlers' stations.
        self._events = 0
        self._busy_ns = 0

    def take_load(self) -> tuple[int, float]:
        """Events consumed and busy milliseconds since the last call, and start counting anew (one telemetry
        report's share)."""
        events, busy = self._events, self._busy_ns
        self._events = 0
        self._busy_ns = 0
        return events, max(busy, 0) / 1e6

    @property
    def info(self) -> ConsumerInfo:
        return ConsumerInfo(
            consumer_id=self.consumer_id, component=self.spec.name, component_kind=self._kind, context=self.context
        )

    # --- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"evento-consumer-{self.consumer_id}")

    async def stop(self) -> None:
        self._stop_requested.set()
        self._interrupt.set()
        self._wakeup.set()
        if self._task is not None:
            # Let the event in hand finish and its checkpoint commit, so a clean stop redelivers nothing;
            # a handler stuck beyond the grace period is cancelled.
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.settings.stop_grace)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        self._drop_prefetch()
        if self._observer_tasks:
            await asyncio.gather(*self._observer_tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.store.unlock(self.consumer_id, self._outbox.owner)
        self._lease_until = 0.0
        self._checkpoint = None

    @property
    def _stopping(self) -> bool:
        return self._stop_requested.is_set()

    def wake(self) -> None:
        """New events were appended: fetch now instead of at the next poll."""
        self._wakeup.set()

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            self._wakeup.clear()
            try:
                consumed = await self._cycle()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping:
                    break
                failures += 1
                delay = min(self.settings.max_backoff, self.settings.error_delay * 2 ** (failures - 1))
                delay *= random.uniform(0.8, 1.2)
                log.warning("consumer %s cycle failed (%s); retrying in %.2fs", self.consumer_id, exc, delay)
                await self._sleep(delay)
                continue
            if consumed is None:  # disabled, or another instance holds the lock
                await self._sleep(self.settings.idle_poll)
            elif consumed < self.settings.fetch_size:
                if not self.head_reached.is_set():
                    log.info("consumer %s reached the head", self.consumer_id)
                    self.status.head_reached = True
                    self.head_reached.set()
                await self._sleep(self.settings.idle_poll)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)

    # --- one cycle ---------------------------------------------------------------------------------------------

    async def _cycle(self) -> int | None:
        cid = self.consumer_id
        if not await self.store.is_enabled(cid):
            return None
        if not await self._hold_lock():
            return None
        async with self._cycle_lock:
            try:
                return await self._consume_batch(cid)
            except BaseException:
                self._checkpoint = None  # re-read after any failure: a commit may or may not have happened
                self._drop_prefetch()
                raise

    async def _consume_batch(self, cid: str) -> int:
        checkpoint = self._checkpoint or await self._read_or_seed_checkpoint()
        events = (await self._fetch(checkpoint.sequence_number)).events
        if len(events) == self.settings.fetch_size and not self._stopping:
            last = events[-1].sequence_number
            self._prefetch = (last, asyncio.create_task(self._request_batch(last)))
        position = 0
        while position < len(events):
            if self._stopping:
                break
            if self._interrupt.is_set():
                # An admin action waits for the consumer: it goes first, this batch resumes after it. Not at the
                # head (whatever the batch's length), so the next cycle runs at once.
                return self.settings.fetch_size
            if not await self._hold_lock():
                log.warning("consumer %s lost its lock mid-batch; stopping this cycle", cid)
                break
            group = self._group_at(events, position)
            scaling = self._autoscaling
            if scaling is not None:
                scaling.arrival()
            if len(group) == 1:
                self._in_hand = 1
                try:
                    checkpoint = await self._consume(events[position], checkpoint)
                finally:
                    self._in_hand = 0
                    if scaling is not None:
                        scaling.departure()
                self._checkpoint = checkpoint
                position += 1
                continue
            self._in_hand = len(group)
            try:
                checkpoint, failure = await self._consume_group(group, checkpoint)
            finally:
                self._in_hand = 0
                if scaling is not None:
                    scaling.departure()
            self._checkpoint = checkpoint
            if failure is None:
                position += len(group)
                continue
            # A handler of the group raised: the failing event is handled alone, its failure counted as its first
            # attempt (retries, dead queue); the events before it are committed already.
            failed_at, error = failure
            checkpoint = await self._consume(group[failed_at][0], checkpoint, first_error=error)
            self._checkpoint = checkpoint
            position += failed_at + 1
        return len(events)

    async def _fetch(self, after: int) -> EventBatch:
        prefetch = self._prefetch
        if prefetch is not None and prefetch[0] == after:
            self._prefetch = None
            batch = await prefetch[1]
            # Only a full batch is trusted: a short one may predate events whose wake-up this cycle consumed,
            # and ending the cycle on it would leave them waiting for the idle poll.
            if len(batch.events) == self.settings.fetch_size:
                return batch
        self._drop_prefetch()
        return await self._request_batch(after)

    async def _request_batch(self, after: int) -> EventBatch:
        request = FetchEvents(self.context, after, self.settings.fetch_size)
        batch = await self._outbox.request(request, self._request_timeout)
        assert isinstance(batch, EventBatch)
        return batch

    def _drop_prefetch(self) -> None:
        if self._prefetch is not None:
            task = self._prefetch[1]
            task.cancel()
            # Retrieve a failure it may already hold, so asyncio does not report it as never retrieved.
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._prefetch = None

    def _group_at(self, events: list[StoredEvent], start: int) -> list[tuple[StoredEvent, HandlerSpec | None]]:
        """The consecutive events from ``start`` (with their handlers) that can be handled in one hop and one
        checkpoint commit; a single one when grouping does not apply."""
        limit = self.settings.commit_group
        if limit <= 1 or self._kind is not ComponentKind.PROJECTOR or self.store.durable:
            return [(events[start], None)]
        group: list[tuple[StoredEvent, HandlerSpec | None]] = []
        handler_for, kind = self.spec.handler_for, self._handler_kind
        for event in events[start : start + limit]:
            handler = handler_for(kind, event.event_name)
            if handler is not None and handler.is_async:
                break
            group.append((event, handler))
        return group or [(events[start], None)]

    async def _consume_group(
        self, group: list[tuple[StoredEvent, HandlerSpec | None]], checkpoint: Checkpoint
    ) -> tuple[Checkpoint, tuple[int, Exception] | None]:
        """Handle ``group`` on one worker thread and commit the checkpoint once, after its last event.

        Returns the checkpoint (after the last event, or after the one before a failure) and, when a handler
        raised, the index of its event in the group with the error.
        """
        started = perf_counter_ns()  # two clock reads per group, not per event: the busy time of all of it
        calls: list[Callable[[], Any]] = []
        index_of: list[int] = []  # position in calls -> position in group (events without a handler skipped)
        call_context, sync_call, instance = self._call_context, self._runner.sync_call, self.instance
        undecodable: tuple[int, Exception] | None = None
        for n, (event, handler) in enumerate(group):
            if handler is not None:
                try:
                    context = call_context(handler, event)
                except Exception as exc:  # its payload does not decode: that event fails, the ones before go on
                    undecodable = (n, exc)
                    break
                index_of.append(n)
                calls.append(sync_call(handler, instance, context))
        progress = await asyncio.to_thread(self._runner.run_group, calls)
        if progress.error is None and undecodable is None:
            last = group[-1][0].sequence_number
            committed = await self.store.commit_checkpoint(self.consumer_id, last, checkpoint.version)
            self._events += len(group)
            self._busy_ns += perf_counter_ns() - started
            return committed, None
        if progress.error is not None:
            failed_at, error = index_of[progress.done], progress.error
        else:
            assert undecodable is not None
            failed_at, error = undecodable
        if failed_at > 0:
            before = group[failed_at - 1][0].sequence_number
            checkpoint = await self.store.commit_checkpoint(self.consumer_id, before, checkpoint.version)
        # The failed attempt was work too; its event is counted when it is consumed alone.
        self._events += failed_at
        self._busy_ns += perf_counter_ns() - started
        return checkpoint, (failed_at, error)

    async def _hold_lock(self) -> bool:
        """Take or renew the consumer lock. A lease younger than a third of its life is not renewed: that write
        would cost a commit per cycle, and a long batch still renews well before the lease could expire."""
        now = time.monotonic()
        lease = self.settings.lease_seconds
        if self._lease_until - now > lease * 2 / 3:
            return True
        if await self.store.try_lock(self.consumer_id, self._outbox.owner, lease):
            self._lease_until = now + lease
            return True
        self._lease_until = 0.0
        self._checkpoint = None  # someone else consumes: our cached checkpoint is no longer authoritative
        return False

    async def _read_or_seed_checkpoint(self) -> Checkpoint:
        checkpoint = await self.store.read_checkpoint(self.consumer_id)
        if checkpoint is None:
            checkpoint = await self.store.seed_checkpoint(self.consumer_id, await self._start_position())
        self._checkpoint = checkpoint
        return checkpoint

    async def seed(self) -> None:
        """Fix where a new consumer starts before the bundle reports started: a saga or observer that first
        starts at the head must not miss events appended between ``start()`` and its first fetch."""
        await self._read_or_seed_checkpoint()
        self._checkpoint = None

    async def _start_position(self) -> int:
        if self._kind is ComponentKind.PROJECTOR:
            return 0  # a new projector replays everything
        return await self.head()  # sagas and observers start from now

    async def head(self) -> int:
        """The event store's head as the server says it now (the last sequence number stored)."""
        head = await self._outbox.request(GetHead(), self._request_timeout)
        assert isinstance(head, Head)
        return head.sequence_number

    async def _consume(
        self, event: StoredEvent, checkpoint: Checkpoint, *, first_error: Exception | None = None
    ) -> Checkpoint:
        """Handle one event and commit the checkpoint after it: in the handler's transaction for an
        ``exactly_once`` projector on a store with transactions, else as a commit of its own. Returns the new
        checkpoint.

        ``first_error`` is the failure of an attempt already made (in a group): it counts as the first attempt.
        Counts the event and its busy time (from here to the commit, waits between attempts left out) when it
        ends with its checkpoint committed."""
        started = perf_counter_ns()
        handler = self.spec.handler_for(self._handler_kind, event.event_name)
        if handler is not None and self._transactional(handler):
            outcome = await self._with_retries(handler, event, checkpoint, first_error=first_error)
            waited = outcome.waited_ns
            committed = outcome.committed
            if committed is None:
                committed = await self.store.commit_checkpoint(
                    self.consumer_id, event.sequence_number, checkpoint.version
                )
        else:
            waited = await self._process(event, first_error=first_error)
            committed = await self.store.commit_checkpoint(self.consumer_id, event.sequence_number, checkpoint.version)
        self._events += 1
        self._busy_ns += perf_counter_ns() - started - waited
        return committed

    async def _process(self, event: StoredEvent, *, first_error: Exception | None = None) -> int:
        """Hand ``event`` to its handler (an observer's to a task of its own); the nanoseconds spent waiting (between
        retries, for an observer slot), which are not work."""
        handler = self.spec.handler_for(self._handler_kind, event.event_name)
        if handler is None:
            return 0  # consumers see every event of their context; those without a handler just advance
        if self._kind is ComponentKind.OBSERVER:
            return await self._submit_observer(handler, event)
        return (await self._with_retries(handler, event, first_error=first_error)).waited_ns

    def _transactional(self, handler: HandlerSpec) -> bool:
        """Whether the handler runs inside the checkpoint's transaction: a plain handler of a projector declared
        ``exactly_once`` on a store with transactions (an ``async def`` handler runs on the loop, not on the
        store's thread). Opt-in, because the handler then holds the store's connection and write transaction
        for as long as it runs."""
        return (
            self._kind is ComponentKind.PROJECTOR
            and self.spec.options.exactly_once
            and self.store.supports_transactions
            and not handler.is_async
        )

    async def _with_retries(
        self,
        handler: HandlerSpec,
        event: StoredEvent,
        checkpoint: Checkpoint | None = None,
        *,
        first_error: Exception | None = None,
    ) -> _Outcome:
        """Handle with the handler's retry policy.

        With ``checkpoint`` every attempt runs in a transaction that also advances it, so a failed attempt leaves
        nothing behind and a successful one is committed with its checkpoint (returned in the outcome).
        """
        attempt = 0
        waited = 0  # ns between attempts
        # Observers run detached from the fetch loop, so "retry forever" would pin a slot for ever (as in Evento).
        retry = max(handler.options.retry, 0) if self._kind is ComponentKind.OBSERVER else handler.options.retry
        decode_retries = max(self.settings.decode_retries, 0)
        while True:
            try:
                if first_error is not None:
                    error, first_error = first_error, None
                    raise error
                if checkpoint is None:
                    await self._handle(handler, event)
                    return _Outcome(handled=True, waited_ns=waited)
                committed = await self._handle_committing(handler, event, checkpoint)
                return _Outcome(handled=True, committed=committed, waited_ns=waited)
            except asyncio.CancelledError:
                raise
            except ConcurrentCheckpointError:
                # Someone else moved the checkpoint: this instance's view is stale, not the event bad. The cycle
                # ends and re-reads the checkpoint, exactly as when a plain checkpoint commit finds it moved.
                raise
            except Exception as exc:
                if isinstance(exc, UndecodableEventError):
                    # Never transient, and bounded whatever the handler's policy: the event's bytes will not change.
                    retry = decode_retries if retry == -1 else min(retry, decode_retries)
                elif is_transient(exc, self.settings.transient_errors) and self._kind is not ComponentKind.OBSERVER:
                    await self.store.record_error(self.consumer_id, f"transient: {exc!r}")
                    raise TransientConsumerError(f"event {event.sequence_number} will be redelivered: {exc}") from exc
                await self.store.record_error(self.consumer_id, f"{type(exc).__name__}: {exc}")
                if retry != -1 and attempt >= retry:
                    log.error(
                        "consumer %s parks event %d (%s) in its dead event queue: %r",
                        self.consumer_id,
                        event.sequence_number,
                        event.event_name,
                        exc,
                    )
                    reason = f"{type(exc).__name__}: {exc}"
                    if checkpoint is not None:
                        # Exactly-once: parked and past the checkpoint together, or neither.
                        parked = await self.store.dead_letter(self.consumer_id, event, reason, checkpoint.version)
                        return _Outcome(handled=False, committed=parked, waited_ns=waited)
                    await self.store.add_dead_event(self.consumer_id, event, reason)
                    return _Outcome(handled=False, waited_ns=waited)
                attempt += 1
                log.warning(
                    "consumer %s failed on event %d (attempt %d): %r",
                    self.consumer_id,
                    event.sequence_number,
                    attempt,
                    exc,
                )
                if self._stopping:
                    raise TransientConsumerError(f"stopping before event {event.sequence_number} succeeded") from exc
                # Observers retry in tasks of their own, outside the fetch loop: only a stop interrupts them.
                observer = self._kind is ComponentKind.OBSERVER
                paused = perf_counter_ns()
                with contextlib.suppress(TimeoutError):  # interrupted by stop() or an admin action, not by new events
                    await asyncio.wait_for(
                        (self._stop_requested if observer else self._interrupt).wait(), handler.options.retry_delay
                    )
                waited += perf_counter_ns() - paused
                if not observer and self._interrupt.is_set() and not self._stopping:
                    raise TransientConsumerError(
                        f"event {event.sequence_number} is left for later: an admin action needs the consumer"
                    ) from exc

    async def _handle(self, handler: HandlerSpec, event: StoredEvent) -> None:
        ctx = self._call_context(handler, event)
        if self._kind is ComponentKind.SAGA:
            await self._handle_saga(handler, ctx.payload, ctx)
        else:
            await self._runner.run(handler, self.instance, ctx)

    async def _handle_committing(self, handler: HandlerSpec, event: StoredEvent, checkpoint: Checkpoint) -> Checkpoint:
        """Run a projector's plain handler and commit the checkpoint after ``event`` in one store transaction."""
        ctx = self._call_context(handler, event)
        sequence_number = event.sequence_number

        def transaction(conn: Any) -> ProjectionTransaction:
            return ProjectionTransaction(conn, self.store.dialect, self.store, self.consumer_id, sequence_number)

        work = self._runner.in_transaction(handler, self.instance, ctx, transaction)
        _, committed = await self.store.commit_with(self.consumer_id, sequence_number, checkpoint.version, work)
        return committed

    def _call_context(self, handler: HandlerSpec, event: StoredEvent) -> CallContext:
        assert handler.payload_type is not None
        try:
            payload = decode_payload(event.payload, handler.payload_type)
        except InvalidPayloadError as exc:
            raise UndecodableEventError(f"event {event.sequence_number} does not decode: {exc}") from None
        return CallContext(
            payload,
            event,
            event.metadata,
            event.timestamp,
            sequence_number=event.sequence_number,
            status=self.status,
            outbox=self._outbox,
        )

    async def _handle_saga(self, handler: HandlerSpec, payload: Any, ctx: CallContext) -> None:
        prop = handler.options.association_property
        assert prop is not None
        value = getattr(payload, prop, None)
        if value is None:
            raise EventoError(f"{type(payload).__name__} has no association property '{prop}'")
        found = await self.store.find_saga(self.spec.name, prop, str(value))
        if found is None and not handler.options.init:
            return  # no live saga instance for this association: the event is not for this saga
        state_type = self.spec.state_type
        assert state_type is not None
        ctx.state = decode_payload(found.state, state_type) if found is not None else None
        result = await self._runner.run(handler, self.instance, ctx)
        state = result if result is not None else ctx.state
        if state is None:
            return
        if not isinstance(state, SagaState):
            raise EventoError(f"{handler.qualname} must return a SagaState or None")
        if state.ended:
            if found is not None:
                await self.store.delete_saga(found.id)
            return
        instance_id = found.id if found is not None else uuid.uuid4().hex
        await self.store.save_saga(SagaInstance(instance_id, self.spec.name, encode_payload(state)), state.associations)

    async def _submit_observer(self, handler: HandlerSpec, event: StoredEvent) -> int:
        """Start an observer's handling in a task of its own; the nanoseconds spent waiting for a free slot."""
        # Checkpoint on submit, unordered, bounded concurrency; the claim makes each event run once.
        if not await self.store.try_claim(self.consumer_id, event.sequence_number):
            return 0
        slots, waited = self._observer_slots, 0
        if slots.locked():  # every slot taken: the wait for one is queueing, not work
            paused = perf_counter_ns()
            await slots.acquire()
            waited = perf_counter_ns() - paused
        else:
            await slots.acquire()
        task = asyncio.create_task(self._observe(handler, event))
        self._observer_tasks.add(task)
        task.add_done_callback(self._observer_tasks.discard)
        return waited

    async def _observe(self, handler: HandlerSpec, event: StoredEvent) -> None:
        scaling = self._autoscaling
        if scaling is not None:
            scaling.arrival()
        started = perf_counter_ns()
        try:
            outcome = await self._with_retries(handler, event)
            # The handling runs beside the fetch loop, which counted the event and its claim and commit: its own
            # time (waits between attempts left out) is added to the consumer's busy time here.
            self._busy_ns += perf_counter_ns() - started - outcome.waited_ns
            if not outcome.handled:
                await self.store.release_claim(self.consumer_id, event.sequence_number)
        except Exception:
            log.exception("observer %s failed on event %d", self.consumer_id, event.sequence_number)
        finally:
            self._observer_slots.release()
            if scaling is not None:
                scaling.departure()

    # --- administration ----------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _between_events(self) -> AsyncIterator[None]:
        """Hold the consumer between two events for an admin action: the event in hand finishes first, but one
        waiting to be retried is left for later (it stays due: the checkpoint has not passed it)."""
        self._admin_waiting += 1
        self._interrupt.set()
        try:
            await self._cycle_lock.acquire()
        finally:
            self._admin_waiting -= 1
            if not self._admin_waiting and not self._stopping:
                self._interrupt.clear()
        try:
            yield
        finally:
            self._cycle_lock.release()

    async def consume_dead_queue(self) -> int:
        """Reprocess dead events flagged for retry; each is removed on success and parked again on failure."""
        processed = 0
        async with self._between_events():
            for dead in await self.store.dead_events(self.consumer_id, retriable_only=True):
                handler = self.spec.handler_for(self._handler_kind, dead.event.event_name)
                await self.store.remove_dead_event(self.consumer_id, dead.event.sequence_number)
                if handler is None:
                    continue
                saved = self.status.head_reached
                self.status.head_reached = True
                try:
                    await self._handle(handler, dead.event)
                    processed += 1
                except Exception as exc:
                    await self.store.add_dead_event(self.consumer_id, dead.event, f"{type(exc).__name__}: {exc}")
                finally:
                    self.status.head_reached = saved
        return processed

    async def dead_events(self) -> list[DeadEvent]:
        return await self.store.dead_events(self.consumer_id)

    async def set_dead_event_retry(self, sequence_number: int, retry: bool) -> bool:
        """Flag (or unflag) a dead event for the next :meth:`consume_dead_queue`."""
        return await self.store.set_dead_event_retry(self.consumer_id, sequence_number, retry)

    async def delete_dead_event(self, sequence_number: int) -> bool:
        """Drop a dead event for good."""
        return await self.store.remove_dead_event(self.consumer_id, sequence_number)

    async def reset(self) -> None:
        """Forget the checkpoint: a projector replays from the start, a saga or observer restarts at the head."""
        async with self._between_events():
            await self.store.reset(self.consumer_id)
            self._restart()
        self.wake()

    async def reset_to(self, sequence_number: int) -> Checkpoint:
        """Replay from ``sequence_number``: the next event handled is the first one after it (0: from the start).

        Taken between two events (the cycle lock), so no event in hand commits over it; the version of the
        checkpoint moves on, so another instance holding the old one re-reads it. Handlers see
        ``ProjectorStatus.head_reached`` false again until the replay reaches the head."""
        if sequence_number < 0:
            raise ValueError(f"a sequence number is never negative, got {sequence_number}")
        async with self._between_events():
            checkpoint = await self.store.set_checkpoint(self.consumer_id, sequence_number)
            self._restart()
        self.wake()
        return checkpoint

    def _restart(self) -> None:
        self._checkpoint = None
        self._drop_prefetch()
        self.head_reached.clear()
        self.status.head_reached = False

    async def set_enabled(self, enabled: bool) -> None:
        """Start or pause the consumer (a flag in its store, so every instance of it follows): a paused consumer
        finishes the event in hand (one waiting to be retried is left for later) and then fetches nothing until
        it is enabled again."""
        if enabled:
            await self.store.set_enabled(self.consumer_id, True)
        else:
            async with self._between_events():
                await self.store.set_enabled(self.consumer_id, False)
        self.wake()

    @property
    def holds_lock(self) -> bool:
        """Whether this instance holds the consumer's lock (its lease has not run out): it is the one consuming,
        the other instances of the bundle wait."""
        return self._lease_until > time.monotonic()

    @property
    def in_flight(self) -> int:
        """Events being handled right now: the one (or the group) in the fetch loop's hands, plus the observer
        handlers still running."""
        return self._in_hand + len(self._observer_tasks)

    async def describe(self) -> ConsumerStatus:
        checkpoint: Checkpoint | None = await self.store.read_checkpoint(self.consumer_id)
        return ConsumerStatus(
            consumer_id=self.consumer_id,
            component=self.spec.name,
            kind=self._kind,
            context=self.context,
            checkpoint=checkpoint.sequence_number if checkpoint else None,
            head_reached=self.head_reached.is_set(),
            enabled=await self.store.is_enabled(self.consumer_id),
            error=await self.store.error_state(self.consumer_id),
            dead_events=len(await self.store.dead_events(self.consumer_id)),
        )
