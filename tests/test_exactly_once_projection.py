"""Exactly-once projections: a projector's writes and its checkpoint commit in one transaction of the consumer store.

Every test runs a real server (SQLite event store) and a projector bundle whose consumer state store is SQLite,
PostgreSQL or MariaDB; the projector journals account events through :func:`evento.projection_transaction`, one
unkeyed row per event handled, so a duplicate would show. A handler failing after its write, a stale checkpoint and
a process killed between the write and the checkpoint all leave each event projected exactly once. The journal is
read on connections of the test's own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import types
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from evento import (
    Bundle,
    CommandGateway,
    ConsumerSettings,
    EventoServer,
    SequenceNumber,
    TransientConsumerError,
    event_handler,
    projection_transaction,
    projector,
)
from evento.consumer_stores import ConsumerStateStore, MemoryConsumerStateStore, open_consumer_store
from evento.demo.todolist.read_model import Session, TodoListReadModel
from evento.testing.databases import mysql_database, postgres_database
from tests.bank import Account, AccountOpened, Deposit, Deposited, OpenAccount
from tests.helpers import start_server, wait_until

FAST = ConsumerSettings(error_delay=0.02, max_backoff=0.1, idle_poll=0.5, lease_seconds=2.0)
CONSUMER = "journal_JournalProjector_1_*"
OPENED = (1, "opened", 0)  # the account is opened first, so its event is sequence number 1


@dataclass
class Plan:
    """What the projector does, shared with the test (handlers run on the consumer store's thread)."""

    failing: dict[int, Exception] = field(default_factory=dict)  # seq -> raised after the write, until removed
    crash_on: int | None = None  # seq whose handler kills the process right after its write
    own: TodoListReadModel | None = None  # write there, on a connection of its own, not in the transaction
    attempts: dict[int, int] = field(default_factory=dict)
    rows_before_write: dict[int, list[int]] = field(default_factory=dict)  # per attempt: rows of its seq already there
    dialects: set[str | None] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


@projector(version=1, exactly_once=True)
class JournalProjector:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    @event_handler
    def on_opened(self, event: AccountOpened, seq: SequenceNumber) -> None:
        self._journal(seq, "opened", 0)

    @event_handler(retry=-1, retry_delay=0.01)
    def on_deposited(self, event: Deposited, seq: SequenceNumber) -> None:
        self._journal(seq, "deposited", event.amount)

    def _journal(self, seq: int, name: str, amount: int) -> None:
        plan, transaction = self.plan, projection_transaction()
        with plan.lock:
            plan.dialects.add(transaction.dialect if transaction else None)
            plan.attempts[seq] = plan.attempts.get(seq, 0) + 1

        def write(db: Session) -> None:
            row = db.row("SELECT COUNT(*) FROM journal WHERE seq = ?", seq)
            plan.rows_before_write.setdefault(seq, []).append(int(row[0]) if row else 0)
            db.execute("INSERT INTO journal (seq, event, amount) VALUES (?, ?, ?)", seq, name, amount)

        if plan.own is not None:
            plan.own.write(write)
        else:
            assert transaction is not None, "no projection transaction and no read model of its own"
            write(Session(transaction.connection, transaction.dialect))
        if plan.crash_on == seq:
            os._exit(17)  # killed after the write, before the checkpoint: no cleanup, no rollback of ours
        error = plan.failing.get(seq)
        if error is not None:
            raise error


@projector(version=1, exactly_once=True)
class BoundedJournalProjector(JournalProjector):
    """The same journal, giving a deposit up after two retries."""

    @event_handler(retry=2, retry_delay=0.01)
    def on_deposited(self, event: Deposited, seq: SequenceNumber) -> None:
        self._journal(seq, "deposited", event.amount)


# --- databases ----------------------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A consumer store spec naming an empty database of each dialect, the journal table created in it."""
    if request.param == "sqlite":
        spec = str(tmp_path / "consumers.db")
        create_journal(spec)
        yield spec
        return
    with postgres_database() if request.param == "postgresql" else mysql_database() as url:
        create_journal(url)
        yield url


def create_journal(spec: str) -> None:
    """Before the projector runs: a CREATE inside a projection transaction would commit it half-way on MySQL."""
    db = TodoListReadModel(spec)
    try:
        db.read(lambda s: s.execute("CREATE TABLE journal (seq BIGINT NOT NULL, event VARCHAR(32), amount INTEGER)"))
    finally:
        db.close()


def journal(spec: str) -> list[tuple[int, str, int]]:
    db = TodoListReadModel(spec)
    try:
        rows = db.read(lambda s: s.rows("SELECT seq, event, amount FROM journal ORDER BY seq"))
    finally:
        db.close()
    return [(int(r[0]), str(r[1]), int(r[2])) for r in rows]


# --- a running system ---------------------------------------------------------------------------------------------


@dataclass
class Running:
    """The server, the account writer and a started journal bundle."""

    server: EventoServer
    commands: CommandGateway
    store: ConsumerStateStore
    plan: Plan
    bundle: Bundle

    async def checkpoint(self) -> int | None:
        found = await self.store.read_checkpoint(CONSUMER)
        return found.sequence_number if found else None

    async def checkpoint_is(self, sequence_number: int) -> bool:
        return await self.checkpoint() == sequence_number

    async def deposit(self, amount: int) -> int:
        return await deposit(self.server, self.commands, amount)


async def deposit(server: EventoServer, commands: CommandGateway, amount: int) -> int:
    """Deposit into account A; returns the event's sequence number (the head right after: sends are sequential)."""
    await commands.send(Deposit(account="A", amount=amount))
    return await server.store.head()


async def start_writer(server: EventoServer) -> tuple[Bundle, CommandGateway]:
    bundle = Bundle("accounts", components=[Account])
    await bundle.start(server)
    return bundle, bundle.gateways(None)[0]


def journal_bundle(store: ConsumerStateStore, plan: Plan, component: type[Any] = JournalProjector) -> Bundle:
    name = "journal" if component is JournalProjector else "bounded"
    return Bundle(name, components=[component], consumer_store=store, injector={Plan: plan}.get, consumer_settings=FAST)


@pytest.fixture
async def writer(server: EventoServer) -> AsyncIterator[CommandGateway]:
    bundle, commands = await start_writer(server)
    await commands.send(OpenAccount(account="A"))
    yield commands
    await bundle.stop()


@pytest.fixture
async def running(
    server: EventoServer, writer: CommandGateway, database: str, tmp_path: Path
) -> AsyncIterator[Running]:
    plan, store = Plan(), open_consumer_store(database, data_dir=tmp_path)
    bundle = journal_bundle(store, plan)
    await bundle.start(server)
    await bundle.wait_for_head(10.0)
    yield Running(server, writer, store, plan, bundle)
    await bundle.stop()


# --- the handler fails after its write ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [RuntimeError("read model rejected the deposit"), TransientConsumerError("read model briefly unavailable")],
    ids=["retried", "transient"],
)
async def test_a_handler_failing_after_its_write_leaves_nothing_and_is_retried(
    running: Running, database: str, error: Exception
) -> None:
    """While the handler keeps failing after its INSERT (retried in place, or redelivered after a transient
    error), no row is visible and the checkpoint stays before the event; once it succeeds, row and checkpoint
    land together, once."""
    first = await running.deposit(10)
    await wait_until(lambda: running.checkpoint_is(first), what="first deposit projected")
    assert running.plan.dialects == {running.store.dialect}
    second = first + 1
    running.plan.failing[second] = error
    assert await running.deposit(20) == second
    await wait_until(lambda: running.plan.attempts.get(second, 0) >= 3, what="the failing deposit retried")

    assert await running.checkpoint() == first
    assert journal(database) == [OPENED, (first, "deposited", 10)]

    del running.plan.failing[second]
    await wait_until(lambda: running.checkpoint_is(second), what="the deposit projected once it succeeds")
    assert journal(database) == [OPENED, (first, "deposited", 10), (second, "deposited", 20)]
    # Every attempt began without the writes of the attempts before it: they were rolled back.
    assert set(running.plan.rows_before_write[second]) == {0}
    assert not (await running.store.error_state(CONSUMER)).in_error


async def test_a_dead_lettered_event_leaves_no_write_behind(
    server: EventoServer, writer: CommandGateway, database: str, tmp_path: Path
) -> None:
    """A handler that exhausts its retries parks the event in the dead event queue and the checkpoint moves on;
    none of the failed attempts' writes stays."""
    plan = Plan()
    bundle = journal_bundle(open_consumer_store(database, data_dir=tmp_path), plan, BoundedJournalProjector)
    await bundle.start(server)
    try:
        await bundle.wait_for_head(10.0)
        bad = await server.store.head() + 1
        plan.failing[bad] = ValueError("unlucky amount")
        assert await deposit(server, writer, 13) == bad
        good = await deposit(server, writer, 20)
        engine = bundle.consumers["bounded_BoundedJournalProjector_1_*"]

        async def projected() -> bool:
            return (await engine.describe()).checkpoint == good

        await wait_until(projected, what="the good deposit projected after the bad one")
        assert plan.attempts[bad] == 3
        assert [dead.event.sequence_number for dead in await engine.dead_events()] == [bad]
        assert journal(database) == [OPENED, (good, "deposited", 20)]
    finally:
        await bundle.stop()


# --- a stale checkpoint -------------------------------------------------------------------------------------------


async def test_a_stale_checkpoint_commits_none_of_the_handlers_writes(
    running: Running, database: str, tmp_path: Path
) -> None:
    """Another instance commits the checkpoint behind this one's back (it held the consumer for a moment): this
    instance's next commit fails on the version, keeps none of the handler's writes, re-reads the checkpoint and
    projects the event once."""
    first = await running.deposit(10)
    await wait_until(lambda: running.checkpoint_is(first), what="first deposit projected")
    other = open_consumer_store(database, data_dir=tmp_path)  # the other instance, on connections of its own
    await other.start()
    commit_with = running.store.commit_with
    interfered: list[int] = []

    async def after_another_instance(consumer_id: str, sequence_number: int, expected_version: int, work: Any) -> Any:
        if not interfered:
            current = await other.read_checkpoint(consumer_id)
            assert current is not None
            assert current.version == expected_version
            moved = await other.commit_checkpoint(consumer_id, current.sequence_number, current.version)
            interfered.append(moved.version)
        return await commit_with(consumer_id, sequence_number, expected_version, work)

    running.store.commit_with = after_another_instance  # type: ignore[method-assign]
    try:
        second = await running.deposit(20)
        await wait_until(lambda: running.checkpoint_is(second), what="the deposit projected after the re-read")
    finally:
        await other.stop()
    assert interfered
    assert journal(database) == [OPENED, (first, "deposited", 10), (second, "deposited", 20)]
    assert set(running.plan.rows_before_write[second]) == {0}


# --- a crash between the write and the checkpoint -----------------------------------------------------------------

CHILD = """
import asyncio, sys
from pathlib import Path
from evento.consumer_stores import open_consumer_store
from evento.demo.todolist.read_model import TodoListReadModel
from tests.helpers import start_server
from tests.test_exactly_once_projection import Plan, journal_bundle

async def main(data: Path, spec: str, journal: str, crash_on: int) -> None:
    server = await start_server(data)
    plan = Plan(crash_on=crash_on, own=None if journal == spec else TodoListReadModel(journal))
    await journal_bundle(open_consumer_store(spec, data_dir=data), plan).start(server)
    await asyncio.sleep(30)  # the handler of crash_on ends the process long before
    sys.exit("the projector never reached the event it should crash on")

asyncio.run(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])))
"""


@pytest.mark.slow
@pytest.mark.parametrize("shared", [True, False], ids=["in-the-transaction", "own-database"])
async def test_a_crash_after_the_write_and_before_the_checkpoint_projects_the_event_once(
    database: str, tmp_path: Path, shared: bool
) -> None:
    """A projector process killed (``os._exit``) right after its INSERT, before the checkpoint commit, projects
    the event again when restarted. In the projection transaction the first write died with the process: the
    journal shows the event once. The same crash with the journal in a database of its own (at-least-once, shown
    for contrast) leaves the event twice."""
    journal_spec = database
    if not shared:
        journal_spec = str(tmp_path / "journal.db")
        create_journal(journal_spec)
    server = await start_server(tmp_path)
    writer, commands = await start_writer(server)
    await commands.send(OpenAccount(account="A"))
    crash_on = await deposit(server, commands, 10)
    await writer.stop()
    await server.stop()  # the child owns the SQLite event store while it runs

    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path), database, journal_spec, str(crash_on)],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 17, child.stderr
    assert [row[0] for row in journal(journal_spec)] == ([1] if shared else [1, crash_on])

    server = await start_server(tmp_path)
    plan = Plan(own=None if shared else TodoListReadModel(journal_spec))
    store = open_consumer_store(database, data_dir=tmp_path)
    restarted = journal_bundle(store, plan)
    await restarted.start(server)
    try:
        await restarted.wait_for_head(10.0)
        checkpoint = await store.read_checkpoint(CONSUMER)
        assert checkpoint is not None
        assert checkpoint.sequence_number == crash_on
    finally:
        await restarted.stop()
        await server.stop()
        if plan.own is not None:
            plan.own.close()
    once = [OPENED, (crash_on, "deposited", 10)]
    assert journal(journal_spec) == (once if shared else [*once, (crash_on, "deposited", 10)])


# --- where there is no transaction to share -----------------------------------------------------------------------


async def test_without_a_transactional_store_handlers_run_as_before(
    server: EventoServer, writer: CommandGateway, tmp_path: Path
) -> None:
    """On the memory store there is no transaction to share: projection_transaction() is None and the handler
    writes on its read model's own connection, as it always did."""
    spec = str(tmp_path / "journal.db")
    create_journal(spec)
    plan = Plan(own=TodoListReadModel(spec))
    store = MemoryConsumerStateStore()
    bundle = journal_bundle(store, plan)
    await bundle.start(server)
    try:
        deposited = await deposit(server, writer, 5)

        async def projected() -> bool:
            found = await store.read_checkpoint(CONSUMER)
            return found is not None and found.sequence_number == deposited

        await wait_until(projected, what="deposit projected")
    finally:
        await bundle.stop()
        assert plan.own is not None
        plan.own.close()
    assert plan.dialects == {None}
    assert journal(spec) == [OPENED, (deposited, "deposited", 5)]


def test_projection_transaction_is_none_outside_a_handler() -> None:
    assert projection_transaction() is None


def test_the_documented_example_runs() -> None:
    """The example in projection_transaction's docstring, run as written."""
    doc = projection_transaction.__doc__
    assert doc is not None
    code = textwrap.dedent(doc.split("::\n", 1)[1])
    module = types.ModuleType("evento_projection_example")
    sys.modules[module.__name__] = module  # component classes are read through their module
    try:
        exec(compile(code, "projection_transaction example", "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]


def test_a_read_model_joins_only_transactions_of_its_own_database(tmp_path: Path) -> None:
    """The read model writes in a projection transaction only when the consumer store is its database."""
    (tmp_path / "sub").mkdir()
    read_model = TodoListReadModel("sqlite:consumers.db", data_dir=tmp_path)
    assert read_model.shares(open_consumer_store(str(tmp_path / "sub" / ".." / "consumers.db")))
    assert not read_model.shares(open_consumer_store(str(tmp_path / "other.db")))
    assert not read_model.shares(MemoryConsumerStateStore())
    assert not TodoListReadModel("postgresql://nowhere/db").shares(open_consumer_store("postgresql://elsewhere/db"))
    assert TodoListReadModel("mysql://root@nowhere/db").shares(open_consumer_store("mysql://root@nowhere/db"))


def test_a_read_model_refuses_what_is_not_a_database() -> None:
    """Bad configuration is refused when the read model is built, naming what is accepted."""
    with pytest.raises(
        ValueError, match=r"not a store URL: 'mongodb://nowhere/db'; a read model database is one of: memory"
    ):
        TodoListReadModel("mongodb://nowhere/db")
    with pytest.raises(ValueError, match="a read model needs a database"):
        TodoListReadModel("memory")
