"""Query routing: a query goes to one enabled instance of the bundle that handles its type, and its answer back.

Queries change nothing, so unlike commands (:mod:`evento.server.broker`) they take no lock, load no story and
store nothing.
"""

from __future__ import annotations

from time import perf_counter_ns
from typing import TYPE_CHECKING

from evento.messages import QueryMessage, QueryRequest, QueryResult

if TYPE_CHECKING:
    from evento.server.phases import BrokerPhases
    from evento.server.registry import Registry

__all__ = ["QueryRouter"]


class QueryRouter:
    """Sends each query to a random enabled instance that handles its payload type."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        #: The server's telemetry (its ``query_gateway`` station), when it keeps any.
        self.phases: BrokerPhases | None = None

    async def query(self, query: QueryMessage, timeout: float) -> QueryResult:
        """The handler's answer; raises :class:`~evento.errors.NoHandlerError` when no instance handles it."""
        phases = self.phases
        if phases is None or not phases.begin_query():
            _, node = self.registry.route(query.payload_name)
            response = await node.peer.request(QueryRequest(query), timeout)
            assert isinstance(response, QueryResult)
            return response
        started = perf_counter_ns()
        _, node = self.registry.route(query.payload_name)
        request = QueryRequest(query)
        sent = perf_counter_ns()
        response = await node.peer.request(request, timeout)
        phases.queried(sent - started)  # the router's own time: the bundle's round trip is the handler's
        assert isinstance(response, QueryResult)
        return response
