"""What the server stores is checked first: the event a bundle returns must be of a type that bundle declared
and decode as it (a JSON object matching the JSON Schema the bundle registered for the type).

The server never imports user classes: it has the event's JSON bytes and the schemas from the bundle's
discovery. Schemas come from a peer, so they are treated as untrusted input. Only the keywords msgspec emits for
payload classes are kept, each type-checked (references only into the schema's own ``$defs``, so nothing is
ever fetched); annotations, formats, ``pattern`` (a catastrophic regular expression would stall the server's
event loop) and unknown keywords are dropped. What the check lets through, the consumers' own decoding still
catches (they dead-letter such events); what it refuses would never decode.

Validators are compiled once (fastjsonschema generates a function per schema) and cached by bundle, payload
type and schema, so a command pays a JSON parse and the generated checks: a few microseconds.
"""

from __future__ import annotations

import logging
import math
import re
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import fastjsonschema
import msgspec

from evento.discovery import BundleRegistration, HandlerKind
from evento.errors import InvalidEventError
from evento.payloads import PayloadKind

if TYPE_CHECKING:
    from evento.messages import EventMessage
    from evento.server.registry import Node

__all__ = ["EventCheck"]

log = logging.getLogger(__name__)

#: Limits on a schema a peer registers (a payload class's schema is a few hundred bytes).
MAX_SCHEMA_BYTES = 64 * 1024
MAX_SCHEMA_DEPTH = 32

_EVENT_KINDS = frozenset({PayloadKind.DOMAIN_EVENT, PayloadKind.SERVICE_EVENT, PayloadKind.EVENT})
_PRODUCING_HANDLERS = frozenset({HandlerKind.AGGREGATE_COMMAND, HandlerKind.COMMAND})
_JSON_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean", "null"})
_LOCAL_REF = re.compile(r"#/\$defs/[^/]+")

Validate = Callable[[bytes], None]


class _Unusable(ValueError):
    """A schema outside what the check accepts."""


class EventCheck:
    """Checks the events bundles return against what each bundle declared, before anything is stored."""

    def __init__(self, cache_size: int = 4096) -> None:
        self._cache_size = cache_size
        self._validators: OrderedDict[tuple[str, str, bytes], Validate] = OrderedDict()
        # Per node, the registration its declarations were read from: a re-registration is read again.
        self._declared: weakref.WeakKeyDictionary[Node, tuple[BundleRegistration, dict[str, Validate]]] = (
            weakref.WeakKeyDictionary()
        )

    def check(self, node: Node, event: EventMessage) -> None:
        """Raise :class:`InvalidEventError` unless ``node``'s bundle declared ``event``'s type and it decodes."""
        registration = node.registration
        entry = self._declared.get(node)
        if entry is None or entry[0] is not registration:
            if registration is None:
                raise InvalidEventError(f"{node.info} answered before registering; nothing was stored")
            entry = self._declared[node] = (registration, self._declarations(registration))
        validate = entry[1].get(event.payload_name)
        if validate is None:
            raise InvalidEventError(
                f"{node.info} answered with a {event.payload_name!r}, a type it does not declare; nothing was stored"
            )
        validate(event.payload)

    def _declarations(self, registration: BundleRegistration) -> dict[str, Validate]:
        """The event types a bundle declares (its aggregate and service handlers' return types and the events
        among its payloads), each with a validator compiled on first use."""
        schemas = {payload.name: payload.json_schema for payload in registration.payloads}
        names = {p.name for p in registration.payloads if p.kind in _EVENT_KINDS}
        names.update(
            h.return_type for h in registration.handlers if h.handler_kind in _PRODUCING_HANDLERS and h.return_type
        )
        return {name: self._lazy(registration.bundle_id, name, schemas.get(name)) for name in names}

    def _lazy(self, bundle_id: str, name: str, schema: dict[str, object] | None) -> Validate:
        compiled: Validate | None = None

        def validate(payload: bytes) -> None:
            nonlocal compiled
            if compiled is None:
                compiled = self._validator(bundle_id, name, schema)
            compiled(payload)

        return validate

    def _validator(self, bundle_id: str, name: str, schema: dict[str, object] | None) -> Validate:
        if schema is None:
            return _refuse(f"bundle {bundle_id} declares no JSON Schema for {name}; nothing was stored")
        try:
            portable = msgspec.json.encode(schema)
        except (TypeError, ValueError) as exc:
            return _refuse(f"bundle {bundle_id}'s JSON Schema for {name} is not JSON ({exc}); nothing was stored")
        key = (bundle_id, name, portable)
        cached = self._validators.get(key)
        if cached is not None:
            self._validators.move_to_end(key)
            return cached
        validator = _compile(bundle_id, name, portable)
        self._validators[key] = validator
        if len(self._validators) > self._cache_size:
            self._validators.popitem(last=False)
        return validator


def _compile(bundle_id: str, name: str, portable: bytes) -> Validate:
    try:
        if len(portable) > MAX_SCHEMA_BYTES:
            raise _Unusable(f"larger than {MAX_SCHEMA_BYTES} bytes")
        subset = _root(msgspec.json.decode(portable))
        schema_check = fastjsonschema.compile(subset, use_default=False, use_formats=False)
    except Exception as exc:  # _Unusable, or a definition the compiler refuses
        log.warning("bundle %s registered an unusable JSON Schema for %s: %s", bundle_id, name, exc)
        return _refuse(f"bundle {bundle_id}'s JSON Schema for {name} is unusable ({exc}); nothing was stored")

    def validate(payload: bytes) -> None:
        try:
            value = msgspec.json.decode(payload)
        except msgspec.DecodeError as exc:
            raise InvalidEventError(f"{name} from bundle {bundle_id} is not JSON ({exc}); nothing was stored") from None
        if not isinstance(value, dict):
            raise InvalidEventError(f"{name} from bundle {bundle_id} is not a JSON object; nothing was stored")
        try:
            schema_check(value)
        except fastjsonschema.JsonSchemaValueException as exc:
            raise InvalidEventError(
                f"{name} from bundle {bundle_id} does not match its JSON Schema: {exc.message}; nothing was stored"
            ) from None
        except RecursionError:
            raise InvalidEventError(f"{name} from bundle {bundle_id} nests too deeply; nothing was stored") from None

    return validate


def _refuse(message: str) -> Validate:
    def refuse(payload: bytes) -> None:
        raise InvalidEventError(message)

    return refuse


# --- the schema subset ------------------------------------------------------------------------------------------


def _root(schema: object) -> dict[str, Any]:
    if not isinstance(schema, dict):
        raise _Unusable("a schema must be a JSON object")
    subset = _subschema(schema, 0)
    assert isinstance(subset, dict)
    defs = schema.get("$defs")
    if defs is not None:
        subset["$defs"] = {key: _subschema(value, 1) for key, value in _mapping(defs).items()}
    return subset


def _subschema(node: object, depth: int) -> dict[str, Any] | bool:
    """The keywords of ``node`` the check understands, type-checked; the others dropped (draft 2020-12 array
    keywords are spelled as the draft 7 the compiler implements)."""
    if isinstance(node, bool):
        return node
    if not isinstance(node, dict):
        raise _Unusable(f"a subschema must be an object or a boolean, got {type(node).__name__}")
    if depth > MAX_SCHEMA_DEPTH:
        raise _Unusable(f"nested deeper than {MAX_SCHEMA_DEPTH}")
    out: dict[str, Any] = {}
    for key, value in node.items():
        rule = _KEYWORDS.get(key)
        if rule is not None:
            out[key] = rule(value, depth + 1)
    if "prefixItems" in out:
        out["items"], extra = out.pop("prefixItems"), out.pop("items", None)
        if extra is not None:
            out["additionalItems"] = extra
    return out


def _mapping(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _Unusable("expected an object")
    return value


def _schemas(value: object, depth: int) -> dict[str, Any]:
    return {key: _subschema(sub, depth) for key, sub in _mapping(value).items()}


def _schema_list(value: object, depth: int) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise _Unusable("expected a non-empty array of schemas")
    return [_subschema(sub, depth) for sub in value]


def _type(value: object, depth: int) -> object:
    names = value if isinstance(value, list) else [value]
    if not names or any(not isinstance(name, str) or name not in _JSON_TYPES for name in names):
        raise _Unusable(f"unknown type {value!r}")
    return value


def _strings(value: object, depth: int) -> list[str]:
    if not isinstance(value, list) or any(not isinstance(item, str) for item in value) or len(set(value)) != len(value):
        raise _Unusable("expected an array of distinct strings")
    return value


def _values(value: object, depth: int) -> list[object]:
    if not isinstance(value, list) or not value:
        raise _Unusable("expected a non-empty array")
    return value


def _any(value: object, depth: int) -> object:
    return value


def _number(value: object, depth: int) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Unusable(f"expected a number, got {value!r}")
    return value


def _positive(value: object, depth: int) -> int | float:
    number = _number(value, depth)
    if number <= 0:
        raise _Unusable(f"expected a positive number, got {value!r}")
    return number


def _count(value: object, depth: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Unusable(f"expected a non-negative integer, got {value!r}")
    return value


def _ref(value: object, depth: int) -> str:
    if not isinstance(value, str) or not _LOCAL_REF.fullmatch(value):
        raise _Unusable(f"only references into the schema's own $defs are accepted, got {value!r}")
    return value


_KEYWORDS: dict[str, Callable[[object, int], object]] = {
    "type": _type,
    "properties": _schemas,
    "additionalProperties": _subschema,
    "required": _strings,
    "items": _subschema,
    "prefixItems": _schema_list,
    "anyOf": _schema_list,
    "oneOf": _schema_list,
    "allOf": _schema_list,
    "enum": _values,
    "const": _any,
    "minimum": _number,
    "maximum": _number,
    "exclusiveMinimum": _number,
    "exclusiveMaximum": _number,
    "multipleOf": _positive,
    "minLength": _count,
    "maxLength": _count,
    "minItems": _count,
    "maxItems": _count,
    "minProperties": _count,
    "maxProperties": _count,
    "$ref": _ref,
}
