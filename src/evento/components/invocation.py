"""The invoker base class: where the outside world enters the system.

Inside an ``@invocation_handler`` method, ``self.commands`` and ``self.queries`` are gateways bound to that
invocation (its correlation id is the root of everything it causes). Outside one they raise, as in Evento.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from evento.gateways import CommandGateway, QueryGateway

__all__ = ["Invoker"]


@dataclass(frozen=True)
class _Bound:
    commands: CommandGateway
    queries: QueryGateway


_current: contextvars.ContextVar[_Bound | None] = contextvars.ContextVar("evento_invocation", default=None)


class Invoker:
    """Base class of invokers. Get an instance from ``bundle.invoker(MyInvoker)``."""

    @property
    def commands(self) -> CommandGateway:
        return _bound().commands

    @property
    def queries(self) -> QueryGateway:
        return _bound().queries


def _bound() -> _Bound:
    bound = _current.get()
    if bound is None:
        raise RuntimeError("invoker gateways are only available inside an @invocation_handler method")
    return bound


def bind_invocation(commands: CommandGateway, queries: QueryGateway) -> contextvars.Token[_Bound | None]:
    return _current.set(_Bound(commands, queries))


def unbind_invocation(token: contextvars.Token[_Bound | None]) -> None:
    _current.reset(token)
