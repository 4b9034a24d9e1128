"""Static analysis of handler bodies: which commands and queries a handler sends, and from which line.

Like the original's bytecode scan, this finds payload classes passed to a gateway's ``send``/``query`` call,
directly (``gateway.send(MyCommand(...))``) or through a local name assigned from a constructor call, in the
handler's body and in the helpers it calls: functions of its own module and methods of its own class
(``self._notify(...)``), a few calls deep. The result feeds the discovery metadata (flows, application graph) and
the capability check.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evento.payloads import Command, Payload, Query

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Sends", "analyse_sends"]

_SEND_METHODS = {"send", "send_sync"}
_QUERY_METHODS = {"query", "query_sync"}


@dataclass
class Sends:
    """Payload types sent by a handler, each with the first line where it is sent."""

    commands: dict[str, int] = field(default_factory=dict)
    queries: dict[str, int] = field(default_factory=dict)


def analyse_sends(fn: Callable[..., Any]) -> Sends:
    """Find what ``fn`` sends. Functions without retrievable source yield an empty result."""
    sends = Sends()
    _analyse(fn, sends, {fn}, depth=0)
    return sends


#: How many calls deep helpers are followed (a handler calling a helper that calls another, ...).
_MAX_DEPTH = 4


def _analyse(fn: Callable[..., Any], sends: Sends, seen: set[Callable[..., Any]], depth: int) -> None:
    try:
        source = textwrap.dedent(inspect.getsource(fn))
        first_line = inspect.getsourcelines(fn)[1]
    except (OSError, TypeError):
        return
    tree = ast.parse(source)
    namespace: dict[str, Any] = dict(getattr(fn, "__globals__", {}))
    closure = inspect.getclosurevars(fn).nonlocals if hasattr(fn, "__code__") else {}
    namespace.update(closure)
    constructed = _local_constructions(tree, namespace)

    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Attribute) and node.func.attr in _SEND_METHODS | _QUERY_METHODS and node.args:
            _record(node, sends, first_line, namespace, constructed)
            continue
        helper = _helper(node.func, fn, namespace) if depth < _MAX_DEPTH else None
        if helper is not None and helper not in seen:
            seen.add(helper)
            _analyse(helper, sends, seen, depth + 1)


def _record(
    call: ast.Call, sends: Sends, first_line: int, namespace: dict[str, Any], constructed: dict[str, type[Payload]]
) -> None:
    assert isinstance(call.func, ast.Attribute)
    line = first_line + call.lineno - 1
    payload_cls = _payload_class(call.args[0], namespace, constructed)
    if payload_cls is None:
        return
    if issubclass(payload_cls, Command):
        sends.commands.setdefault(payload_cls.__name__, line)
    elif issubclass(payload_cls, Query):
        sends.queries.setdefault(payload_cls.__name__, line)


def _helper(func: ast.expr, caller: Callable[..., Any], namespace: dict[str, Any]) -> Callable[..., Any] | None:
    """The user function a call reaches, when it is one worth reading: a function of the caller's own module
    (``_register(...)``) or a method of the caller's class (``self._register(...)``). Library code is not read."""
    if isinstance(func, ast.Name):
        target = namespace.get(func.id)
    elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "self":
        owner = _owning_class(caller)
        target = inspect.getattr_static(owner, func.attr, None) if owner is not None else None
    else:
        return None
    if isinstance(target, staticmethod | classmethod):
        target = target.__func__
    if inspect.isfunction(target) and target.__module__ == caller.__module__:
        return target
    return None


def _owning_class(fn: Callable[..., Any]) -> type | None:
    """The class a method was defined in, found by its qualified name in its module (``None`` for local classes)."""
    owner: Any = inspect.getmodule(fn)
    *path, _ = getattr(fn, "__qualname__", "").split(".")
    for part in path:
        owner = getattr(owner, part, None)
        if owner is None:
            return None
    return owner if isinstance(owner, type) else None


def _resolve(expr: ast.expr, namespace: dict[str, Any]) -> Any:
    if isinstance(expr, ast.Name):
        return namespace.get(expr.id)
    if isinstance(expr, ast.Attribute):
        base = _resolve(expr.value, namespace)
        return getattr(base, expr.attr, None) if base is not None else None
    return None


def _constructed_class(expr: ast.expr, namespace: dict[str, Any]) -> type[Payload] | None:
    if isinstance(expr, ast.Call):
        target = _resolve(expr.func, namespace)
        if isinstance(target, type) and issubclass(target, Payload):
            return target
    return None


def _local_constructions(tree: ast.AST, namespace: dict[str, Any]) -> dict[str, type[Payload]]:
    found: dict[str, type[Payload]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            value = node.value
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            cls = _constructed_class(value, namespace) if value is not None else None
            if cls is None:
                continue
            for target in targets:
                if isinstance(target, ast.Name):
                    found[target.id] = cls
    return found


def _payload_class(
    arg: ast.expr, namespace: dict[str, Any], constructed: dict[str, type[Payload]]
) -> type[Payload] | None:
    cls = _constructed_class(arg, namespace)
    if cls is not None:
        return cls
    if isinstance(arg, ast.Name):
        return constructed.get(arg.id)
    return None
