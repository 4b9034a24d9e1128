"""Command and query gateways: how handlers and invokers send messages through the server.

A gateway is bound to the message being handled, so what it sends carries that message's metadata, its
correlation id, and the handled message's id as causation id (through the bundle's tracing agent). It sends
through an :class:`~evento.outbox.Outbox`, the bundle's way out to the server (or a test fixture's stand-in).

``send`` and ``query`` are coroutines; plain ``def`` handlers run on worker threads and use ``send_sync`` /
``query_sync``, which wait for the result on the bundle's event loop.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, TypeVar

from evento.messages import (
    CommandMessage,
    CommandResult,
    HandledMessage,
    Metadata,
    QueryMessage,
    QueryResult,
    SendCommand,
    SendQuery,
    new_message_id,
    now_ms,
)
from evento.payloads import (
    Command,
    DomainCommand,
    Event,
    Query,
    QueryResponse,
    decode_payload,
    encode_payload,
    payload_class,
    payload_name,
    query_response_type,
)

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from evento.outbox import Outbox

__all__ = ["CommandGateway", "QueryGateway", "gateways_for"]

DEFAULT_TIMEOUT = 30.0
R = TypeVar("R", bound=QueryResponse[Any])
T = TypeVar("T")


class _Gateway:
    def __init__(
        self, outbox: Outbox, handled: HandledMessage | None = None, sends: dict[str, int] | None = None
    ) -> None:
        self._outbox = outbox
        self._handled = handled
        # The handling's telemetry sample, when it is timed: what it sends, counted by payload type.
        self._sends = sends

    def _wait(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self._outbox.loop
        if loop is None:
            coro.close()
            raise RuntimeError("the bundle is not started")
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            coro.close()
            raise RuntimeError("use 'await gateway.send(...)' on the event loop; *_sync is for plain def handlers")
        return asyncio.run_coroutine_threadsafe(coro, loop).result()


class CommandGateway(_Gateway):
    """Sends commands; returns the event the command produced (``None`` for a service returning nothing)."""

    async def send(
        self, command: Command, metadata: Metadata | dict[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> Any:
        name = payload_name(command)
        sends = self._sends
        if sends is not None:
            sends[name] = sends.get(name, 0) + 1
        message = CommandMessage(
            payload_name=name,
            payload=encode_payload(command),
            message_id=new_message_id(),
            metadata=self._outbox.correlate(Metadata(metadata or {}), self._handled),
            timestamp=now_ms(),
            domain=isinstance(command, DomainCommand),
            aggregate_id=command.aggregate_id,
            lock_id=command.lock_id,
            invalidate_caches=command.invalidate_aggregate_caches,
            invalidate_snapshot=command.invalidate_aggregate_snapshot,
        )
        result = await self._outbox.request(SendCommand(message), timeout)
        assert isinstance(result, CommandResult)
        if result.event is None:
            return None
        cls = payload_class(result.event.event_name)
        if cls is None or not issubclass(cls, Event):
            return result.event
        return decode_payload(result.event.payload, cls)

    def send_sync(
        self, command: Command, metadata: Metadata | dict[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> Any:
        """``send`` for plain ``def`` handlers running on a worker thread."""
        return self._wait(self.send(command, metadata, timeout))


class QueryGateway(_Gateway):
    """Sends queries; returns the query's declared response (``Single`` or ``Multiple``)."""

    async def query(
        self, query: Query[R], metadata: Metadata | dict[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> R:
        name = payload_name(query)
        sends = self._sends
        if sends is not None:
            sends[name] = sends.get(name, 0) + 1
        message = QueryMessage(
            payload_name=name,
            payload=encode_payload(query),
            message_id=new_message_id(),
            metadata=self._outbox.correlate(Metadata(metadata or {}), self._handled),
            timestamp=now_ms(),
        )
        result = await self._outbox.request(SendQuery(message), timeout)
        assert isinstance(result, QueryResult)
        response: R = decode_payload(result.payload, query_response_type(type(query)))
        return response

    def query_sync(
        self, query: Query[R], metadata: Metadata | dict[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> R:
        """``query`` for plain ``def`` handlers running on a worker thread."""
        return self._wait(self.query(query, metadata, timeout))


def gateways_for(
    outbox: Outbox, handled: HandledMessage | None, sends: dict[str, int] | None = None
) -> tuple[CommandGateway, QueryGateway]:
    """The gateways of a handler handling ``handled`` (``None``: a root, as an invoker call is). ``sends``, when
    telemetry times the handling, counts what they send by payload type (shared by both gateways)."""
    return CommandGateway(outbox, handled, sends), QueryGateway(outbox, handled, sends)
