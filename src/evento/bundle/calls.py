"""Calling a handler: build its arguments from the injection plan, run it with interceptors and tracing.

``async def`` handlers run on the event loop; plain ``def`` handlers run on a worker thread so blocking code
(database drivers, HTTP clients) never stalls the loop. Interceptor hooks run on the handler's thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from evento.bundle.tracing import MessageHandlerInterceptor, TracingAgent
from evento.components.model import HandlerSpec, Inject, ProjectorStatus, SequenceNumber
from evento.discovery import HandlerKind
from evento.gateways import CommandGateway, QueryGateway
from evento.messages import Metadata

__all__ = ["CallContext", "HandlerRunner", "to_datetime"]


def to_datetime(timestamp_ms: int) -> datetime:
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)


@dataclass(slots=True)
class CallContext:
    """Everything a handler may have injected for one call."""

    payload: Any
    message: Any
    metadata: dict[str, str]
    timestamp_ms: int
    state: Any = None
    commands: CommandGateway | None = None
    queries: QueryGateway | None = None
    sequence_number: int | None = None
    status: ProjectorStatus | None = None

    def value(self, inject: Inject, dependency: Any) -> Any:
        if inject is Inject.PAYLOAD:
            return self.payload
        if inject is Inject.STATE:
            return self.state
        if inject is Inject.COMMANDS:
            return self.commands
        if inject is Inject.QUERIES:
            return self.queries
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


class HandlerRunner:
    """Runs handlers of one bundle with its interceptors and tracing agent."""

    def __init__(self, interceptors: Sequence[MessageHandlerInterceptor], agent: TracingAgent) -> None:
        self.interceptors = list(interceptors)
        self.agent = agent

    async def run(self, handler: HandlerSpec, instance: Any, ctx: CallContext) -> Any:
        if handler.is_async:
            return await self._run_async(handler, instance, ctx)
        return await asyncio.to_thread(self.run_sync, handler, instance, ctx)

    def run_sync(self, handler: HandlerSpec, instance: Any, ctx: CallContext) -> Any:
        """Run a plain ``def`` handler on the calling thread (used inside a worker thread)."""
        args = [ctx.value(inject, dep) for inject, dep in handler.plan]
        with self.agent.track(handler.component.name, handler.name, handler.payload_name, ctx.metadata):
            self._before(handler, ctx)
            try:
                result = handler.function(instance, *args)
            except BaseException as exc:
                raise self._on_exception(handler, ctx, exc) from None
            return self._after(handler, ctx, result)

    async def _run_async(self, handler: HandlerSpec, instance: Any, ctx: CallContext) -> Any:
        args = [ctx.value(inject, dep) for inject, dep in handler.plan]
        with self.agent.track(handler.component.name, handler.name, handler.payload_name, ctx.metadata):
            self._before(handler, ctx)
            try:
                result = await handler.function(instance, *args)
            except BaseException as exc:
                raise self._on_exception(handler, ctx, exc) from None
            return self._after(handler, ctx, result)

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
