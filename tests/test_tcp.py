"""Networked Evento: an `evento server` process and bundles talking to it over real TCP sockets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from evento import (
    Bundle,
    NoHandlerError,
    ServiceCommand,
    ServiceEvent,
    Single,
    View,
    command_handler,
    projection,
    query_handler,
    service,
)
from evento.demo.todolist.system import TodoListSystem
from evento.discovery import NodeInfo
from evento.messages import (
    CommandMessage,
    SendCommand,
    ServiceCommandRequest,
    ServiceCommandResponse,
    new_message_id,
    now_ms,
)
from evento.payloads import Query, encode_payload
from evento.transport.connection import Connection
from evento.transport.connector import ConnectorSettings, HandshakeRejectedError, TcpConnector, parse_address
from evento.transport.wire import (
    DEFAULT_MAX_FRAME,
    PROTOCOL_VERSION,
    Hello,
    Message,
    Notification,
    Register,
    Registered,
    Request,
    Response,
    Welcome,
    encode_frames,
)
from tests.bank import Account, Deposit, OpenAccount
from tests.helpers import ServerProcess, free_port, start_server_process, stop_server_process, wait_until

TOKEN = "s3cret-token"


@pytest.fixture
async def server_process(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    running = await start_server_process(tmp_path, "--auth-token", TOKEN)
    yield running
    stop_server_process(running)


def connector(server: ServerProcess, token: str = TOKEN) -> TcpConnector:
    return TcpConnector(server.bus, auth_token=token)


async def health(server: ServerProcess) -> dict[str, object]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{server.http}/api/health")
        assert response.status_code == 200
        body: dict[str, object] = response.json()
        return body


async def test_the_todolist_runs_unchanged_over_tcp(server_process: ServerProcess, tmp_path: Path) -> None:
    system = TodoListSystem(tmp_path / "bundles", service_delay=0.01)
    for bundle in system.bundles:
        await bundle.start(connector(server_process))
    try:
        invoker = system.invoker()
        identifier = await invoker.create_todo_list("groceries", "alice")
        todo = await invoker.add_todo(identifier, "milk", "bob")

        async def projected() -> bool:
            try:
                return [t.content for t in (await invoker.find_todo_list(identifier)).todos] == ["milk"]
            except LookupError:
                return False

        # The observer reads the todo's text from the projection: a user checks a todo they have seen listed.
        await wait_until(projected, 15, what="todo projected")
        await invoker.check_todo(identifier, todo, "bob")

        async def registered() -> bool:
            try:
                return (await invoker.find_todo_list(identifier)).status == "REGISTERED"
            except LookupError:
                return False

        await wait_until(registered, 15, what="list registered by the saga over TCP")
        assert system.services.sent_notifications == ["You have checked the todo 'milk' of 'groceries'"]
        assert (await health(server_process))["nodes"] == 4
    finally:
        await system.stop()
    await wait_until(lambda: _nodes(server_process, 0), 10, what="nodes leave when bundles stop")


async def _nodes(server: ServerProcess, expected: int) -> bool:
    return (await health(server))["nodes"] == expected


@pytest.mark.parametrize("token", ["", "wrong-token"])
async def test_a_wrong_or_missing_token_is_rejected_with_a_reason_and_nothing_registers(
    server_process: ServerProcess, token: str
) -> None:
    bundle = Bundle("intruder", components=[Account])
    with pytest.raises(HandshakeRejectedError, match="AUTH_FAILED"):
        await bundle.start(connector(server_process, token))
    assert (await health(server_process))["nodes"] == 0
    assert "refused connection" in server_process.output()


async def test_an_unknown_payload_type_fails_at_the_caller(server_process: ServerProcess) -> None:
    bundle = Bundle("accounts-client", components=[_Echo])
    await bundle.start(connector(server_process))
    try:
        commands, _ = bundle.gateways(None)
        with pytest.raises(NoHandlerError, match="no handler for OpenAccount"):
            await commands.send(OpenAccount(account="A"))
    finally:
        await bundle.stop()


async def test_a_connectors_on_send_sees_every_message_with_the_bytes_of_its_frames(
    server_process: ServerProcess,
) -> None:
    """``TcpConnector(on_send=...)``, what the TCP bench measures request sizes with: every message the bundle sends,
    the Hello first, each with the bytes its frames take on the socket (headers included)."""
    seen: list[tuple[Message, int]] = []
    accounts = Bundle("accounts", components=[Account])
    await accounts.start(
        TcpConnector(server_process.bus, auth_token=TOKEN, on_send=lambda message, size: seen.append((message, size)))
    )
    try:
        commands, _ = accounts.gateways(None)
        await commands.send(OpenAccount(account="S"))
    finally:
        await accounts.stop()
    assert isinstance(seen[0][0], Hello)
    sends = [(m, size) for m, size in seen if isinstance(m, Request) and isinstance(m.body, SendCommand)]
    assert len(sends) == 1
    message, size = sends[0]
    assert size == sum(len(frame) for frame in encode_frames(message, DEFAULT_MAX_FRAME)) > 0


async def test_a_resent_request_with_the_same_correlation_id_runs_once(server_process: ServerProcess) -> None:
    accounts = Bundle("accounts", components=[Account])
    await accounts.start(connector(server_process))
    try:
        commands, _ = accounts.gateways(None)
        await commands.send(OpenAccount(account="A"))
        message = CommandMessage(
            payload_name="Deposit", payload=encode_payload(Deposit(account="A", amount=5)), message_id=new_message_id(),
            metadata={}, timestamp=now_ms(), domain=True, aggregate_id="A", lock_id="A",
        )  # fmt: skip
        # The request, and the same request again after the caller reconnected (same instance id): the reply
        # comes from the server's cache of that caller's commands (the instance id makes it the same caller).
        client, runner = await _raw_client(server_process, "raw-1")
        first = await client.request(SendCommand(message), 10, correlation_id="same-id")
        runner.cancel()
        await client.close()
        await wait_until(lambda: _nodes(server_process, 1), 10, what="the server saw the caller leave")
        client, runner = await _raw_client(server_process, "raw-1")
        again = await client.request(SendCommand(message), 10, correlation_id="same-id")
        assert again == first
        balance = (await commands.send(Deposit(account="A", amount=0))).balance
        assert balance == 5  # one deposit of 5 ran, not two
        runner.cancel()
        await client.close()
    finally:
        await accounts.stop()


async def test_garbage_on_one_connection_does_not_disturb_the_others(server_process: ServerProcess) -> None:
    accounts = Bundle("accounts", components=[Account])
    await accounts.start(connector(server_process))
    try:
        host, port = parse_address(server_process.bus)
        for garbage in [
            b"\x00\x00\x00\x05\x07hello",
            b"\xff\xff\xff\xff",
            os.urandom(64),
            b"\x00\x00\x00\x03\x00\xc1\xc1",
        ]:
            sock = socket.create_connection((host, port))
            sock.sendall(garbage)
            sock.settimeout(10)
            assert sock.recv(100) == b""  # the server closed this connection
            sock.close()
        commands, _ = accounts.gateways(None)
        assert (await commands.send(OpenAccount(account="G"))).account == "G"
        assert server_process.process.poll() is None
    finally:
        await accounts.stop()


class BigView(View):
    blob: str


class FetchBig(Query[Single[BigView]]):
    size: int


@projection()
class _Echo:
    @query_handler
    def big(self, query: FetchBig) -> Single[BigView]:
        return Single(BigView(blob="x" * query.size))


async def test_a_50_megabyte_query_response_round_trips(server_process: ServerProcess) -> None:
    bundle = Bundle("echo", components=[_Echo])
    await bundle.start(connector(server_process))
    try:
        _, queries = bundle.gateways(None)
        result = await queries.query(FetchBig(size=50_000_000), timeout=60)
        assert len(result.data.blob) == 50_000_000
    finally:
        await bundle.stop()


async def test_a_bundle_reconnects_after_a_server_restart(tmp_path: Path) -> None:
    port, bus_port = free_port(), free_port()
    command = [sys.executable, "-m", "evento.cli", "--log-level", "WARNING", "server", "--data-dir", str(tmp_path),
               "--port", str(port), "--bus-port", str(bus_port)]  # fmt: skip
    log = tmp_path / "server.log"

    def start() -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)

    server = start()
    await wait_until(lambda: log.exists() and log.read_text().count("Ready.") == 1, 30, what="server Ready.")
    accounts = Bundle("accounts", components=[Account])
    fast_retries = ConnectorSettings(base_backoff=0.05, max_backoff=0.5)
    await accounts.start(TcpConnector(f"127.0.0.1:{bus_port}", settings=fast_retries))
    try:
        commands, _ = accounts.gateways(None)
        await commands.send(OpenAccount(account="R"))
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        server = start()
        await wait_until(lambda: log.read_text().count("Ready.") == 2, 30, what="server Ready again")
        # The bundle reconnects on its own; a command sent meanwhile waits for the connection within its deadline.
        result = await commands.send(Deposit(account="R", amount=3), timeout=20)
        assert result.balance == 3
    finally:
        await accounts.stop()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)


async def _raw_client(server: ServerProcess, instance: str) -> tuple[Connection, asyncio.Task[None]]:
    """A bare protocol client: handshake done, its read loop running."""
    host, port = parse_address(server.bus)
    reader, writer = await asyncio.open_connection(host, port)
    client = Connection(reader, writer, name=instance)
    await client.send(Hello(PROTOCOL_VERSION, "raw", 1, instance, TOKEN))
    assert isinstance(await client.receive(), Welcome)
    return client, asyncio.create_task(client.run(_no_requests, _no_notifications))


async def _no_requests(request: Request) -> Response:
    raise AssertionError("the raw client expects no requests")


async def _no_notifications(notification: Notification) -> None:
    return None


async def test_a_bundle_given_several_servers_joins_all_and_fails_over(tmp_path: Path) -> None:
    """Each server routes to the aggregate it knows; when one server stops, requests go to the other."""
    first, second = await asyncio.gather(*(start_server_process(tmp_path / name) for name in ("one", "two")))
    accounts = Bundle("accounts", components=[Account])
    both = TcpConnector([first.bus, second.bus], settings=ConnectorSettings(base_backoff=0.05, max_backoff=0.2))
    client = Bundle("client", components=[_Echo])
    await accounts.start(both)
    await client.start(TcpConnector(second.bus))
    try:
        assert (await health(first))["nodes"] == 1
        assert (await health(second))["nodes"] == 2
        # A caller on the second server reaches the aggregate through it.
        commands, _ = client.gateways(None)
        assert (await commands.send(OpenAccount(account="M"))).account == "M"
        # The bundle's own requests fail over when the first server goes away.
        stop_server_process(first)
        own, _ = accounts.gateways(None)
        for n in range(3):
            assert (await own.send(Deposit(account="M", amount=1), timeout=10)).balance == n + 1
    finally:
        await client.stop()
        await accounts.stop()
        stop_server_process(second)


async def test_a_silent_peer_is_disconnected_by_the_heartbeat(tmp_path: Path) -> None:
    """A connection that stops sending anything (not even pongs) is closed after the idle timeout."""
    from evento.event_stores import SQLiteEventStore
    from evento.server import EventoServer
    from evento.server.bus import BusServer, BusSettings

    server = EventoServer(SQLiteEventStore(tmp_path / "events.db"))
    await server.start()
    bus = BusServer(server, "127.0.0.1", 0, settings=BusSettings(ping_interval=0.1, idle_timeout=0.5))
    await bus.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", bus.port)
        silent = Connection(reader, writer, name="silent")
        await silent.send(Hello(PROTOCOL_VERSION, "silent", 1, "silent-1"))
        assert isinstance(await silent.receive(), Welcome)
        await wait_until(lambda: len(server.registry.nodes) == 1, 5, what="silent peer attached")
        # Never answer the pings: the server must give up on us.
        await wait_until(lambda: len(server.registry.nodes) == 0, 5, what="silent peer dropped")
        writer.close()
    finally:
        await bus.stop()
        await server.stop()


async def test_tls_between_bundle_and_server(tmp_path: Path) -> None:
    """With a certificate the bus speaks TLS; a bundle trusting that certificate works as over plain TCP."""
    import shutil
    import ssl

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a throwaway certificate")  # every machine of ours has it
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    running = await start_server_process(tmp_path / "tls", "--tls-cert", str(cert), "--tls-key", str(key))
    trust = ssl.create_default_context(cafile=str(cert))
    accounts = Bundle("accounts", components=[Account])
    await accounts.start(TcpConnector(running.bus, ssl_context=trust))
    try:
        commands, _ = accounts.gateways(None)
        assert (await commands.send(OpenAccount(account="T"))).account == "T"
        plain = TcpConnector(running.bus, settings=ConnectorSettings(connect_timeout=2))
        with pytest.raises((OSError, ConnectionError, TimeoutError)):
            await Bundle("plain", components=[_Echo]).start(plain)
    finally:
        await accounts.stop()
        stop_server_process(running)


# --- exactly-once at the bundle, and replies kept for a caller who lost its connection --------------------------


class RunJob(ServiceCommand):
    job: str


class JobDone(ServiceEvent):
    job: str
    run: int


class JobView(View):
    job: str
    run: int


class LookUpJob(Query[Single[JobView]]):
    job: str


@dataclass
class JobDesk:
    """What the slow handlers did: each run is counted when it starts and when it ends; they wait for ``release``."""

    started: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def work(self, job: str) -> int:
        self.started.append(job)
        await asyncio.wait_for(self.release.wait(), 30)
        self.finished.append(job)
        return len(self.started)

    def provide(self, annotation: object) -> JobDesk | None:
        return self if annotation is JobDesk else None


@service()
class SlowJobs:
    def __init__(self, desk: JobDesk) -> None:
        self.desk = desk

    @command_handler
    async def run(self, command: RunJob) -> JobDone:
        return JobDone(job=command.job, run=await self.desk.work(command.job))


@projection()
class SlowLookups:
    def __init__(self, desk: JobDesk) -> None:
        self.desk = desk

    @query_handler
    async def look_up(self, query: LookUpJob) -> Single[JobView]:
        return Single(JobView(job=query.job, run=await self.desk.work(query.job)))


def _job_command(job: str) -> CommandMessage:
    return CommandMessage(
        payload_name="RunJob", payload=encode_payload(RunJob(job=job)), message_id=new_message_id(), metadata={},
        timestamp=now_ms(), domain=False, aggregate_id=None, lock_id=None,
    )  # fmt: skip


def _job_request(correlation_id: str, command: CommandMessage, caller: NodeInfo | None = None) -> Request:
    return Request(correlation_id, ServiceCommandRequest(command, caller), 10_000)


async def _next_response(connection: Connection) -> Response:
    while not isinstance(message := await asyncio.wait_for(connection.receive(), 10), Response):
        pass  # the bundle's enable notification
    return message


@contextlib.asynccontextmanager
async def _bare_server(bundle: Bundle) -> AsyncIterator[Connection]:
    """A bare server (handshake, registration answered, nothing else) with ``bundle`` started on it: the server's
    end of the connection, for a test to send requests as a server would."""
    accepted: asyncio.Queue[Connection] = asyncio.Queue()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = Connection(reader, writer, name="bare server")
        assert isinstance(await connection.receive(), Hello)
        await connection.send(Welcome(PROTOCOL_VERSION, "bare"))
        register = await connection.receive()
        assert isinstance(register, Request)
        assert isinstance(register.body, Register)
        await connection.send(Response(register.correlation_id, Registered()))
        await accepted.put(connection)

    listener = await asyncio.start_server(accept, "127.0.0.1", 0)
    await bundle.start(TcpConnector(f"127.0.0.1:{listener.sockets[0].getsockname()[1]}"))
    server = await asyncio.wait_for(accepted.get(), 10)
    try:
        yield server
    finally:
        await bundle.stop()
        await server.close()
        listener.close()
        await listener.wait_closed()


async def test_a_bundle_runs_a_service_command_sent_again_once() -> None:
    """A bare server sends one service command three times (twice while it runs, once after), each time under a
    correlation id of its own, as servers do when they forward a caller's resend: the handler runs once and every
    request gets the first run's reply under its own correlation id."""
    desk = JobDesk()
    async with _bare_server(Bundle("jobs", components=[SlowJobs], injector=desk.provide)) as server:
        command = _job_command("j1")
        await server.send(_job_request("forward-1", command))
        await wait_until(lambda: desk.started == ["j1"], 10, what="the first run started")
        await server.send(_job_request("forward-2", command))  # a duplicate while the first run is in flight
        desk.release.set()
        replies = {(r := await _next_response(server)).correlation_id: r for _ in range(2)}
        await server.send(_job_request("forward-3", command))  # and one after it ended
        third = await _next_response(server)
        assert set(replies) == {"forward-1", "forward-2"}
        assert third.correlation_id == "forward-3"
        first = replies["forward-1"]
        assert first.body == replies["forward-2"].body == third.body
        assert first.failure is None
        assert isinstance(first.body, ServiceCommandResponse)
        assert first.body.event is not None
        assert desk.started == desk.finished == ["j1"]
        # Another command is another request, even with the same content: it runs.
        await server.send(_job_request("forward-4", _job_command("j1")))
        assert (await _next_response(server)).body != first.body
        assert desk.started == ["j1", "j1"]


async def test_a_service_command_id_is_deduplicated_per_caller() -> None:
    """The server names the caller of each service command it forwards. The same caller's duplicate gets the first
    run's reply; another caller sending that command id gets a run (and a reply) of its own, so it can neither
    pre-empt the first caller's command nor be answered with its result."""
    desk = JobDesk()
    desk.release.set()
    alice, mallory = NodeInfo("web", 1, "replica-1"), NodeInfo("intruder", 1, "i-1")
    async with _bare_server(Bundle("jobs", components=[SlowJobs], injector=desk.provide)) as server:
        command = _job_command("j1")
        await server.send(_job_request("from-mallory", command, mallory))  # mallory first, with alice's command id
        from_mallory = await _next_response(server)
        await server.send(_job_request("from-alice", command, alice))
        from_alice = await _next_response(server)
        await server.send(_job_request("from-alice-again", command, alice))
        again = await _next_response(server)
        assert desk.started == ["j1", "j1"]  # one run per caller
        assert from_alice.body != from_mallory.body
        assert again.body == from_alice.body


class _Relay:
    """A TCP relay between a caller and the server that the test can cut, as a network fault would."""

    def __init__(self, upstream: str) -> None:
        self.upstream = parse_address(upstream)
        self.accepting = True
        self.connections = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._listener: asyncio.Server | None = None

    async def start(self) -> str:
        self._listener = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return f"127.0.0.1:{self._listener.sockets[0].getsockname()[1]}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.accepting:
            writer.transport.abort()
            return
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._writers += [writer, up_writer]
        await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))

    def cut(self) -> None:
        """Reset every relayed connection at once (both ends see it drop)."""
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def stop(self) -> None:
        self.cut()
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


@pytest.mark.parametrize("kind", ["query", "service command"])
@pytest.mark.parametrize("ready_before_reconnect", [True, False], ids=["reply-parked", "reply-in-flight"])
async def test_a_caller_that_loses_its_connection_mid_request_gets_the_first_reply(
    server_process: ServerProcess, kind: str, ready_before_reconnect: bool
) -> None:
    """The caller's connection is cut while its request runs; it reconnects, asks again under the same
    correlation id, and gets the reply of the one run (whether that ended before or after it came back)."""
    desk = JobDesk()
    jobs = Bundle("jobs", components=[SlowJobs, SlowLookups], injector=desk.provide)
    relay = _Relay(server_process.bus)
    caller = Bundle("caller", components=[_Echo])
    await jobs.start(connector(server_process))
    await caller.start(
        TcpConnector(
            await relay.start(), auth_token=TOKEN, settings=ConnectorSettings(base_backoff=0.05, max_backoff=0.2)
        )
    )
    try:
        commands, queries = caller.gateways(None)
        if kind == "query":
            asked = asyncio.ensure_future(queries.query(LookUpJob(job="q1"), timeout=30))
        else:
            asked = asyncio.ensure_future(commands.send(RunJob(job="q1"), timeout=30))
        await wait_until(lambda: desk.started == ["q1"], 10, what="the handler started")
        relay.accepting = not ready_before_reconnect
        relay.cut()
        await wait_until(lambda: _nodes(server_process, 1), 10, what="the server saw the caller leave")
        if ready_before_reconnect:
            desk.release.set()
            await wait_until(lambda: desk.finished == ["q1"], 10, what="the handler finished")
            relay.accepting = True
        else:
            await wait_until(lambda: _nodes(server_process, 2), 10, what="the caller reconnected")
            desk.release.set()
        answer: Any = await asyncio.wait_for(asked, 30)  # a Single[JobView] or a JobDone
        run = answer.data.run if kind == "query" else answer.run
        assert run == 1
        assert desk.started == desk.finished == ["q1"]
        assert relay.connections == 2
    finally:
        await caller.stop()
        await jobs.stop()
        await relay.stop()
