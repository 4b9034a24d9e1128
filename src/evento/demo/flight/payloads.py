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
    """Base of the commands to one flight: ``flight_id`` names the flight aggregate."""

    flight_id: str

    @property
    def aggregate_id(self) -> str:
        return self.flight_id


@domain("Flight")
class CreateFlightCommand(FlightCommand):
    """Open a flight of ``seat_count`` seats, each sold at ``seat_price``."""

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
    """A flight was opened, every seat free."""

    flight_id: str
    seat_count: int
    seat_price: int


@domain("Flight")
class SeatHeldEvent(FlightsEvent):
    """The seat is held for the booking, at ``seat_price`` (the price the saga charges)."""

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
    """The booking's hold became ownership: the seat is sold."""

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
    """The booking's hold was freed (its charge was refused)."""

    flight_id: str
    seat: str
    booking_id: str


@domain("Flight")
class HoldExpiredEvent(FlightsEvent):
    """The booking's hold outlived the hold timeout and was freed by the expiry clock."""

    flight_id: str
    seat: str
    booking_id: str


@domain("Flight")
class SeatChangedEvent(FlightsEvent):
    """A confirmed booking moved from ``old_seat`` to ``new_seat``."""

    flight_id: str
    booking_id: str
    old_seat: str
    new_seat: str


# --- bookings -------------------------------------------------------------------------------------------------------


class BookingCommand(DomainCommand):
    """Base of the commands to one booking: ``booking_id`` names the booking aggregate."""

    booking_id: str

    @property
    def aggregate_id(self) -> str:
        return self.booking_id


@domain("Flight")
class PlaceBookingCommand(BookingCommand):
    """A customer asks for ``seat`` on a flight; the booking starts PENDING and the saga decides it."""

    customer_id: str
    flight_id: str
    seat: str


@domain("Flight")
class ConfirmBookingCommand(BookingCommand):
    """Confirm the pending booking, its seat sold for ``total``."""

    total: int


@domain("Flight")
class RejectBookingCommand(BookingCommand):
    """Reject the pending booking for ``reason`` (``SEAT_TAKEN`` or ``INSUFFICIENT_FUNDS``)."""

    reason: str


@domain("Flight")
class BookingPlacedEvent(BookingsEvent):
    """A booking was placed (PENDING)."""

    booking_id: str
    customer_id: str
    flight_id: str
    seat: str


@domain("Flight")
class BookingConfirmedEvent(BookingsEvent):
    """The booking was confirmed: the customer owns the seat and paid ``total``."""

    booking_id: str
    customer_id: str
    total: int


@domain("Flight")
class BookingRejectedEvent(BookingsEvent):
    """The booking was rejected for ``reason``."""

    booking_id: str
    customer_id: str
    reason: str


# --- views and queries -----------------------------------------------------------------------------------------------


@domain("Flight")
class SeatView(View, rename="camel", omit_defaults=True):
    """One seat of the seat map: free or taken; ``booking_id`` names its owner (never a booking that only holds it)."""

    seat: str
    available: bool
    booking_id: str | None = None


@domain("Flight")
class FlightView(View, rename="camel"):
    """A flight with every seat, in label order."""

    id: str
    seat_count: int
    seat_price: int
    seats: list[SeatView]


@domain("Flight")
class HeldSeatView(View):
    """A hold not yet confirmed: the flight and the booking holding the seat."""

    flight_id: str
    booking_id: str


@domain("Flight")
class BookingView(View, rename="camel", omit_defaults=True):
    """A booking's status, and its rejection reason or paid total once decided."""

    booking_id: str
    customer_id: str
    flight_id: str
    seat: str
    status: BookingStatus
    reason: str | None = None
    total: int | None = None


@domain("Flight")
class BookingStatsView(View):
    """Bookings confirmed and rejected so far, and the revenue of the confirmed ones."""

    confirmed: int = 0
    rejected: int = 0
    revenue: int = 0


@domain("Flight")
class FlightViewQuery(Query[Single[FlightView]]):
    """The seat map of flight ``flight_id``."""

    flight_id: str


@domain("Flight")
class HeldSeatsQuery(Query[Multiple[HeldSeatView]]):
    """Holds taken before ``held_before`` (milliseconds since the epoch): the expiry clock's work list."""

    held_before: int
    limit: int = 500


@domain("Flight")
class BookingViewQuery(Query[Single[BookingView]]):
    """The booking ``booking_id``."""

    booking_id: str


@domain("Flight")
class BookingStatsQuery(Query[Single[BookingStatsView]]):
    """The booking statistics."""
