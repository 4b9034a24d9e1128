"""Flight payloads (domain "Flight"): flights and their seats, bookings, their views and queries."""

from __future__ import annotations

import re
from typing import Literal

from evento import DomainCommand, DomainEvent, Multiple, Query, Single, View, domain

BookingStatus = Literal["PENDING", "CONFIRMED", "REJECTED"]
SEAT_TAKEN = "SEAT_TAKEN"
INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"

_LETTERS = "ABCDEF"
_LABEL = re.compile(r"([1-9][0-9]{0,6})([A-F])")


def seat_label(index: int) -> str:
    """Seat ``index`` (0-based) as ``<row><letter>``: 0 → ``1A``, 5 → ``1F``, 6 → ``2A``."""
    return f"{index // 6 + 1}{_LETTERS[index % 6]}"


def seat_index(label: str, seat_count: int) -> int | None:
    """The index of ``label`` on a flight of ``seat_count`` seats, or ``None`` if the flight has no such seat."""
    found = _LABEL.fullmatch(label)
    if found is None:
        return None
    index = (int(found.group(1)) - 1) * 6 + _LETTERS.index(found.group(2))
    return index if index < seat_count else None


class FlightsEvent(DomainEvent, kw_only=True):
    """Base of the flight events, in context ``flights``: the seat map's projector reads only these."""

    context: str = "flights"


class BookingsEvent(DomainEvent, kw_only=True):
    """Base of the booking events, in context ``bookings`` (the notifications read only these; the saga and the
    booking view, which follows seat changes too, read every context)."""

    context: str = "bookings"


# --- flights (the flights service) ---------------------------------------------------------------------------------


class FlightCommand(DomainCommand):
    flight_id: str

    @property
    def aggregate_id(self) -> str:
        return self.flight_id


@domain("Flight")
class CreateFlightCommand(FlightCommand):
    seat_count: int
    seat_price: int


@domain("Flight")
class HoldSeatCommand(FlightCommand):
    """Hold ``seat`` for ``booking_id`` if it is free: the lock a booking takes before it is charged."""

    seat: str
    booking_id: str


@domain("Flight")
class ConfirmSeatCommand(FlightCommand):
    """Turn the booking's live hold into ownership (refused once the hold expired or was released)."""

    booking_id: str


@domain("Flight")
class ReleaseSeatCommand(FlightCommand):
    """Free the booking's hold (its charge was refused)."""

    booking_id: str


@domain("Flight")
class ExpireHoldCommand(FlightCommand):
    """Free the booking's hold if it is older than the hold timeout (sent by the expiry clock)."""

    booking_id: str


@domain("Flight")
class ChangeSeatCommand(FlightCommand):
    """Move a confirmed booking to ``new_seat`` if that seat is free (T2)."""

    booking_id: str
    new_seat: str


@domain("Flight")
class FlightCreatedEvent(FlightsEvent):
    flight_id: str
    seat_count: int
    seat_price: int


@domain("Flight")
class SeatHeldEvent(FlightsEvent):
    flight_id: str
    seat: str
    booking_id: str
    seat_price: int


@domain("Flight")
class SeatHoldRefusedEvent(FlightsEvent):
    """The seat is held or owned by another booking (or the flight has no such seat)."""

    flight_id: str
    seat: str
    booking_id: str


@domain("Flight")
class SeatConfirmedEvent(FlightsEvent):
    flight_id: str
    seat: str
    booking_id: str
    seat_price: int


@domain("Flight")
class SeatConfirmRefusedEvent(FlightsEvent):
    """The booking's hold had expired (``seat`` is freed now if it was still held, else empty)."""

    flight_id: str
    seat: str
    booking_id: str


@domain("Flight")
class SeatReleasedEvent(FlightsEvent):
    flight_id: str
    seat: str
    booking_id: str


@domain("Flight")
class HoldExpiredEvent(FlightsEvent):
    flight_id: str
    seat: str
    booking_id: str


@domain("Flight")
class SeatChangedEvent(FlightsEvent):
    flight_id: str
    booking_id: str
    old_seat: str
    new_seat: str


# --- bookings -------------------------------------------------------------------------------------------------------


class BookingCommand(DomainCommand):
    booking_id: str

    @property
    def aggregate_id(self) -> str:
        return self.booking_id


@domain("Flight")
class PlaceBookingCommand(BookingCommand):
    customer_id: str
    flight_id: str
    seat: str


@domain("Flight")
class ConfirmBookingCommand(BookingCommand):
    total: int


@domain("Flight")
class RejectBookingCommand(BookingCommand):
    reason: str


@domain("Flight")
class BookingPlacedEvent(BookingsEvent):
    booking_id: str
    customer_id: str
    flight_id: str
    seat: str


@domain("Flight")
class BookingConfirmedEvent(BookingsEvent):
    booking_id: str
    customer_id: str
    total: int


@domain("Flight")
class BookingRejectedEvent(BookingsEvent):
    booking_id: str
    customer_id: str
    reason: str


# --- views and queries -----------------------------------------------------------------------------------------------


@domain("Flight")
class SeatView(View, rename="camel", omit_defaults=True):
    seat: str
    available: bool
    booking_id: str | None = None


@domain("Flight")
class FlightView(View, rename="camel"):
    id: str
    seat_count: int
    seat_price: int
    seats: list[SeatView]


@domain("Flight")
class HeldSeatView(View):
    flight_id: str
    booking_id: str


@domain("Flight")
class BookingView(View, rename="camel", omit_defaults=True):
    booking_id: str
    customer_id: str
    flight_id: str
    seat: str
    status: BookingStatus
    reason: str | None = None
    total: int | None = None


@domain("Flight")
class BookingStatsView(View):
    confirmed: int = 0
    rejected: int = 0
    revenue: int = 0


@domain("Flight")
class FlightViewQuery(Query[Single[FlightView]]):
    flight_id: str


@domain("Flight")
class HeldSeatsQuery(Query[Multiple[HeldSeatView]]):
    """Holds taken before ``held_before`` (milliseconds since the epoch): the expiry clock's work list."""

    held_before: int
    limit: int = 500


@domain("Flight")
class BookingViewQuery(Query[Single[BookingView]]):
    booking_id: str


@domain("Flight")
class BookingStatsQuery(Query[Single[BookingStatsView]]):
    pass
