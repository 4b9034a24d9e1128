"""The ``bookings`` service: the booking aggregate, the saga that decides each booking, and the booking views and
statistics (plus the notification projector the ``payments`` service runs).

The saga: hold the seat → charge the seat's price → confirm the seat → confirm the booking. A refused hold
rejects ``SEAT_TAKEN``; a refused charge releases the hold and rejects ``INSUFFICIENT_FUNDS``; a confirmation the
flight refuses because the hold expired refunds the charge and rejects. Each step is a command to the aggregate
owning it, which refuses a resent step as already taken: decisions are taken exactly once.
"""

from __future__ import annotations

from typing import Any

from evento import (
    AggregateState,
    CommandGateway,
    SagaState,
    SequenceNumber,
    Single,
    aggregate,
    aggregate_command_handler,
    event_handler,
    event_sourcing_handler,
    projection,
    projector,
    query_handler,
    saga,
    saga_event_handler,
)
from evento.demo.flight.payloads import (
    INSUFFICIENT_FUNDS,
    SEAT_TAKEN,
    BookingConfirmedEvent,
    BookingPlacedEvent,
    BookingRejectedEvent,
    BookingStatsQuery,
    BookingStatsView,
    BookingView,
    BookingViewQuery,
    ConfirmBookingCommand,
    ConfirmSeatCommand,
    HoldSeatCommand,
    PlaceBookingCommand,
    RejectBookingCommand,
    ReleaseSeatCommand,
    SeatChangedEvent,
    SeatConfirmedEvent,
    SeatConfirmRefusedEvent,
    SeatHeldEvent,
    SeatHoldRefusedEvent,
)
from evento.demo.shared.customers import (
    ChargeCustomerCommand,
    CustomerChargedEvent,
    CustomerChargeRefusedEvent,
    CustomerReadModel,
    RefundCustomerCommand,
    record_notification,
)
from evento.demo.shared.errors import NotFoundError, StepAlreadyTakenError
from evento.demo.shared.read_model import ExampleReadModel, Session
from evento.errors import AggregateNotInitializedError
from evento.payloads import Command

__all__ = [
    "BOOKING_TABLES",
    "BookingAggregate",
    "BookingNotificationProjector",
    "BookingProcessingSaga",
    "BookingProjection",
    "BookingProjector",
    "BookingsReadModel",
]

#: How long a saga step waits for its command (a paused service answers when resumed; a dead one fails sooner).
STEP_TIMEOUT = 20.0


class BookingState(AggregateState):
    status: str = "PENDING"
    customer_id: str = ""


@aggregate(snapshot_frequency=-1)
class BookingAggregate:
    """One booking: PENDING, then CONFIRMED or REJECTED, once."""

    @aggregate_command_handler(init=True)
    def place(self, command: PlaceBookingCommand) -> BookingPlacedEvent:
        return BookingPlacedEvent(
            booking_id=command.booking_id, customer_id=command.customer_id, flight_id=command.flight_id,
            seat=command.seat,
        )  # fmt: skip

    @event_sourcing_handler
    def on_placed(self, event: BookingPlacedEvent) -> BookingState:
        return BookingState(customer_id=event.customer_id)

    @aggregate_command_handler
    def confirm(self, command: ConfirmBookingCommand, state: BookingState) -> BookingConfirmedEvent:
        _require_pending(state, command.booking_id)
        return BookingConfirmedEvent(booking_id=command.booking_id, customer_id=state.customer_id, total=command.total)

    @event_sourcing_handler
    def on_confirmed(self, event: BookingConfirmedEvent, state: BookingState) -> None:
        state.status = "CONFIRMED"

    @aggregate_command_handler
    def reject(self, command: RejectBookingCommand, state: BookingState) -> BookingRejectedEvent:
        _require_pending(state, command.booking_id)
        return BookingRejectedEvent(booking_id=command.booking_id, customer_id=state.customer_id, reason=command.reason)

    @event_sourcing_handler
    def on_rejected(self, event: BookingRejectedEvent, state: BookingState) -> None:
        state.status = "REJECTED"


def _require_pending(state: BookingState, booking_id: str) -> None:
    if state.status != "PENDING":
        raise StepAlreadyTakenError(f"booking {booking_id} is {state.status} already")


# --- the saga ------------------------------------------------------------------------------------------------------


class BookingSagaState(SagaState):
    booking_id: str = ""
    customer_id: str = ""
    flight_id: str = ""


async def _step(commands: CommandGateway, command: Command) -> Any:
    """Send one step and return its outcome (the event it produced), or ``None`` when its owner had already taken
    it (a resend after a redelivery): that outcome's event is in the log, and its handler goes on from there."""
    try:
        return await commands.send(command, timeout=STEP_TIMEOUT)
    except StepAlreadyTakenError:
        return None


@saga(version=1)
class BookingProcessingSaga:
    """Decides each booking exactly once, the seat hold standing as the lock while the customer is charged.

    Each step's outcome is the event its command returns, and the saga takes the next step at once: a booking
    goes from hold to confirmation in one handler, so a hold lives for a few milliseconds however long the saga's
    backlog (the hold timeout is no bound on throughput). The same outcome events, when they reach the saga
    through the log, drive the same steps: after a crash or a failed step the saga resumes from them, and for a
    booking decided in one go they find the saga ended and are skipped.
    """

    @saga_event_handler(init=True, association_property="booking_id", retry_delay=0.2)
    async def on_placed(self, event: BookingPlacedEvent, commands: CommandGateway) -> BookingSagaState:
        state = BookingSagaState(booking_id=event.booking_id, customer_id=event.customer_id, flight_id=event.flight_id)
        state.set_association("booking_id", event.booking_id)
        state.set_association("reference", event.booking_id)  # the customer's events name the booking so
        try:
            held = await _step(
                commands, HoldSeatCommand(flight_id=event.flight_id, seat=event.seat, booking_id=event.booking_id)
            )
        except AggregateNotInitializedError:  # no such flight: no seat to hold
            await self._reject(state, commands, SEAT_TAKEN)
            return state
        await self._after_hold(held, state, commands)
        return state

    @saga_event_handler(association_property="booking_id", retry_delay=0.2)
    async def on_hold_refused(
        self, event: SeatHoldRefusedEvent, state: BookingSagaState, commands: CommandGateway
    ) -> None:
        await self._after_hold(event, state, commands)

    @saga_event_handler(association_property="booking_id", retry_delay=0.2)
    async def on_held(self, event: SeatHeldEvent, state: BookingSagaState, commands: CommandGateway) -> None:
        await self._after_hold(event, state, commands)

    @saga_event_handler(association_property="reference", retry_delay=0.2)
    async def on_charge_refused(
        self, event: CustomerChargeRefusedEvent, state: BookingSagaState, commands: CommandGateway
    ) -> None:
        await self._after_charge(event, state, commands)

    @saga_event_handler(association_property="reference", retry_delay=0.2)
    async def on_charged(self, event: CustomerChargedEvent, state: BookingSagaState, commands: CommandGateway) -> None:
        await self._after_charge(event, state, commands)

    @saga_event_handler(association_property="booking_id", retry_delay=0.2)
    async def on_seat_confirmed(
        self, event: SeatConfirmedEvent, state: BookingSagaState, commands: CommandGateway
    ) -> None:
        await self._after_seat_confirmation(event, state, commands)

    @saga_event_handler(association_property="booking_id", retry_delay=0.2)
    async def on_confirm_refused(
        self, event: SeatConfirmRefusedEvent, state: BookingSagaState, commands: CommandGateway
    ) -> None:
        await self._after_seat_confirmation(event, state, commands)

    # --- the steps, each from the outcome of the one before ----------------------------------------------------

    async def _after_hold(self, outcome: Any, state: BookingSagaState, commands: CommandGateway) -> None:
        if isinstance(outcome, SeatHoldRefusedEvent):
            await self._reject(state, commands, SEAT_TAKEN)
        elif isinstance(outcome, SeatHeldEvent):
            charge = ChargeCustomerCommand(
                customer_id=state.customer_id, reference=state.booking_id, amount=outcome.seat_price
            )
            try:
                charged = await _step(commands, charge)
            except AggregateNotInitializedError:  # no such customer: no funds
                charged = CustomerChargeRefusedEvent(
                    customer_id=state.customer_id, reference=state.booking_id, amount=outcome.seat_price
                )
            await self._after_charge(charged, state, commands)

    async def _after_charge(self, outcome: Any, state: BookingSagaState, commands: CommandGateway) -> None:
        if isinstance(outcome, CustomerChargeRefusedEvent):
            await _step(commands, ReleaseSeatCommand(flight_id=state.flight_id, booking_id=state.booking_id))
            await self._reject(state, commands, INSUFFICIENT_FUNDS)
        elif isinstance(outcome, CustomerChargedEvent):
            confirmed = await _step(
                commands, ConfirmSeatCommand(flight_id=state.flight_id, booking_id=state.booking_id)
            )
            await self._after_seat_confirmation(confirmed, state, commands)

    async def _after_seat_confirmation(self, outcome: Any, state: BookingSagaState, commands: CommandGateway) -> None:
        if isinstance(outcome, SeatConfirmedEvent):
            await _step(commands, ConfirmBookingCommand(booking_id=state.booking_id, total=outcome.seat_price))
            state.ended = True
        elif isinstance(outcome, SeatConfirmRefusedEvent):
            # The hold expired before the charge came back: the charge must not stick.
            await _step(commands, RefundCustomerCommand(customer_id=state.customer_id, reference=state.booking_id))
            await self._reject(state, commands, SEAT_TAKEN)

    @staticmethod
    async def _reject(state: BookingSagaState, commands: CommandGateway, reason: str) -> None:
        await _step(commands, RejectBookingCommand(booking_id=state.booking_id, reason=reason))
        state.ended = True


# --- views ---------------------------------------------------------------------------------------------------------

BOOKING_TABLES = [
    """CREATE TABLE IF NOT EXISTS fl_booking (
        booking_id VARCHAR(100) PRIMARY KEY, customer_id VARCHAR(100) NOT NULL, flight_id VARCHAR(100) NOT NULL,
        seat VARCHAR(16) NOT NULL, status VARCHAR(16) NOT NULL, reason VARCHAR(32), total BIGINT
    )""",
    """CREATE TABLE IF NOT EXISTS fl_stats (
        id INTEGER PRIMARY KEY, confirmed BIGINT NOT NULL, rejected BIGINT NOT NULL, revenue BIGINT NOT NULL
    )""",
]


class BookingsReadModel(ExampleReadModel):
    """Bookings and the statistics."""


def _count(db: Session, column: str, revenue: int = 0) -> None:
    db.insert_new("fl_stats", id=1, confirmed=0, rejected=0, revenue=0)
    db.execute(f"UPDATE fl_stats SET {column} = {column} + 1, revenue = revenue + ? WHERE id = 1", revenue)


@projector(version=1, exactly_once=True)
class BookingProjector:
    """Booking statuses, seats and the statistics; a status only moves forward and only a move counts."""

    def __init__(self, read_model: BookingsReadModel) -> None:
        self.read_model = read_model

    @event_handler
    def on_placed(self, event: BookingPlacedEvent) -> None:
        self.read_model.write(
            lambda db: db.insert_new(
                "fl_booking",
                booking_id=event.booking_id,
                customer_id=event.customer_id,
                flight_id=event.flight_id,
                seat=event.seat,
                status="PENDING",
            )
        )

    @event_handler
    def on_confirmed(self, event: BookingConfirmedEvent) -> None:
        def confirm(db: Session) -> None:
            moved = db.execute(
                "UPDATE fl_booking SET status = 'CONFIRMED', total = ? WHERE booking_id = ? AND status = 'PENDING'",
                event.total,
                event.booking_id,
            )
            if moved:
                _count(db, "confirmed", event.total)

        self.read_model.write(confirm)

    @event_handler
    def on_rejected(self, event: BookingRejectedEvent) -> None:
        def reject(db: Session) -> None:
            moved = db.execute(
                "UPDATE fl_booking SET status = 'REJECTED', reason = ? WHERE booking_id = ? AND status = 'PENDING'",
                event.reason,
                event.booking_id,
            )
            if moved:
                _count(db, "rejected")

        self.read_model.write(reject)

    @event_handler
    def on_seat_changed(self, event: SeatChangedEvent) -> None:
        self.read_model.write(
            lambda db: db.execute(
                "UPDATE fl_booking SET seat = ? WHERE booking_id = ?", event.new_seat, event.booking_id
            )
        )


@projection()
class BookingProjection:
    """Bookings and the booking statistics."""

    def __init__(self, read_model: BookingsReadModel) -> None:
        self.read_model = read_model

    @query_handler
    def booking(self, query: BookingViewQuery) -> Single[BookingView]:
        row = self.read_model.read(
            lambda db: db.row(
                "SELECT booking_id, customer_id, flight_id, seat, status, reason, total FROM fl_booking"
                " WHERE booking_id = ?",
                query.booking_id,
            )
        )
        if row is None:
            raise NotFoundError(f"booking {query.booking_id} not found")
        return Single(
            BookingView(
                booking_id=row[0], customer_id=row[1], flight_id=row[2], seat=row[3], status=row[4], reason=row[5],
                total=None if row[6] is None else int(row[6]),
            )
        )  # fmt: skip

    @query_handler
    def stats(self, query: BookingStatsQuery) -> Single[BookingStatsView]:
        row = self.read_model.read(lambda db: db.row("SELECT confirmed, rejected, revenue FROM fl_stats WHERE id = 1"))
        if row is None:
            return Single(BookingStatsView())
        return Single(BookingStatsView(confirmed=int(row[0]), rejected=int(row[1]), revenue=int(row[2])))


@projector(version=1, exactly_once=True)
class BookingNotificationProjector:
    """Part of the ``payments`` service: one notification per booking decision, whatever redelivers it."""

    def __init__(self, read_model: CustomerReadModel) -> None:
        self.read_model = read_model

    @event_handler
    def on_confirmed(self, event: BookingConfirmedEvent, seq: SequenceNumber) -> None:
        self.read_model.write(
            lambda db: record_notification(db, event.customer_id, event.booking_id, "CONFIRMED", None, seq)
        )

    @event_handler
    def on_rejected(self, event: BookingRejectedEvent, seq: SequenceNumber) -> None:
        self.read_model.write(
            lambda db: record_notification(db, event.customer_id, event.booking_id, "REJECTED", event.reason, seq)
        )
