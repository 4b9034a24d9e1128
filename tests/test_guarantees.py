"""The behavioural guarantees of reference §A (2, 3, 5, 6, 7, 8), through the public API.

Every consumer-side test runs on each consumer state store (memory and SQLite); the event store is SQLite.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from evento import (
    AggregateDeletedError,
    AggregateInitializedError,
    AggregateNotInitializedError,
    Bundle,
    CommandGateway,
    ConsumerSettings,
    EventoServer,
    NoHandlerError,
    projector,
    service,
)
from evento.consumer_stores import ConsumerStateStore
from evento.payloads import decode_payload
from evento.testing.databases import mysql_database, postgres_database
from tests.bank import (
    Account,
    AccountOpened,
    Alarm,
    BonusDesk,
    BonusPaid,
    BonusSaga,
    BonusService,
    BonusState,
    CloseAccount,
    Deposit,
    Deposited,
    InsufficientFunds,
    LargeWithdrawalObserver,
    Ledger,
    LedgerProjector,
    OpenAccount,
    PayBonus,
    SnapshottingAccount,
    Withdraw,
)
from tests.helpers import CONSUMER_STORE_KINDS, make_consumer_store, start_server, wait_until

FAST = ConsumerSettings(error_delay=0.02, max_backoff=0.1, idle_poll=0.5, lease_seconds=2.0)


@pytest.fixture(params=CONSUMER_STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """The consumer store kind for :func:`make_consumer_store`: a database URL for PostgreSQL and MySQL."""
    if request.param == "postgres":
        with postgres_database() as url:
            yield url
    elif request.param == "mysql":
        with mysql_database() as url:
            yield url
    else:
        yield str(request.param)


class System:
    """Bundles started against one server, stopped at the end of the test."""

    def __init__(self, server: EventoServer) -> None:
        self.server = server
        self.bundles: list[Bundle] = []

    async def start(self, bundle: Bundle) -> Bundle:
        await bundle.start(self.server)
        self.bundles.append(bundle)
        return bundle

    async def stop(self, bundle: Bundle) -> None:
        await bundle.stop()
        self.bundles.remove(bundle)

    def client(self) -> Any:
        return self.bundles[0].gateways(None)


@pytest.fixture
async def commands(server: EventoServer) -> AsyncIterator[CommandGateway]:
    """A command gateway of a started bundle hosting the Account aggregate."""
    writer = Bundle("accounts", components=[Account])
    await writer.start(server)
    yield writer.gateways(None)[0]
    await writer.stop()


@pytest.fixture
async def system(server: EventoServer) -> AsyncIterator[System]:
    system = System(server)
    yield system
    for bundle in reversed(system.bundles):
        await bundle.stop()


def provide(*values: Any) -> Any:
    by_type = {type(v): v for v in values}
    return by_type.get


def ledger_bundle(ledger: Ledger, store: ConsumerStateStore, name: str = "ledger", **options: Any) -> Bundle:
    """A bundle projecting into ``ledger`` with fast retry settings."""
    return Bundle(
        name,
        components=[LedgerProjector],
        injector=provide(ledger),
        consumer_store=store,
        consumer_settings=FAST,
        **options,
    )


async def accounts(system: System, aggregate: type[Any] = Account) -> Any:
    await system.start(Bundle("accounts", components=[aggregate]))
    commands, _ = system.client()
    return commands


# --- §A.2 aggregate serialisation and atomic append ---------------------------------------------------------------


async def test_commands_on_one_aggregate_run_one_at_a_time_and_see_every_earlier_event(system: System) -> None:
    commands = await accounts(system)
    await commands.send(OpenAccount(account="A"))
    results = await asyncio.gather(*(commands.send(Deposit(account="A", amount=1)) for _ in range(50)))
    # Each handler saw a distinct, complete state: versions 1..50 and balances 1..50, none twice.
    assert sorted(r.seen_version for r in results) == list(range(1, 51))
    assert sorted(r.balance for r in results) == list(range(1, 51))
    story = await system.server.store.load_story("A")
    assert [e.aggregate_version for e in story.events] == list(range(1, 52))


async def test_a_failing_command_appends_nothing_and_the_caller_gets_the_same_error_class(system: System) -> None:
    commands = await accounts(system)
    await commands.send(OpenAccount(account="B"))
    head = await system.server.store.head()
    with pytest.raises(InsufficientFunds, match="balance 0 < 5"):
        await commands.send(Withdraw(account="B", amount=5))
    assert await system.server.store.head() == head


async def test_a_successful_command_returns_its_stored_event(system: System) -> None:
    commands = await accounts(system)
    opened = await commands.send(OpenAccount(account="C"))
    assert opened == AccountOpened(account="C")
    story = await system.server.store.load_story("C")
    assert [e.event_name for e in story.events] == ["AccountOpened"]
    assert story.events[0].aggregate_id == "C"


async def test_a_command_nobody_handles_fails_at_once(system: System) -> None:
    await system.start(Bundle("bonus", components=[BonusService], injector=provide(BonusDesk())))
    commands, _ = system.client()
    with pytest.raises(NoHandlerError, match="no handler for OpenAccount"):
        await commands.send(OpenAccount(account="X"))


# --- §A.3 aggregate lifecycle -------------------------------------------------------------------------------------


async def test_init_on_an_existing_aggregate_and_commands_on_a_missing_one_fail(system: System) -> None:
    commands = await accounts(system)
    with pytest.raises(AggregateNotInitializedError):
        await commands.send(Deposit(account="nobody", amount=1))
    await commands.send(OpenAccount(account="D"))
    with pytest.raises(AggregateInitializedError):
        await commands.send(OpenAccount(account="D"))
    # Not in the server's story cache (another server made it, or this one restarted): a creating command skips
    # the read, its version 1 is refused, and it re-runs on the stored story.
    system.server.broker.cache.evict("D")
    with pytest.raises(AggregateInitializedError):
        await commands.send(OpenAccount(account="D"))


async def test_a_deleted_aggregate_refuses_commands_and_its_events_are_soft_deleted(
    system: System, tmp_path: Path
) -> None:
    commands = await accounts(system)
    await commands.send(OpenAccount(account="E"))
    await commands.send(Deposit(account="E", amount=3))
    await commands.send(CloseAccount(account="E"))
    for command in (Deposit(account="E", amount=1), OpenAccount(account="E"), CloseAccount(account="E")):
        with pytest.raises(AggregateDeletedError):
            await commands.send(command)
        system.server.broker.cache.evict("E")  # the same from the store, not only from the cached story
    with sqlite3.connect(tmp_path / "events.db") as conn:
        rows = conn.execute("SELECT event_name, deleted_at IS NOT NULL FROM es_events WHERE aggregate_id = 'E'")
        assert sorted(rows.fetchall()) == [("AccountClosed", 1), ("AccountOpened", 1), ("Deposited", 1)]


async def test_a_deleted_aggregate_stays_deleted_after_a_server_restart(tmp_path: Path) -> None:
    server = await start_server(tmp_path)
    bundle = Bundle("accounts", components=[Account])
    await bundle.start(server)
    commands, _ = bundle.gateways(None)
    await commands.send(OpenAccount(account="F"))
    await commands.send(CloseAccount(account="F"))
    await bundle.stop()
    await server.stop()

    server = await start_server(tmp_path)
    bundle = Bundle("accounts", components=[Account])
    await bundle.start(server)
    try:
        commands, _ = bundle.gateways(None)
        with pytest.raises(AggregateDeletedError):
            await commands.send(Deposit(account="F", amount=1))
    finally:
        await bundle.stop()
        await server.stop()


async def test_snapshots_give_the_same_state_as_a_full_replay(system: System, tmp_path: Path) -> None:
    commands = await accounts(system, SnapshottingAccount)
    await commands.send(OpenAccount(account="G"))
    balances = [(await commands.send(Deposit(account="G", amount=n))).balance for n in range(1, 11)]
    assert balances == [sum(range(1, n + 1)) for n in range(1, 11)]
    with sqlite3.connect(tmp_path / "events.db") as conn:
        version = conn.execute("SELECT aggregate_version FROM es_snapshots WHERE aggregate_id = 'G'").fetchone()[0]
    assert version >= 9  # snapshots were taken along the way
    # A cold story (no cache) starts from the snapshot and still yields the same next balance.
    system.server.broker.cache.evict("G")
    story = await system.server.store.load_story("G")
    assert story.snapshot is not None
    assert len(story.events) < 3
    assert (await commands.send(Deposit(account="G", amount=100))).balance == 155


# --- §A.5 projector consistency -----------------------------------------------------------------------------------


async def test_a_projector_handles_events_in_order_once_and_resumes_at_its_checkpoint(
    server: EventoServer, tmp_path: Path, store_kind: str, commands: CommandGateway
) -> None:
    await commands.send(OpenAccount(account="H"))
    for amount in range(1, 6):
        await commands.send(Deposit(account="H", amount=amount))

    ledger = Ledger()
    store = make_consumer_store(store_kind, tmp_path)
    reader = ledger_bundle(ledger, store)
    await reader.start(server)
    await wait_until(lambda: len(ledger.seen) == 6, what="projector caught up")
    assert [seq for seq, _, _ in ledger.seen] == sorted({seq for seq, _, _ in ledger.seen})
    await reader.stop()

    # While it is down, more events; when it comes back it continues from its checkpoint. A durable store is
    # reopened; a memory store survives only as the same object (a process restart loses it).
    for amount in range(6, 9):
        await commands.send(Deposit(account="H", amount=amount))
    again = ledger_bundle(ledger, make_consumer_store(store_kind, tmp_path) if store_kind != "memory" else store)
    await again.start(server)
    try:
        await wait_until(lambda: len(ledger.seen) == 9, what="projector resumed")
        sequences = [seq for seq, _, _ in ledger.seen]
        assert sequences == sorted(sequences)
        assert len(set(sequences)) == 9
    finally:
        await again.stop()


async def test_a_new_projector_version_replays_from_the_start(
    server: EventoServer, tmp_path: Path, commands: CommandGateway
) -> None:
    await commands.send(OpenAccount(account="I"))
    ledger = Ledger()
    store = make_consumer_store("sqlite", tmp_path)
    first = Bundle("ledger", components=[LedgerProjector], injector=provide(ledger), consumer_store=store)
    await first.start(server)
    await first.wait_for_head()
    await first.stop()
    assert len(ledger.seen) == 1

    @projector(version=2)
    class LedgerProjectorV2(LedgerProjector):
        pass

    LedgerProjectorV2.__name__ = "LedgerProjector"  # same component, new version: a new consumer id
    second = Bundle(
        "ledger",
        components=[LedgerProjectorV2],
        injector=provide(ledger),
        consumer_store=make_consumer_store("sqlite", tmp_path),
    )
    await second.start(server)
    try:
        await second.wait_for_head()
        assert [name for _, name, _ in ledger.seen] == ["AccountOpened", "AccountOpened"]
        assert list(second.consumers) == ["ledger_LedgerProjector_2_*"]
    finally:
        await second.stop()


async def test_two_instances_of_a_projector_never_both_handle_an_event(
    server: EventoServer, tmp_path: Path, store_kind: str, commands: CommandGateway
) -> None:
    if store_kind == "memory":
        pytest.skip("a memory store's lock is per process-local store; shared-store locking needs a shared store")
    await commands.send(OpenAccount(account="J"))
    ledger = Ledger()
    instances = [ledger_bundle(ledger, make_consumer_store(store_kind, tmp_path)) for _ in range(2)]
    for instance in instances:
        await instance.start(server)
    try:
        await asyncio.gather(*(commands.send(Deposit(account="J", amount=n)) for n in range(1, 31)))
        await wait_until(lambda: len(ledger.seen) >= 31, what="all events projected")
        sequences = [seq for seq, _, _ in ledger.seen]
        assert len(sequences) == len(set(sequences)) == 31
        assert sequences == sorted(sequences)
    finally:
        for instance in instances:
            await instance.stop()


# --- §A.6 contexts -----------------------------------------------------------------------------------------------


async def test_a_consumer_restricted_to_contexts_sees_only_those_with_separate_checkpoints(
    server: EventoServer, tmp_path: Path, store_kind: str, commands: CommandGateway
) -> None:
    for account, region in [("uk1", "UK"), ("it1", "IT"), ("fr1", "FR"), ("d1", "default"), ("uk2", "UK")]:
        await commands.send(OpenAccount(account=account, region=region))
    regional, everything = Ledger(), Ledger()
    restricted = ledger_bundle(
        regional,
        make_consumer_store(store_kind, tmp_path, "regional.db"),
        "regional",
        contexts={LedgerProjector: ["UK", "IT"]},
    )
    unrestricted = ledger_bundle(everything, make_consumer_store(store_kind, tmp_path, "all.db"), "all")
    await restricted.start(server)
    await unrestricted.start(server)
    try:
        await restricted.wait_for_head()
        await unrestricted.wait_for_head()
        assert sorted(ctx for _, _, ctx in regional.seen) == ["IT", "UK", "UK"]
        assert sorted(ctx for _, _, ctx in everything.seen) == ["FR", "IT", "UK", "UK", "default"]
        assert set(restricted.consumers) == {"regional_LedgerProjector_1_UK", "regional_LedgerProjector_1_IT"}
        statuses = {cid: await engine.describe() for cid, engine in restricted.consumers.items()}
        uk, it = statuses["regional_LedgerProjector_1_UK"], statuses["regional_LedgerProjector_1_IT"]
        assert uk.checkpoint != it.checkpoint  # one checkpoint per context
    finally:
        await restricted.stop()
        await unrestricted.stop()


# --- §A.7 failure handling ----------------------------------------------------------------------------------------


async def test_a_permanent_failure_is_retried_then_dead_lettered_and_the_checkpoint_moves_on(
    server: EventoServer, tmp_path: Path, store_kind: str, commands: CommandGateway
) -> None:
    await commands.send(OpenAccount(account="K"))
    bad = await commands.send(Deposit(account="K", amount=13))
    await commands.send(Deposit(account="K", amount=2))
    ledger = Ledger(fail_amounts={13})
    reader = ledger_bundle(ledger, make_consumer_store(store_kind, tmp_path))
    await reader.start(server)
    try:
        await reader.wait_for_head()
        engine = reader.consumers["ledger_LedgerProjector_1_*"]
        dead = await engine.dead_events()
        assert [d.event.event_name for d in dead] == ["Deposited"]
        assert "cannot project amount 13" in dead[0].error
        seq = dead[0].event.sequence_number
        assert ledger.attempts[seq] == 3  # retry=2: three attempts
        assert [name for _, name, _ in ledger.seen] == ["AccountOpened", "Deposited"]  # the later event went on
        status = await engine.describe()
        assert status.checkpoint == await server.store.head()
        assert status.dead_events == 1
        assert status.error.error_count == 0  # a successful commit after the failure cleared the error state

        # Flag it for retry, fix the cause, replay the dead queue: handled and removed.
        assert bad.balance == 13
        ledger.fail_amounts.clear()
        await reader.consumer_store.set_dead_event_retry(engine.consumer_id, seq, True)
        assert await engine.consume_dead_queue() == 1
        assert await engine.dead_events() == []
        assert "Deposited" in [name for s, name, _ in ledger.seen if s == seq]
    finally:
        await reader.stop()


async def test_a_dead_event_not_flagged_for_retry_stays_and_a_failed_replay_parks_it_again(
    server: EventoServer, tmp_path: Path, store_kind: str, commands: CommandGateway
) -> None:
    await commands.send(OpenAccount(account="L"))
    await commands.send(Deposit(account="L", amount=13))
    ledger = Ledger(fail_amounts={13})
    reader = ledger_bundle(ledger, make_consumer_store(store_kind, tmp_path))
    await reader.start(server)
    try:
        await reader.wait_for_head()
        engine = reader.consumers["ledger_LedgerProjector_1_*"]
        assert await engine.consume_dead_queue() == 0  # nothing flagged
        (dead,) = await engine.dead_events()
        await reader.consumer_store.set_dead_event_retry(engine.consumer_id, dead.event.sequence_number, True)
        assert await engine.consume_dead_queue() == 0  # still failing: parked again
        assert [d.event.sequence_number for d in await engine.dead_events()] == [dead.event.sequence_number]
    finally:
        await reader.stop()


async def test_a_transient_failure_does_not_advance_the_checkpoint_and_the_event_is_redelivered(
    server: EventoServer, tmp_path: Path, store_kind: str, commands: CommandGateway
) -> None:
    await commands.send(OpenAccount(account="M"))
    deposit = await commands.send(Deposit(account="M", amount=7))
    ledger = Ledger(transient_failures=4)  # more failures than retry=2 allows: transient ones never dead-letter
    reader = ledger_bundle(ledger, make_consumer_store(store_kind, tmp_path))
    await reader.start(server)
    try:
        await wait_until(lambda: len(ledger.seen) == 2, what="event redelivered after transient failures")
        engine = reader.consumers["ledger_LedgerProjector_1_*"]
        assert await engine.dead_events() == []
        assert ledger.seen[-1][1] == "Deposited"
        assert deposit.amount == 7
        assert max(ledger.attempts.values()) == 5
    finally:
        await reader.stop()


# --- §A.8 sagas ---------------------------------------------------------------------------------------------------


async def test_a_saga_follows_its_association_keeps_state_and_ends(
    server: EventoServer, tmp_path: Path, store_kind: str, commands: CommandGateway
) -> None:
    desk = BonusDesk()
    store: ConsumerStateStore = make_consumer_store(store_kind, tmp_path)
    bonus = Bundle(
        "bonus",
        components=[BonusSaga, BonusService],
        injector=provide(desk),
        consumer_store=store,
        consumer_settings=FAST,
    )
    await bonus.start(server)
    try:
        await bonus.wait_for_head()
        await commands.send(OpenAccount(account="N"))
        await commands.send(OpenAccount(account="O"))
        for user in ("ann", "bob", "cid"):
            await commands.send(Deposit(account="N", amount=1), metadata={"user": user})
        await wait_until(lambda: desk.paid == ["N"], what="bonus paid once three deposits arrived")
        # The saga ended when BonusPaid arrived: its instance is gone, so later deposits are ignored.
        await wait_until(lambda: _saga_gone(store, "N"), what="saga instance deleted after it ended")
        other = await store.find_saga("BonusSaga", "account", "O")
        assert other is not None
        assert decode_payload(other.state, BonusState).deposits == 0
        await commands.send(Deposit(account="N", amount=1))
        await commands.send(Deposit(account="O", amount=1), metadata={"user": "dan"})
        await wait_until(lambda: _saga_deposits(store, "O", 1), what="saga state persisted for O")
        assert desk.paid == ["N"]
    finally:
        await bonus.stop()


async def _saga_gone(store: ConsumerStateStore, account: str) -> bool:
    return await store.find_saga("BonusSaga", "account", account) is None


async def _saga_deposits(store: ConsumerStateStore, account: str, expected: int) -> bool:
    found = await store.find_saga("BonusSaga", "account", account)
    return found is not None and decode_payload(found.state, BonusState).deposits == expected


# --- observers ----------------------------------------------------------------------------------------------------


async def test_an_observer_handles_events_concurrently_each_once(
    server: EventoServer, tmp_path: Path, store_kind: str, commands: CommandGateway
) -> None:
    alarm = Alarm(release=asyncio.Event())
    watcher = Bundle(
        "alarm",
        components=[LargeWithdrawalObserver],
        injector=provide(alarm),
        consumer_store=make_consumer_store(store_kind, tmp_path),
        consumer_settings=FAST,
    )
    await watcher.start(server)
    try:
        await watcher.wait_for_head()
        await commands.send(OpenAccount(account="P"))
        await commands.send(Deposit(account="P", amount=100))
        for _ in range(5):
            await commands.send(Withdraw(account="P", amount=1))
        await wait_until(lambda: alarm.concurrent == 5, what="five observer handlers running at once")
        assert alarm.release is not None
        alarm.release.set()
        await wait_until(lambda: len(alarm.rung) == 5, what="all withdrawals observed")
        assert len(set(alarm.rung)) == 5
        assert alarm.peak == 5
    finally:
        await watcher.stop()


async def test_deposit_event_type_is_decoded_for_callers(system: System) -> None:
    commands = await accounts(system)
    await commands.send(OpenAccount(account="Q"))
    assert isinstance(await commands.send(Deposit(account="Q", amount=2)), Deposited)


# --- service command locks, consumer reset, package scanning ------------------------------------------------------


async def test_service_commands_sharing_a_lock_id_run_one_at_a_time(system: System) -> None:
    desk = BonusDesk()
    running: list[int] = []
    peak = 0
    original = BonusService.pay

    async def slow_pay(self: BonusService, command: PayBonus) -> BonusPaid:
        nonlocal peak
        running.append(1)
        peak = max(peak, len(running))
        await asyncio.sleep(0.005)
        running.pop()
        return await original(self, command)

    slow_pay.__evento_handler__ = original.__evento_handler__  # type: ignore[attr-defined]

    @service()
    class SlowBonusService(BonusService):
        pay = slow_pay

    await system.start(Bundle("bonus", components=[SlowBonusService], injector=provide(desk)))
    commands, _ = system.client()
    await asyncio.gather(*(commands.send(PayBonus(account="same", deposits=n)) for n in range(10)))
    assert peak == 1
    assert len(desk.paid) == 10
    peak = 0
    await asyncio.gather(*(commands.send(PayBonus(account=f"acct{n}", deposits=n)) for n in range(10)))
    assert peak > 1  # different lock ids do run concurrently
    stored = await system.server.store.fetch("*", 0, 100)
    assert {e.aggregate_id for e in stored if e.event_name == "BonusPaid"} >= {"bonus-same"}


async def test_resetting_a_projector_replays_it_from_the_start(
    server: EventoServer, tmp_path: Path, store_kind: str, commands: CommandGateway
) -> None:
    await commands.send(OpenAccount(account="R"))
    await commands.send(Deposit(account="R", amount=1))
    ledger = Ledger()
    reader = ledger_bundle(ledger, make_consumer_store(store_kind, tmp_path))
    await reader.start(server)
    try:
        await reader.wait_for_head()
        assert len(ledger.seen) == 2
        await reader.consumers["ledger_LedgerProjector_1_*"].reset()
        await wait_until(lambda: len(ledger.seen) == 4, what="replay after reset")
        assert [name for _, name, _ in ledger.seen] == ["AccountOpened", "Deposited"] * 2
    finally:
        await reader.stop()


def test_a_bundle_can_be_built_from_a_package() -> None:
    from evento.demo.todolist.read_model import TodoListReadModel
    from evento.demo.todolist.services import ServiceSettings

    bundle = Bundle(
        "all-in-one",
        package="evento.demo.todolist",
        injector={TodoListReadModel: TodoListReadModel(":memory:"), ServiceSettings: ServiceSettings()}.get,
    )
    kinds = sorted(str(spec.kind) for spec, _ in bundle.components)
    assert kinds == ["Aggregate", "Invoker", "Observer", "Projection", "Projector", "Saga", "Service", "Service"]


async def test_a_command_resent_after_a_lost_connection_is_not_applied_twice(
    server: EventoServer, commands: CommandGateway
) -> None:
    """A caller that lost its connection resends with ``resent=True``; even after a server restart (no dedupe
    cache) the server finds the event the command already produced instead of running it again."""
    from evento.messages import CommandMessage, SendCommand, new_message_id, now_ms
    from evento.payloads import encode_payload

    await commands.send(OpenAccount(account="X"))
    client = Bundle("client", components=[BonusService], injector=provide(BonusDesk()))
    await client.start(server)
    try:
        message = CommandMessage(
            payload_name="Deposit", payload=encode_payload(Deposit(account="X", amount=4)),
            message_id=new_message_id(), metadata={}, timestamp=now_ms(), domain=True, aggregate_id="X", lock_id="X",
        )  # fmt: skip
        first = await client.outbox.request(SendCommand(message), 5)
        head = await server.store.head()
        again = await client.outbox.request(SendCommand(message, resent=True), 5)
        assert again == first
        assert await server.store.head() == head
        other = await client.outbox.request(
            SendCommand(msgspec.structs.replace(message, message_id=new_message_id()), True), 5
        )
        assert other != first
        assert await server.store.head() == head + 1
    finally:
        await client.stop()


async def test_the_server_names_a_service_commands_caller_so_callers_sharing_a_command_id_each_get_a_run(
    server: EventoServer,
) -> None:
    """A service runs a command once per (caller, command id), and only the server can say who the caller is: it
    names the bundle instance that sent the command, whichever transport that came by. Four callers (two in the
    server's process, two over TCP) send one command id to a service reached over TCP: each gets a run of its own,
    so no caller can pre-empt another's command, and each caller sending it again is answered without a run."""
    from evento.messages import CommandMessage, SendCommand, new_message_id, now_ms
    from evento.payloads import encode_payload
    from evento.server.bus import BusServer
    from evento.transport.connector import TcpConnector

    bus = BusServer(server, "127.0.0.1", 0)
    await bus.start()
    desk = BonusDesk()
    bonus = Bundle("bonus", components=[BonusService], injector=provide(desk))
    callers = [Bundle(f"caller-{n}", components=[Account]) for n in range(4)]
    started: list[Bundle] = []
    try:
        await bonus.start(TcpConnector(f"127.0.0.1:{bus.port}"))
        started.append(bonus)
        for n, caller in enumerate(callers):
            await caller.start(server if n < 2 else TcpConnector(f"127.0.0.1:{bus.port}"))
            started.append(caller)
        message = CommandMessage(
            payload_name="PayBonus", payload=encode_payload(PayBonus(account="A", deposits=1)),
            message_id=new_message_id(), metadata={}, timestamp=now_ms(), domain=False, aggregate_id=None, lock_id=None,
        )  # fmt: skip
        first = [await caller.outbox.request(SendCommand(message), 5) for caller in callers]
        assert desk.paid == ["A"] * 4  # one run per caller
        again = [await caller.outbox.request(SendCommand(message), 5) for caller in callers]
        assert desk.paid == ["A"] * 4
        assert again == first
    finally:
        for bundle in reversed(started):
            await bundle.stop()
        await bus.stop()
