"""The flight aggregate's seat rules, run as a bundle runs them (``evento.testing``): a hold is a lock no rival and
no replay of its own booking can break, expiry and confirmation exclude each other, and a seat change moves only
a confirmed booking into a free seat."""

from __future__ import annotations

from pathlib import Path

from evento.demo.flight.flights import BookingNotConfirmedError, FlightAggregate, HoldNotExpiredError, SeatTakenError
from evento.demo.flight.payloads import (
    ChangeSeatCommand,
    ConfirmSeatCommand,
    ExpireHoldCommand,
    FlightCreatedEvent,
    HoldExpiredEvent,
    HoldSeatCommand,
    SeatConfirmedEvent,
    SeatConfirmRefusedEvent,
    SeatHeldEvent,
    SeatHoldRefusedEvent,
    seat_index,
    seat_label,
)
from evento.demo.shared.errors import StepAlreadyTakenError
from evento.demo.shared.system import ExampleConfig
from evento.testing import AggregateFixture

CREATED = FlightCreatedEvent(flight_id="F", seat_count=8, seat_price=100)
HELD = SeatHeldEvent(flight_id="F", seat="1A", booking_id="b1", seat_price=100)
CONFIRMED = SeatConfirmedEvent(flight_id="F", seat="1A", booking_id="b1", seat_price=100)


def flight(hold_timeout: float = 3600.0) -> AggregateFixture:
    config = ExampleConfig(Path("."), hold_timeout=hold_timeout)
    return AggregateFixture(
        FlightAggregate, injector=lambda annotation: config if annotation is ExampleConfig else None
    )


def test_seat_labels_go_row_by_row() -> None:
    assert [seat_label(k) for k in (0, 5, 6, 199_999)] == ["1A", "1F", "2A", "33334B"]
    assert [seat_index(label, 8) for label in ("1A", "2B", "2C", "0A", "01A", "1G", "1a")] == [
        0,
        7,
        None,
        None,
        None,
        None,
        None,
    ]


def test_a_held_seat_refuses_rivals_but_never_its_own_booking() -> None:
    flight().given(CREATED, HELD).when(HoldSeatCommand(flight_id="F", seat="1A", booking_id="b2")).expect_event(
        SeatHoldRefusedEvent(flight_id="F", seat="1A", booking_id="b2")
    )
    flight().given(CREATED, HELD).when(HoldSeatCommand(flight_id="F", seat="1A", booking_id="b1")).expect_error(
        StepAlreadyTakenError
    )
    flight().given(CREATED).when(HoldSeatCommand(flight_id="F", seat="3A", booking_id="b3")).expect_event(
        SeatHoldRefusedEvent(flight_id="F", seat="3A", booking_id="b3")
    )


def test_a_live_hold_confirms_and_cannot_expire() -> None:
    flight().given(CREATED, HELD).when(ConfirmSeatCommand(flight_id="F", booking_id="b1")).expect_event(CONFIRMED)
    flight().given(CREATED, HELD).when(ExpireHoldCommand(flight_id="F", booking_id="b1")).expect_error(
        HoldNotExpiredError
    )
    flight().given(CREATED, HELD, CONFIRMED).when(ExpireHoldCommand(flight_id="F", booking_id="b1")).expect_error(
        HoldNotExpiredError
    )


def test_an_expired_hold_is_refused_confirmation_and_frees_its_seat() -> None:
    refused = flight(0).given(CREATED, HELD).when(ConfirmSeatCommand(flight_id="F", booking_id="b1"))
    refused.expect_event(SeatConfirmRefusedEvent(flight_id="F", seat="1A", booking_id="b1"))
    assert refused.state.seats == {}
    flight(0).given(CREATED, HELD).when(ExpireHoldCommand(flight_id="F", booking_id="b1")).expect_event(
        HoldExpiredEvent(flight_id="F", seat="1A", booking_id="b1")
    )
    expired = HoldExpiredEvent(flight_id="F", seat="1A", booking_id="b1")
    flight().given(CREATED, HELD, expired).when(ConfirmSeatCommand(flight_id="F", booking_id="b1")).expect_event(
        SeatConfirmRefusedEvent(flight_id="F", seat="", booking_id="b1")
    )


def test_only_a_confirmed_booking_moves_and_only_into_a_free_seat() -> None:
    rival = SeatHeldEvent(flight_id="F", seat="1B", booking_id="b2", seat_price=100)
    owned = flight().given(CREATED, HELD, CONFIRMED, rival)
    owned.when(ChangeSeatCommand(flight_id="F", booking_id="b1", new_seat="1B")).expect_error(SeatTakenError)
    owned.given(CREATED, HELD, CONFIRMED).when(
        ChangeSeatCommand(flight_id="F", booking_id="b1", new_seat="1A")
    ).expect_error(StepAlreadyTakenError)
    flight().given(CREATED, HELD).when(ChangeSeatCommand(flight_id="F", booking_id="b1", new_seat="1C")).expect_error(
        BookingNotConfirmedError
    )
    moved = (
        flight().given(CREATED, HELD, CONFIRMED).when(ChangeSeatCommand(flight_id="F", booking_id="b1", new_seat="1C"))
    )
    assert set(moved.state.seats) == {"1C"}
    assert moved.state.bookings == {"b1": "1C"}
