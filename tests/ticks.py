"""A minimal write side for consumer tests: ``Tick(n)`` creates aggregate ``tick-n`` with one ``Ticked(n)`` event
(the ``ticks`` fixture in conftest.py sends them)."""

from __future__ import annotations

from evento import DomainCommand, DomainEvent, aggregate, aggregate_command_handler


class Tick(DomainCommand):
    n: int

    @property
    def aggregate_id(self) -> str:
        return f"tick-{self.n}"


class Ticked(DomainEvent):
    n: int


@aggregate()
class Ticker:
    @aggregate_command_handler(init=True)
    def tick(self, command: Tick) -> Ticked:
        return Ticked(n=command.n)
