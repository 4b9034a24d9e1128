"""Decorators that mark component classes and their handlers.

They only attach options to the class or function; the bundle reads them when it is built. Handled payload
types come from the type annotation of the handler's payload parameter.

>>> @projector(version=2)
... class TodoListProjector:
...     @event_handler(retry=3, retry_delay=0.5)
...     def on_created(self, event: "TodoListCreatedEvent") -> None: ...
>>> TodoListProjector.__evento_component__.version
2
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from evento.discovery import ComponentKind, HandlerKind

__all__ = [
    "ComponentOptions",
    "HandlerOptions",
    "aggregate",
    "aggregate_command_handler",
    "command_handler",
    "event_handler",
    "event_sourcing_handler",
    "invocation_handler",
    "invoker",
    "observer",
    "projection",
    "projector",
    "query_handler",
    "saga",
    "saga_event_handler",
    "service",
]

C = TypeVar("C", bound=type[Any])
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class ComponentOptions:
    """What a component decorator attaches to its class: the kind and the options the bundle reads."""

    kind: ComponentKind
    version: int = 1
    snapshot_frequency: int = -1
    wait_for_head_reached: bool = False
    exactly_once: bool = False


@dataclass(frozen=True)
class HandlerOptions:
    """What a handler decorator attaches to its function: the handler kind, ``init``, the saga association
    and the retry policy (``retry`` -1 = retry forever)."""

    kind: HandlerKind
    init: bool = False
    association_property: str | None = None
    retry: int = -1
    retry_delay: float = 1.0


def _component(options: ComponentOptions) -> Callable[[C], C]:
    def mark(cls: C) -> C:
        if not isinstance(cls, type):
            raise TypeError(f"@{options.kind.lower()} decorates classes, not {cls!r}")
        cls.__evento_component__ = options
        return cls

    return mark


def aggregate(*, snapshot_frequency: int = -1) -> Callable[[C], C]:
    """An aggregate: handles domain commands, one event each. ``snapshot_frequency`` -1 = never, 0 = always."""
    if snapshot_frequency < -1:
        raise ValueError("snapshot_frequency must be -1 (never), 0 (every command) or positive")
    return _component(ComponentOptions(ComponentKind.AGGREGATE, snapshot_frequency=snapshot_frequency))


def service() -> Callable[[C], C]:
    """A service: handles service commands, returns a service event or nothing."""
    return _component(ComponentOptions(ComponentKind.SERVICE))


def projector(*, version: int = 1, wait_for_head_reached: bool = False, exactly_once: bool = False) -> Callable[[C], C]:
    """A projector: consumes events in order to build a read model. A new ``version`` replays from the start.

    ``exactly_once``: on a consumer store with transactions (SQLite, PostgreSQL, MySQL), each plain ``def``
    handler runs inside the transaction that commits the projector's checkpoint, and writes its read model through
    :func:`~evento.projection_transaction` — the event's rows and its checkpoint land together or not at all. The
    handler then holds the store's connection while it runs: keep such handlers to database work.
    """
    return _component(
        ComponentOptions(
            ComponentKind.PROJECTOR,
            version=version,
            wait_for_head_reached=wait_for_head_reached,
            exactly_once=exactly_once,
        )
    )


def projection() -> Callable[[C], C]:
    """A projection: answers queries from a read model."""
    return _component(ComponentOptions(ComponentKind.PROJECTION))


def saga(*, version: int = 1) -> Callable[[C], C]:
    """A saga: a stateful event consumer coordinating a process across aggregates."""
    return _component(ComponentOptions(ComponentKind.SAGA, version=version))


def observer(*, version: int = 1) -> Callable[[C], C]:
    """An observer: reacts to events concurrently and without ordering, each event once."""
    return _component(ComponentOptions(ComponentKind.OBSERVER, version=version))


def invoker() -> Callable[[C], C]:
    """An invoker: the boundary where the outside world (HTTP, CLI, cron) sends commands and queries."""
    return _component(ComponentOptions(ComponentKind.INVOKER))


def _handler(options: HandlerOptions) -> Callable[[F], F]:
    def mark(fn: F) -> F:
        if not callable(fn):
            raise TypeError(f"@{options.kind} decorates functions, not {fn!r}")
        fn.__evento_handler__ = options  # type: ignore[attr-defined]
        return fn

    return mark


def _check_retry(retry: int, retry_delay: float) -> None:
    if retry < -1:
        raise ValueError("retry must be -1 (forever) or >= 0")
    if retry_delay < 0:
        raise ValueError("retry_delay must be >= 0 seconds")


@overload
def aggregate_command_handler(fn: F) -> F: ...
@overload
def aggregate_command_handler(*, init: bool = False) -> Callable[[F], F]: ...
def aggregate_command_handler(fn: F | None = None, *, init: bool = False) -> Any:
    """Handles a domain command and returns exactly one domain event. ``init`` creates the aggregate."""
    mark = _handler(HandlerOptions(HandlerKind.AGGREGATE_COMMAND, init=init))
    return mark(fn) if fn is not None else mark


def event_sourcing_handler(fn: F) -> F:
    """Applies a domain event to the aggregate state; returns the new state or mutates it in place."""
    return _handler(HandlerOptions(HandlerKind.EVENT_SOURCING))(fn)


def command_handler(fn: F) -> F:
    """Handles a service command; returns a service event or ``None``."""
    return _handler(HandlerOptions(HandlerKind.COMMAND))(fn)


def query_handler(fn: F) -> F:
    """Answers a query with ``Single`` or ``Multiple``."""
    return _handler(HandlerOptions(HandlerKind.QUERY))(fn)


@overload
def event_handler(fn: F) -> F: ...
@overload
def event_handler(*, retry: int = -1, retry_delay: float = 1.0) -> Callable[[F], F]: ...
def event_handler(fn: F | None = None, *, retry: int = -1, retry_delay: float = 1.0) -> Any:
    """Handles an event in a projector or observer. ``retry`` -1 retries forever, N gives N+1 attempts."""
    _check_retry(retry, retry_delay)
    mark = _handler(HandlerOptions(HandlerKind.EVENT, retry=retry, retry_delay=retry_delay))
    return mark(fn) if fn is not None else mark


def saga_event_handler(
    *, association_property: str, init: bool = False, retry: int = -1, retry_delay: float = 1.0
) -> Callable[[F], F]:
    """Handles an event in a saga, routed to the instance whose association matches the event's field."""
    _check_retry(retry, retry_delay)
    if not association_property:
        raise ValueError("a saga event handler needs an association_property")
    return _handler(
        HandlerOptions(
            HandlerKind.SAGA_EVENT,
            init=init,
            association_property=association_property,
            retry=retry,
            retry_delay=retry_delay,
        )
    )


def invocation_handler(fn: F) -> F:
    """An invoker method that sends commands and queries through ``self.commands`` / ``self.queries``."""
    return _handler(HandlerOptions(HandlerKind.INVOCATION))(fn)
