"""The ``flights`` service: the flight aggregate (its seats, and the holds bookings take on them), the seat map,
and the clock that expires holds nobody confirmed.

The seat hold is a lock: the server runs one command of a flight at a time, so of any number of bookings racing
for a seat exactly one finds it free and holds it; the others are refused ``SEAT_TAKEN``. A hold lives at most
``hold_timeout`` seconds: confirming it later is refused (the saga then refunds the charge), and the expiry clock
frees the seat of a hold nobody came back for. Expiry and confirmation are commands of the same aggregate, so
exactly one of them wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime
from typing import Any

import msgspec

from evento import (
    AggregateState,
    Invoker,
    Multiple,
    Single,
    aggregate,
    aggregate_command_handler,
    event_handler,
    event_sourcing_handler,
    invocation_handler,
    invoker,
    projection,
    projector,
    query_handler,
)
from evento.demo.flight.payloads import (
    ChangeSeatCommand,
    ConfirmSeatCommand,
    CreateFlightCommand,
    ExpireHoldCommand,
    FlightCreatedEvent,
    FlightView,
    FlightViewQuery,
    HeldSeatsQuery,
    HeldSeatView,
    HoldExpiredEvent,
    HoldSeatCommand,
    ReleaseSeatCommand,
    SeatChangedEvent,
    SeatConfirmedEvent,
    SeatConfirmRefusedEvent,
    SeatHeldEvent,
    SeatHoldRefusedEvent,
    SeatReleasedEvent,
    SeatView,
    seat_index,
    seat_label,
)
from evento.demo.shared.errors import DomainRuleError, NotFoundError, StepAlreadyTakenError
from evento.demo.shared.read_model import ExampleReadModel, Session
from evento.demo.shared.system import ExampleConfig
from evento.demo.todolist.system import QueryBundle

__all__ = [
    "FLIGHT_TABLES",
    "FlightAggregate",
    "FlightProjection",
    "FlightProjector",
    "FlightsBundle",
    "FlightsReadModel",
    "HoldExpiryInvoker",
    "SeatTakenError",
]

log = logging.getLogger(__name__)


class SeatTakenError(DomainRuleError):
    """The seat asked for is held or owned by another booking, or not on the flight (HTTP 409)."""


class BookingNotConfirmedError(DomainRuleError):
    """Only a booking that owns its seat can change it (HTTP 409)."""


class HoldNotExpiredError(DomainRuleError):
    """The hold is younger than the timeout (or gone): nothing to expire."""


class Seat(msgspec.Struct):
    booking_id: str
    owned: bool
    held_at: int  # milliseconds since the epoch


class FlightState(AggregateState):
    seat_count: int = 0
    seat_price: int = 0
    #: Seats held or owned; the others are free.
    seats: dict[str, Seat] = {}
    #: The seat each booking holds or owns.
    bookings: dict[str, str] = {}
    #: Bookings whose hold was refused, released, expired or refused confirmation: the last step they took.
    closed: dict[str, str] = {}


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@aggregate(snapshot_frequency=50)
class FlightAggregate:
    """A flight's seats: free, held by one booking, or owned by one booking; never two."""

    def __init__(self, config: ExampleConfig) -> None:
        self.hold_ms = int(config.hold_timeout * 1000)

    @aggregate_command_handler(init=True)
    def create(self, command: CreateFlightCommand) -> FlightCreatedEvent:
        return FlightCreatedEvent(
            flight_id=command.flight_id, seat_count=command.seat_count, seat_price=command.seat_price
        )

    @event_sourcing_handler
    def on_created(self, event: FlightCreatedEvent) -> FlightState:
        return FlightState(seat_count=event.seat_count, seat_price=event.seat_price)

    @aggregate_command_handler
    def hold(self, command: HoldSeatCommand, state: FlightState) -> SeatHeldEvent | SeatHoldRefusedEvent:
        booking = command.booking_id
        if booking in state.bookings or booking in state.closed:
            raise StepAlreadyTakenError(f"booking {booking} already took its seat step")  # never its own rival
        if seat_index(command.seat, state.seat_count) is None or command.seat in state.seats:
            return SeatHoldRefusedEvent(flight_id=command.flight_id, seat=command.seat, booking_id=booking)
        return SeatHeldEvent(
            flight_id=command.flight_id, seat=command.seat, booking_id=booking, seat_price=state.seat_price
        )

    @event_sourcing_handler
    def on_held(self, event: SeatHeldEvent, state: FlightState, at: datetime) -> None:
        state.seats[event.seat] = Seat(event.booking_id, owned=False, held_at=_ms(at))
        state.bookings[event.booking_id] = event.seat

    @event_sourcing_handler
    def on_hold_refused(self, event: SeatHoldRefusedEvent, state: FlightState) -> None:
        state.closed[event.booking_id] = "refused"

    def _live_hold(self, state: FlightState, booking: str) -> Seat | None:
        seat = state.bookings.get(booking)
        return None if seat is None else state.seats[seat]

    @aggregate_command_handler
    def confirm(
        self, command: ConfirmSeatCommand, state: FlightState, at: datetime
    ) -> SeatConfirmedEvent | SeatConfirmRefusedEvent:
        booking = command.booking_id
        held = self._live_hold(state, booking)
        if (held is not None and held.owned) or state.closed.get(booking) == "confirm refused":
            raise StepAlreadyTakenError(f"booking {booking} was confirmed or refused already")
        if held is None or _ms(at) - held.held_at >= self.hold_ms:
            seat = state.bookings.get(booking, "")  # an expired hold still in place is freed now
            return SeatConfirmRefusedEvent(flight_id=command.flight_id, seat=seat, booking_id=booking)
        seat = state.bookings[booking]
        return SeatConfirmedEvent(
            flight_id=command.flight_id, seat=seat, booking_id=booking, seat_price=state.seat_price
        )

    @event_sourcing_handler
    def on_confirmed(self, event: SeatConfirmedEvent, state: FlightState) -> None:
        state.seats[event.seat].owned = True

    @event_sourcing_handler
    def on_confirm_refused(self, event: SeatConfirmRefusedEvent, state: FlightState) -> None:
        _free(state, event.booking_id, "confirm refused")

    @aggregate_command_handler
    def release(self, command: ReleaseSeatCommand, state: FlightState) -> SeatReleasedEvent:
        held = self._live_hold(state, command.booking_id)
        if held is None or held.owned:
            raise StepAlreadyTakenError(f"booking {command.booking_id} holds no seat to release")
        seat = state.bookings[command.booking_id]
        return SeatReleasedEvent(flight_id=command.flight_id, seat=seat, booking_id=command.booking_id)

    @event_sourcing_handler
    def on_released(self, event: SeatReleasedEvent, state: FlightState) -> None:
        _free(state, event.booking_id, "released")

    @aggregate_command_handler
    def expire(self, command: ExpireHoldCommand, state: FlightState, at: datetime) -> HoldExpiredEvent:
        held = self._live_hold(state, command.booking_id)
        if held is None or held.owned or _ms(at) - held.held_at < self.hold_ms:
            raise HoldNotExpiredError(f"booking {command.booking_id} has no expired hold")
        seat = state.bookings[command.booking_id]
        return HoldExpiredEvent(flight_id=command.flight_id, seat=seat, booking_id=command.booking_id)

    @event_sourcing_handler
    def on_expired(self, event: HoldExpiredEvent, state: FlightState) -> None:
        _free(state, event.booking_id, "expired")

    @aggregate_command_handler
    def change_seat(self, command: ChangeSeatCommand, state: FlightState) -> SeatChangedEvent:
        booking, new = command.booking_id, command.new_seat
        held = self._live_hold(state, booking)
        if held is None or not held.owned:
            raise BookingNotConfirmedError(f"booking {booking} owns no seat on {command.flight_id}")
        old = state.bookings[booking]
        if new == old:
            raise StepAlreadyTakenError(f"booking {booking} owns {new} already")
        if seat_index(new, state.seat_count) is None:
            raise SeatTakenError(f"flight {command.flight_id} has no seat {new}")
        if new in state.seats:
            raise SeatTakenError(f"seat {new} is taken")
        return SeatChangedEvent(flight_id=command.flight_id, booking_id=booking, old_seat=old, new_seat=new)

    @event_sourcing_handler
    def on_seat_changed(self, event: SeatChangedEvent, state: FlightState) -> None:
        state.seats[event.new_seat] = state.seats.pop(event.old_seat)
        state.bookings[event.booking_id] = event.new_seat


def _free(state: FlightState, booking: str, step: str) -> None:
    seat = state.bookings.pop(booking, None)
    if seat is not None:
        del state.seats[seat]
    state.closed[booking] = step


# --- views ---------------------------------------------------------------------------------------------------------

FLIGHT_TABLES = [
    """CREATE TABLE IF NOT EXISTS fl_flight (
        id VARCHAR(100) PRIMARY KEY, seat_count BIGINT NOT NULL, seat_price BIGINT NOT NULL
    )""",
    # Only seats held or owned have a row: a flight of 200 000 seats starts with none.
    """CREATE TABLE IF NOT EXISTS fl_seat (
        flight_id VARCHAR(100) NOT NULL, seat VARCHAR(16) NOT NULL, booking_id VARCHAR(100) NOT NULL,
        owned INTEGER NOT NULL, held_at BIGINT NOT NULL, PRIMARY KEY (flight_id, seat)
    )""",
    "CREATE INDEX IF NOT EXISTS fl_seat_holds ON fl_seat (owned, held_at)",
]


class FlightsReadModel(ExampleReadModel):
    """Flights and their taken seats."""


@projector(version=1, exactly_once=True)
class FlightProjector:
    """The seat map: a row per seat held or owned, as the flight's events say."""

    def __init__(self, read_model: FlightsReadModel) -> None:
        self.read_model = read_model

    @event_handler
    def on_created(self, event: FlightCreatedEvent) -> None:
        self.read_model.write(
            lambda db: db.insert_new(
                "fl_flight", id=event.flight_id, seat_count=event.seat_count, seat_price=event.seat_price
            )
        )

    @event_handler
    def on_held(self, event: SeatHeldEvent, at: datetime) -> None:
        self.read_model.write(
            lambda db: db.insert_new(
                "fl_seat",
                flight_id=event.flight_id,
                seat=event.seat,
                booking_id=event.booking_id,
                owned=0,
                held_at=_ms(at),
            )
        )

    @event_handler
    def on_confirmed(self, event: SeatConfirmedEvent) -> None:
        self.read_model.write(
            lambda db: db.execute(
                "UPDATE fl_seat SET owned = 1 WHERE flight_id = ? AND seat = ? AND booking_id = ?",
                event.flight_id,
                event.seat,
                event.booking_id,
            )
        )

    def _free(self, flight_id: str, seat: str, booking_id: str) -> None:
        self.read_model.write(lambda db: _delete_seat(db, flight_id, seat, booking_id))

    @event_handler
    def on_confirm_refused(self, event: SeatConfirmRefusedEvent) -> None:
        self._free(event.flight_id, event.seat, event.booking_id)

    @event_handler
    def on_released(self, event: SeatReleasedEvent) -> None:
        self._free(event.flight_id, event.seat, event.booking_id)

    @event_handler
    def on_expired(self, event: HoldExpiredEvent) -> None:
        self._free(event.flight_id, event.seat, event.booking_id)

    @event_handler
    def on_seat_changed(self, event: SeatChangedEvent, at: datetime) -> None:
        def move(db: Session) -> None:
            _delete_seat(db, event.flight_id, event.old_seat, event.booking_id)
            db.insert_new(
                "fl_seat", flight_id=event.flight_id, seat=event.new_seat, booking_id=event.booking_id, owned=1,
                held_at=_ms(at),
            )  # fmt: skip

        self.read_model.write(move)


def _delete_seat(db: Session, flight_id: str, seat: str, booking_id: str) -> None:
    db.execute("DELETE FROM fl_seat WHERE flight_id = ? AND seat = ? AND booking_id = ?", flight_id, seat, booking_id)


@projection()
class FlightProjection:
    """The seat map of a flight, every seat in label order; and the holds the expiry clock looks at."""

    def __init__(self, read_model: FlightsReadModel) -> None:
        self.read_model = read_model

    @query_handler
    def flight(self, query: FlightViewQuery) -> Single[FlightView]:
        def read(db: Session) -> tuple[tuple[Any, ...] | None, list[tuple[Any, ...]]]:
            flight = db.row("SELECT id, seat_count, seat_price FROM fl_flight WHERE id = ?", query.flight_id)
            taken = db.rows("SELECT seat, booking_id, owned FROM fl_seat WHERE flight_id = ?", query.flight_id)
            return flight, taken

        flight, taken = self.read_model.read(read)
        if flight is None:
            raise NotFoundError(f"flight {query.flight_id} not found")
        return Single(seat_map(str(flight[0]), int(flight[1]), int(flight[2]), taken))

    @query_handler
    def held(self, query: HeldSeatsQuery) -> Multiple[HeldSeatView]:
        rows = self.read_model.read(
            lambda db: db.rows(
                "SELECT flight_id, booking_id FROM fl_seat WHERE owned = 0 AND held_at < ? ORDER BY held_at LIMIT ?",
                query.held_before,
                query.limit,
            )
        )
        return Multiple([HeldSeatView(flight_id=str(r[0]), booking_id=str(r[1])) for r in rows])


def seat_map(flight_id: str, seat_count: int, seat_price: int, taken: list[tuple[Any, ...]]) -> FlightView:
    """The flight with all its seats; ``taken`` rows are (seat, booking id, owned)."""
    by_label = {str(row[0]): (str(row[1]), bool(row[2])) for row in taken}
    seats = []
    for index in range(seat_count):
        label = seat_label(index)
        holder = by_label.get(label)
        if holder is None:
            seats.append(SeatView(seat=label, available=True))
        else:
            seats.append(SeatView(seat=label, available=False, booking_id=holder[0] if holder[1] else None))
    return FlightView(id=flight_id, seat_count=seat_count, seat_price=seat_price, seats=seats)


# --- the expiry clock -------------------------------------------------------------------------------------------


@invoker()
class HoldExpiryInvoker(Invoker):
    """The clock as an invoker: asks the seat map for holds older than the timeout and expires each one (the
    aggregate checks the age again, so a hold confirmed in between stays)."""

    def __init__(self, config: ExampleConfig) -> None:
        self.timeout = config.hold_timeout

    @invocation_handler
    async def expire_due_holds(self) -> int:
        held_before = int((time.time() - self.timeout) * 1000)
        due = (await self.queries.query(HeldSeatsQuery(held_before=held_before), timeout=10.0)).data
        expired = 0
        for hold in due:
            with contextlib.suppress(DomainRuleError):
                await self.commands.send(
                    ExpireHoldCommand(flight_id=hold.flight_id, booking_id=hold.booking_id), timeout=10.0
                )
                expired += 1
        return expired


class FlightsBundle(QueryBundle):
    """The flights service's bundle, with the expiry clock ticking while it runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock: asyncio.Task[None] | None = None

    async def start(self, server: Any) -> None:
        await super().start(server)
        self._clock = asyncio.create_task(self._tick(), name="evento-flight-hold-expiry")

    async def stop(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock
        await super().stop()

    async def _tick(self) -> None:
        clock = self.invoker(HoldExpiryInvoker)
        period = max(0.2, clock.timeout / 4)
        while True:
            await asyncio.sleep(period)
            try:
                await clock.expire_due_holds()
            except Exception as exc:  # a service restarting: the next tick tries again
                log.warning("hold expiry failed: %r", exc)
