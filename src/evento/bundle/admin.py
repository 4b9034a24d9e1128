"""The admin channel, bundle side: the server's consumer administration requests, answered from this instance's
consumer engines (reference §4.2 consumer admin surface).

The server sends these over the same link as commands and queries (in-process or TCP), to the instance it picked:
the one holding the consumer's lock when there is one. Each request names a consumer id; an instance that does
not run it answers :class:`UnknownConsumerError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evento.errors import EventoError
from evento.messages import (
    AdminDone,
    ConsumeDeadQueue,
    ConsumerStatusResult,
    ConsumerStatusView,
    DeadEventsResult,
    DeadEventView,
    DeleteDeadEvent,
    GetConsumerStatus,
    ListDeadEvents,
    ResetConsumer,
    SetConsumerEnabled,
    SetDeadEventRetry,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from evento.bundle.consumers import ConsumerEngine

__all__ = ["BundleAdmin", "UnknownConsumerError"]


class UnknownConsumerError(EventoError):
    """This bundle instance runs no consumer with the id an admin request names."""


class BundleAdmin:
    """Answers the admin requests of the server about this instance's consumers.

    ``consumers`` is the bundle's own map of engines by consumer id (filled when the bundle starts), read at each
    request."""

    def __init__(self, consumers: dict[str, ConsumerEngine]) -> None:
        self._consumers = consumers

    def handlers(self) -> dict[type[Any], Callable[[Any], Any]]:
        """The request types this serves, each with its handler (merged into the bundle's dispatch map)."""
        return {
            GetConsumerStatus: self.status,
            ListDeadEvents: self.dead_events,
            SetDeadEventRetry: self.set_dead_event_retry,
            DeleteDeadEvent: self.delete_dead_event,
            ConsumeDeadQueue: self.consume_dead_queue,
            ResetConsumer: self.reset,
            SetConsumerEnabled: self.set_enabled,
        }

    def _engine(self, consumer_id: str) -> ConsumerEngine:
        engine = self._consumers.get(consumer_id)
        if engine is None:
            raise UnknownConsumerError(f"no consumer {consumer_id!r} runs on this instance")
        return engine

    async def status(self, request: GetConsumerStatus) -> ConsumerStatusResult:
        """The consumer as this instance sees it: checkpoint, the store's head, errors, dead events, lock."""
        engine = self._engine(request.consumer_id)
        described = await engine.describe()
        head = await engine.head()
        error = described.error
        return ConsumerStatusResult(
            ConsumerStatusView(
                consumer_id=described.consumer_id,
                component=described.component,
                component_kind=str(described.kind),
                context=described.context,
                checkpoint=described.checkpoint,
                head=head,
                head_reached=described.head_reached,
                enabled=described.enabled,
                holds_lock=engine.holds_lock,
                error_count=error.error_count,
                error_message=error.message,
                error_since=error.first_error_at,
                last_error_at=error.last_error_at,
                dead_events=described.dead_events,
                in_flight=engine.in_flight,
            )
        )

    async def dead_events(self, request: ListDeadEvents) -> DeadEventsResult:
        """The consumer's dead event queue, in sequence order."""
        engine = self._engine(request.consumer_id)
        return DeadEventsResult(
            [
                DeadEventView(event=dead.event, error=dead.error, retry=dead.retry, dead_at=dead.dead_at)
                for dead in await engine.dead_events()
            ]
        )

    async def set_dead_event_retry(self, request: SetDeadEventRetry) -> AdminDone:
        engine = self._engine(request.consumer_id)
        return AdminDone(await engine.set_dead_event_retry(request.sequence_number, request.retry))

    async def delete_dead_event(self, request: DeleteDeadEvent) -> AdminDone:
        engine = self._engine(request.consumer_id)
        return AdminDone(await engine.delete_dead_event(request.sequence_number))

    async def consume_dead_queue(self, request: ConsumeDeadQueue) -> AdminDone:
        """Reprocess the events flagged for retry; ``count`` is how many succeeded."""
        processed = await self._engine(request.consumer_id).consume_dead_queue()
        return AdminDone(True, processed)

    async def reset(self, request: ResetConsumer) -> AdminDone:
        """Replay from the given sequence number; ``count`` is the checkpoint it now has."""
        checkpoint = await self._engine(request.consumer_id).reset_to(request.from_sequence_number)
        return AdminDone(True, checkpoint.sequence_number)

    async def set_enabled(self, request: SetConsumerEnabled) -> AdminDone:
        await self._engine(request.consumer_id).set_enabled(request.enabled)
        return AdminDone(True)
