"""The flight example's services as bundles (the contract's topology, C.6): ``edge``, ``bookings``, ``flights``,
``payments``; each stateful service keeps its consumer state and views in a store of its own."""

from __future__ import annotations

from typing import Any

from evento import Bundle
from evento.demo.flight.bookings import (
    BOOKING_TABLES,
    BookingAggregate,
    BookingNotificationProjector,
    BookingProcessingSaga,
    BookingProjection,
    BookingProjector,
    BookingsReadModel,
)
from evento.demo.flight.edge import FlightInvoker, create_app
from evento.demo.flight.flights import (
    FLIGHT_TABLES,
    FlightAggregate,
    FlightProjection,
    FlightProjector,
    FlightsBundle,
    FlightsReadModel,
    HoldExpiryInvoker,
)
from evento.demo.shared.customers import (
    CUSTOMER_TABLES,
    CustomerAggregate,
    CustomerProjection,
    CustomerProjector,
    CustomerReadModel,
)
from evento.demo.shared.system import ExampleConfig, ExampleSystem, ServiceFactory, service_bundle

__all__ = ["SERVICES", "FlightSystem", "bookings", "edge", "flights", "payments"]


def edge(config: ExampleConfig, bundle_class: type[Bundle] = Bundle, **extra: Any) -> Bundle:
    """``edge``: the invoker behind the HTTP API; it holds no state."""
    return bundle_class("edge", components=[FlightInvoker], instance_id="edge-1", **extra)


def bookings(config: ExampleConfig) -> Bundle:
    """``bookings``: booking lifecycle, the saga, booking views and statistics."""
    components = [BookingAggregate, BookingProcessingSaga, BookingProjector, BookingProjection]
    return service_bundle(config, "bookings", components, BookingsReadModel, BOOKING_TABLES)


def flights(config: ExampleConfig) -> Bundle:
    """``flights``: flights, seats and holds (the contended inventory), the seat map and the hold expiry clock."""
    components = [FlightAggregate, FlightProjector, FlightProjection, HoldExpiryInvoker]
    contexts = {FlightProjector: ["flights"]}
    return service_bundle(config, "flights", components, FlightsReadModel, FLIGHT_TABLES, FlightsBundle, contexts)


def payments(config: ExampleConfig) -> Bundle:
    """``payments``: customers, balances, charges and notifications."""
    components = [CustomerAggregate, CustomerProjector, BookingNotificationProjector, CustomerProjection]
    contexts = {CustomerProjector: ["customers"], BookingNotificationProjector: ["bookings"]}
    return service_bundle(config, "payments", components, CustomerReadModel, CUSTOMER_TABLES, contexts=contexts)


#: The stateful services in start order (the edge comes last, so its first request finds every owner).
SERVICES: dict[str, ServiceFactory] = {"flights": flights, "payments": payments, "bookings": bookings}


class FlightSystem(ExampleSystem):
    """Every flight service in one process (``evento demo flight``)."""

    def __init__(self, config: ExampleConfig) -> None:
        self.config = config
        super().__init__([edge(config), *(factory(config) for factory in reversed(SERVICES.values()))], create_app)


#: What ``evento demo flight`` runs in one process.
SYSTEM = FlightSystem
