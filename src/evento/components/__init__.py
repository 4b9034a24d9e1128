"""Component kinds, handler decorators, state classes and the rules that tie them together."""

from evento.components.decorators import (
    aggregate,
    aggregate_command_handler,
    command_handler,
    event_handler,
    event_sourcing_handler,
    invocation_handler,
    invoker,
    observer,
    projection,
    projector,
    query_handler,
    saga,
    saga_event_handler,
    service,
)
from evento.components.invocation import Invoker
from evento.components.model import ProjectorStatus, SequenceNumber
from evento.components.state import AggregateState, SagaState

__all__ = [
    "AggregateState",
    "Invoker",
    "ProjectorStatus",
    "SagaState",
    "SequenceNumber",
    "aggregate",
    "aggregate_command_handler",
    "command_handler",
    "event_handler",
    "event_sourcing_handler",
    "invocation_handler",
    "invoker",
    "observer",
    "projection",
    "projector",
    "query_handler",
    "saga",
    "saga_event_handler",
    "service",
]
