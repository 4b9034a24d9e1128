"""Metadata propagation (tracing agent) and handler interceptors.

Every message carries a correlation id and a causation id. By default a handler's outgoing commands and queries
inherit the handled message's metadata, keep its correlation id and name it as their cause; a command's event
inherits the command's metadata the same way. A :class:`TracingAgent` subclass can change any of that.

Interceptors wrap each handler call with three hooks; they run on the handler's own thread, so thread-local
transactions opened in ``before`` are visible to the handler and closed in ``after``/``on_exception``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

from evento.messages import CAUSATION_ID, CORRELATION_ID, HandledMessage, Metadata, new_message_id

__all__ = ["MessageHandlerInterceptor", "TracingAgent"]


class TracingAgent:
    """Decides the metadata of outgoing messages and wraps handler executions (e.g. in a tracing span)."""

    def correlate(self, metadata: Metadata | None, handled: HandledMessage | None) -> dict[str, str]:
        """Metadata for a message sent while handling ``handled`` (``None`` at an invoker with no parent)."""
        result: dict[str, str] = {}
        if handled is not None:
            result.update(handled.metadata)
            result[CORRELATION_ID] = handled.metadata.get(CORRELATION_ID) or handled.message_id
            result[CAUSATION_ID] = handled.message_id
        if metadata:
            result.update(metadata)
        if CORRELATION_ID not in result:
            result[CORRELATION_ID] = new_message_id()
        return result

    def track(
        self, component: str, handler: str, payload_name: str, metadata: dict[str, str]
    ) -> AbstractContextManager[Any]:
        """A context manager around each handler execution. Default: nothing."""
        return nullcontext()


class MessageHandlerInterceptor:
    """Hooks around handler calls. ``kind`` is the handler kind (``"AggregateCommandHandler"``, ...).

    ``after`` may replace the result; ``on_exception`` returns the exception to propagate; an exception raised
    by ``before`` aborts the handler.
    """

    def before(self, kind: str, component: str, payload: Any, metadata: dict[str, str]) -> None:
        return None

    def after(self, kind: str, component: str, payload: Any, result: Any) -> Any:
        return result

    def on_exception(self, kind: str, component: str, payload: Any, error: BaseException) -> BaseException:
        return error
