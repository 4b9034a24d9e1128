"""A bundle the deploy tests publish to a server that starts it itself (``evento bundle run
tests.deploy_sample:build``): a counter aggregate, a slow service for bursts, a projector whose consumer lock
lives in the SQLite file ``EVENTO_SAMPLE_CONSUMERS`` names, and the thread-count autoscaling protocol."""

from __future__ import annotations

import asyncio
import os

from evento import (
    Bundle,
    ConsumerSettings,
    DomainCommand,
    DomainEvent,
    ServiceCommand,
    ThreadCountAutoscalingProtocol,
    aggregate,
    aggregate_command_handler,
    command_handler,
    event_handler,
    projector,
    service,
)
from evento.consumer_stores.sqlite import SQLiteConsumerStateStore


class Count(DomainCommand):
    n: int

    @property
    def aggregate_id(self) -> str:
        return f"count-{self.n}"


class Counted(DomainEvent):
    n: int


class Work(ServiceCommand):
    n: int


@aggregate()
class Counter:
    @aggregate_command_handler(init=True)
    def count(self, command: Count) -> Counted:
        return Counted(n=command.n)


@service()
class Worker:
    @command_handler
    async def work(self, command: Work) -> None:
        await asyncio.sleep(0.2)


@projector(version=1)
class Tally:
    @event_handler
    def on(self, event: Counted) -> None:
        """Seen; what matters to the tests is the consumer's lock."""


def build() -> Bundle:
    """The sample bundle, as the deploy tests run it."""
    return Bundle(
        "sample",
        components=[Counter, Worker, Tally],
        consumer_store=SQLiteConsumerStateStore(os.environ["EVENTO_SAMPLE_CONSUMERS"]),
        consumer_settings=ConsumerSettings(lease_seconds=60.0),
        autoscaling=ThreadCountAutoscalingProtocol(
            max_thread_count=2, min_thread_count=1, max_overflow_count=2, max_underflow_count=50, bored_timeout=2.0
        ),
    )
