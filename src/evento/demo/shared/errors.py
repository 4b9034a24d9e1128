"""Errors of the example systems. They cross the bus by class path, so a saga in another process catches the
very class an aggregate raised (the module is imported by both sides)."""

from __future__ import annotations

__all__ = ["DomainRuleError", "NotFoundError", "StepAlreadyTakenError"]


class DomainRuleError(Exception):
    """A command the aggregate refuses by a rule of the domain (HTTP 409 where the contract allows it)."""


class StepAlreadyTakenError(DomainRuleError):
    """The step this command asks for was already taken for this order or booking: a resent saga command.

    Sagas treat it as success, which makes every step idempotent through the aggregate that owns it: the
    aggregate remembers the orders or bookings it has seen, so a redelivered saga event resends its command and
    that resend changes nothing.
    """


class NotFoundError(LookupError):
    """No such entity in a view (HTTP 404)."""
