"""Telemetry end to end: real servers (SQLite, and PostgreSQL for the store's arithmetic), real bundles in process
and over TCP; counts checked against the commands sent, sampling, the broker's phases, lost reports, the TTL
purge and the Prometheus text."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from evento import Bundle
from evento.bundle.telemetry import TelemetryCollector, TelemetryOptions
from evento.consumer_stores.base import ConsumerStateStore
from evento.consumer_stores.memory import MemoryConsumerStateStore
from evento.consumer_stores.sqlite import SQLiteConsumerStateStore
from evento.demo.todolist.system import TodoListSystem
from evento.discovery import NodeInfo
from evento.event_stores import SQLiteEventStore, open_event_store
from evento.messages import ConsumerTelemetry, HandlerTelemetry, ReportTelemetry, now_ms
from evento.server import EventoServer
from evento.server.bus import BusServer
from evento.server.telemetry import OVERHEAD_POOL, Aggregation, HandlerStats, TelemetrySettings, TelemetryStore
from evento.storage.database import Database
from evento.testing.databases import postgres_database
from evento.transport.connector import TcpConnector
from tests.helpers import wait_until
from tests.telemetry_domain import (
    Announcer,
    Board,
    Clerk,
    Tally,
    TallyProjection,
    TallyProjector,
    TallyWatcher,
)

DEADLINE = 15.0
FAST = TelemetryOptions(interval=0.05)


@dataclass
class System:
    """A server and the tally bundles on it."""

    server: EventoServer
    bundles: list[Bundle]
    clerk: Clerk
    announcer: Announcer

    async def stats(self) -> dict[tuple[str, str, str], HandlerStats]:
        return {(s.component, s.handler_kind, s.payload): s for s in await self.server.telemetry.handler_stats()}


def tally_bundles(telemetry: TelemetryOptions, aggregate_telemetry: TelemetryOptions | None = None) -> list[Bundle]:
    """The aggregate, a read side (projector + projection), a reaction side (observer + service) and the clerk."""
    board = Board()
    return [
        Bundle("tally-write", components=[Tally], telemetry=aggregate_telemetry or telemetry),
        Bundle(
            "tally-read",
            components=[TallyProjector, TallyProjection],
            injector=lambda annotation: board if annotation is Board else None,
            telemetry=telemetry,
        ),
        Bundle("tally-react", components=[TallyWatcher, Announcer], telemetry=telemetry),
        Bundle("tally-front", components=[Clerk], telemetry=telemetry),
    ]


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[System]:
    server = EventoServer(SQLiteEventStore(tmp_path / "events.db"), telemetry=TelemetrySettings(flush_interval=0.05))
    await server.start()
    bundles = tally_bundles(FAST)
    try:
        for bundle in bundles:
            await bundle.start(server)
        react = bundles[2]
        announcer = next(i for spec, i in react.components if spec.cls is Announcer)
        yield System(server, bundles, bundles[3].invoker(Clerk), announcer)
    finally:
        for bundle in reversed(bundles):
            await bundle.stop()
        await server.stop()


def metrics(server: EventoServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The server's Prometheus text parsed: sample name and labels -> value."""
    samples = {}
    for family in text_string_to_metric_families(server.metrics.render().decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


# --- counts ------------------------------------------------------------------------------------------------------


async def test_telemetry_counts_every_handler_kind_as_sent(system: System) -> None:
    tallies = 12
    for n in range(tallies):
        await system.clerk.open(f"t{n}")
        await system.clerk.bump(f"t{n}")
        await system.clerk.bump(f"t{n}")
    await wait_until(lambda: system.announcer.announced == tallies, DEADLINE, what="every tally announced")
    reads = 0
    for n in range(tallies):

        async def projected(name: str = f"t{n}") -> bool:
            nonlocal reads
            reads += 1
            try:
                return await system.clerk.read(name) == 2
            except LookupError:
                return False

        await wait_until(projected, DEADLINE, what="tally projected")

    expected = {
        ("Tally", "AggregateCommandHandler", "OpenTally"): tallies,
        ("Tally", "AggregateCommandHandler", "Bump"): 2 * tallies,
        ("TallyProjector", "EventHandler", "TallyOpened"): tallies,
        ("TallyProjector", "EventHandler", "Bumped"): 2 * tallies,
        ("TallyWatcher", "EventHandler", "TallyOpened"): tallies,
        ("Announcer", "CommandHandler", "Announce"): tallies,
        ("TallyProjection", "QueryHandler", "GetTally"): reads,
        ("Clerk", "InvocationHandler", "Clerk::open"): tallies,
        ("Clerk", "InvocationHandler", "Clerk::bump"): 2 * tallies,
        ("Clerk", "InvocationHandler", "Clerk::read"): reads,
    }

    async def counted() -> bool:
        stats = await system.stats()
        return all(key in stats and stats[key].arrivals == n for key, n in expected.items())

    await wait_until(counted, DEADLINE, what="telemetry showing every handling")
    stats = await system.stats()
    for key, n in expected.items():
        s = stats[key]
        assert (s.count, s.arrivals) == (n, n), key  # capture rate 1: every handling timed
        assert 0 < s.min_ms <= s.mean_ms <= s.max_ms, key
        assert s.aged_mean_ms > 0, key
        assert s.last_ms > 0, key
        assert s.arrival_rate_per_s > 0, key
    # Kinds and the component kinds as the catalog names them.
    assert stats[("TallyWatcher", "EventHandler", "TallyOpened")].component_kind == "Observer"
    assert stats[("Clerk", "InvocationHandler", "Clerk::open")].component_kind == "Invoker"
    # What each handling sent, per handling.
    assert stats[("Clerk", "InvocationHandler", "Clerk::open")].invocation_probability == {"OpenTally": 1.0}
    assert stats[("Clerk", "InvocationHandler", "Clerk::bump")].invocation_probability == {"Bump": 1.0}
    assert stats[("Clerk", "InvocationHandler", "Clerk::read")].invocation_probability == {"GetTally": 1.0}
    assert stats[("TallyWatcher", "EventHandler", "TallyOpened")].invocation_probability == {"Announce": 1.0}
    assert stats[("Tally", "AggregateCommandHandler", "Bump")].invocation_probability == {}

    # The server's own stations: every command through the gateway, every event appended by the broker, every
    # query through the router.
    commands, events = 3 * tallies + tallies, 3 * tallies  # the announcements store no event

    async def stations_counted() -> bool:
        stations = await system.server.telemetry.server_stations()
        return (
            "gateway" in stations
            and stations["gateway"].arrivals == commands
            and stations["event_store"].arrivals == events
            and stations["query_gateway"].arrivals == reads
        )

    await wait_until(stations_counted, DEADLINE, what="the server's stations")
    stations = await system.server.telemetry.server_stations()
    assert stations["gateway"].count == commands
    assert stations["event_store"].count == events
    assert stations["query_gateway"].count == reads
    assert stations["query_gateway"].mean_ms > 0
    assert stations["event_store"].mean_ms > 0
    assert stations["gateway"].mean_ms > 0

    # The broker's phases of the aggregate's commands, bucketed.
    async def phases_counted() -> bool:
        series = await system.server.telemetry.aggregate_phases("tally-write", "Tally", Aggregation.AVG, 3600)
        return {s.payload: sum(p.hits for p in s.points) for s in series} == {"Bump": 2 * tallies, "OpenTally": tallies}

    await wait_until(phases_counted, DEADLINE, what="the aggregate's phases")
    for series in await system.server.telemetry.aggregate_phases("tally-write", "Tally", "AVG", 3600):
        (point,) = [p for p in series.points if p.hits]
        assert point.compute_ms is not None
        assert point.compute_ms > 0
        assert point.publish_ms is not None
        assert point.publish_ms > 0
        assert point.lock_ms is not None
        assert point.retrieve_ms is not None
        assert point.total_ms is not None
        assert point.total_ms >= point.compute_ms + point.publish_ms

    # The handlers' time buckets: one bucket of an hour holds them all.
    handler_series = await system.server.telemetry.series("tally-read", "TallyProjector", "MAX", 3600)
    hits = {s.payload: sum(p.hits for p in s.points) for s in handler_series}
    assert hits == {"TallyOpened": tallies, "Bumped": 2 * tallies}


async def test_sampling_times_a_share_but_counts_every_arrival(tmp_path: Path) -> None:
    server = EventoServer(SQLiteEventStore(tmp_path / "events.db"))
    await server.start()
    half = TelemetryOptions(capture_rate=0.5, interval=0.05)
    bundles = [Bundle("tally-write", components=[Tally], telemetry=half), Bundle("tally-front", components=[Clerk])]
    try:
        for bundle in bundles:
            await bundle.start(server)
        clerk = bundles[1].invoker(Clerk)
        await clerk.open("sampled")
        bumps = 400
        await asyncio.gather(*(clerk.bump("sampled") for _ in range(bumps)))

        async def arrived() -> dict[str, HandlerStats]:
            return {s.payload: s for s in await server.telemetry.handler_stats("tally-write")}

        await wait_until(lambda: _arrivals(arrived, "Bump", bumps), DEADLINE, what="every bump counted as an arrival")
        bump = (await arrived())["Bump"]
        # Binomial(400, 0.5): mean 200, standard deviation 10; six deviations either way.
        assert 140 <= bump.count <= 260, bump.count
        assert bump.arrivals == bumps
    finally:
        for bundle in reversed(bundles):
            await bundle.stop()
        await server.stop()


async def test_a_replay_counts_every_event_at_any_rate(tmp_path: Path) -> None:
    """A projector replaying the log on an in-memory store handles events in groups on a worker thread: every
    event is an arrival, and the sampled ones are timed."""
    server = EventoServer(SQLiteEventStore(tmp_path / "events.db"))
    await server.start()
    writers = [Bundle("tally-write", components=[Tally]), Bundle("tally-front", components=[Clerk])]
    readers: list[Bundle] = []
    try:
        for bundle in writers:
            await bundle.start(server)
        clerk = writers[1].invoker(Clerk)
        tallies, bumps = 20, 15
        for n in range(tallies):
            await clerk.open(f"r{n}")
            await asyncio.gather(*(clerk.bump(f"r{n}") for _ in range(bumps)))
        for rate in (1.0, 0.5):
            board = Board()
            reader = Bundle(
                f"replay-{rate}",
                components=[TallyProjector],
                injector=lambda annotation, board=board: board if annotation is Board else None,
                telemetry=TelemetryOptions(capture_rate=rate, interval=0.05),
            )
            readers.append(reader)
            await reader.start(server)
            await reader.wait_for_head(DEADLINE)
            assert len(board.values) == tallies

            async def replayed(bundle_id: str = reader.bundle_id) -> bool:
                stats = {s.payload: s for s in await server.telemetry.handler_stats(bundle_id)}
                return "Bumped" in stats and stats["Bumped"].arrivals == tallies * bumps

            await wait_until(replayed, DEADLINE, what=f"every replayed event counted at rate {rate}")
            stats = {s.payload: s for s in await server.telemetry.handler_stats(reader.bundle_id)}
            assert stats["TallyOpened"].arrivals == tallies
            if rate == 1.0:
                assert stats["Bumped"].count == tallies * bumps
                assert 0 < stats["Bumped"].min_ms <= stats["Bumped"].max_ms
            else:
                # Binomial(300, 0.5): mean 150, standard deviation 8.7; six deviations either way.
                assert 98 <= stats["Bumped"].count <= 202, stats["Bumped"].count
    finally:
        for bundle in [*readers, *reversed(writers)]:
            await bundle.stop()
        await server.stop()


@pytest.mark.parametrize("durable", [False, True], ids=["memory-grouped", "sqlite-one-by-one"])
async def test_a_consumers_report_carries_the_events_it_consumed_and_its_busy_time(
    tmp_path: Path, durable: bool
) -> None:
    """A projector's engine counts every event it consumed and the time from taking each (or each group) to its
    checkpoint committed: more than its handlers' time (hops, commits), less than the wall time it had. One by
    one on a durable store, in groups on the in-memory one."""
    server = EventoServer(SQLiteEventStore(tmp_path / "events.db"))
    await server.start()
    board = Board()
    store: ConsumerStateStore = (
        SQLiteConsumerStateStore(tmp_path / "consumers.db") if durable else MemoryConsumerStateStore()
    )
    reader = Bundle(
        "tally-read",
        components=[TallyProjector],
        consumer_store=store,
        injector=lambda annotation: board if annotation is Board else None,
        telemetry=TelemetryOptions(interval=3600.0),  # no periodic report takes the counts from under the test
    )
    bundles = [Bundle("tally-write", components=[Tally]), Bundle("tally-front", components=[Clerk]), reader]
    try:
        for bundle in bundles:
            await bundle.start(server)
        (engine,) = reader.consumers.values()
        reader.telemetry.take()
        reader.telemetry.take_loads()
        started = time.perf_counter()
        clerk = bundles[1].invoker(Clerk)
        tallies, bumps = 6, 4
        for n in range(tallies):
            await clerk.open(f"b{n}")
            for _ in range(bumps):
                await clerk.bump(f"b{n}")
        head = await engine.head()

        async def committed() -> bool:
            return (await engine.describe()).checkpoint == head

        await wait_until(committed, DEADLINE, what="every event's checkpoint committed")
        _, _, handlers = reader.telemetry.take()
        loads = reader.telemetry.take_loads()
        wall_ms = (time.perf_counter() - started) * 1000
        (position,) = await reader.telemetry.consumer_positions(loads)
        consumed = tallies * (1 + bumps)
        assert (position.consumer_id, position.component) == (engine.consumer_id, "TallyProjector")
        assert position.events == consumed
        handled = [h for h in handlers if h.component == "TallyProjector"]
        assert sum(h.arrivals for h in handled) == consumed
        handler_ms = sum(h.total_ms for h in handled)
        assert handler_ms < position.busy_ms < wall_ms
        # Taken: the next report starts from nothing.
        assert reader.telemetry.take_loads() == {engine.consumer_id: (0, 0.0)}
    finally:
        for bundle in reversed(bundles):
            await bundle.stop()
        await server.stop()


async def _arrivals(read: Any, payload: str, expected: int) -> bool:
    stats = await read()
    return payload in stats and stats[payload].arrivals == expected


async def test_capture_rate_zero_reports_nothing(tmp_path: Path) -> None:
    server = EventoServer(SQLiteEventStore(tmp_path / "events.db"))
    await server.start()
    off = TelemetryOptions(capture_rate=0.0, interval=0.05)
    bundles = [Bundle("tally-write", components=[Tally], telemetry=off), Bundle("tally-front", components=[Clerk])]
    try:
        for bundle in bundles:
            await bundle.start(server)
        assert bundles[0].telemetry.enabled is False
        clerk = bundles[1].invoker(Clerk)
        await clerk.open("quiet")
        await bundles[1].telemetry.flush()
        # The front bundle (rate 1) reported its invocation; the write bundle has no collector task at all.
        assert await bundles[0].telemetry.flush() is False
        stats = {s.bundle_id for s in await server.telemetry.handler_stats()}
        assert stats == {"tally-front"}
    finally:
        for bundle in reversed(bundles):
            await bundle.stop()
        await server.stop()


def test_handlings_finished_on_worker_threads_are_all_counted() -> None:
    """Plain handlers finish on worker threads while the loop takes the tallies: nothing is lost or counted
    twice."""
    collector = TelemetryCollector(TelemetryOptions(capture_rate=0.5))
    key = collector.key("Projector", "Projector", "EventHandler", "Happened")
    threads, each = 8, 5_000
    started = threading.Barrier(threads + 1)

    def handle() -> None:
        started.wait()
        for _ in range(each):
            sample = collector.begin_threadsafe(key)
            if sample is not None:
                collector.end_threadsafe(sample)

    workers = [threading.Thread(target=handle) for _ in range(threads)]
    for worker in workers:
        worker.start()
    started.wait()
    arrivals = timed = 0
    while any(worker.is_alive() for worker in workers):
        for handler in collector.take()[2]:
            arrivals, timed = arrivals + handler.arrivals, timed + handler.count
    for worker in workers:
        worker.join()
    for handler in collector.take()[2]:
        arrivals, timed = arrivals + handler.arrivals, timed + handler.count
    assert arrivals == threads * each
    assert 0 < timed < arrivals


# --- over TCP --------------------------------------------------------------------------------------------------


async def test_todolist_over_tcp_counts_match_and_metrics_show_them(tmp_path: Path) -> None:
    server = EventoServer(SQLiteEventStore(tmp_path / "events.db"), telemetry=TelemetrySettings(flush_interval=0.05))
    await server.start()
    bus = BusServer(server, "127.0.0.1", 0)
    await bus.start()
    system = TodoListSystem(tmp_path / "bundles", service_delay=0.0)
    try:
        for bundle in system.bundles:
            await bundle.start(TcpConnector(f"127.0.0.1:{bus.port}"))
        invoker = system.invoker()
        lists = 6
        identifiers = [await invoker.create_todo_list(f"list {n}", "ada") for n in range(lists)]
        for identifier in identifiers:
            for todo in range(2):
                await invoker.add_todo(identifier, f"todo {todo}", "ada")

        async def counted() -> bool:
            # The TodoList bundles report every 5 s; flushing now ships the same report sooner.
            for bundle in system.bundles:
                await bundle.telemetry.flush()
            stats = {(s.component, s.payload): s for s in await server.telemetry.handler_stats()}
            wanted = {
                ("TodoListAggregate", "TodoListCreateCommand"): lists,
                ("TodoListAggregate", "TodoListAddTodoCommand"): 2 * lists,
                ("TodoListProjector", "TodoListCreatedEvent"): lists,
                ("TodoListProjector", "TodoListTodoAddedEvent"): 2 * lists,
                ("TodoListInvoker", "TodoListInvoker::create_todo_list"): lists,
            }
            return all(key in stats and stats[key].count == n for key, n in wanted.items())

        await wait_until(counted, DEADLINE, what="TodoList telemetry over TCP")
        stats = {(s.component, s.payload): s for s in await server.telemetry.handler_stats()}
        create = stats[("TodoListInvoker", "TodoListInvoker::create_todo_list")]
        assert create.invocation_probability == {"TodoListCreateCommand": 1.0}

        async def lag_zero() -> bool:
            for bundle in system.bundles:
                await bundle.telemetry.flush()
            values = metrics(server)
            lag = values.get(
                ("evento_consumer_lag_events", (("bundle", "todolist-query"), ("consumer", _projector_id(system))))
            )
            return lag == 0

        await wait_until(lag_zero, DEADLINE, what="the projector's lag at 0 in /metrics")
        values = metrics(server)
        assert values[("evento_bus_connections", ())] == len(system.bundles)
        assert values[("evento_bus_requests_in_flight", ())] >= 0
        aggregate = (
            ("bundle", "todolist-command"),
            ("component", "TodoListAggregate"),
            ("handler", "TodoListAddTodoCommand"),
            ("kind", "AggregateCommandHandler"),
        )
        assert values[("evento_handler_invocations_total", aggregate)] == 2 * lists
        assert values[("evento_handler_service_seconds_count", aggregate)] == 2 * lists
        assert values[("evento_handler_service_seconds_sum", aggregate)] > 0
        assert values[("evento_event_store_appends_total", ())] >= 3 * lists
        assert (
            values[("evento_event_store_append_seconds_count", ())] == values[("evento_event_store_appends_total", ())]
        )
        dead = ("evento_consumer_dead_events", (("bundle", "todolist-query"), ("consumer", _projector_id(system))))
        assert values[dead] == 0
    finally:
        await system.stop()
        await bus.stop()
        await server.stop()


def _projector_id(system: TodoListSystem) -> str:
    (consumer,) = [c for c in system.query.consumers if "TodoListProjector" in c]
    return consumer


async def test_a_report_the_server_cannot_take_is_dropped_not_retried(tmp_path: Path) -> None:
    server = EventoServer(SQLiteEventStore(tmp_path / "events.db"))
    await server.start()
    bus = BusServer(server, "127.0.0.1", 0)
    await bus.start()
    options = TelemetryOptions(interval=3600, report_timeout=0.3)
    write = Bundle("tally-write", components=[Tally], telemetry=options)
    front = Bundle("tally-front", components=[Clerk], telemetry=options)
    try:
        for bundle in (write, front):
            await bundle.start(TcpConnector(f"127.0.0.1:{bus.port}"))
        clerk = front.invoker(Clerk)
        await clerk.open("lost")
        await bus.stop()  # the server goes away: nothing reaches it any more
        started = time.monotonic()
        assert await write.telemetry.flush() is False
        assert time.monotonic() - started < 2.0  # bounded by the report timeout, not waiting for the server
        assert write.telemetry.reports_dropped == 1
        assert write.telemetry.take()[2] == []  # dropped: nothing kept to send again
        assert await server.telemetry.handler_stats("tally-write") == []
    finally:
        for bundle in (front, write):
            await bundle.stop()
        await server.stop()


async def test_servers_of_a_cluster_share_telemetry(tmp_path: Path) -> None:
    """Two servers on one PostgreSQL: what bundles report to one, the other answers (the API of any server shows
    the whole cluster)."""
    with postgres_database() as url:
        servers = [EventoServer(open_event_store(url, data_dir=tmp_path), server_id=f"server-{n}") for n in range(2)]
        for server in servers:
            await server.start()
        bundles = [Bundle("tally-write", components=[Tally], telemetry=FAST), Bundle("tally-front", components=[Clerk])]
        try:
            for bundle in bundles:
                await bundle.start(servers[0])
            clerk = bundles[1].invoker(Clerk)
            for n in range(5):
                await clerk.open(f"c{n}")

            async def seen_by_the_other() -> bool:
                stats = {s.payload: s for s in await servers[1].telemetry.handler_stats("tally-write")}
                return "OpenTally" in stats and stats["OpenTally"].count == 5

            await wait_until(seen_by_the_other, DEADLINE, what="the other server reading the shared telemetry")
        finally:
            for bundle in reversed(bundles):
                await bundle.stop()
            for server in servers:
                await server.stop()


# --- the store's arithmetic, on SQLite and PostgreSQL -----------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "events.db")
        return
    with postgres_database() as url:
        yield url


@pytest.fixture
async def telemetry(store_url: str, tmp_path: Path) -> AsyncIterator[TelemetryStore]:
    store = open_event_store(store_url, data_dir=tmp_path)
    await store.start()
    database: Database = store.database()
    await database.start()
    telemetry = TelemetryStore(database, TelemetrySettings(ttl_days=1.0))
    await telemetry.start()
    try:
        yield telemetry
    finally:
        await telemetry.stop()
        await database.stop()
        await store.stop()


def handler(count: int, total_ms: float, arrivals: int, sends: dict[str, int] | None = None, **times: float) -> Any:
    return HandlerTelemetry(
        component="Tally",
        component_kind="Aggregate",
        handler_kind="AggregateCommandHandler",
        payload="Bump",
        count=count,
        total_ms=total_ms,
        min_ms=times.get("min_ms", total_ms / count if count else 0.0),
        max_ms=times.get("max_ms", total_ms / count if count else 0.0),
        last_ms=times.get("last_ms", total_ms / count if count else 0.0),
        arrivals=arrivals,
        sends=sends or {},
    )


def report(start: int, handlers: list[HandlerTelemetry], *consumers: ConsumerTelemetry) -> ReportTelemetry:
    return ReportTelemetry(start, start + 1000, handlers, list(consumers))


A = NodeInfo("tally-write", 1, "instance-a")
B = NodeInfo("tally-write", 1, "instance-b")


async def only(telemetry: TelemetryStore) -> HandlerStats:
    (stats,) = await telemetry.handler_stats()
    return stats


async def test_statistics_age_as_the_original(telemetry: TelemetryStore) -> None:
    t = now_ms() - 10_000
    await telemetry.record(A, report(t, [handler(10, 100.0, 10, {"X": 10}, min_ms=2.0, max_ms=30.0, last_ms=9.0)]))
    first = await only(telemetry)
    assert (first.count, first.mean_ms, first.aged_mean_ms) == (10, 10.0, 10.0)
    assert (first.min_ms, first.max_ms, first.last_ms) == (2.0, 30.0, 9.0)
    assert first.arrival_rate_per_s == pytest.approx(10.0)
    assert first.invocation_probability == {"X": 1.0}

    await telemetry.record(
        A, report(t + 1000, [handler(10, 40.0, 20, {"X": 5, "Y": 20}, min_ms=1.0, max_ms=5.0, last_ms=3.0)])
    )
    second = await only(telemetry)
    assert second.count == 20
    assert second.mean_ms == pytest.approx(7.0)  # 140 ms over 20 handlings
    assert second.aged_mean_ms == pytest.approx(0.67 * 4.0 + 0.33 * 10.0)
    assert (second.min_ms, second.max_ms, second.last_ms) == (1.0, 30.0, 3.0)
    assert second.arrivals == 30
    assert second.arrival_rate_per_s == pytest.approx(0.67 * 20 + 0.33 * 10)
    assert second.invocation_probability == pytest.approx({"X": 0.67 * 1.0 + 0.33 * 0.5, "Y": 2.0})

    # Another instance adds its own rate; its samples join the same handler.
    await telemetry.record(B, report(t + 1000, [handler(5, 50.0, 5)]))
    third = await only(telemetry)
    assert third.arrival_rate_per_s == pytest.approx(0.67 * 20 + 0.33 * 10 + 5)
    assert third.count == 25
    # B's handlings sent nothing: the probabilities move towards 0.
    assert third.invocation_probability == pytest.approx({"X": 0.67 * (0.67 + 0.33 * 0.5), "Y": 0.67 * 2.0})

    # An interval in which A saw no handling: A's rate ages towards 0, the statistics stay.
    await telemetry.record(A, report(t + 2000, []))
    fourth = await only(telemetry)
    assert fourth.arrival_rate_per_s == pytest.approx(0.33 * (0.67 * 20 + 0.33 * 10) + 5)
    assert (fourth.count, fourth.aged_mean_ms) == (third.count, third.aged_mean_ms)


async def test_series_buckets_and_aggregations(telemetry: TelemetryStore) -> None:
    start = (now_ms() // 60_000 - 10) * 60_000
    # Two reports in the first minute (means 10 and 20, weights 1 and 3), none in the second, one in the third.
    await telemetry.record(A, ReportTelemetry(start, start + 10_000, [handler(1, 10.0, 2, min_ms=10.0, max_ms=10.0)]))
    await telemetry.record(
        B, ReportTelemetry(start + 10_000, start + 20_000, [handler(3, 60.0, 3, min_ms=5.0, max_ms=40.0)])
    )
    await telemetry.record(A, ReportTelemetry(start + 120_000, start + 130_000, [handler(0, 0.0, 4)]))
    window = (start, start + 180_000)
    (avg,) = await telemetry.series("tally-write", "Tally", "AVG", 60, *window)
    assert (avg.component_kind, avg.handler_kind, avg.payload) == ("Aggregate", "AggregateCommandHandler", "Bump")
    assert [(p.start_ms - start, p.hits) for p in avg.points] == [(0, 5), (60_000, 0), (120_000, 4)]
    assert avg.points[0].service_time_ms == pytest.approx(70.0 / 4)
    assert avg.points[1].service_time_ms is None  # no report
    assert avg.points[2].service_time_ms is None  # arrivals, none sampled
    (maximum,) = await telemetry.series("tally-write", "Tally", Aggregation.MAX, 60, *window)
    (minimum,) = await telemetry.series("tally-write", "Tally", Aggregation.MIN, 60, *window)
    assert (maximum.points[0].service_time_ms, minimum.points[0].service_time_ms) == (40.0, 5.0)
    assert await telemetry.series("tally-write", "Other", "AVG", 60, *window) == []
    with pytest.raises(ValueError, match="buckets"):
        await telemetry.series("tally-write", "Tally", "AVG", 1, 0, 100_000_000)
    with pytest.raises(ValueError, match="after"):
        await telemetry.series("tally-write", "Tally", "AVG", 60, start, start)


async def test_consumer_positions_prefer_the_lock_holder(telemetry: TelemetryStore) -> None:
    t = now_ms()

    def position(checkpoint: int, holds_lock: bool) -> ConsumerTelemetry:
        return ConsumerTelemetry(
            consumer_id="c", checkpoint=checkpoint, dead_events=1, enabled=True, holds_lock=holds_lock
        )

    await telemetry.record(A, report(t, [], position(40, True)))
    await telemetry.record(B, report(t, [], position(3, False)))  # a standby with its own (stale) view
    (held, _), *_ = (await telemetry.consumer_positions()).values()
    assert (held.checkpoint, held.holds_lock) == (40, True)
    await telemetry.record(B, report(t, [], position(41, True)))  # B took the lock over
    (taken, _), *_ = (await telemetry.consumer_positions()).values()
    assert (taken.checkpoint, taken.holds_lock) == (41, True)


async def test_the_purge_removes_buckets_older_than_the_ttl(telemetry: TelemetryStore) -> None:
    old = now_ms() - 3 * 86_400_000  # the TTL is one day
    fresh = now_ms() - 60_000
    await telemetry.record(A, ReportTelemetry(old, old + 1000, [handler(1, 1.0, 1)]))
    await telemetry.record(A, ReportTelemetry(fresh, fresh + 1000, [handler(2, 2.0, 2)]))

    async def hits(since: int) -> int:
        series = await telemetry.series("tally-write", "Tally", "AVG", 86_400, since, now_ms() + 1)
        return sum(p.hits for s in series for p in s.points)

    assert await hits(old - 1) == 3
    assert await telemetry.purge() >= 1
    assert await hits(old - 1) == 2  # the old bucket is gone, the fresh one stays
    assert (await only(telemetry)).count == 3  # the statistics are not time buckets: they stay
    assert await telemetry.purge() == 0


async def test_a_consumers_overhead_per_event_is_pooled_then_aged(telemetry: TelemetryStore) -> None:
    """Overhead = (busy − handler time) ÷ events, from pools of at least ``OVERHEAD_POOL`` events, aged as the mean;
    never below 0; a report without consumer load changes nothing."""
    t = now_ms() - 10_000
    read = NodeInfo("tally-read", 1, "instance-r")

    def projector(count: int, total_ms: float, arrivals: int) -> HandlerTelemetry:
        return HandlerTelemetry(
            component="TallyProjector",
            component_kind="Projector",
            handler_kind="EventHandler",
            payload="Bumped",
            count=count,
            total_ms=total_ms,
            min_ms=1.0,
            max_ms=1.0,
            last_ms=1.0,
            arrivals=arrivals,
            sends={},
        )

    def load(events: int, busy_ms: float, context: str = "default") -> ConsumerTelemetry:
        return ConsumerTelemetry(
            consumer_id=f"tally-read_TallyProjector_1_{context}",
            checkpoint=events,
            dead_events=0,
            enabled=True,
            holds_lock=True,
            component="TallyProjector",
            events=events,
            busy_ms=busy_ms,
        )

    half = OVERHEAD_POOL // 2
    # Too few events for a value: pooled.
    await telemetry.record(read, report(t, [projector(half, half * 4.0, half)], load(half, half * 7.0)))
    assert await telemetry.consumer_overheads() == {}
    # The pool is full: its ratio (3 ms over half, 1 ms over the other half, in two contexts) is the first value.
    await telemetry.record(
        read,
        report(
            t + 1000,
            [projector(half, half * 4.0, half)],
            load(half // 2, half // 2 * 5.0, "a"),
            load(half - half // 2, (half - half // 2) * 5.0, "b"),
        ),
    )
    first = (await telemetry.consumer_overheads())[("tally-read", "TallyProjector")]
    assert first == pytest.approx(2.0)
    # Sampled at half the rate: the sampled mean stands for every arrival (4 ms × 2·OVERHEAD_POOL), 2 ms over.
    n = 2 * OVERHEAD_POOL
    await telemetry.record(read, report(t + 2000, [projector(n // 2, n // 2 * 4.0, n)], load(n, n * 6.0)))
    second = (await telemetry.consumer_overheads())[("tally-read", "TallyProjector")]
    assert second == pytest.approx(0.67 * 2.0 + 0.33 * first)
    # Handlers timed longer than the consumer was busy (a handling reported before its commit): 0, not negative.
    await telemetry.record(read, report(t + 3000, [projector(n, n * 4.0, n)], load(n, n * 3.0)))
    third = (await telemetry.consumer_overheads())[("tally-read", "TallyProjector")]
    assert third == pytest.approx(0.33 * second)
    await telemetry.record(read, report(t + 4000, []))
    assert (await telemetry.consumer_overheads())[("tally-read", "TallyProjector")] == pytest.approx(third)
    assert await telemetry.consumer_overheads("tally-write") == {}
