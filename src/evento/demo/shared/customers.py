"""The customers service both examples share (``customers`` in order-inventory, ``payments`` in flight): the
customer aggregate holding a balance, charged and refunded by sagas under the id of an order or a booking, and
its views (customer, notifications).

The aggregate remembers every reference it charged, refused or refunded, so a saga's resent charge or refund is
refused with :class:`StepAlreadyTakenError` instead of moving money twice.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from evento import (
    AggregateState,
    DomainCommand,
    DomainEvent,
    Multiple,
    Query,
    Single,
    View,
    aggregate,
    aggregate_command_handler,
    domain,
    event_handler,
    event_sourcing_handler,
    projection,
    projector,
    query_handler,
)
from evento.demo.shared.errors import NotFoundError, StepAlreadyTakenError
from evento.demo.shared.read_model import ExampleReadModel, Session

__all__ = [
    "CUSTOMER_TABLES",
    "ChargeCustomerCommand",
    "CreateCustomerCommand",
    "CustomerAggregate",
    "CustomerChargeRefusedEvent",
    "CustomerChargedEvent",
    "CustomerCreatedEvent",
    "CustomerNotificationsQuery",
    "CustomerProjection",
    "CustomerProjector",
    "CustomerReadModel",
    "CustomerRefundedEvent",
    "CustomerState",
    "CustomerView",
    "CustomerViewQuery",
    "DepositCommand",
    "MoneyDepositedEvent",
    "NotificationView",
    "RefundCustomerCommand",
    "record_notification",
]

Cents = Annotated[int, msgspec.Meta(ge=0)]


class CustomerCommand(DomainCommand):
    """A command on one customer: ``customer_id`` is the aggregate id."""

    customer_id: str

    @property
    def aggregate_id(self) -> str:
        return self.customer_id


class CustomerEvent(DomainEvent, kw_only=True):
    """Base of the customer events: their own context, so consumers of other services' views skip them."""

    context: str = "customers"


@domain("Customers")
class CreateCustomerCommand(CustomerCommand):
    """Open a customer account with an initial balance."""

    name: str
    balance: Cents


@domain("Customers")
class DepositCommand(CustomerCommand):
    """Add money to a balance (an increment: concurrent deposits all count)."""

    amount: Annotated[int, msgspec.Meta(ge=1)]


@domain("Customers")
class ChargeCustomerCommand(CustomerCommand):
    """Take ``amount`` for the order or booking ``reference``, if the balance covers it."""

    reference: str
    amount: Cents


@domain("Customers")
class RefundCustomerCommand(CustomerCommand):
    """Give back what was charged for ``reference``."""

    reference: str


@domain("Customers")
class CustomerCreatedEvent(CustomerEvent):
    """A customer account was opened with ``balance``."""

    customer_id: str
    name: str
    balance: int


@domain("Customers")
class MoneyDepositedEvent(CustomerEvent):
    """``balance`` is the balance after the deposit: views copy it, so a redelivered event changes nothing."""

    customer_id: str
    amount: int
    balance: int


@domain("Customers")
class CustomerChargedEvent(CustomerEvent):
    """``amount`` was taken for ``reference``; ``balance`` is the balance after the charge."""

    customer_id: str
    reference: str
    amount: int
    balance: int


@domain("Customers")
class CustomerChargeRefusedEvent(CustomerEvent):
    """The balance did not cover the charge; nothing was taken."""

    customer_id: str
    reference: str
    amount: int


@domain("Customers")
class CustomerRefundedEvent(CustomerEvent):
    """The charge for ``reference`` was given back; ``balance`` is the balance after the refund."""

    customer_id: str
    reference: str
    amount: int
    balance: int


class CustomerState(AggregateState):
    """A customer's balance and the references it was charged for, refused or refunded."""

    balance: int = 0
    #: What each reference was charged and not refunded.
    charges: dict[str, int] = {}
    #: References whose charge was refused or refunded: a charge for them again is a resend.
    closed: set[str] = set()


@aggregate(snapshot_frequency=50)
class CustomerAggregate:
    """A balance that is never negative and never charged twice for one reference."""

    @aggregate_command_handler(init=True)
    def create(self, command: CreateCustomerCommand) -> CustomerCreatedEvent:
        return CustomerCreatedEvent(customer_id=command.customer_id, name=command.name, balance=command.balance)

    @event_sourcing_handler
    def on_created(self, event: CustomerCreatedEvent) -> CustomerState:
        return CustomerState(balance=event.balance)

    @aggregate_command_handler
    def deposit(self, command: DepositCommand, state: CustomerState) -> MoneyDepositedEvent:
        return MoneyDepositedEvent(
            customer_id=command.customer_id, amount=command.amount, balance=state.balance + command.amount
        )

    @event_sourcing_handler
    def on_deposited(self, event: MoneyDepositedEvent, state: CustomerState) -> None:
        state.balance = event.balance

    @aggregate_command_handler
    def charge(
        self, command: ChargeCustomerCommand, state: CustomerState
    ) -> CustomerChargedEvent | CustomerChargeRefusedEvent:
        if command.reference in state.charges or command.reference in state.closed:
            raise StepAlreadyTakenError(f"{command.reference} was already charged or refused")
        if state.balance < command.amount:
            return CustomerChargeRefusedEvent(
                customer_id=command.customer_id, reference=command.reference, amount=command.amount
            )
        return CustomerChargedEvent(
            customer_id=command.customer_id,
            reference=command.reference,
            amount=command.amount,
            balance=state.balance - command.amount,
        )

    @event_sourcing_handler
    def on_charged(self, event: CustomerChargedEvent, state: CustomerState) -> None:
        state.balance = event.balance
        state.charges[event.reference] = event.amount

    @event_sourcing_handler
    def on_charge_refused(self, event: CustomerChargeRefusedEvent, state: CustomerState) -> None:
        state.closed.add(event.reference)

    @aggregate_command_handler
    def refund(self, command: RefundCustomerCommand, state: CustomerState) -> CustomerRefundedEvent:
        amount = state.charges.get(command.reference)
        if amount is None:
            raise StepAlreadyTakenError(f"{command.reference} holds no charge to refund")
        return CustomerRefundedEvent(
            customer_id=command.customer_id,
            reference=command.reference,
            amount=amount,
            balance=state.balance + amount,
        )

    @event_sourcing_handler
    def on_refunded(self, event: CustomerRefundedEvent, state: CustomerState) -> None:
        state.balance = event.balance
        del state.charges[event.reference]
        state.closed.add(event.reference)


# --- views -----------------------------------------------------------------------------------------------------

CUSTOMER_TABLES = [
    """CREATE TABLE IF NOT EXISTS customer (
        id VARCHAR(100) PRIMARY KEY, name TEXT NOT NULL, balance BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS customer_notification (
        reference VARCHAR(100) NOT NULL, status VARCHAR(16) NOT NULL, customer_id VARCHAR(100) NOT NULL,
        reason VARCHAR(32), position BIGINT NOT NULL, PRIMARY KEY (reference, status)
    )""",
    "CREATE INDEX IF NOT EXISTS customer_notification_by_customer ON customer_notification (customer_id, position)",
]


class CustomerReadModel(ExampleReadModel):
    """The customers and their notifications."""


@domain("Customers")
class CustomerView(View):
    """A customer with the current balance."""

    id: str
    name: str
    balance: int


@domain("Customers")
class NotificationView(View):
    """One decision told to a customer: ``reference`` is the order or booking id."""

    reference: str
    status: str
    reason: str | None = None


@domain("Customers")
class CustomerViewQuery(Query[Single[CustomerView]]):
    """The customer ``customer_id`` (:class:`NotFoundError` for an unknown customer)."""

    customer_id: str


@domain("Customers")
class CustomerNotificationsQuery(Query[Multiple[NotificationView]]):
    """A customer's notifications, oldest first (:class:`NotFoundError` for an unknown customer)."""

    customer_id: str


def record_notification(
    db: Session, customer_id: str, reference: str, status: str, reason: str | None, position: int
) -> None:
    """One notification per (reference, status), whatever redelivers the event that decided it."""
    db.insert_new(
        "customer_notification",
        reference=reference,
        status=status,
        customer_id=customer_id,
        reason=reason,
        position=position,
    )


@projector(version=1, exactly_once=True)
class CustomerProjector:
    """Keeps each customer's balance as the aggregate's events state it."""

    def __init__(self, read_model: CustomerReadModel) -> None:
        self.read_model = read_model

    @event_handler
    def on_created(self, event: CustomerCreatedEvent) -> None:
        self.read_model.write(
            lambda db: db.insert_new("customer", id=event.customer_id, name=event.name, balance=event.balance)
        )

    def _balance(self, customer_id: str, balance: int) -> None:
        self.read_model.write(
            lambda db: db.execute("UPDATE customer SET balance = ? WHERE id = ?", balance, customer_id)
        )

    @event_handler
    def on_deposited(self, event: MoneyDepositedEvent) -> None:
        self._balance(event.customer_id, event.balance)

    @event_handler
    def on_charged(self, event: CustomerChargedEvent) -> None:
        self._balance(event.customer_id, event.balance)

    @event_handler
    def on_refunded(self, event: CustomerRefundedEvent) -> None:
        self._balance(event.customer_id, event.balance)


@projection()
class CustomerProjection:
    """Customers and their notifications."""

    def __init__(self, read_model: CustomerReadModel) -> None:
        self.read_model = read_model

    @query_handler
    def customer(self, query: CustomerViewQuery) -> Single[CustomerView]:
        row = self.read_model.read(
            lambda db: db.row("SELECT id, name, balance FROM customer WHERE id = ?", query.customer_id)
        )
        if row is None:
            raise NotFoundError(f"customer {query.customer_id} not found")
        return Single(CustomerView(id=row[0], name=row[1], balance=int(row[2])))

    @query_handler
    def notifications(self, query: CustomerNotificationsQuery) -> Multiple[NotificationView]:
        def read(db: Session) -> list[tuple[object, ...]] | None:
            if db.row("SELECT 1 FROM customer WHERE id = ?", query.customer_id) is None:
                return None
            return db.rows(
                "SELECT reference, status, reason FROM customer_notification WHERE customer_id = ? ORDER BY position",
                query.customer_id,
            )

        rows = self.read_model.read(read)
        if rows is None:
            raise NotFoundError(f"customer {query.customer_id} not found")
        return Multiple([NotificationView(reference=str(r[0]), status=str(r[1]), reason=_text(r[2])) for r in rows])


def _text(value: object) -> str | None:
    return None if value is None else str(value)
