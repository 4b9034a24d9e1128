"""The message gateway and command broker: route by payload type, serialise by lock id, append the one event.

For an aggregate command the broker locks the command's lock id, loads the aggregate's story (snapshot + later
events, from an LRU cache or the store), forwards the decorated command to a random enabled instance, appends the
event it returns with the snapshot and deletion flag, and replies with the stored event. A failing handler stores
nothing and its error goes back to the caller unchanged.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from evento.discovery import HandlerKind
from evento.errors import AggregateDeletedError, ConnectionLostError, EventoError
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
from evento.server.event_store import AppendRequest, EventStore, Story, VersionConflictError
from evento.server.registry import Registry

__all__ = ["CommandBroker", "LockManager", "StoryCache"]


class LockManager:
    """One asyncio lock per lock id, created on demand and dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, lock_id: str | None) -> AsyncIterator[None]:
        if lock_id is None:
            yield
            return
        lock, users = self._locks.get(lock_id, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[lock_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[lock_id]
            if users == 1:
                del self._locks[lock_id]
            else:
                self._locks[lock_id] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


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

    async def command(self, command: CommandMessage, timeout: float, *, resent: bool = False) -> CommandResult:
        if not resent:
            self.registry.route(command.payload_name)  # fail fast when nobody handles it
        async with self.locks.hold(command.lock_id):
            if resent:
                stored = await self.store.find_by_command(command.message_id)
                if stored is not None:
                    # It ran before the caller lost its connection: answer it, even if no handler is back yet.
                    return CommandResult(stored)
            kind, _ = self.registry.route(command.payload_name)
            if kind is HandlerKind.AGGREGATE_COMMAND:
                return CommandResult(await self._aggregate_command(command, timeout))
            return CommandResult(await self._service_command(command, timeout))

    async def query(self, query: QueryMessage, timeout: float) -> QueryResult:
        _, node = self.registry.route(query.payload_name)
        response = await node.peer.request(QueryRequest(query), timeout)
        assert isinstance(response, QueryResult)
        return response

    async def _aggregate_command(self, command: CommandMessage, timeout: float) -> StoredEvent:
        aggregate_id = command.aggregate_id
        if aggregate_id is None:
            raise EventoError(f"{command.payload_name} names no aggregate id")
        deadline = time.monotonic() + timeout
        for attempt in range(self.conflict_retries + 1):
            story = await self._story(command, aggregate_id, assume_new=attempt == 0)
            if story.deleted:
                raise AggregateDeletedError(f"aggregate {aggregate_id} was deleted")
            request = AggregateCommandRequest(command, story.snapshot, story.snapshot_version, story.events)
            response = await self._forward_aggregate(command.payload_name, request, deadline - time.monotonic())
            version = story.version + 1
            try:
                stored = await self.store.append(
                    AppendRequest(
                        response.event, aggregate_id, version, response.snapshot, response.deleted, command.message_id
                    )
                )
            except VersionConflictError:
                # Another server of the cluster appended to this aggregate after we read its story (our lock is
                # per server), or stored this very command after a resend. Aggregates are pure functions of their
                # story, so reading it again and re-running the handler is safe: optimistic, no lock held across
                # servers while a bundle computes.
                self.cache.evict(aggregate_id)
                already = await self.store.find_by_command(command.message_id)
                if already is not None:
                    return already
                if attempt == self.conflict_retries or time.monotonic() >= deadline:
                    raise
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
            return response

    async def _story(self, command: CommandMessage, aggregate_id: str, *, assume_new: bool) -> Story:
        if command.invalidate_caches:
            self.cache.evict(aggregate_id)
        if not command.invalidate_snapshot:
            cached = self.cache.get(aggregate_id)
            if cached is None and assume_new and self.registry.creates_aggregate(command.payload_name):
                # A creating command almost always names a new aggregate: skip the read. If it exists after all,
                # the event's version 1 is refused by the store and the command re-runs on the real story.
                return Story()
            if cached is not None:
                # Trusted even when other servers share the store: a story they made stale yields a version they
                # already stored, the append is refused, and _aggregate_command re-runs on the fresh story. Cheaper
                # than asking the database on every command.
                return cached
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
        return await self.store.append(AppendRequest(response.event, command.lock_id, command_id=command.message_id))
