"""Reading component classes into specs: handlers, handled payloads, injection plans, capability checks.

Every rule of the RECQ capability table is checked here, when the bundle is built: a handler that asks for a
gateway its component kind may not use, or whose body sends a forbidden payload, fails registration with a
message naming it. What a handler may have injected is decided by its kind, never at call time.
"""

from __future__ import annotations

import enum
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from evento.components.analysis import Sends, analyse_sends
from evento.components.decorators import ComponentOptions, HandlerOptions
from evento.components.state import AggregateState, SagaState
from evento.discovery import ComponentKind, HandlerInfo, HandlerKind
from evento.errors import CapabilityError, RegistrationError
from evento.gateways import CommandGateway, QueryGateway
from evento.messages import CommandMessage, Metadata, QueryMessage, StoredEvent
from evento.payloads import (
    DomainCommand,
    DomainEvent,
    Event,
    Multiple,
    Payload,
    Query,
    ServiceCommand,
    payload_kind,
    query_response_type,
)

__all__ = [
    "ComponentSpec",
    "HandlerSpec",
    "Inject",
    "ProjectorStatus",
    "SequenceNumber",
    "instantiate",
    "read_component",
]


class SequenceNumber(int):
    """Annotate a handler parameter with this to receive the event's sequence number."""


@dataclass
class ProjectorStatus:
    """Injected into projector handlers: ``head_reached`` is false while the projector is catching up."""

    head_reached: bool = False


class Inject(enum.Enum):
    """What a handler parameter receives."""

    PAYLOAD = "payload"
    STATE = "state"
    COMMANDS = "commands"
    QUERIES = "queries"
    MESSAGE = "message"
    METADATA = "metadata"
    TIMESTAMP = "timestamp"
    SEQUENCE = "sequence_number"
    STATUS = "projector_status"
    DEPENDENCY = "dependency"


_BY_ANNOTATION: dict[Any, Inject] = {
    CommandGateway: Inject.COMMANDS,
    QueryGateway: Inject.QUERIES,
    Metadata: Inject.METADATA,
    datetime: Inject.TIMESTAMP,
    SequenceNumber: Inject.SEQUENCE,
    ProjectorStatus: Inject.STATUS,
    StoredEvent: Inject.MESSAGE,
    CommandMessage: Inject.MESSAGE,
    QueryMessage: Inject.MESSAGE,
}

_COMMON = {Inject.PAYLOAD, Inject.METADATA, Inject.DEPENDENCY}


@dataclass(frozen=True)
class _Rule:
    payload_base: type[Payload]
    allowed: frozenset[Inject]
    may_command: bool
    may_query: bool


def _rule(base: type[Payload], *extra: Inject, command: bool = False, query: bool = False) -> _Rule:
    allowed = set(_COMMON) | set(extra)
    if command:
        allowed.add(Inject.COMMANDS)
    if query:
        allowed.add(Inject.QUERIES)
    return _Rule(base, frozenset(allowed), command, query)


# The RECQ capability table (reference §2.2) and the injection table (reference §2.11), as data.
_RULES: dict[tuple[ComponentKind, HandlerKind], _Rule] = {
    (ComponentKind.AGGREGATE, HandlerKind.AGGREGATE_COMMAND): _rule(
        DomainCommand, Inject.STATE, Inject.MESSAGE, Inject.TIMESTAMP, command=True
    ),
    (ComponentKind.AGGREGATE, HandlerKind.EVENT_SOURCING): _rule(DomainEvent, Inject.STATE, Inject.TIMESTAMP),
    (ComponentKind.SERVICE, HandlerKind.COMMAND): _rule(ServiceCommand, Inject.MESSAGE, Inject.TIMESTAMP, command=True),
    (ComponentKind.PROJECTION, HandlerKind.QUERY): _rule(Query, Inject.MESSAGE, Inject.TIMESTAMP, query=True),
    (ComponentKind.PROJECTOR, HandlerKind.EVENT): _rule(
        Event, Inject.MESSAGE, Inject.TIMESTAMP, Inject.SEQUENCE, Inject.STATUS, query=True
    ),
    (ComponentKind.SAGA, HandlerKind.SAGA_EVENT): _rule(
        Event, Inject.STATE, Inject.MESSAGE, Inject.TIMESTAMP, Inject.SEQUENCE, command=True, query=True
    ),
    (ComponentKind.OBSERVER, HandlerKind.EVENT): _rule(
        Event, Inject.MESSAGE, Inject.TIMESTAMP, Inject.SEQUENCE, command=True, query=True
    ),
    (ComponentKind.INVOKER, HandlerKind.INVOCATION): _Rule(Payload, frozenset(), True, True),
}


@dataclass
class HandlerSpec:
    """One handler, ready to be called: its function, payload type and injection plan."""

    component: ComponentSpec
    name: str
    function: Callable[..., Any]
    options: HandlerOptions
    payload_type: type[Payload] | None
    plan: list[tuple[Inject, Any]]
    is_async: bool
    sends: Sends
    return_type: Any = None
    #: The handler takes the payload and nothing else (the common case a replay can call directly).
    payload_only: bool = field(init=False)

    def __post_init__(self) -> None:
        self.payload_only = [inject for inject, _ in self.plan] == [Inject.PAYLOAD]

    @property
    def kind(self) -> HandlerKind:
        return self.options.kind

    @property
    def qualname(self) -> str:
        return f"{self.component.name}.{self.name}"

    @property
    def payload_name(self) -> str:
        return self.payload_type.__name__ if self.payload_type is not None else f"{self.component.name}::{self.name}"

    def info(self) -> HandlerInfo:
        return_type, multiple = _describe_return(self)
        try:
            source_file = inspect.getsourcefile(self.function)
            line = inspect.getsourcelines(self.function)[1]
        except (OSError, TypeError):
            source_file, line = None, None
        return HandlerInfo(
            component=self.component.name,
            component_kind=self.component.kind,
            handler_kind=self.kind,
            payload=self.payload_name,
            payload_kind=payload_kind(self.payload_type) if self.payload_type else "Invocation",
            handler_name=self.name,
            return_type=return_type,
            return_is_multiple=multiple,
            association_property=self.options.association_property,
            init=self.options.init,
            source_file=source_file,
            line=line,
            invoked_commands={name: str(line) for name, line in self.sends.commands.items()},
            invoked_queries={name: str(line) for name, line in self.sends.queries.items()},
            description=(inspect.getdoc(self.function) or "").partition("\n")[0] or None,
        )


@dataclass
class ComponentSpec:
    """A component class read into its kind, options and handlers."""

    cls: type[Any]
    options: ComponentOptions
    handlers: dict[tuple[HandlerKind, str], HandlerSpec] = field(default_factory=dict)
    state_type: type[Any] | None = None

    @property
    def name(self) -> str:
        return self.cls.__name__

    @property
    def kind(self) -> ComponentKind:
        return self.options.kind

    def handler_for(self, kind: HandlerKind, payload_name: str) -> HandlerSpec | None:
        return self.handlers.get((kind, payload_name))

    def handlers_of(self, *kinds: HandlerKind) -> list[HandlerSpec]:
        return [h for h in self.handlers.values() if h.kind in kinds]


def instantiate(cls: type[Any], resolve_dependency: Callable[[Any], Any]) -> Any:
    """Create the component's single instance, its constructor parameters resolved by annotation."""
    init = cls.__init__
    if init is object.__init__:
        return cls()
    try:
        hints = typing.get_type_hints(init)
    except Exception as exc:
        raise RegistrationError(f"cannot resolve annotations of {cls.__name__}.__init__: {exc}") from exc
    kwargs = {}
    for name, param in list(inspect.signature(init).parameters.items())[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if name not in hints:
            if param.default is not inspect.Parameter.empty:
                continue
            raise RegistrationError(f"{cls.__name__}.__init__: parameter '{name}' needs a type annotation")
        kwargs[name] = resolve_dependency(hints[name])
    return cls(**kwargs)


def is_component(cls: Any) -> bool:
    return isinstance(cls, type) and isinstance(getattr(cls, "__evento_component__", None), ComponentOptions)


def read_component(cls: type[Any], resolve_dependency: Callable[[Any], Any]) -> ComponentSpec:
    """Read a decorated component class; raises :class:`RegistrationError` naming what is wrong."""
    options: ComponentOptions = cls.__evento_component__
    spec = ComponentSpec(cls, options)
    # Handlers of base classes count too (a subclass may override them by name), unlike Java Evento's
    # declared-methods-only rule: sharing handlers through inheritance is ordinary Python.
    members: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        members.update(vars(klass))
    for name, fn in members.items():
        handler_options = getattr(fn, "__evento_handler__", None)
        if not isinstance(handler_options, HandlerOptions):
            continue
        handler = _read_handler(spec, name, fn, handler_options, resolve_dependency)
        key = (handler.kind, handler.payload_name)
        if key in spec.handlers:
            raise RegistrationError(
                f"{spec.name} has two {handler.kind} handlers for {handler.payload_name}: "
                f"{spec.handlers[key].name} and {name}"
            )
        spec.handlers[key] = handler
    if not spec.handlers:
        raise RegistrationError(f"{spec.name} is a {spec.kind} without handlers")
    _check_component(spec)
    return spec


def _read_handler(
    spec: ComponentSpec,
    name: str,
    fn: Callable[..., Any],
    options: HandlerOptions,
    resolve_dependency: Callable[[Any], Any],
) -> HandlerSpec:
    where = f"{spec.name}.{name}"
    rule = _RULES.get((spec.kind, options.kind))
    if rule is None:
        raise RegistrationError(f"{where}: a {spec.kind} cannot have a {options.kind}")
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:
        raise RegistrationError(f"{where}: cannot resolve type annotations ({exc})") from exc
    parameters = list(inspect.signature(fn).parameters.values())[1:]  # skip self
    plan: list[tuple[Inject, Any]] = []
    payload_type: type[Payload] | None = None

    if options.kind is HandlerKind.INVOCATION:
        handler = HandlerSpec(spec, name, fn, options, None, plan, inspect.iscoroutinefunction(fn), analyse_sends(fn))
        handler.return_type = hints.get("return")
        return handler

    for param in parameters:
        annotation = _unwrap_optional(hints.get(param.name, inspect.Parameter.empty))
        if annotation is inspect.Parameter.empty:
            raise RegistrationError(f"{where}: parameter '{param.name}' needs a type annotation")
        inject = _classify(annotation, rule)
        if inject is Inject.PAYLOAD:
            if payload_type is not None:
                raise RegistrationError(f"{where}: two payload parameters ('{param.name}' is the second)")
            payload_type = annotation
            plan.append((inject, None))
            continue
        if inject is Inject.STATE:
            spec.state_type = spec.state_type or annotation
            if spec.state_type is not annotation:
                raise RegistrationError(
                    f"{where}: state type {annotation.__name__} differs from {spec.state_type.__name__}"
                )
        if inject not in rule.allowed:
            _forbidden(where, spec.kind, inject, param.name)
        value = resolve_dependency(annotation) if inject is Inject.DEPENDENCY else None
        plan.append((inject, value))
    if payload_type is None:
        raise RegistrationError(f"{where}: no parameter annotated with a {rule.payload_base.__name__} subclass")

    sends = analyse_sends(fn)
    if sends.commands and not rule.may_command:
        command, line = next(iter(sends.commands.items()))
        raise CapabilityError(f"{where} sends {command} (line {line}), but a {spec.kind} may not send commands")
    if sends.queries and not rule.may_query:
        query, line = next(iter(sends.queries.items()))
        raise CapabilityError(f"{where} sends {query} (line {line}), but a {spec.kind} may not send queries")

    handler = HandlerSpec(spec, name, fn, options, payload_type, plan, inspect.iscoroutinefunction(fn), sends)
    handler.return_type = hints.get("return")
    return handler


def _forbidden(where: str, kind: ComponentKind, inject: Inject, param: str) -> typing.NoReturn:
    if inject is Inject.COMMANDS:
        raise CapabilityError(f"{where}: a {kind} may not send commands, so '{param}' cannot be a CommandGateway")
    if inject is Inject.QUERIES:
        raise CapabilityError(f"{where}: a {kind} may not send queries, so '{param}' cannot be a QueryGateway")
    raise RegistrationError(f"{where}: '{param}' asks for {inject.value}, which this handler kind does not provide")


def _unwrap_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _classify(annotation: Any, rule: _Rule) -> Inject:
    if annotation in _BY_ANNOTATION:
        return _BY_ANNOTATION[annotation]
    if isinstance(annotation, type):
        if issubclass(annotation, rule.payload_base) and issubclass(annotation, Payload):
            return Inject.PAYLOAD
        if issubclass(annotation, AggregateState | SagaState):
            return Inject.STATE
        if issubclass(annotation, Payload):
            # A payload of the wrong kind, e.g. an event in a command handler: say so rather than inject it.
            raise RegistrationError(
                f"{annotation.__name__} is not a {rule.payload_base.__name__}, so this handler cannot take it"
            )
    return Inject.DEPENDENCY


def _check_component(spec: ComponentSpec) -> None:
    kind = spec.kind
    if kind is ComponentKind.AGGREGATE:
        if not spec.handlers_of(HandlerKind.AGGREGATE_COMMAND):
            raise RegistrationError(f"{spec.name}: an aggregate needs at least one aggregate command handler")
        if spec.state_type is not None and not issubclass(spec.state_type, AggregateState):
            raise RegistrationError(f"{spec.name}: aggregate state must subclass AggregateState")
    if kind is ComponentKind.SAGA:
        if not any(h.options.init for h in spec.handlers.values()):
            raise RegistrationError(f"{spec.name}: a saga needs at least one init handler")
        if spec.state_type is None or not issubclass(spec.state_type, SagaState):
            raise RegistrationError(f"{spec.name}: saga handlers must take a SagaState subclass")
    if kind is ComponentKind.PROJECTION:
        for handler in spec.handlers.values():
            assert handler.payload_type is not None
            query_response_type(typing.cast("type[Query[Any]]", handler.payload_type))


def _describe_return(handler: HandlerSpec) -> tuple[str | None, bool]:
    rt = handler.return_type
    if rt is None or rt is type(None):
        return None, False
    origin = typing.get_origin(rt) or rt
    args = typing.get_args(rt)
    multiple = isinstance(origin, type) and issubclass(origin, Multiple)
    if args and isinstance(args[0], type):
        return args[0].__name__, multiple
    if isinstance(rt, type):
        return rt.__name__, multiple
    return str(rt), multiple
