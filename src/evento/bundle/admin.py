"""The admin channel, bundle side: the server's consumer administration requests, answered from this instance's
consumer engines (reference §4.2 consumer admin surface).

(Skeleton: filled in by the admin work of issue 10.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evento.messages import (
    ConsumeDeadQueue,
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

__all__ = ["BundleAdmin"]


class BundleAdmin:
    """Answers the admin requests of the server about this instance's consumers."""

    def __init__(self, consumers: dict[str, ConsumerEngine]) -> None:
        self._consumers = consumers

    def handlers(self) -> dict[type[Any], Callable[[Any], Any]]:
        """The request types this serves, each with its handler (merged into the bundle's dispatch map)."""
        return dict.fromkeys(
            (
                GetConsumerStatus,
                ListDeadEvents,
                SetDeadEventRetry,
                DeleteDeadEvent,
                ConsumeDeadQueue,
                ResetConsumer,
                SetConsumerEnabled,
            ),
            self._not_yet,
        )

    async def _not_yet(self, request: Any) -> Any:
        raise NotImplementedError(type(request).__name__)
