"""The ``orders`` service: the order aggregate, the saga that decides each order, and the order views and
statistics.

The saga (reserve stock → charge → confirm; release the reservation when the charge is refused; refund and
restock on cancellation) sends each step as a command to the aggregate that owns it and takes the next step from
the event that command returns; the same events in the log resume it after a crash. A step resent after a
redelivery is refused by its aggregate as already taken, so every decision is taken exactly once however often
events are redelivered.
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
from evento.demo.order_inventory.payloads import (
    INSUFFICIENT_FUNDS,
    OUT_OF_STOCK,
    CancelOrderCommand,
    ConfirmOrderCommand,
    OrderCancelledEvent,
    OrderConfirmedEvent,
    OrderPlacedEvent,
    OrderRejectedEvent,
    OrderStatsQuery,
    OrderStatsView,
    OrderView,
    OrderViewQuery,
    PlaceOrderCommand,
    RejectOrderCommand,
    ReleaseStockCommand,
    ReserveStockCommand,
    StockReservationRejectedEvent,
    StockReservedEvent,
)
from evento.demo.shared.customers import (
    ChargeCustomerCommand,
    CustomerChargedEvent,
    CustomerChargeRefusedEvent,
    CustomerReadModel,
    RefundCustomerCommand,
    record_notification,
)
from evento.demo.shared.errors import DomainRuleError, NotFoundError, StepAlreadyTakenError
from evento.demo.shared.read_model import ExampleReadModel, Session
from evento.errors import AggregateNotInitializedError
from evento.payloads import Command

__all__ = [
    "ORDER_TABLES",
    "OrderAggregate",
    "OrderNotConfirmedError",
    "OrderNotificationProjector",
    "OrderProcessingSaga",
    "OrderProjection",
    "OrderProjector",
    "OrdersReadModel",
]

#: How long a saga step waits for its command (a paused service answers when resumed; a dead one fails sooner).
STEP_TIMEOUT = 20.0


class OrderNotConfirmedError(DomainRuleError):
    """Only a confirmed order can be cancelled (HTTP 409)."""


class OrderState(AggregateState):
    status: str = "PENDING"
    customer_id: str = ""
    product_id: str = ""
    quantity: int = 0
    total: int = 0


@aggregate(snapshot_frequency=-1)
class OrderAggregate:
    """One order's life: PENDING, then CONFIRMED or REJECTED once; a confirmed order may be CANCELLED once."""

    @aggregate_command_handler(init=True)
    def place(self, command: PlaceOrderCommand) -> OrderPlacedEvent:
        return OrderPlacedEvent(
            order_id=command.order_id,
            customer_id=command.customer_id,
            product_id=command.product_id,
            quantity=command.quantity,
        )

    @event_sourcing_handler
    def on_placed(self, event: OrderPlacedEvent) -> OrderState:
        return OrderState(customer_id=event.customer_id, product_id=event.product_id, quantity=event.quantity)

    @aggregate_command_handler
    def confirm(self, command: ConfirmOrderCommand, state: OrderState) -> OrderConfirmedEvent:
        _require_pending(state, command.order_id)
        return OrderConfirmedEvent(order_id=command.order_id, customer_id=state.customer_id, total=command.total)

    @event_sourcing_handler
    def on_confirmed(self, event: OrderConfirmedEvent, state: OrderState) -> None:
        state.status, state.total = "CONFIRMED", event.total

    @aggregate_command_handler
    def reject(self, command: RejectOrderCommand, state: OrderState) -> OrderRejectedEvent:
        _require_pending(state, command.order_id)
        return OrderRejectedEvent(
            order_id=command.order_id, customer_id=state.customer_id, product_id=state.product_id, reason=command.reason
        )

    @event_sourcing_handler
    def on_rejected(self, event: OrderRejectedEvent, state: OrderState) -> None:
        state.status = "REJECTED"

    @aggregate_command_handler
    def cancel(self, command: CancelOrderCommand, state: OrderState) -> OrderCancelledEvent:
        if state.status == "CANCELLED":
            raise StepAlreadyTakenError(f"order {command.order_id} is cancelled already")
        if state.status != "CONFIRMED":
            raise OrderNotConfirmedError(f"order {command.order_id} is {state.status}: only a confirmed order cancels")
        return OrderCancelledEvent(
            order_id=command.order_id,
            customer_id=state.customer_id,
            product_id=state.product_id,
            quantity=state.quantity,
            total=state.total,
        )

    @event_sourcing_handler
    def on_cancelled(self, event: OrderCancelledEvent, state: OrderState) -> None:
        state.status = "CANCELLED"


def _require_pending(state: OrderState, order_id: str) -> None:
    if state.status != "PENDING":
        raise StepAlreadyTakenError(f"order {order_id} is {state.status} already")


# --- the saga ----------------------------------------------------------------------------------------------------


class OrderSagaState(SagaState):
    order_id: str = ""
    customer_id: str = ""
    product_id: str = ""


async def _step(commands: CommandGateway, command: Command) -> Any:
    """Send one step and return its outcome (the event it produced), or ``None`` when its owner had already taken
    it (a resend after a redelivery): that outcome's event is in the log, and its handler goes on from there."""
    try:
        return await commands.send(command, timeout=STEP_TIMEOUT)
    except StepAlreadyTakenError:
        return None


@saga(version=1)
class OrderProcessingSaga:
    """Decides each order exactly once: reserve stock, charge the customer, confirm; compensate on the way back.

    Each step's outcome is the event its command returns, and the saga takes the next step at once, so an order
    is usually decided within its first handler. The same outcome events, when they reach the saga through the
    log, drive the same steps: after a crash or a failed step (a service down) the saga resumes from them, and
    for an order decided in one go they find the saga ended and are skipped.
    """

    @saga_event_handler(init=True, association_property="order_id", retry_delay=0.2)
    async def on_placed(self, event: OrderPlacedEvent, commands: CommandGateway) -> OrderSagaState:
        state = OrderSagaState(order_id=event.order_id, customer_id=event.customer_id, product_id=event.product_id)
        state.set_association("order_id", event.order_id)
        state.set_association("reference", event.order_id)  # the customer's events name the order so
        reserve = ReserveStockCommand(product_id=event.product_id, order_id=event.order_id, quantity=event.quantity)
        try:
            reserved = await _step(commands, reserve)
        except AggregateNotInitializedError:  # no such product: nothing can be reserved
            reserved = StockReservationRejectedEvent(
                product_id=event.product_id, order_id=event.order_id, quantity=event.quantity
            )
        await self._after_reservation(reserved, state, commands)
        return state

    @saga_event_handler(association_property="order_id", retry_delay=0.2)
    async def on_reserved(self, event: StockReservedEvent, state: OrderSagaState, commands: CommandGateway) -> None:
        await self._after_reservation(event, state, commands)

    @saga_event_handler(association_property="order_id", retry_delay=0.2)
    async def on_reservation_rejected(
        self, event: StockReservationRejectedEvent, state: OrderSagaState, commands: CommandGateway
    ) -> None:
        await self._after_reservation(event, state, commands)

    @saga_event_handler(association_property="reference", retry_delay=0.2)
    async def on_charged(self, event: CustomerChargedEvent, state: OrderSagaState, commands: CommandGateway) -> None:
        await self._after_charge(event, state, commands)

    @saga_event_handler(association_property="reference", retry_delay=0.2)
    async def on_charge_refused(
        self, event: CustomerChargeRefusedEvent, state: OrderSagaState, commands: CommandGateway
    ) -> None:
        await self._after_charge(event, state, commands)

    @saga_event_handler(init=True, association_property="order_id", retry_delay=0.2)
    async def on_cancelled(self, event: OrderCancelledEvent, commands: CommandGateway) -> OrderSagaState:
        await _step(commands, RefundCustomerCommand(customer_id=event.customer_id, reference=event.order_id))
        await _step(commands, ReleaseStockCommand(product_id=event.product_id, order_id=event.order_id))
        return OrderSagaState(order_id=event.order_id, ended=True)

    # --- the steps, each from the outcome of the one before ----------------------------------------------------

    async def _after_reservation(self, outcome: Any, state: OrderSagaState, commands: CommandGateway) -> None:
        if isinstance(outcome, StockReservationRejectedEvent):
            await _step(commands, RejectOrderCommand(order_id=state.order_id, reason=OUT_OF_STOCK))
            state.ended = True
        elif isinstance(outcome, StockReservedEvent):
            total = outcome.quantity * outcome.unit_price
            charge = ChargeCustomerCommand(customer_id=state.customer_id, reference=state.order_id, amount=total)
            try:
                charged = await _step(commands, charge)
            except AggregateNotInitializedError:  # no such customer: no funds
                charged = CustomerChargeRefusedEvent(
                    customer_id=state.customer_id, reference=state.order_id, amount=total
                )
            await self._after_charge(charged, state, commands)

    async def _after_charge(self, outcome: Any, state: OrderSagaState, commands: CommandGateway) -> None:
        if isinstance(outcome, CustomerChargedEvent):
            await _step(commands, ConfirmOrderCommand(order_id=state.order_id, total=outcome.amount))
            state.ended = True
        elif isinstance(outcome, CustomerChargeRefusedEvent):
            await _step(commands, ReleaseStockCommand(product_id=state.product_id, order_id=state.order_id))
            await _step(commands, RejectOrderCommand(order_id=state.order_id, reason=INSUFFICIENT_FUNDS))
            state.ended = True


# --- views ---------------------------------------------------------------------------------------------------------

ORDER_TABLES = [
    """CREATE TABLE IF NOT EXISTS oi_order (
        order_id VARCHAR(100) PRIMARY KEY, customer_id VARCHAR(100) NOT NULL, product_id VARCHAR(100) NOT NULL,
        quantity BIGINT NOT NULL, status VARCHAR(16) NOT NULL, reason VARCHAR(32), total BIGINT
    )""",
    """CREATE TABLE IF NOT EXISTS oi_stats (
        id INTEGER PRIMARY KEY, confirmed BIGINT NOT NULL, rejected BIGINT NOT NULL, revenue BIGINT NOT NULL,
        cancelled BIGINT NOT NULL
    )""",
]


class OrdersReadModel(ExampleReadModel):
    """Orders and the statistics."""


def _count(db: Session, column: str, revenue: int = 0) -> None:
    db.insert_new("oi_stats", id=1, confirmed=0, rejected=0, revenue=0, cancelled=0)
    db.execute(f"UPDATE oi_stats SET {column} = {column} + 1, revenue = revenue + ? WHERE id = 1", revenue)


@projector(version=1, exactly_once=True)
class OrderProjector:
    """Order statuses and the statistics. A status only moves forward (the ``WHERE status``), and a statistic
    counts only a status that moved, so a redelivered event counts nothing twice."""

    def __init__(self, read_model: OrdersReadModel) -> None:
        self.read_model = read_model

    @event_handler
    def on_placed(self, event: OrderPlacedEvent) -> None:
        self.read_model.write(
            lambda db: db.insert_new(
                "oi_order",
                order_id=event.order_id,
                customer_id=event.customer_id,
                product_id=event.product_id,
                quantity=event.quantity,
                status="PENDING",
            )
        )

    @event_handler
    def on_confirmed(self, event: OrderConfirmedEvent) -> None:
        def confirm(db: Session) -> None:
            moved = db.execute(
                "UPDATE oi_order SET status = 'CONFIRMED', total = ? WHERE order_id = ? AND status = 'PENDING'",
                event.total,
                event.order_id,
            )
            if moved:
                _count(db, "confirmed", event.total)

        self.read_model.write(confirm)

    @event_handler
    def on_rejected(self, event: OrderRejectedEvent) -> None:
        def reject(db: Session) -> None:
            moved = db.execute(
                "UPDATE oi_order SET status = 'REJECTED', reason = ? WHERE order_id = ? AND status = 'PENDING'",
                event.reason,
                event.order_id,
            )
            if moved:
                _count(db, "rejected")

        self.read_model.write(reject)

    @event_handler
    def on_cancelled(self, event: OrderCancelledEvent) -> None:
        def cancel(db: Session) -> None:
            moved = db.execute(
                "UPDATE oi_order SET status = 'CANCELLED' WHERE order_id = ? AND status = 'CONFIRMED'", event.order_id
            )
            if moved:
                _count(db, "cancelled", -event.total)

        self.read_model.write(cancel)


@projection()
class OrderProjection:
    """Orders and the order statistics."""

    def __init__(self, read_model: OrdersReadModel) -> None:
        self.read_model = read_model

    @query_handler
    def order(self, query: OrderViewQuery) -> Single[OrderView]:
        row = self.read_model.read(
            lambda db: db.row(
                "SELECT order_id, customer_id, product_id, quantity, status, reason, total FROM oi_order"
                " WHERE order_id = ?",
                query.order_id,
            )
        )
        if row is None:
            raise NotFoundError(f"order {query.order_id} not found")
        return Single(
            OrderView(
                order_id=row[0],
                customer_id=row[1],
                product_id=row[2],
                quantity=int(row[3]),
                status=row[4],
                reason=row[5],
                total=None if row[6] is None else int(row[6]),
            )
        )

    @query_handler
    def stats(self, query: OrderStatsQuery) -> Single[OrderStatsView]:
        row = self.read_model.read(
            lambda db: db.row("SELECT confirmed, rejected, revenue, cancelled FROM oi_stats WHERE id = 1")
        )
        if row is None:
            return Single(OrderStatsView())
        return Single(
            OrderStatsView(confirmed=int(row[0]), rejected=int(row[1]), revenue=int(row[2]), cancelled=int(row[3]))
        )


@projector(version=1, exactly_once=True)
class OrderNotificationProjector:
    """Part of the ``customers`` service: one notification per decision (and per cancellation) of an order,
    whatever redelivers the event (the notification's key is the order and the status)."""

    def __init__(self, read_model: CustomerReadModel) -> None:
        self.read_model = read_model

    @event_handler
    def on_confirmed(self, event: OrderConfirmedEvent, seq: SequenceNumber) -> None:
        self.read_model.write(
            lambda db: record_notification(db, event.customer_id, event.order_id, "CONFIRMED", None, seq)
        )

    @event_handler
    def on_rejected(self, event: OrderRejectedEvent, seq: SequenceNumber) -> None:
        self.read_model.write(
            lambda db: record_notification(db, event.customer_id, event.order_id, "REJECTED", event.reason, seq)
        )

    @event_handler
    def on_cancelled(self, event: OrderCancelledEvent, seq: SequenceNumber) -> None:
        self.read_model.write(
            lambda db: record_notification(db, event.customer_id, event.order_id, "CANCELLED", None, seq)
        )
