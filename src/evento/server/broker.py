"""The message gateway and command broker: route by payload type, serialise by lock id, append the one event.

For an aggregate command the broker locks the command's lock id, loads the aggregate's story (snapshot + later
events, from an LRU cache or the store), forwards the decorated command to a random enabled instance, appends the
event it returns with the snapshot and deletion flag, and replies with the stored event. A failing handler stores
nothing and its error goes back to the caller unchanged. The event a bundle returns (aggregate or service) is
checked before it is stored (:mod:`evento.server.event_check`): one that is not of a type the bundle declared, or
does not decode, fails the command with :class:`~evento.errors.InvalidEventError` and nothing is stored.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable

from evento.discovery import HandlerKind
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
    QueryMessage,
    QueryRequest,
    QueryResult,
    ServiceCommandRequest,
    ServiceCommandResponse,
    StoredEvent,
)
from evento.server.event_check import EventCheck
from evento.server.registry import Registry

__all__ = ["CommandBroker", "LockManager", "StoryCache"]


class LockManager:
    """One asyncio lock per lock id, created on demand and dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def hold(self, lock_id: str | None) -> _Held:
        """``async with locks.hold(lock_id):`` (a plain object, not a generator: this runs for every command)."""
        return _Held(self._locks, lock_id)

    def __len__(self) -> int:
        return len(self._locks)


class _Held:
    __slots__ = ("_lock_id", "_locks")

    def __init__(self, locks: dict[str, tuple[asyncio.Lock, int]], lock_id: str | None) -> None:
        self._locks = locks
        self._lock_id = lock_id

    async def __aenter__(self) -> None:
        lock_id = self._lock_id
        if lock_id is None:
            return
        lock, users = self._locks.get(lock_id, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[lock_id] = (lock, users + 1)
        try:
            await lock.acquire()
        except BaseException:
            self._leave(lock_id)
            raise

    async def __aexit__(self, *exc: object) -> None:
        lock_id = self._lock_id
        if lock_id is None:
            return
        self._locks[lock_id][0].release()
        self._leave(lock_id)

    def _leave(self, lock_id: str) -> None:
        lock, users = self._locks[lock_id]
        if users == 1:
            del self._locks[lock_id]
        else:
            self._locks[lock_id] = (lock, users - 1)


class StoryCache:
    """LRU cache of aggregate stories with an expiry (reference defaults: 1024 entries, 150 s)."""

    def __init__(self, size: int = 1024, ttl: float = 150.0) -> None:
        self.size = size
        self.ttl = ttl
        self._entries: OrderedDict[str, tuple[Story, float]] = OrderedDict()

    def get(self, aggregate_id: str) -> Story | None:
        entry = self._entries.get(aggregate_id)
        if entry is None:
            return None
        story, expires = entry
        if expires < time.monotonic():
            del self._entries[aggregate_id]
            return None
        self._entries.move_to_end(aggregate_id)
        return story

    def put(self, aggregate_id: str, story: Story) -> None:
        if self.size <= 0:
            return
        self._entries[aggregate_id] = (story, time.monotonic() + self.ttl)
        self._entries.move_to_end(aggregate_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def evict(self, aggregate_id: str) -> None:
        self._entries.pop(aggregate_id, None)


class CommandBroker:
    """Handles commands and queries on behalf of callers, whichever transport they came by."""

    #: How many times an aggregate command is re-run when another server stored a version first.
    conflict_retries = 16

    def __init__(self, registry: Registry, store: EventStore, *, cache: StoryCache | None = None) -> None:
        self.registry = registry
        self.store = store
        self.cache = cache or StoryCache()
        self.locks = LockManager()
        self.events = EventCheck()

    async def command(self, command: CommandMessage, timeout: float, *, resent: bool = False) -> CommandResult:
        if not resent:
            self.registry.route(command.payload_name)  # fail fast when nobody handles it
        deadline = time.monotonic() + timeout
        # Lock waits end a little before the caller's deadline, so "it did not run" reaches the caller in time.
        lock_deadline = deadline - min(0.5, timeout * 0.1)
        local = self.locks.hold(command.lock_id)
        await self._within(lock_deadline, local.__aenter__(), command)
        try:
            # Decided once this server's turn has come: the aggregate may have become contended meanwhile.
            if command.lock_id is None or not self._needs_cluster_lock(command):
                return await self._locked_command(command, deadline - time.monotonic(), resent, cluster_locked=False)
            cluster = self.store.cluster_lock(command.lock_id)
            await self._within(lock_deadline, cluster.__aenter__(), command)
            try:
                return await self._locked_command(command, deadline - time.monotonic(), resent, cluster_locked=True)
            finally:
                await cluster.__aexit__(None, None, None)
        finally:
            await local.__aexit__(None, None, None)

    @staticmethod
    async def _within(deadline: float, acquire: Awaitable[object], command: CommandMessage) -> None:
        """Wait for a lock no longer than the command's deadline: a command that never got its turn did not run,
        and saying so beats piling up waiters behind a lock some stalled holder keeps."""
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await acquire
        except TimeoutError:
            raise LockTimeoutError(
                f"{command.payload_name} waited its whole deadline for lock {command.lock_id!r}; it did not run"
            ) from None

    async def _locked_command(
        self, command: CommandMessage, timeout: float, resent: bool, *, cluster_locked: bool
    ) -> CommandResult:
        if resent:
            stored = await self.store.find_by_command(command.message_id)
            if stored is not None:
                # It ran before the caller lost its connection: answer it, even if no handler is back yet.
                return CommandResult(stored)
        kind, _ = self.registry.route(command.payload_name)
        if kind is HandlerKind.AGGREGATE_COMMAND:
            return CommandResult(await self._aggregate_command(command, timeout, cluster_locked=cluster_locked))
        return CommandResult(await self._service_command(command, timeout))

    def _needs_cluster_lock(self, command: CommandMessage) -> bool:
        """Whether to hold the lock id across the servers sharing the store: for a service command's lock id, or
        a domain command locking more than its own aggregate, always (nothing else serialises them); for an
        aggregate's own commands only while servers are seen racing for it (see _aggregate_command)."""
        lock_id = command.lock_id
        if lock_id is None:
            return False
        return not command.domain or lock_id != command.aggregate_id or self.store.is_contended(lock_id)

    async def query(self, query: QueryMessage, timeout: float) -> QueryResult:
        _, node = self.registry.route(query.payload_name)
        response = await node.peer.request(QueryRequest(query), timeout)
        assert isinstance(response, QueryResult)
        return response

    async def _aggregate_command(
        self, command: CommandMessage, timeout: float, *, cluster_locked: bool
    ) -> StoredEvent:
        """Run an aggregate command on its story and append the event it returns.

        Optimistic with respect to other servers sharing the store: a story from this server's cache may be
        stale, and a creating command's story is assumed empty without a read. An event made from a stale story
        carries a version that is already stored, so the append is refused and the command re-runs on the stored
        story (aggregates are pure functions of their story); a handler's refusal made from an unread story is
        checked against the stored story and re-run if that differs.

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
        deadline = time.monotonic() + timeout
        if cluster_locked:
            story, verified = await self._load(command, aggregate_id), True
        else:
            story, verified = await self._story(command, aggregate_id)
        for attempt in range(self.conflict_retries + 1):
            if story.deleted:
                raise AggregateDeletedError(f"aggregate {aggregate_id} was deleted")
            request = AggregateCommandRequest(command, story.snapshot, story.snapshot_version, story.events)
            try:
                response = await self._forward_aggregate(command.payload_name, request, deadline - time.monotonic())
            except (ConnectionLostError, TimeoutError, NoHandlerError, InvalidEventError):
                raise
            except Exception:
                if verified:
                    raise  # refused on the stored story: the caller's answer
                stored_story = await self._load(command, aggregate_id)
                if (stored_story.version, stored_story.exists) == (story.version, story.exists):
                    raise
                story, verified = stored_story, True
                continue
            try:
                stored = await self.store.append(
                    AppendRequest(
                        response.event,
                        aggregate_id,
                        story.version + 1,
                        response.snapshot,
                        response.deleted,
                        command.message_id,
                    )
                )
            except VersionConflictError:
                # Another server stored this version first, or stored this very command after a resend.
                self.cache.evict(aggregate_id)
                already = await self.store.find_by_command(command.message_id)
                if already is not None:
                    return already
                if attempt == self.conflict_retries or time.monotonic() >= deadline:
                    raise
                if story.version == 0:
                    # A creating command whose aggregate exists after all (the read was skipped): no race between
                    # servers, just the stored story to run on.
                    story, verified = await self._load(command, aggregate_id), True
                    continue
                self.store.report_contention(aggregate_id)
                if not cluster_locked:
                    # A command holds at most one cluster lock (its lock id's, taken on entry, or its aggregate's,
                    # taken here): two, taken in different orders by two servers, could deadlock.
                    remaining = deadline - time.monotonic()
                    async with self.store.cluster_lock(aggregate_id):
                        return await self._aggregate_command(command, remaining, cluster_locked=True)
                story, verified = await self._load(command, aggregate_id), True
                continue
            except BaseException:
                self.cache.evict(aggregate_id)
                raise
            self._remember(aggregate_id, story, stored, response)
            return stored
        raise AssertionError("unreachable: the last attempt returns or raises")

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

    async def _story(self, command: CommandMessage, aggregate_id: str) -> tuple[Story, bool]:
        """The story to run ``command`` on, and whether it is known to be the stored one (read from the store
        now, or cached by the store's only writer)."""
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

    async def _service_command(self, command: CommandMessage, timeout: float) -> StoredEvent | None:
        _, node = self.registry.route(command.payload_name)
        response = await node.peer.request(ServiceCommandRequest(command), timeout)
        assert isinstance(response, ServiceCommandResponse)
        if response.event is None:
            return None
        self.events.check(node, response.event)
        try:
            return await self.store.append(
                AppendRequest(response.event, command.lock_id, command_id=command.message_id)
            )
        except VersionConflictError:
            # The command's event is stored already: another server ran it for an earlier send of this command.
            stored = await self.store.find_by_command(command.message_id)
            if stored is None:
                raise
            return stored
