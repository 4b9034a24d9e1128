"""TodoList over real TCP: an ``evento server`` process, bundles connected with :class:`TcpConnector`.

Processes. The ``evento server`` runs as its own OS process (``python -m evento.cli server``, SQLite under the
run's temporary directory: WAL, ``synchronous=FULL``, so every acknowledged command's event is fsync'd), on
free ports, with an auth token. The TodoList bundles it serves — ``todolist-command`` (the aggregate),
``todolist-query`` (projector and projection, for the query figures only) and ``todolist-web`` (the invoker that
sends) — all run in the bench process, each on its own TCP connection to the server, so a command crosses the
socket four times (web → server → aggregate bundle → server → web) and a query likewise (web → server →
projection bundle → server → web). The raw baseline is an asyncio echo server in a separate process
(``python -c`` of :data:`ECHO_SERVER`): 4-byte big-endian length prefix, body echoed back, one round trip.

Figures (each beside its baseline, measured in the same run against the same processes):

* ``tcp_command_rtt_p50_us``: one caller, sequential TodoList commands through the invoker (create a list, add
  four todos, repeat); p50 of the round trip in µs. It includes the server's fsync'd SQLite commit of the event
  (see ``sqlite_commit_alone`` in the details) and the whole embedded command path (see
  ``command_rtt_embedded_no_tcp``), which the echo has not. Baseline
  ``raw_echo_rtt_p50_us``: sequential echoes of a payload as long as our command request frame (measured from
  the frames the web bundle actually sends). Samples alternate in blocks between the two (and the storage
  sub-measurements below).
  ratio = ours / raw (issue target ≤ 6).
* ``tcp_query_rtt_p50_us``: the same for ``TodoListViewFindByIdentifierQuery`` on an existing, projected list
  (a read from the projection's SQLite file, no fsync), against echoes as long as our query request frame.
* ``tcp_command_throughput_sqlite``: 64 concurrent callers sending the same command mix over TCP; commands/s,
  a command counting when the invoker returns (its event committed); the events stored in the server's file are
  counted afterwards. Baseline ``eventsourcing_save_sqlite`` exactly as in :mod:`bench.command_throughput` (the
  better of its synchronous loop and 32 threads), measured in the same run, trials alternating. ratio = ours /
  baseline (issue target ≥ 1.5).
* ``tcp_query_throughput``: 64 concurrent callers sending that query; queries/s. Baseline
  ``raw_echo_throughput``: echoes/s of query-sized payloads with 64 concurrent requesters, the better of 64
  connections (one request in flight each) and one connection with 64 requests pipelined.

The details also give p90/p99, the request frame sizes seen, the same sequential RTTs with the server in this
process (no TCP, same SQLite settings: the difference is what TCP and the second process add), and what storage
alone costs, sampled in the same alternating blocks as the command RTT: ``store_append_alone`` (one append to our
SQLite event store in this process: writer thread, INSERT, fsync'd COMMIT) and ``sqlite_commit_alone`` (a bare
sqlite3 INSERT + COMMIT on the same settings). The bare commit plus one echo is a floor no command can beat with
``synchronous=FULL``; ``command_rtt_floor_ratio_to_echo`` says how close to the ratio target that floor already
is. The throughput trials record the CPU time per command of the server process (from ``/proc``) and of this
process (web and aggregate bundles, callers): robust to other work on the machine, unlike the rate. These
sub-measurements are printed as the benchmark runs. Our client and the raw-echo client both run in this
process's event loop (the default asyncio loop, as the server's). Every subprocess is terminated and waited for
when the benchmark ends, whether it succeeded, failed or was sent SIGTERM.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.command_throughput import _drive, _eventsourcing_loop, _eventsourcing_threads, eventsourcing_sqlite_settings
from bench.common import Figure, RunConfig, Stopwatch, best, percentile
from evento import Bundle
from evento.demo.todolist.invoker import TodoListInvoker
from evento.demo.todolist.system import TodoListSystem
from evento.event_stores import SQLiteEventStore
from evento.event_stores.base import AppendRequest
from evento.messages import EventMessage, new_message_id, now_ms
from evento.server import EventoServer
from evento.storage.sqlite import connect as sqlite_connect
from evento.transport.connector import TcpConnector
from evento.transport.wire import Message, Request

__all__ = ["ECHO_SERVER", "FIGURES", "run"]

FIGURES = ("tcp_command_rtt_p50_us", "tcp_query_rtt_p50_us", "tcp_command_throughput_sqlite", "tcp_query_throughput")
CALLERS = 64
ES_THREADS = 32  # as bench.command_throughput measures its baseline
TOKEN = "bench-token"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
HEADER_BYTES = 4

#: The raw baseline server: asyncio streams, length-prefixed frames echoed back; prints its port when listening.
ECHO_SERVER = """
import asyncio

async def echo(reader, writer):
    try:
        while True:
            header = await reader.readexactly(4)
            body = await reader.readexactly(int.from_bytes(header, "big"))
            writer.write(header + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()

async def main():
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    print("port", server.sockets[0].getsockname()[1], flush=True)
    print("Ready.", flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""


# --- subprocesses ---------------------------------------------------------------------------------------------------


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_ready(self) -> str:
        deadline = time.monotonic() + READY_TIMEOUT
        while "Ready." not in (text := self.output()):
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode} before Ready.:\n{text}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not Ready. within {READY_TIMEOUT:g}s:\n{text}")
            time.sleep(0.02)
        return text

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def _spawn(name: str, command: list[str], log: Path) -> Iterator[_Child]:
    """Run ``command`` (output to ``log``) until the block ends; terminate it and wait for it even on failure."""
    with open(log, "wb") as out:
        # Its own session: a Ctrl-C on the bench reaches only the bench, whose ``finally`` then stops the child.
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    child = _Child(name, process, log)
    try:
        child.wait_ready()
        yield child
    finally:
        child.stop()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _evento_server_process(directory: Path, *extra: str) -> Iterator[tuple[str, int]]:
    """An ``evento server`` process on free ports (SQLite file in ``directory`` unless ``extra`` names another
    ``--store``); yields its bus address and process id."""
    port, bus_port = _free_port(), _free_port()
    command = [sys.executable, "-m", "evento.cli", "--log-level", "WARNING", "server", "--data-dir", str(directory),
               "--port", str(port), "--bus-port", str(bus_port), "--auth-token", TOKEN, *extra]  # fmt: skip
    with _spawn("evento server", command, directory / "server.log") as child:
        yield f"127.0.0.1:{bus_port}", child.process.pid


@contextlib.contextmanager
def _evento_server(directory: Path, *extra: str) -> Iterator[str]:
    """As :func:`_evento_server_process`, yielding only the bus address."""
    with _evento_server_process(directory, *extra) as (bus, _):
        yield bus


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from ``/proc`` (Linux); NaN where there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _echo_server(directory: Path) -> Iterator[int]:
    """The raw echo server process; yields its port."""
    with _spawn("echo server", [sys.executable, "-c", ECHO_SERVER], directory / "echo.log") as child:
        words = child.output().split()
        yield int(words[words.index("port") + 1])


def _stored_events(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        count: int = conn.execute("SELECT COUNT(*) FROM es_events").fetchone()[0]
        return count


# --- our side -------------------------------------------------------------------------------------------------------


class _FrameSizes:
    """The bundles' connections report every message they send (``TcpConnector(on_send=...)``); while
    :func:`_request_frame_sizes` records, the size (headers included) of each request is kept by request type."""

    def __init__(self) -> None:
        self.recording: dict[str, list[int]] | None = None

    def on_send(self, message: Message, size: int) -> None:
        if self.recording is not None and isinstance(message, Request):
            self.recording[type(message.body).__name__].append(size)


_FRAMES = _FrameSizes()


@contextlib.contextmanager
def _request_frame_sizes() -> Iterator[dict[str, list[int]]]:
    """Record the size (header included) of every request frame the bundles of this process send, by request
    type."""
    sizes: dict[str, list[int]] = collections.defaultdict(list)
    _FRAMES.recording = sizes
    try:
        yield sizes
    finally:
        _FRAMES.recording = None


@dataclass
class _Session:
    """The bundles of one measurement, connected to the server over TCP; stopped in reverse order."""

    bus: str
    directory: Path
    with_query: bool
    started: list[Bundle] = field(default_factory=list)

    async def __aenter__(self) -> TodoListInvoker:
        system = TodoListSystem(self.directory, service_delay=0.0)
        bundles = [system.command, system.query, system.web] if self.with_query else [system.command, system.web]
        try:
            for bundle in bundles:
                await bundle.start(TcpConnector(self.bus, auth_token=TOKEN, on_send=_FRAMES.on_send))
                self.started.append(bundle)
        except BaseException:
            await self.__aexit__()
            raise
        return system.invoker()

    async def __aexit__(self, *exc: object) -> None:
        for bundle in reversed(self.started):
            await bundle.stop()
        self.started.clear()


Call = Callable[[], Awaitable[object]]


async def _in_sequence(call: Call, count: int, samples: list[float]) -> None:
    """``count`` calls one after another, each round trip in µs: every sequential measurement of this module."""
    for _ in range(count):
        t0 = time.perf_counter_ns()
        await call()
        samples.append((time.perf_counter_ns() - t0) / 1000)


async def _rate(callers: Sequence[Call], total: int) -> float:
    """Calls per second with each of ``callers`` calling in a loop, one call in flight each, ``total`` in all."""
    quotas = [total // len(callers) + (1 if i < total % len(callers) else 0) for i in range(len(callers))]

    async def loop(call: Call, quota: int) -> None:
        for _ in range(quota):
            await call()

    with Stopwatch() as sw:
        await asyncio.gather(*(loop(call, quota) for call, quota in zip(callers, quotas, strict=True)))
    return total / sw.seconds


class _CommandMix:
    """The sequential command workload: create a list, add four todos to it, repeat; one command per call."""

    def __init__(self, invoker: TodoListInvoker) -> None:
        self.invoker = invoker
        self.sent = 0
        self._list = ""

    async def __call__(self) -> None:
        if self.sent % 5 == 0:
            self._list = await self.invoker.create_todo_list(f"rtt list #{self.sent}", "rtt-user")
        else:
            await self.invoker.add_todo(self._list, f"todo {self.sent % 5}", "rtt-user")
        self.sent += 1


async def _projected_list(invoker: TodoListInvoker) -> str:
    """A list with four todos, once the projection has it (so the query finds it)."""
    identifier = await invoker.create_todo_list("a list to query", "query-user")
    for todo in range(4):
        await invoker.add_todo(identifier, f"todo {todo} to read", "query-user")
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(LookupError):
            if len((await invoker.find_todo_list(identifier)).todos) == 4:
                return identifier
        if time.monotonic() > deadline:
            raise RuntimeError("the projection did not show the list within 30s")
        await asyncio.sleep(0.01)


# --- the raw echo client --------------------------------------------------------------------------------------------


class _EchoClient:
    """One connection to the echo server; requests may be pipelined (answers come back in order)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> _EchoClient:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def round_trip(self, frame: bytes) -> None:
        self.writer.write(frame)
        await self.writer.drain()
        await self.read_one(len(frame))

    async def read_one(self, expected: int) -> None:
        header = await self.reader.readexactly(HEADER_BYTES)
        body = await self.reader.readexactly(int.from_bytes(header, "big"))
        if HEADER_BYTES + len(body) != expected:
            raise AssertionError(f"echo returned {HEADER_BYTES + len(body)} bytes, sent {expected}")

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def _echo_frame(size: int) -> bytes:
    """A frame of ``size`` bytes in all, header included (as our request frames are counted)."""
    return (size - HEADER_BYTES).to_bytes(HEADER_BYTES, "big") + os.urandom(size - HEADER_BYTES)


async def _echo_throughput_connections(port: int, frame: bytes, messages: int) -> float:
    """``CALLERS`` connections, one echo in flight on each."""
    clients = [await _EchoClient.connect(port) for _ in range(CALLERS)]
    try:
        return await _rate([functools.partial(client.round_trip, frame) for client in clients], messages)
    finally:
        for client in clients:
            await client.close()


async def _echo_throughput_pipelined(port: int, frame: bytes, messages: int) -> float:
    """One connection, ``CALLERS`` requesters each with one echo in flight (answers matched in order)."""
    client = await _EchoClient.connect(port)
    waiting: collections.deque[asyncio.Future[None]] = collections.deque()
    loop = asyncio.get_running_loop()

    async def read_all() -> None:
        for _ in range(messages):
            await client.read_one(len(frame))
            waiting.popleft().set_result(None)

    async def echo() -> None:
        future = loop.create_future()
        waiting.append(future)
        client.writer.write(frame)
        await client.writer.drain()
        await future

    reader = asyncio.create_task(read_all())
    try:
        rate = await _rate([echo] * CALLERS, messages)
        await reader
    finally:
        reader.cancel()
        await client.close()
    return rate


async def _alternate(measures: dict[str, tuple[Call, int]], blocks: int) -> dict[str, list[float]]:
    """Sequential samples of each measure (its call, its count), in alternating blocks after one unrecorded
    warm-up block each, so that a disturbance on the machine hits them all alike."""
    samples: dict[str, list[float]] = {name: [] for name in measures}
    for call, count in measures.values():
        await _in_sequence(call, max(10, count // blocks), [])
    for block in range(blocks):
        for name, (call, count) in measures.items():
            await _in_sequence(call, count // blocks + (1 if block < count % blocks else 0), samples[name])
    return samples


def _rtt_summary(samples: list[float]) -> dict[str, float | int]:
    return {
        "samples": len(samples),
        "p50_us": round(percentile(samples, 50), 1),
        "p90_us": round(percentile(samples, 90), 1),
        "p99_us": round(percentile(samples, 99), 1),
    }


# --- sessions -------------------------------------------------------------------------------------------------------


@dataclass
class _Counts:
    rtt_commands: int
    rtt_queries: int
    rtt_echoes: int
    rtt_blocks: int
    commands: int
    queries: int
    echoes: int
    es_saves: int
    trials: int


@dataclass
class _Results:
    frame_sizes: dict[str, list[int]] = field(default_factory=dict)
    command_rtt: list[float] = field(default_factory=list)
    command_echo_rtt: list[float] = field(default_factory=list)
    store_append_rtt: list[float] = field(default_factory=list)
    sqlite_commit_rtt: list[float] = field(default_factory=list)
    query_rtt: list[float] = field(default_factory=list)
    query_echo_rtt: list[float] = field(default_factory=list)
    commands: list[float] = field(default_factory=list)
    server_cpu_us_per_command: list[float] = field(default_factory=list)
    bench_cpu_us_per_command: list[float] = field(default_factory=list)
    queries: list[float] = field(default_factory=list)
    echo_connections: list[float] = field(default_factory=list)
    echo_pipelined: list[float] = field(default_factory=list)
    es_loop: list[float] = field(default_factory=list)
    es_threads: list[float] = field(default_factory=list)
    commands_sent: int = 0
    stored_events: int = 0
    embedded_command_rtt: list[float] = field(default_factory=list)
    embedded_query_rtt: list[float] = field(default_factory=list)


def _request_size(sizes: dict[str, list[int]], kind: str) -> int:
    if not sizes.get(kind):
        raise RuntimeError(f"no {kind} request frame seen (sizes recorded: {sorted(sizes)})")
    return round(percentile(sizes[kind], 50))


async def _query_session(
    bus: str, directory: Path, echo_port: int, counts: _Counts, results: _Results, figures: frozenset[str]
) -> None:
    """Command, query and web bundles: one projected list, then the query RTT and query throughput trials."""
    async with _Session(bus, directory, with_query=True) as invoker:
        with _request_frame_sizes() as sizes:
            identifier = await _projected_list(invoker)
            results.commands_sent += 5
            await invoker.find_todo_list(identifier)
        results.frame_sizes.update(sizes)
        frame = _echo_frame(_request_size(sizes, "SendQuery"))

        async def query() -> None:
            await invoker.find_todo_list(identifier)

        client = await _EchoClient.connect(echo_port)
        try:
            if "tcp_query_rtt_p50_us" in figures:
                rtt = await _alternate(
                    {
                        "query": (query, counts.rtt_queries),
                        "echo": (functools.partial(client.round_trip, frame), counts.rtt_echoes),
                    },
                    counts.rtt_blocks,
                )
                results.query_rtt, results.query_echo_rtt = rtt["query"], rtt["echo"]
        finally:
            await client.close()
        if "tcp_query_throughput" in figures:
            await _rate([query] * CALLERS, CALLERS * 5)  # warm-up
            for _ in range(counts.trials):
                results.queries.append(await _rate([query] * CALLERS, counts.queries))
                results.echo_connections.append(await _echo_throughput_connections(echo_port, frame, counts.echoes))
                results.echo_pipelined.append(await _echo_throughput_pipelined(echo_port, frame, counts.echoes))


class _StoreAppend:
    """One event appended to our SQLite event store, in this process: what a command spends on storage."""

    def __init__(self, store: SQLiteEventStore) -> None:
        self.store = store
        self.sent = 0

    async def __call__(self) -> None:
        self.sent += 1
        event = EventMessage(
            payload_name="TodoListCreatedEvent", payload=b'{"identifier":"x","name":"append alone"}' * 4,
            message_id=new_message_id(), metadata={"user": "rtt-user"}, timestamp=now_ms(), context="default",
        )  # fmt: skip
        await self.store.append(AppendRequest(event, f"append-{self.sent}", 1, command_id=new_message_id()))


class _RawCommit:
    """One row inserted and committed with the sqlite3 module alone, on the store's settings (WAL,
    ``synchronous=FULL``): the fsync'd commit every acknowledged command waits for, and nothing else."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite_connect(path)
        self.conn.execute("CREATE TABLE IF NOT EXISTS commit_alone (id INTEGER PRIMARY KEY, payload BLOB)")
        self.payload = os.urandom(160)

    async def __call__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("INSERT INTO commit_alone (payload) VALUES (?)", (self.payload,))
        self.conn.execute("COMMIT")


async def _command_rtt_session(bus: str, directory: Path, echo_port: int, counts: _Counts, results: _Results) -> None:
    """Sequential commands over TCP, alternating with echoes and with the storage part of a command alone."""
    directory.mkdir(parents=True, exist_ok=True)
    store = SQLiteEventStore(directory / "append-alone" / "events.db")
    await store.start()
    commit = _RawCommit(directory / "commit-alone.db")
    try:
        async with _Session(bus, directory, with_query=False) as invoker:
            mix = _CommandMix(invoker)
            with _request_frame_sizes() as sizes:
                await _in_sequence(mix, 5, [])
            results.frame_sizes.update(sizes)
            frame = _echo_frame(_request_size(sizes, "SendCommand"))
            client = await _EchoClient.connect(echo_port)
            try:
                rtt = await _alternate(
                    {
                        "command": (mix, counts.rtt_commands),
                        "echo": (functools.partial(client.round_trip, frame), counts.rtt_echoes),
                        "append": (_StoreAppend(store), counts.rtt_commands),
                        "commit": (commit, counts.rtt_commands),
                    },
                    counts.rtt_blocks,
                )
            finally:
                await client.close()
            results.commands_sent += mix.sent
    finally:
        commit.conn.close()
        await store.stop()
    results.command_rtt, results.command_echo_rtt = rtt["command"], rtt["echo"]
    results.store_append_rtt, results.sqlite_commit_rtt = rtt["append"], rtt["commit"]


async def _command_throughput_session(
    bus: str, server_pid: int, directory: Path, counts: _Counts, results: _Results
) -> None:
    async with _Session(bus, directory, with_query=False) as invoker:
        warmup = 5 * CALLERS
        await _drive(invoker, warmup, CALLERS)
        server_cpu, bench_cpu = _cpu_seconds(server_pid), time.process_time()
        with Stopwatch() as sw:
            await _drive(invoker, counts.commands, CALLERS)
        results.server_cpu_us_per_command.append(1e6 * (_cpu_seconds(server_pid) - server_cpu) / counts.commands)
        results.bench_cpu_us_per_command.append(1e6 * (time.process_time() - bench_cpu) / counts.commands)
        results.commands_sent += warmup + counts.commands
        results.commands.append(counts.commands / sw.seconds)


async def _embedded_rtt(directory: Path, counts: _Counts, results: _Results) -> None:
    """The same sequential RTTs with the server in this process (no TCP): what the transport adds, by difference."""
    server = EventoServer(SQLiteEventStore(directory / "events.db"))
    await server.start()
    system = TodoListSystem(directory, service_delay=0.0)
    started: list[Bundle] = []
    try:
        for bundle in (system.command, system.query, system.web):
            await bundle.start(server)
            started.append(bundle)
        invoker = system.invoker()
        identifier = await _projected_list(invoker)

        async def query() -> None:
            await invoker.find_todo_list(identifier)

        rtt = await _alternate(
            {"command": (_CommandMix(invoker), counts.rtt_commands), "query": (query, counts.rtt_queries)},
            counts.rtt_blocks,
        )
        results.embedded_command_rtt, results.embedded_query_rtt = rtt["command"], rtt["query"]
    finally:
        for bundle in reversed(started):
            await bundle.stop()
        await server.stop()


# --- the figures ----------------------------------------------------------------------------------------------------


def _counts(quick: bool) -> _Counts:
    if quick:
        return _Counts(
            rtt_commands=200, rtt_queries=300, rtt_echoes=1_000, rtt_blocks=4, commands=1_000, queries=2_000,
            echoes=5_000, es_saves=1_000, trials=1,
        )  # fmt: skip
    return _Counts(
        rtt_commands=600, rtt_queries=1_000, rtt_echoes=3_000, rtt_blocks=6, commands=3_000, queries=6_000,
        echoes=20_000, es_saves=2_000, trials=2,
    )  # fmt: skip


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While the child processes run, SIGTERM to the bench unwinds it (so the children are stopped too)."""

    def raise_exit(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, raise_exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(config: RunConfig, figures: frozenset[str] = frozenset(FIGURES)) -> list[Figure]:
    counts = _counts(config.quick)
    results = _Results()
    server_dir = config.scratch("tcp-server")
    bundles_dir = config.scratch("tcp-bundles")
    queries_wanted = figures & {"tcp_query_rtt_p50_us", "tcp_query_throughput"}
    with (
        _sigterm_raises(),
        _echo_server(config.scratch("tcp-echo")) as echo_port,
        _evento_server_process(server_dir) as (bus, server_pid),
    ):
        if queries_wanted:
            asyncio.run(_query_session(bus, bundles_dir / "q", echo_port, counts, results, figures))
        if "tcp_command_rtt_p50_us" in figures:
            asyncio.run(_command_rtt_session(bus, bundles_dir / "c", echo_port, counts, results))
        if "tcp_command_throughput_sqlite" in figures:
            for trial in range(counts.trials):
                asyncio.run(_command_throughput_session(bus, server_pid, bundles_dir / f"t{trial}", counts, results))
                warmup = 5 * ES_THREADS
                results.es_loop.append(
                    _eventsourcing_loop(config.scratch(f"tcp-es-loop-{trial}") / "es.db", warmup, counts.es_saves)
                )
                results.es_threads.append(
                    _eventsourcing_threads(
                        config.scratch(f"tcp-es-threads-{trial}") / "es.db", warmup, counts.es_saves, ES_THREADS
                    )
                )
        results.stored_events = _stored_events(server_dir / "events.db")
    if figures & {"tcp_command_rtt_p50_us", "tcp_query_rtt_p50_us"}:
        asyncio.run(_embedded_rtt(config.scratch("tcp-embedded"), counts, results))
    if results.stored_events != results.commands_sent:
        raise AssertionError(f"{results.stored_events} events stored for {results.commands_sent} commands sent")
    return _figures(config, counts, results)


def _say(line: str) -> None:
    """A sub-measurement on the console (the figures table shows only the figures)."""
    print(f"  tcp: {line}", file=sys.stderr, flush=True)


def _figures(config: RunConfig, counts: _Counts, results: _Results) -> list[Figure]:
    out: list[Figure] = []
    details: dict[str, Any] = {
        "topology": (
            "evento server in its own process (SQLite WAL, synchronous=FULL, auth token); the todolist-command, "
            "todolist-query and todolist-web bundles in the bench process, each on its own TCP connection; "
            "raw echo server in its own process (python -c), its client in the bench process"
        ),
        "callers": CALLERS,
        "request_frame_bytes_p50": {kind: round(percentile(v, 50)) for kind, v in sorted(results.frame_sizes.items())},
        "events_stored": results.stored_events,
        "commands_sent": results.commands_sent,
    }
    if results.command_rtt:
        details["command_rtt"] = _rtt_summary(results.command_rtt)
        details["command_echo_rtt"] = _rtt_summary(results.command_echo_rtt)
        details["command_rtt_embedded_no_tcp"] = _rtt_summary(results.embedded_command_rtt)
        # What a command waits for in storage, measured alone in the same blocks: our store's append (writer
        # thread, INSERT, fsync'd COMMIT) and a bare sqlite3 INSERT + COMMIT on the same settings.
        details["store_append_alone"] = _rtt_summary(results.store_append_rtt)
        details["sqlite_commit_alone"] = _rtt_summary(results.sqlite_commit_rtt)
        floor = percentile(results.sqlite_commit_rtt, 50) + percentile(results.command_echo_rtt, 50)
        details["command_rtt_floor_commit_plus_echo_us"] = round(floor, 1)
        details["command_rtt_floor_ratio_to_echo"] = round(floor / percentile(results.command_echo_rtt, 50), 2)
        _say(
            f"command p50 {percentile(results.command_rtt, 50):,.0f} µs (embedded, no TCP: "
            f"{percentile(results.embedded_command_rtt, 50):,.0f}); of which storage: store append alone "
            f"{percentile(results.store_append_rtt, 50):,.0f} µs, bare fsync'd commit "
            f"{percentile(results.sqlite_commit_rtt, 50):,.0f} µs; echo {percentile(results.command_echo_rtt, 50):,.0f}"
            f" µs -> commit + echo alone is already {floor / percentile(results.command_echo_rtt, 50):.1f}x the echo"
        )
        out.append(
            Figure.compare(
                "tcp_command_rtt_p50_us",
                percentile(results.command_rtt, 50),
                "µs",
                "raw_echo_rtt_p50_us",
                percentile(results.command_echo_rtt, 50),
            )
        )
    if results.query_rtt:
        details["query_rtt"] = _rtt_summary(results.query_rtt)
        details["query_echo_rtt"] = _rtt_summary(results.query_echo_rtt)
        details["query_rtt_embedded_no_tcp"] = _rtt_summary(results.embedded_query_rtt)
        out.append(
            Figure.compare(
                "tcp_query_rtt_p50_us",
                percentile(results.query_rtt, 50),
                "µs",
                "raw_echo_rtt_p50_us",
                percentile(results.query_echo_rtt, 50),
            )
        )
    if results.commands:
        loop_best, threads_best = best(results.es_loop), best(results.es_threads)
        details["command_throughput"] = {
            "commands": counts.commands,
            "workload": "create a list, add 4 todos, repeat (per caller), after a warm-up of 5 per caller",
            "ours_trials_cmd_per_s": [round(x) for x in results.commands],
            "server_process_cpu_us_per_command": [round(x) for x in results.server_cpu_us_per_command],
            "bench_process_cpu_us_per_command": [round(x) for x in results.bench_cpu_us_per_command],
            "eventsourcing_saves": counts.es_saves,
            "eventsourcing_loop_trials_saves_per_s": [round(x) for x in results.es_loop],
            f"eventsourcing_{ES_THREADS}_threads_trials_saves_per_s": [round(x) for x in results.es_threads],
            "eventsourcing_baseline_mode": "synchronous loop" if loop_best >= threads_best else f"{ES_THREADS} threads",
            "eventsourcing_sqlite_settings": eventsourcing_sqlite_settings(config.scratch("tcp-es-settings") / "es.db"),
        }
        _say(
            f"command throughput {', '.join(f'{x:,.0f}' for x in results.commands)} cmd/s; CPU per command: server "
            f"process {', '.join(f'{x:.0f}' for x in results.server_cpu_us_per_command)} µs, bench process (web + "
            f"aggregate bundles, callers) {', '.join(f'{x:.0f}' for x in results.bench_cpu_us_per_command)} µs"
        )
        out.append(
            Figure.compare(
                "tcp_command_throughput_sqlite",
                best(results.commands),
                "cmd/s",
                "eventsourcing_save_sqlite",
                max(loop_best, threads_best),
            )
        )
    if results.queries:
        connections_best, pipelined_best = best(results.echo_connections), best(results.echo_pipelined)
        details["query_throughput"] = {
            "queries": counts.queries,
            "ours_trials_queries_per_s": [round(x) for x in results.queries],
            "echoes": counts.echoes,
            f"echo_{CALLERS}_connections_trials_per_s": [round(x) for x in results.echo_connections],
            f"echo_1_connection_{CALLERS}_pipelined_trials_per_s": [round(x) for x in results.echo_pipelined],
            "echo_baseline_mode": f"{CALLERS} connections" if connections_best >= pipelined_best else "pipelined",
        }
        out.append(
            Figure.compare(
                "tcp_query_throughput",
                best(results.queries),
                "queries/s",
                "raw_echo_throughput",
                max(connections_best, pipelined_best),
            )
        )
    config.details["tcp"] = details
    return out
