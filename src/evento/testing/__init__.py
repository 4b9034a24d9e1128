"""Testing helpers shipped with Evento: given/when/then fixtures for aggregates and sagas on the real code paths."""

from evento.testing.fixtures import AggregateFixture, AggregateResult, SagaFixture, SagaResult

__all__ = ["AggregateFixture", "AggregateResult", "SagaFixture", "SagaResult"]
