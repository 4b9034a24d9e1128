"""The command broker: route a command by payload type, serialise it by lock id, append the one event it makes.

The command path, from the wire to the reply (an aggregate command; a service command differs at step 5):

1. The transport hands the request over: over TCP, ``transport/connection.py`` ``Connection.run`` reads the frame
   and ``server/bus.py`` ``BusServer._on_request`` (which answers a resent command from its reply cache) calls the
   server; in process, ``transport/inprocess.py`` ``_InProcessLink.request`` calls it directly.
2. ``server/server.py`` :meth:`EventoServer.handle <evento.server.server.EventoServer.handle>` dispatches the
   :class:`~evento.messages.SendCommand` by type to :meth:`CommandBroker.command`, naming the node that sent it.
3. :meth:`CommandBroker.command` fails fast when no instance handles the type, then :meth:`CommandBroker._take_turn`
   waits for the command's lock id on this server (``server/locks.py`` :class:`~evento.server.locks.LockManager`)
   and, when servers sharing the store must take turns too, for its cluster lock
   (:meth:`EventStore.cluster_lock <evento.event_stores.base.EventStore.cluster_lock>`).
4. A resent command that ran before is answered with its stored event
   (:meth:`EventStore.find_by_command <evento.event_stores.base.EventStore.find_by_command>`).
5. :meth:`CommandBroker._aggregate_command` drives three steps in a short loop:

   a. **story** — :meth:`CommandBroker._story`: the aggregate's snapshot and later events, from
      ``server/story_cache.py`` :class:`~evento.server.story_cache.StoryCache` or the store
      (:meth:`EventStore.load_story <evento.event_stores.base.EventStore.load_story>`);
   b. **run** — :meth:`CommandBroker._run` sends the command and its story to a random enabled instance
      (:meth:`CommandBroker._forward_aggregate`, through the transport's ``BundlePeer.request``) and checks the
      event it returns (``server/event_check.py`` :meth:`EventCheck.check
      <evento.server.event_check.EventCheck.check>`); a refusal made on an unread story that turns out stale
      re-runs on the stored story;
   c. **append or resolve** — :meth:`CommandBroker._append_or_resolve` appends the event with its snapshot and
      deletion flag (``event_stores/base.py`` :meth:`EventStore.append
      <evento.event_stores.base.EventStore.append>`, group commit, then the backend's ``_write_batch``) and
      caches the new story; on a version conflict it answers an event already stored for this command, or
      hands back the stored story to re-run on (under the aggregate's cluster lock once servers race for it).

   A service command instead goes to its handler with its caller named (:meth:`CommandBroker._service_command`),
   and the event it returns, if any, is checked and appended.
6. The stored event travels back as a :class:`~evento.messages.CommandResult`: over TCP ``transport/connection.py``
   ``respond`` wraps it (or the error) in the reply frame; in process it is the return value. An error goes back
   unchanged, and a command that failed stored nothing.

The broker routes by type name and carries payloads as opaque bytes. Only the event check
(:mod:`evento.server.event_check`) looks into an event, to refuse one that is not of a type the bundle declared or
does not decode: the command then fails with :class:`~evento.errors.InvalidEventError` and nothing is stored.
Queries are routed by :class:`~evento.server.queries.QueryRouter`, not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from contextlib import AbstractAsyncContextManager
from time import perf_counter_ns
from typing import TYPE_CHECKING

from evento.discovery import HandlerKind, NodeInfo
from evento.errors import (
    AggregateDeletedError,
    ConnectionLostError,
    EventoError,
    InvalidEventError,
    LockTimeoutError,
    NoHandlerError,
)
from evento.event_stores.base import AppendRequest, EventStore, Story, VersionConflictError
from evento.messages import (
    AggregateCommandRequest,
    AggregateCommandResponse,
    CommandMessage,
    CommandResult,
    ServiceCommandRequest,
    ServiceCommandResponse,
    StoredEvent,
)
from evento.server.event_check import EventCheck
from evento.server.locks import LockManager
from evento.server.story_cache import StoryCache

if TYPE_CHECKING:
    from evento.server.phases import BrokerPhases, PhaseClock
    from evento.server.registry import Registry

__all__ = ["CommandBroker"]

#: Errors of the way to a handler, not a handler's refusal: they go to the caller as they are.
_NOT_A_REFUSAL = (ConnectionLostError, TimeoutError, NoHandlerError, InvalidEventError)


class CommandBroker:
    """Runs commands on behalf of callers, whichever transport they came by (see the module docstring)."""

    #: How many times an aggregate command is re-run when another server stored a version first.
    conflict_retries = 16

    def __init__(self, registry: Registry, store: EventStore, *, cache: StoryCache | None = None) -> None:
        self.registry = registry
        self.store = store
        self.cache = cache or StoryCache()
        self.locks = LockManager()
        self.events = EventCheck()
        #: The server's telemetry of commands (phases, appends), when it keeps any: counted in memory, written by
        #: the telemetry store once per interval.
        self.phases: BrokerPhases | None = None

    async def command(
        self, command: CommandMessage, timeout: float, *, resent: bool = False, caller: NodeInfo | None = None
    ) -> CommandResult:
        """Run ``command`` within ``timeout`` seconds and answer the event it stored (steps 3–6 of the path).

        ``resent``: the caller lost its connection and sends the command again; if it ran, its event answers it.
        ``caller``: the bundle instance that sent it, named to a service so it runs the command once per caller.
        """
        if not resent:
            self.registry.route(command.payload_name)  # fail fast when nobody handles it
        phases = self.phases
        clock = phases.begin() if phases is not None else None  # timed when the server's telemetry samples it
        try:
            deadline = time.monotonic() + timeout
            # Lock waits end a little before the caller's deadline, so "it did not run" reaches the caller in time.
            lock_deadline = deadline - min(0.5, timeout * 0.1)
            async with contextlib.AsyncExitStack() as turn:
                cluster_locked = await self._take_turn(turn, command, lock_deadline)
                if clock is not None:
                    clock.lock = perf_counter_ns() - clock.start
                if resent:
                    stored = await self.store.find_by_command(command.message_id)
                    if stored is not None:
                        # It ran before the caller lost its connection: answer it, even if no handler is back yet.
                        return CommandResult(stored)
                kind, _ = self.registry.route(command.payload_name)
                if kind is HandlerKind.AGGREGATE_COMMAND:
                    if clock is not None:
                        clock.aggregate = True
                    return CommandResult(
                        await self._aggregate_command(command, deadline, cluster_locked=cluster_locked, clock=clock)
                    )
                return CommandResult(await self._service_command(command, deadline, caller, clock))
        finally:
            if clock is not None and phases is not None:
                phases.end(clock, command.payload_name)

    # --- whose turn -----------------------------------------------------------------------------------------------

    async def _take_turn(self, turn: contextlib.AsyncExitStack, command: CommandMessage, deadline: float) -> bool:
        """Hold the command's lock id on this server, and across servers when needed (held until ``turn`` ends);
        answers whether the cluster lock is held."""
        await self._wait_for(turn, self.locks.hold(command.lock_id), deadline, command)
        # Decided once this server's turn has come: the aggregate may have become contended meanwhile.
        lock_id = command.lock_id
        if lock_id is None or not self._needs_cluster_lock(command):
            return False
        await self._wait_for(turn, self.store.cluster_lock(lock_id), deadline, command)
        return True

    @staticmethod
    async def _wait_for(
        turn: contextlib.AsyncExitStack,
        lock: AbstractAsyncContextManager[None],
        deadline: float,
        command: CommandMessage,
    ) -> None:
        """Enter ``lock`` into ``turn``, waiting no longer than ``deadline``: a command that never got its turn did
        not run, and saying so beats piling up waiters behind a lock some stalled holder keeps."""
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await turn.enter_async_context(lock)
        except TimeoutError:
            raise LockTimeoutError(
                f"{command.payload_name} waited its whole deadline for lock {command.lock_id!r}; it did not run"
            ) from None

    def _needs_cluster_lock(self, command: CommandMessage) -> bool:
        """Whether to hold the lock id across the servers sharing the store: for a service command's lock id, or
        a domain command locking more than its own aggregate, always (nothing else serialises them); for an
        aggregate's own commands only while servers are seen racing for it (see _aggregate_command)."""
        lock_id = command.lock_id
        if lock_id is None:
            return False
        return not command.domain or lock_id != command.aggregate_id or self.store.is_contended(lock_id)

    # --- aggregate commands ---------------------------------------------------------------------------------------

    async def _aggregate_command(
        self, command: CommandMessage, deadline: float, *, cluster_locked: bool, clock: PhaseClock | None = None
    ) -> StoredEvent:
        """Run an aggregate command on its story and append the event it returns: story, run, append-or-resolve.

        Optimistic with respect to other servers sharing the store: a story from this server's cache may be
        stale, and a creating command's story is assumed empty without a read. An event made from a stale story
        carries a version that is already stored, so the append is refused and the command re-runs on the stored
        story (aggregates are pure functions of their story); a handler's refusal made from an unread story is
        checked against the stored story and re-run if that differs. Every re-run is on a story just read.

        No lock spans servers while a bundle computes, unless servers race for the aggregate: the loser of a race
        reports it to every server, and re-runs on the stored story under the aggregate's cluster lock; for a
        while every server takes that lock for the aggregate (``cluster_locked``: a cluster lock is held already),
        so they take turns instead of one winning every race. While a cluster lock is held the story is read from
        the store (no other server can append to the aggregate meanwhile, unless the lock held is a wider lock id
        of the command's own, when the version check still decides).
        """
        aggregate_id = command.aggregate_id
        if aggregate_id is None:
            raise EventoError(f"{command.payload_name} names no aggregate id")
        started = perf_counter_ns() if clock is not None else 0
        if cluster_locked:
            story, verified = await self._load(command, aggregate_id), True
        else:
            story, verified = await self._story(command, aggregate_id)
        if clock is not None:
            clock.retrieve += perf_counter_ns() - started
        for attempt in range(self.conflict_retries + 1):
            if clock is None:
                ran = await self._run(command, aggregate_id, story, verified, deadline)
            else:
                started = perf_counter_ns()
                try:
                    ran = await self._run(command, aggregate_id, story, verified, deadline)
                finally:
                    clock.compute += perf_counter_ns() - started
            if isinstance(ran, Story):
                story, verified = ran, True
                continue
            last = attempt == self.conflict_retries
            outcome = await self._append_or_resolve(
                command, aggregate_id, story, ran, deadline, cluster_locked, last, clock
            )
            if isinstance(outcome, StoredEvent):
                return outcome
            story, verified = outcome, True
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _story(self, command: CommandMessage, aggregate_id: str) -> tuple[Story, bool]:
        """Step a: the story to run ``command`` on, and whether it is known to be the stored one (read from the
        store now, or cached by the store's only writer)."""
        if command.invalidate_caches:
            self.cache.evict(aggregate_id)
        if not command.invalidate_snapshot:
            cached = self.cache.get(aggregate_id)
            if cached is not None:
                return cached, self.store.exclusive
            if self.registry.creates_aggregate(command.payload_name):
                # A creating command almost always names a new aggregate: skip the read (see _aggregate_command).
                return Story(), False
        return await self._load(command, aggregate_id), True

    async def _load(self, command: CommandMessage, aggregate_id: str) -> Story:
        story = await self.store.load_story(aggregate_id, use_snapshot=not command.invalidate_snapshot)
        self.cache.put(aggregate_id, story)
        return story

    async def _run(
        self, command: CommandMessage, aggregate_id: str, story: Story, verified: bool, deadline: float
    ) -> AggregateCommandResponse | Story:
        """Step b: the handler's answer to ``command`` on ``story``; or, when it refused on a story not known to be
        the stored one and the stored one differs, that stored story to re-run on. A refusal that stands (or an
        error on the way to the handler) is raised to the caller unchanged."""
        if story.deleted:
            raise AggregateDeletedError(f"aggregate {aggregate_id} was deleted")
        request = AggregateCommandRequest(command, story.snapshot, story.snapshot_version, story.events)
        try:
            return await self._forward_aggregate(command.payload_name, request, deadline - time.monotonic())
        except _NOT_A_REFUSAL:
            raise
        except Exception:
            if verified:
                raise  # refused on the stored story: the caller's answer
            stored_story = await self._load(command, aggregate_id)
            if (stored_story.version, stored_story.exists) == (story.version, story.exists):
                raise
            return stored_story

    async def _forward_aggregate(
        self, payload_name: str, request: AggregateCommandRequest, timeout: float
    ) -> AggregateCommandResponse:
        """Send to a random enabled instance; if it leaves before answering, to another one.

        Safe because aggregates are stateless and the server stores nothing until an answer arrives: a command
        whose instance died mid-flight runs exactly once, elsewhere, within the caller's deadline.
        """
        deadline = time.monotonic() + timeout
        while True:
            _, node = self.registry.route(payload_name)  # after the lock wait: the earlier choice may have left
            try:
                response = await node.peer.request(request, max(0.001, deadline - time.monotonic()))
            except ConnectionLostError:
                if time.monotonic() >= deadline:
                    raise
                self.registry.mark_unreachable(node)
                continue
            assert isinstance(response, AggregateCommandResponse)
            self.events.check(node, response.event)
            return response

    async def _append_or_resolve(
        self,
        command: CommandMessage,
        aggregate_id: str,
        story: Story,
        response: AggregateCommandResponse,
        deadline: float,
        cluster_locked: bool,
        last: bool,
        clock: PhaseClock | None = None,
    ) -> StoredEvent | Story:
        """Step c: append the event the handler made on ``story`` as the next version and answer it; on a version
        conflict, answer this command's event if it is stored already, or the stored story to re-run on (raising
        the conflict on the ``last`` attempt or past the deadline)."""
        try:
            stored = await self._append(
                AppendRequest(
                    response.event,
                    aggregate_id,
                    story.version + 1,
                    response.snapshot,
                    response.deleted,
                    command.message_id,
                ),
                clock,
            )
        except VersionConflictError:
            # Another server stored this version first, or stored this very command after a resend.
            self.cache.evict(aggregate_id)
            already = await self.store.find_by_command(command.message_id)
            if already is not None:
                return already
            if last or time.monotonic() >= deadline:
                raise
            return await self._resolve_conflict(command, aggregate_id, story, deadline, cluster_locked, clock)
        except BaseException:
            self.cache.evict(aggregate_id)
            raise
        self._remember(aggregate_id, story, stored, response)
        return stored

    async def _resolve_conflict(
        self,
        command: CommandMessage,
        aggregate_id: str,
        story: Story,
        deadline: float,
        cluster_locked: bool,
        clock: PhaseClock | None,
    ) -> StoredEvent | Story:
        """Another server appended first: the stored story to re-run on, or the whole command re-run under the
        aggregate's cluster lock when this is a race between servers and no cluster lock is held yet."""
        if story.version == 0:
            # A creating command whose aggregate exists after all (the read was skipped): no race between servers,
            # just the stored story to run on.
            return await self._load(command, aggregate_id)
        self.store.report_contention(aggregate_id)
        if cluster_locked:
            return await self._load(command, aggregate_id)
        # A command holds at most one cluster lock (its lock id's, taken on entry, or its aggregate's, taken here):
        # two, taken in different orders by two servers, could deadlock. The re-run gets the time that was left
        # when the wait for the lock began.
        remaining = deadline - time.monotonic()
        async with self.store.cluster_lock(aggregate_id):
            return await self._aggregate_command(
                command, time.monotonic() + remaining, cluster_locked=True, clock=clock
            )

    async def _append(self, request: AppendRequest, clock: PhaseClock | None) -> StoredEvent:
        """Append through the store's group commit; counted and timed for the telemetry and the metrics."""
        phases = self.phases
        if phases is None:
            return await self.store.append(request)
        started = perf_counter_ns()
        stored = await self.store.append(request)
        phases.appended(started, clock)
        return stored

    def _remember(
        self, aggregate_id: str, story: Story, stored: StoredEvent, response: AggregateCommandResponse
    ) -> None:
        if response.deleted:
            self.cache.put(aggregate_id, Story(deleted=True))
        elif response.snapshot is not None:
            assert stored.aggregate_version is not None
            self.cache.put(aggregate_id, Story(response.snapshot, stored.aggregate_version, []))
        else:
            # A new list, not an append: a story handed to an in-flight request stays unchanged.
            self.cache.put(aggregate_id, Story(story.snapshot, story.snapshot_version, [*story.events, stored]))

    # --- service commands -----------------------------------------------------------------------------------------

    async def _service_command(
        self, command: CommandMessage, deadline: float, caller: NodeInfo | None, clock: PhaseClock | None = None
    ) -> StoredEvent | None:
        _, node = self.registry.route(command.payload_name)
        request = ServiceCommandRequest(command, caller)
        started = perf_counter_ns() if clock is not None else 0
        try:
            response = await node.peer.request(request, deadline - time.monotonic())
        finally:
            if clock is not None:
                clock.compute += perf_counter_ns() - started
        assert isinstance(response, ServiceCommandResponse)
        if response.event is None:
            return None
        self.events.check(node, response.event)
        try:
            return await self._append(
                AppendRequest(response.event, command.lock_id, command_id=command.message_id), clock
            )
        except VersionConflictError:
            # The command's event is stored already: another server ran it for an earlier send of this command.
            stored = await self.store.find_by_command(command.message_id)
            if stored is None:
                raise
            return stored
