"""Typed payloads: the commands, events, queries and views a RECQ system exchanges.

Payloads are :mod:`msgspec` structs (treat them as values). The routing key of a payload is its class name, as in the
original Evento: the server routes by that string and never imports user classes.

>>> class TodoListCreateCommand(DomainCommand):
...     identifier: str
...     name: str
...     @property
...     def aggregate_id(self) -> str:
...         return self.identifier
>>> cmd = TodoListCreateCommand(identifier="TDLS_1", name="groceries")
>>> cmd.aggregate_id, cmd.lock_id, payload_name(cmd)
('TDLS_1', 'TDLS_1', 'TodoListCreateCommand')
>>> decode_payload(encode_payload(cmd), TodoListCreateCommand) == cmd
True
"""

from __future__ import annotations

import inspect
import typing
from typing import Any, ClassVar, Generic, TypeVar

import msgspec

from evento.errors import InvalidPayloadError

__all__ = [
    "DEFAULT_CONTEXT",
    "Command",
    "DomainCommand",
    "DomainEvent",
    "Event",
    "Multiple",
    "Payload",
    "PayloadKind",
    "Query",
    "QueryResponse",
    "ServiceCommand",
    "ServiceEvent",
    "Single",
    "View",
    "decode_payload",
    "domain",
    "encode_payload",
    "payload_class",
    "payload_description",
    "payload_kind",
    "payload_name",
    "payload_schema",
    "query_response_type",
]

DEFAULT_CONTEXT = "default"
ALL_CONTEXTS = "*"

V = TypeVar("V")
R = TypeVar("R", bound="QueryResponse[Any]")


_registry: dict[str, type[Payload]] = {}


class Payload(msgspec.Struct, kw_only=True):
    """Base of every payload: plain immutable data, no behaviour beyond routing hints."""

    force_telemetry: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The routing key is the class name; the last class defined under a name wins, as with re-imports.
        if not cls.__module__.startswith("evento.payloads"):
            _registry[cls.__name__] = cls


def payload_class(name: str) -> type[Payload] | None:
    """The loaded payload class with this routing key, if any."""
    return _registry.get(name)


class Command(Payload, kw_only=True):
    """A request to change state. ``lock_id`` names what the server serialises on (``None``: nothing)."""

    @property
    def aggregate_id(self) -> str | None:
        return self.lock_id

    @property
    def lock_id(self) -> str | None:
        return None

    # Cache rules for the command broker (reference §4.4); a command class may set them to True.
    invalidate_aggregate_caches: ClassVar[bool] = False
    invalidate_aggregate_snapshot: ClassVar[bool] = False


class DomainCommand(Command, kw_only=True):
    """A command handled by an aggregate. Subclasses say which field is the aggregate id.

    Either declare a field named ``aggregate_id`` or override the ``aggregate_id`` property.
    The lock id defaults to the aggregate id, so commands of one aggregate run one at a time.
    """

    @property
    def aggregate_id(self) -> str:
        raise NotImplementedError(
            f"{type(self).__name__} must declare an 'aggregate_id' field or override the 'aggregate_id' property"
        )

    @property
    def lock_id(self) -> str | None:
        return self.aggregate_id


class ServiceCommand(Command, kw_only=True):
    """A command handled by a service. Override ``lock_id`` to serialise commands on a resource."""


class Event(Payload, kw_only=True):
    """Something that happened. ``context`` partitions the log for consumers (default ``"default"``)."""

    context: str = DEFAULT_CONTEXT

    def with_context(self, context: str) -> typing.Self:
        """The same event placed in another context."""
        if not context:
            raise ValueError("an event context cannot be empty")
        return msgspec.structs.replace(self, context=context)


class DomainEvent(Event, kw_only=True):
    """An event produced by an aggregate; it is the aggregate's state."""


class ServiceEvent(Event, kw_only=True):
    """An event produced by a service."""


class View(Payload, kw_only=True):
    """A read-side data transfer object returned by projections."""


class QueryResponse(msgspec.Struct, Generic[V], frozen=True):
    """A query result: :class:`Single` or :class:`Multiple`."""


class Single(QueryResponse[V], Generic[V], frozen=True):
    """A query result holding one view."""

    data: V


class Multiple(QueryResponse[V], Generic[V], frozen=True):
    """A query result holding a list of views."""

    data: list[V]


class Query(Payload, Generic[R], kw_only=True):
    """A request for data. The type parameter is the response: ``Query[Single[TodoListView]]``."""


class PayloadKind:
    """Names of payload kinds as they appear in catalogs and discovery metadata."""

    DOMAIN_COMMAND = "DomainCommand"
    SERVICE_COMMAND = "ServiceCommand"
    DOMAIN_EVENT = "DomainEvent"
    SERVICE_EVENT = "ServiceEvent"
    EVENT = "Event"
    QUERY = "Query"
    VIEW = "View"
    INVOCATION = "Invocation"


_KINDS: list[tuple[type[Payload], str]] = [
    (DomainCommand, PayloadKind.DOMAIN_COMMAND),
    (ServiceCommand, PayloadKind.SERVICE_COMMAND),
    (DomainEvent, PayloadKind.DOMAIN_EVENT),
    (ServiceEvent, PayloadKind.SERVICE_EVENT),
    (Event, PayloadKind.EVENT),
    (Query, PayloadKind.QUERY),
    (View, PayloadKind.VIEW),
]


def payload_kind(cls: type[Payload]) -> str:
    """The catalog kind of a payload class (``"DomainCommand"``, ``"View"``, ...)."""
    for base, kind in _KINDS:
        if issubclass(cls, base):
            return kind
    raise TypeError(f"{cls.__name__} is not an Evento payload class")


def payload_name(payload: Payload | type[Payload]) -> str:
    """The routing key of a payload: its class name."""
    cls = payload if isinstance(payload, type) else type(payload)
    return cls.__name__


def domain(name: str) -> typing.Callable[[type[Any]], type[Any]]:
    """Class decorator grouping payloads (or components) under a domain in the catalogs."""

    def mark(cls: type[Any]) -> type[Any]:
        cls.__evento_domain__ = name
        return cls

    return mark


def payload_description(cls: type[Any]) -> tuple[str | None, str | None]:
    """``(description, detail)`` from a class docstring: its first line and the rest."""
    doc = inspect.getdoc(cls)
    if not doc or doc == inspect.getdoc(cls.__mro__[1]):
        return None, None
    first, _, rest = doc.partition("\n")
    return first.strip(), (rest.strip() or None)


def query_response_type(cls: type[Query[Any]]) -> Any:
    """The response type a query class declares, e.g. ``Single[TodoListView]``."""
    for klass in cls.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            origin = typing.get_origin(base)
            if origin is not None and isinstance(origin, type) and issubclass(origin, Query):
                (arg,) = typing.get_args(base)
                if not isinstance(arg, TypeVar):
                    return arg
    raise TypeError(f"{cls.__name__} must declare its response type, e.g. Query[Single[MyView]]")


_encoder = msgspec.json.Encoder()
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def encode_payload(payload: Any) -> bytes:
    """JSON bytes of a payload (or a query response)."""
    return _encoder.encode(payload)


def decode_payload(data: bytes, cls: Any) -> Any:
    """Decode and validate JSON bytes as ``cls``; the error names the offending field.

    Unknown fields (from a newer peer) are ignored.
    """
    decoder = _decoders.get(cls)
    if decoder is None:
        decoder = _decoders[cls] = msgspec.json.Decoder(cls)
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise InvalidPayloadError(f"invalid {_type_label(cls)}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidPayloadError(f"malformed {_type_label(cls)}: {exc}") from None


def validate_payload(payload: Payload) -> Payload:
    """Check a payload built in code against its declared field types (msgspec checks only on decode)."""
    return typing.cast("Payload", decode_payload(encode_payload(payload), type(payload)))


def payload_schema(cls: type[Any]) -> dict[str, Any]:
    """JSON Schema of a payload class, for the catalogs."""
    return msgspec.json.schema(cls)


def _type_label(cls: Any) -> str:
    return getattr(cls, "__name__", None) or str(cls)
