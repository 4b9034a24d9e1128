"""A small bank domain used by the guarantee tests: accounts (aggregate), a ledger projector, a saga, an observer."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from evento import (
    AggregateState,
    CommandGateway,
    DomainCommand,
    DomainEvent,
    Metadata,
    SagaState,
    SequenceNumber,
    ServiceCommand,
    ServiceEvent,
    TransientConsumerError,
    aggregate,
    aggregate_command_handler,
    command_handler,
    event_handler,
    event_sourcing_handler,
    observer,
    projector,
    saga,
    saga_event_handler,
    service,
)


class InsufficientFunds(Exception):
    """A withdrawal larger than the balance."""


class OpenAccount(DomainCommand):
    account: str
    region: str = "default"

    @property
    def aggregate_id(self) -> str:
        return self.account


class Deposit(DomainCommand):
    account: str
    amount: int

    @property
    def aggregate_id(self) -> str:
        return self.account


class Withdraw(DomainCommand):
    account: str
    amount: int

    @property
    def aggregate_id(self) -> str:
        return self.account


class CloseAccount(DomainCommand):
    account: str

    @property
    def aggregate_id(self) -> str:
        return self.account


class AccountOpened(DomainEvent):
    account: str


class Deposited(DomainEvent):
    account: str
    amount: int
    balance: int
    seen_version: int


class Withdrawn(DomainEvent):
    account: str
    amount: int
    balance: int


class AccountClosed(DomainEvent):
    account: str


class AccountState(AggregateState):
    balance: int = 0
    events: int = 0
    region: str = "default"


@aggregate(snapshot_frequency=-1)
class Account:
    @aggregate_command_handler(init=True)
    def open(self, command: OpenAccount) -> AccountOpened:
        return AccountOpened(account=command.account).with_context(command.region)

    @event_sourcing_handler
    def on_opened(self, event: AccountOpened) -> AccountState:
        return AccountState(events=1, region=event.context)

    @aggregate_command_handler
    def deposit(self, command: Deposit, state: AccountState) -> Deposited:
        return Deposited(
            account=command.account,
            amount=command.amount,
            balance=state.balance + command.amount,
            seen_version=state.events,
        ).with_context(state.region)

    @event_sourcing_handler
    def on_deposited(self, event: Deposited, state: AccountState) -> None:
        state.balance += event.amount
        state.events += 1

    @aggregate_command_handler
    def withdraw(self, command: Withdraw, state: AccountState) -> Withdrawn:
        if command.amount > state.balance:
            raise InsufficientFunds(f"balance {state.balance} < {command.amount}")
        return Withdrawn(account=command.account, amount=command.amount, balance=state.balance - command.amount)

    @event_sourcing_handler
    def on_withdrawn(self, event: Withdrawn, state: AccountState) -> None:
        state.balance -= event.amount
        state.events += 1

    @aggregate_command_handler
    def close(self, command: CloseAccount, state: AccountState) -> AccountClosed:
        return AccountClosed(account=command.account)

    @event_sourcing_handler
    def on_closed(self, event: AccountClosed, state: AccountState) -> None:
        state.deleted = True


@aggregate(snapshot_frequency=3)
class SnapshottingAccount(Account):
    """The same rules (handlers are inherited) with a snapshot every 3 events."""


@dataclass
class Ledger:
    """What a projector saw, shared with the test."""

    seen: list[tuple[int, str, str]] = field(default_factory=list)  # (sequence, event name, context)
    lock: threading.Lock = field(default_factory=threading.Lock)
    fail_amounts: set[int] = field(default_factory=set)
    transient_failures: int = 0
    attempts: dict[int, int] = field(default_factory=dict)

    def record(self, seq: int, name: str, context: str) -> None:
        with self.lock:
            self.seen.append((seq, name, context))


@projector(version=1)
class LedgerProjector:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    @event_handler
    def on_opened(self, event: AccountOpened, seq: SequenceNumber) -> None:
        self.ledger.record(seq, "AccountOpened", event.context)

    @event_handler(retry=2, retry_delay=0.01)
    def on_deposited(self, event: Deposited, seq: SequenceNumber) -> None:
        self.ledger.attempts[seq] = self.ledger.attempts.get(seq, 0) + 1
        if event.amount in self.ledger.fail_amounts:
            raise ValueError(f"cannot project amount {event.amount}")
        if self.ledger.transient_failures > 0:
            self.ledger.transient_failures -= 1
            raise TransientConsumerError("read model briefly unavailable")
        self.ledger.record(seq, "Deposited", event.context)


# --- a saga that pays a bonus once an account received three deposits ------------------------------------------


class PayBonus(ServiceCommand):
    account: str
    deposits: int

    @property
    def lock_id(self) -> str:
        return f"bonus-{self.account}"


class BonusPaid(ServiceEvent):
    account: str


class BonusState(SagaState):
    deposits: int = 0
    users: list[str] = []


@dataclass
class BonusDesk:
    paid: list[str] = field(default_factory=list)


@service()
class BonusService:
    def __init__(self, desk: BonusDesk) -> None:
        self.desk = desk

    @command_handler
    async def pay(self, command: PayBonus) -> BonusPaid:
        self.desk.paid.append(command.account)
        return BonusPaid(account=command.account)


@saga(version=1)
class BonusSaga:
    @saga_event_handler(init=True, association_property="account")
    def on_opened(self, event: AccountOpened) -> BonusState:
        state = BonusState()
        state.set_association("account", event.account)
        return state

    @saga_event_handler(association_property="account")
    async def on_deposited(
        self, event: Deposited, state: BonusState, commands: CommandGateway, metadata: Metadata
    ) -> BonusState:
        state.deposits += 1
        state.users = [*state.users, metadata.get("user", "?")]
        if state.deposits == 3:
            await commands.send(PayBonus(account=event.account, deposits=state.deposits))
        return state

    @saga_event_handler(association_property="account")
    def on_bonus_paid(self, event: BonusPaid, state: BonusState) -> None:
        state.ended = True


@dataclass
class Alarm:
    rung: list[int] = field(default_factory=list)
    concurrent: int = 0
    peak: int = 0
    release: asyncio.Event | None = None


@observer(version=1)
class LargeWithdrawalObserver:
    def __init__(self, alarm: Alarm) -> None:
        self.alarm = alarm

    @event_handler
    async def on_withdrawn(self, event: Withdrawn, seq: SequenceNumber) -> None:
        self.alarm.concurrent += 1
        self.alarm.peak = max(self.alarm.peak, self.alarm.concurrent)
        try:
            if self.alarm.release is not None:
                await self.alarm.release.wait()
            self.alarm.rung.append(seq)
        finally:
            self.alarm.concurrent -= 1
