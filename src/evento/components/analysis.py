"""Static analysis of handler bodies: which commands and queries a handler sends, and from which line.

Like the original's bytecode scan, this finds payload classes passed to a gateway's ``send``/``query`` call,
directly (``gateway.send(MyCommand(...))``) or through a local name assigned from a constructor call. The result
feeds the discovery metadata (flows, application graph) and the capability check.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from evento.payloads import Command, Payload, Query

__all__ = ["Sends", "analyse_sends"]

_SEND_METHODS = {"send", "send_sync"}
_QUERY_METHODS = {"query", "query_sync"}


@dataclass
class Sends:
    """Payload types sent by a handler, each with the first line where it is sent."""

    commands: dict[str, int] = field(default_factory=dict)
    queries: dict[str, int] = field(default_factory=dict)
    gateway_calls: list[tuple[str, int]] = field(default_factory=list)


def analyse_sends(fn: Callable[..., Any]) -> Sends:
    """Find what ``fn`` sends. Functions without retrievable source yield an empty result."""
    sends = Sends()
    try:
        source = textwrap.dedent(inspect.getsource(fn))
        first_line = inspect.getsourcelines(fn)[1]
    except (OSError, TypeError):
        return sends
    tree = ast.parse(source)
    namespace: dict[str, Any] = dict(getattr(fn, "__globals__", {}))
    closure = inspect.getclosurevars(fn).nonlocals if hasattr(fn, "__code__") else {}
    namespace.update(closure)
    constructed = _local_constructions(tree, namespace)

    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        method = node.func.attr
        if method not in _SEND_METHODS | _QUERY_METHODS or not node.args:
            continue
        line = first_line + node.lineno - 1
        payload_cls = _payload_class(node.args[0], namespace, constructed)
        sends.gateway_calls.append((method, line))
        if payload_cls is None:
            continue
        if issubclass(payload_cls, Command):
            sends.commands.setdefault(payload_cls.__name__, line)
        elif issubclass(payload_cls, Query):
            sends.queries.setdefault(payload_cls.__name__, line)
    return sends


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
