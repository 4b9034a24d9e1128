"""State classes for aggregates and sagas: msgspec structs, so snapshots and saga state store as JSON."""

from __future__ import annotations

import msgspec

__all__ = ["AggregateState", "SagaState"]


class AggregateState(msgspec.Struct, kw_only=True):
    """Base of aggregate state. Set ``deleted = True`` in an event-sourcing handler to delete the aggregate."""

    deleted: bool = False


class SagaState(msgspec.Struct, kw_only=True):
    """Base of saga state: association values that route events to this instance, and whether it ended."""

    ended: bool = False
    associations: dict[str, str] = msgspec.field(default_factory=dict)

    def set_association(self, name: str, value: str) -> None:
        """Route later events whose field ``name`` equals ``value`` to this saga instance."""
        self.associations[name] = value

    def get_association(self, name: str) -> str | None:
        return self.associations.get(name)

    def unset_association(self, name: str) -> None:
        self.associations.pop(name, None)
