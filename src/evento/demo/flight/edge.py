"""The ``edge`` service of the flight example: its invoker and public HTTP API (contract part C.2)."""

from __future__ import annotations

import contextlib
from typing import Annotated

import msgspec
from fastapi import FastAPI, Request
from fastapi.responses import Response

from evento import AggregateInitializedError, Bundle, invocation_handler, invoker
from evento.demo.flight.flights import seat_map
from evento.demo.flight.payloads import (
    BookingStatsQuery,
    BookingStatsView,
    BookingView,
    BookingViewQuery,
    ChangeSeatCommand,
    CreateFlightCommand,
    FlightView,
    FlightViewQuery,
    PlaceBookingCommand,
)
from evento.demo.shared.edge import CustomerInvoker, Id, add_customer_routes, until_found
from evento.demo.shared.errors import StepAlreadyTakenError
from evento.demo.shared.http import json_response, new_id, read_body, require_uuid, with_error_handlers

__all__ = ["FlightInvoker", "create_app"]

#: The largest flight: the contract's load profile books one of 200 000 seats.
MAX_SEATS = 500_000


class FlightBody(msgspec.Struct, rename="camel"):
    seat_count: Annotated[int, msgspec.Meta(ge=1, le=MAX_SEATS)]
    seat_price: Annotated[int, msgspec.Meta(ge=1, le=10**9)]


class BookingBody(msgspec.Struct, rename="camel"):
    booking_id: Id
    customer_id: Id
    flight_id: Id
    seat: Annotated[str, msgspec.Meta(min_length=1, max_length=16)]


class ChangeSeatBody(msgspec.Struct, rename="camel"):
    new_seat: Annotated[str, msgspec.Meta(min_length=1, max_length=16)]


@invoker()
class FlightInvoker(CustomerInvoker):
    """What the flight HTTP API offers, as commands and queries."""

    reference_key = "bookingId"

    @invocation_handler
    async def create_flight(self, seat_count: int, seat_price: int) -> FlightView:
        flight_id = new_id()
        command = CreateFlightCommand(flight_id=flight_id, seat_count=seat_count, seat_price=seat_price)
        await self.commands.send(command, timeout=self.timeout)
        await until_found(lambda: self.flight(flight_id))
        return seat_map(flight_id, seat_count, seat_price, [])

    @invocation_handler
    async def flight(self, flight_id: str) -> FlightView:
        return (await self.queries.query(FlightViewQuery(flight_id=flight_id), timeout=self.timeout)).data

    @invocation_handler
    async def place_booking(self, body: BookingBody) -> tuple[BookingView, bool]:
        """The booking as known, and whether this call created it (False: a replay of a known booking id)."""
        placed = BookingView(
            booking_id=body.booking_id, customer_id=body.customer_id, flight_id=body.flight_id, seat=body.seat,
            status="PENDING",
        )  # fmt: skip
        command = PlaceBookingCommand(
            booking_id=body.booking_id, customer_id=body.customer_id, flight_id=body.flight_id, seat=body.seat
        )
        try:
            await self.commands.send(command, timeout=self.timeout)
        except AggregateInitializedError:  # the booking aggregate exists: this id was placed before
            known = await until_found(lambda: self.booking(body.booking_id))
            return known or placed, False
        return placed, True

    @invocation_handler
    async def booking(self, booking_id: str) -> BookingView:
        return (await self.queries.query(BookingViewQuery(booking_id=booking_id), timeout=self.timeout)).data

    @invocation_handler
    async def change_seat(self, booking_id: str, new_seat: str) -> None:
        """Move a confirmed booking; asking for the seat it owns already is a successful no-op."""
        booking = await self.booking(booking_id)
        with contextlib.suppress(StepAlreadyTakenError):
            command = ChangeSeatCommand(flight_id=booking.flight_id, booking_id=booking_id, new_seat=new_seat)
            await self.commands.send(command, timeout=self.timeout)

    @invocation_handler
    async def stats(self) -> BookingStatsView:
        return (await self.queries.query(BookingStatsQuery(), timeout=self.timeout)).data


def create_app(edge: Bundle) -> FastAPI:
    """The flight HTTP API over the invoker of the started ``edge`` bundle."""
    api = edge.invoker(FlightInvoker)
    app = with_error_handlers(FastAPI(title="flight", description="The Evento flight booking example."))

    @app.post("/flights", status_code=201)
    async def create_flight(request: Request) -> Response:
        body = await read_body(request, FlightBody)
        return json_response(await api.create_flight(body.seat_count, body.seat_price), 201)

    @app.get("/flights/{flight_id}")
    async def flight(flight_id: str) -> Response:
        return json_response(await api.flight(flight_id))

    add_customer_routes(app, api)

    @app.post("/bookings", status_code=202)
    async def place_booking(request: Request) -> Response:
        body = await read_body(request, BookingBody)
        require_uuid(body.booking_id, "bookingId")
        booking, created = await api.place_booking(body)
        return json_response(booking, 202 if created else 200)

    @app.get("/bookings/{booking_id}")
    async def booking(booking_id: str) -> Response:
        return json_response(await api.booking(booking_id))

    @app.post("/bookings/{booking_id}/change-seat", status_code=202)
    async def change_seat(booking_id: str, request: Request) -> Response:
        body = await read_body(request, ChangeSeatBody)
        await api.change_seat(booking_id, body.new_seat)
        return json_response({"bookingId": booking_id, "seat": body.new_seat}, 202)

    @app.get("/stats/bookings")
    async def stats() -> Response:
        return json_response(await api.stats())

    return app
