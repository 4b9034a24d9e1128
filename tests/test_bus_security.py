"""The bus against hostile or careless peers (issue 8): no peer can answer, displace or block another's work, and
input before authentication cannot make the server hold more than one small frame.

Servers are an in-process :class:`EventoServer` behind a real :class:`BusServer` on a free port, or a real
``evento server`` / ``evento demo`` process where the claim is about the process (its memory, its options). Peers
are real bundles over TCP, or bare protocol clients where a test needs to send what a bundle never would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from evento import Bundle, Single, View, projection, query_handler
from evento.demo.distributed import _children
from evento.demo.runner import DemoOptions
from evento.discovery import BundleRegistration, ComponentKind, HandlerInfo, HandlerKind
from evento.errors import RegistrationError, TooManyPendingRequestsError
from evento.messages import CommandMessage, CommandResult, QueryMessage, SendCommand, SendQuery, new_message_id, now_ms
from evento.payloads import Query, decode_payload, encode_payload
from evento.server import EventoServer
from evento.server.bus import BusServer, BusSettings
from evento.server.registry import DuplicateInstanceError, HandlerKindConflictError
from evento.transport.connector import HandshakeRejectedError, TcpConnector, parse_address
from evento.transport.wire import PROTOCOL_VERSION, Hello, Register, Request, encode_frames
from tests.bank import Account, Deposit, Deposited, OpenAccount
from tests.helpers import (
    bus_client,
    free_port,
    handshake,
    memory_kib,
    start_server_process,
    stop_server_process,
    wait_until,
)

MiB = 1024 * 1024


@contextlib.asynccontextmanager
async def bus(server: EventoServer, **settings: Any) -> AsyncIterator[BusServer]:
    """A bus listener for ``server`` on a free loopback port, with ``settings`` changed from the defaults."""
    listener = BusServer(server, "127.0.0.1", 0, settings=BusSettings(**settings))
    await listener.start()
    try:
        yield listener
    finally:
        await listener.stop()


def address(listener: BusServer) -> str:
    return f"127.0.0.1:{listener.port}"


def deposit(account: str, amount: int) -> SendCommand:
    command = CommandMessage(
        payload_name="Deposit", payload=encode_payload(Deposit(account=account, amount=amount)),
        message_id=new_message_id(), metadata={}, timestamp=now_ms(), domain=True, aggregate_id=account,
        lock_id=account,
    )  # fmt: skip
    return SendCommand(command)


async def started(bundle: Bundle, server: EventoServer | TcpConnector) -> Bundle:
    await bundle.start(server)
    return bundle


# --- 1. replies and ids belong to their caller ---------------------------------------------------------------------


async def test_a_peer_cannot_pre_fill_another_callers_command_reply(server: EventoServer) -> None:
    """Finding 1: a peer sends a command under the correlation id another caller will use next. That caller's own
    command still runs and is stored, and it gets its own reply (today it got the intruder's, with nothing
    stored for its command: a 201 for a lost write)."""
    accounts = await started(Bundle("accounts", components=[Account]), server)
    async with bus(server) as listener:
        intruder, intruder_reads = await bus_client(address(listener), "intruder", "i-1")
        teller, teller_reads = await bus_client(address(listener), "teller", "t-1")
        try:
            commands, _ = accounts.gateways(None)
            await commands.send(OpenAccount(account="V"))
            await intruder.request(deposit("V", 1000), 10, correlation_id="the-tellers-next-id")
            mine = deposit("V", 5)
            reply = await teller.request(mine, 10, correlation_id="the-tellers-next-id")
            assert isinstance(reply, CommandResult)
            assert reply.event is not None
            assert reply.event.metadata.get("causation_id") == mine.command.message_id
            assert decode_payload(reply.event.payload, Deposited).amount == 5
            story = await server.store.load_story("V")
            assert [e.event_name for e in story.events] == ["AccountOpened", "Deposited", "Deposited"]
        finally:
            for reads in (intruder_reads, teller_reads):
                reads.cancel()
            await intruder.close()
            await teller.close()
    await accounts.stop()


def test_message_ids_are_random_128_bit_values_a_forked_child_does_not_repeat() -> None:
    """Ids cross processes as correlation and command ids: 32 random hex digits, no shared prefix or counter to
    predict the next from (today: a per-process prefix and a counter), and a forked child does not hand out the
    ids its parent had drawn but not used yet."""
    ids = [new_message_id() for _ in range(5000)]
    assert all(re.fullmatch("[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert len({i[:16] for i in ids}) == len(ids)  # every half differs: nothing stays the same from id to id
    assert len({i[16:] for i in ids}) == len(ids)
    script = (
        "import os\n"
        "from evento.messages import new_message_id\n"
        "new_message_id()\n"  # the parent holds a batch of drawn ids
        "read, write = os.pipe()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.write(write, new_message_id().encode())\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "print(os.read(read, 32).decode(), new_message_id())\n"
    )
    child, parent = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    assert child != parent


# --- 2. one registry entry per live connection ---------------------------------------------------------------------


async def test_a_second_instance_with_the_same_ids_is_refused_and_the_first_keeps_its_routes(
    server: EventoServer,
) -> None:
    """Finding 2, in process: a copy of a running instance (same bundle id and instance id) is refused; stopping
    the copy removes nothing (today the copy replaced the original and its leave deleted the routes: 503)."""
    original = await started(Bundle("accounts", components=[Account], instance_id="one"), server)
    copy = Bundle("accounts", components=[Account], instance_id="one")
    with pytest.raises(DuplicateInstanceError, match="'one' of bundle 'accounts' is connected already"):
        await copy.start(server)
    await copy.stop()
    commands, _ = original.gateways(None)
    assert (await commands.send(OpenAccount(account="D"))).account == "D"
    assert len(server.registry.nodes) == 1
    await original.stop()


async def test_over_tcp_a_copy_of_a_live_instance_is_refused_with_duplicate_instance(server: EventoServer) -> None:
    """Finding 2 over TCP: the present connection answers the server's ping, so the newcomer gets a
    DUPLICATE_INSTANCE reject; the original keeps serving after the copy is gone."""
    async with bus(server, liveness_timeout=1.0) as listener:
        original = await started(
            Bundle("accounts", components=[Account], instance_id="one"), TcpConnector(address(listener))
        )
        copy = Bundle("accounts", components=[Account], instance_id="one")
        with pytest.raises(HandshakeRejectedError, match=r"DUPLICATE_INSTANCE.*own instance id") as refused:
            await copy.start(TcpConnector(address(listener)))
        assert refused.value.code == "DUPLICATE_INSTANCE"
        await copy.stop()
        commands, _ = original.gateways(None)
        assert (await commands.send(OpenAccount(account="T"))).account == "T"
        assert len(server.registry.nodes) == 1
        await original.stop()


async def test_an_instance_whose_previous_connection_is_dead_is_let_back_in(server: EventoServer) -> None:
    """A half-open previous connection (it did the handshake, then stopped answering) does not lock its instance
    out: it fails the ping, is closed, and the reconnecting instance is admitted and served."""
    async with bus(server, liveness_timeout=0.3) as listener:
        stale = await handshake(address(listener), "accounts", "one")
        await wait_until(lambda: len(server.registry.nodes) == 1, 5, what="the stale connection attached")
        back = await started(
            Bundle("accounts", components=[Account], instance_id="one"), TcpConnector(address(listener))
        )
        commands, _ = back.gateways(None)
        assert (await commands.send(OpenAccount(account="H"))).account == "H"
        assert len(server.registry.nodes) == 1
        await wait_until(lambda: stale.closed.is_set() or _eof(stale), 5, what="the stale connection closed")
        await back.stop()
        await stale.close()


async def _eof(connection: Any) -> bool:
    """Whether the server closed ``connection`` (reads to the end; pings it sent before are skipped)."""
    try:
        while True:
            await asyncio.wait_for(connection.receive(), 0.2)
    except TimeoutError:
        return False
    except ConnectionError:
        return True


def duplicate_accounts() -> Bundle:
    """The bundle ``evento bundle run`` starts in the CLI test below: a fixed instance id, as a copied command
    line would have."""
    return Bundle("accounts", components=[Account], instance_id="one")


async def test_evento_bundle_run_ends_with_one_line_when_its_instance_is_taken(server: EventoServer) -> None:
    """``evento bundle run`` refused as a duplicate exits non-zero with one line naming the reason."""
    async with bus(server) as listener:
        original = await started(duplicate_accounts(), TcpConnector(address(listener)))
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "evento.cli", "--log-level", "WARNING", "bundle", "run",
            "tests.test_bus_security:duplicate_accounts", "--server", address(listener),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).parent.parent,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
        lines = stderr.decode().strip().splitlines()
        assert process.returncode == 1, stderr.decode()
        assert len(lines) == 1, lines
        assert "DUPLICATE_INSTANCE" in lines[0], lines
        assert b"Ready." not in stdout
        commands, _ = original.gateways(None)
        assert (await commands.send(OpenAccount(account="C"))).account == "C"
        await original.stop()


# --- 4. limits before and after the handshake ---------------------------------------------------------------------


def _flood(bus_address: str, frame: bytes, total: int) -> int:
    """Send ``frame`` over a new connection until ``total`` bytes went out or the server closed it; bytes sent."""
    sent = 0
    with socket.create_connection(parse_address(bus_address)) as sock:
        try:
            while sent < total:
                sock.sendall(frame)
                sent += len(frame)
        except OSError:  # reset or broken pipe: the server closed the connection
            pass
    return sent


def _chunk_frame(size: int) -> bytes:
    """An unfinished chunk of a chunked message, ``size`` bytes of data (the frame layout of :mod:`wire`)."""
    body = b"\x01" + b"s" * 16 + b"\x00" + b"x" * size
    return len(body).to_bytes(4, "big") + body


async def test_a_chunk_flood_before_the_hello_leaves_the_server_process_memory_bounded(tmp_path: Path) -> None:
    """Finding 4: chunks sent before any Hello, small ones and 1 MiB ones, 200 MiB per connection. The server
    closes each connection at its first chunk; its peak resident memory (VmHWM) grows by less than 32 MiB (today
    it buffered each connection's chunks up to 1 GiB until the handshake deadline), and it serves a bundle after."""
    running = await start_server_process(tmp_path)
    try:
        # The high-water mark from here on: starting (imports, the admin password's hash) peaks on its own.
        Path(f"/proc/{running.process.pid}/clear_refs").write_text("5")
        before = memory_kib(running.process.pid, "VmRSS")
        floods = [_chunk_frame(60 * 1024), _chunk_frame(MiB)] * 2
        sent = await asyncio.gather(*(asyncio.to_thread(_flood, running.bus, frame, 200 * MiB) for frame in floods))
        peak = memory_kib(running.process.pid, "VmHWM")
        assert (peak - before) * 1024 < 32 * MiB, f"peak {peak} KiB after {before} KiB; sent {sent}"
        assert all(count < 200 * MiB for count in sent)  # every flood was cut off
        accounts = await started(Bundle("accounts", components=[Account]), TcpConnector(running.bus))
        commands, _ = accounts.gateways(None)
        assert (await commands.send(OpenAccount(account="F"))).account == "F"
        await accounts.stop()
    finally:
        stop_server_process(running)


@pytest.mark.parametrize("case", ["oversized hello", "chunked hello", "frame after the hello"])
async def test_before_the_welcome_only_one_small_whole_frame_is_read(server: EventoServer, case: str) -> None:
    """A Hello above 64 KiB, a Hello in chunks, or anything pipelined behind the Hello: the server closes the
    connection without a Welcome and nothing attaches."""
    async with bus(server) as listener:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        hello = Hello(PROTOCOL_VERSION, "accounts", 1, "one", "t" * (100 * 1024 if case == "oversized hello" else 1))
        frames = list(encode_frames(hello, 32 if case == "chunked hello" else 16 * MiB))
        if case == "frame after the hello":
            frames += list(encode_frames(hello))
        writer.writelines(frames)
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        assert server.registry.nodes == []


async def test_connections_beyond_the_unauthenticated_cap_are_closed_at_once_while_bundles_keep_working(
    server: EventoServer,
) -> None:
    """Three connections sit in their handshake (the cap); a fourth is closed at once, long before the handshake
    deadline, while the bundle already connected keeps being served; when the three go, newcomers get in."""
    async with bus(server, max_unauthenticated=3, handshake_timeout=30) as listener:
        accounts = await started(Bundle("accounts", components=[Account]), TcpConnector(address(listener)))
        idle = [await asyncio.open_connection("127.0.0.1", listener.port) for _ in range(3)]
        await wait_until(lambda: listener.unauthenticated == 3, 5, what="three connections in their handshake")
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed at once (the deadline is 30 s)
        writer.close()
        commands, _ = accounts.gateways(None)
        assert (await commands.send(OpenAccount(account="K"))).account == "K"
        for _, idle_writer in idle:
            idle_writer.close()
        await wait_until(lambda: listener.unauthenticated == 0, 5, what="the idle connections gone")
        late = await started(Bundle("client", components=[Quiet]), TcpConnector(address(listener)))
        await late.stop()
        await accounts.stop()


class Opened(View):
    value: str


class Wait(Query[Single[Opened]]):
    name: str


class Ask(Query[Single[Opened]]):
    name: str


@projection()
class Quiet:
    """A harmless component for bundles a test only needs to connect."""

    @query_handler
    def ask(self, query: Ask) -> Single[Opened]:
        return Single(Opened(value=query.name))


class Turnstile:
    """Holds every Wait query until ``release`` is set, counting those held."""

    def __init__(self) -> None:
        self.held = 0
        self.release = asyncio.Event()

    def provide(self, annotation: object) -> Turnstile | None:
        return self if annotation is Turnstile else None


@projection()
class Gate:
    def __init__(self, turnstile: Turnstile) -> None:
        self.turnstile = turnstile

    @query_handler
    async def wait(self, query: Wait) -> Single[Opened]:
        self.turnstile.held += 1
        await asyncio.wait_for(self.turnstile.release.wait(), 30)
        return Single(Opened(value=query.name))


def wait_query(name: str) -> SendQuery:
    return SendQuery(
        QueryMessage(payload_name="Wait", payload=encode_payload(Wait(name=name)), message_id=new_message_id(),
                     metadata={}, timestamp=now_ms())
    )  # fmt: skip


async def test_requests_beyond_a_connections_concurrency_cap_are_refused_at_once(server: EventoServer) -> None:
    """With two requests of one connection being handled (the cap), a third is answered at once with
    TooManyPendingRequestsError (it did not run); the two held ones are answered when released."""
    turnstile = Turnstile()
    gate = await started(Bundle("gate", components=[Gate], injector=turnstile.provide), server)
    async with bus(server, max_concurrent_requests=2) as listener:
        client, reads = await bus_client(address(listener), "client", "c-1")
        held = [asyncio.ensure_future(client.request(wait_query(f"q{n}"), 30)) for n in range(2)]
        await wait_until(lambda: turnstile.held == 2, 10, what="two queries held")
        with pytest.raises(TooManyPendingRequestsError, match="did not run"):
            await client.request(wait_query("q3"), 5)
        assert turnstile.held == 2
        turnstile.release.set()
        assert len(await asyncio.gather(*held)) == 2
        reads.cancel()
        await client.close()
    await gate.stop()


async def test_a_chunked_message_above_the_reassembly_limit_closes_only_its_connection(server: EventoServer) -> None:
    """An authenticated peer's chunked message above the per-connection reassembly limit closes that connection;
    the server goes on serving the others."""
    accounts = await started(Bundle("accounts", components=[Account]), server)
    async with bus(server, max_message=MiB, max_frame=64 * 1024) as listener:
        client, reads = await bus_client(address(listener), "client", "c-1", max_frame=64 * 1024)
        big = CommandMessage(
            payload_name="OpenAccount", payload=b"x" * (2 * MiB), message_id=new_message_id(), metadata={},
            timestamp=now_ms(), domain=True, aggregate_id="B", lock_id="B",
        )  # fmt: skip
        client.post(Request(new_message_id(), SendCommand(big), 10_000))
        with contextlib.suppress(ConnectionError):
            await asyncio.wait_for(reads, 10)  # ends when the server closes the connection
        assert client.closed.is_set()
        other, other_reads = await bus_client(address(listener), "client", "c-2")
        opening = msgspec.structs.replace(
            big, payload=encode_payload(OpenAccount(account="B")), message_id=new_message_id()
        )
        result = await other.request(SendCommand(opening), 10)
        assert isinstance(result, CommandResult)
        assert result.event is not None
        other_reads.cancel()
        await other.close()
    await accounts.stop()


# --- 5. credentials per bundle and routes per handler kind ---------------------------------------------------------


async def test_a_bus_token_admits_only_the_bundle_ids_it_lists(tmp_path: Path) -> None:
    """Finding 5: with ``--bus-tokens`` a token registers only as its bundle ids (AUTH_FAILED otherwise, and for an
    unknown token); the shared ``--auth-token`` still admits any bundle id."""
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"tok-accounts": ["accounts"], "tok-client": ["client", "reports"]}))
    running = await start_server_process(tmp_path / "server", "--bus-tokens", str(tokens), "--auth-token", "shared")
    try:
        accounts = await started(
            Bundle("accounts", components=[Account]), TcpConnector(running.bus, auth_token="tok-accounts")
        )
        for bundle_id, token, reason in [
            ("accounts", "tok-client", "this token may not register as bundle 'accounts'"),
            ("client", "tok-accounts", "this token may not register as bundle 'client'"),
            ("client", "guess", "wrong auth token"),
            ("client", "", "missing auth token"),
        ]:
            with pytest.raises(HandshakeRejectedError, match=f"AUTH_FAILED: {reason}"):
                await Bundle(bundle_id, components=[Quiet], instance_id="x").start(
                    TcpConnector(running.bus, auth_token=token)
                )
        client = await started(Bundle("client", components=[Quiet]), TcpConnector(running.bus, auth_token="tok-client"))
        anyone = await started(
            Bundle("anyone", components=[Quiet], instance_id="a"), TcpConnector(running.bus, auth_token="shared")
        )
        commands, _ = client.gateways(None)
        assert (await commands.send(OpenAccount(account="P"))).account == "P"
        for bundle in (anyone, client, accounts):
            await bundle.stop()
    finally:
        stop_server_process(running)


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_an_unusable_token_file_stops_the_server_with_one_line(tmp_path: Path, how: str) -> None:
    """A token file that is not ``{token: [bundle ids]}`` (or cannot be read) ends ``evento server`` at once with
    one line, exit status 2; ``EVENTO_BUS_TOKENS`` names the file like ``--bus-tokens``."""
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"tok": "accounts"}))  # a string, not a list of bundle ids
    command = [sys.executable, "-m", "evento.cli", "server", "--data-dir", str(tmp_path), "--port", str(free_port()),
               "--bus-port", str(free_port())]  # fmt: skip
    env = dict(os.environ)
    if how == "flag":
        command += ["--bus-tokens", str(path)]
    else:
        env["EVENTO_BUS_TOKENS"] = str(path)
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "--bus-tokens" in lines[0], lines
    assert "expected a JSON object" in lines[0], lines


async def test_a_registration_that_changes_a_payloads_handler_kind_is_refused(server: EventoServer) -> None:
    """A peer registering ``OpenAccount`` as a query handler (the accounts bundle handles it as an aggregate
    command) gets the refusal as its answer, and commands keep reaching the aggregate; so does a registration in
    another bundle's name."""
    accounts = await started(Bundle("accounts", components=[Account]), server)
    async with bus(server) as listener:
        peer, reads = await bus_client(address(listener), "hijacker", "h-1")
        stolen = HandlerInfo(
            component="Steal", component_kind=ComponentKind.PROJECTION, handler_kind=HandlerKind.QUERY,
            payload="OpenAccount", payload_kind="Query", handler_name="steal",
        )  # fmt: skip
        with pytest.raises(HandlerKindConflictError, match="cannot register OpenAccount as a QueryHandler"):
            await peer.request(
                Register(BundleRegistration(bundle_id="hijacker", bundle_version=1, handlers=[stolen])), 5
            )
        with pytest.raises(RegistrationError, match="registers its own bundle only"):
            await peer.request(Register(BundleRegistration(bundle_id="accounts", bundle_version=1)), 5)
        assert server.registry.handler_kind("OpenAccount") is HandlerKind.AGGREGATE_COMMAND
        commands, _ = accounts.gateways(None)
        assert (await commands.send(OpenAccount(account="R"))).account == "R"
        reads.cancel()
        await peer.close()
    await accounts.stop()


@pytest.mark.slow
async def test_the_embedded_demo_binds_its_bus_to_loopback_and_asks_for_its_token(tmp_path: Path) -> None:
    """``evento demo --host 127.0.0.2 --auth-token T``: the HTTP APIs listen on 127.0.0.2, the bus on 127.0.0.1 only,
    and it admits a bundle presenting T and refuses one without."""
    bus_port = free_port()
    command = [sys.executable, "-m", "evento.cli", "--log-level", "WARNING", "demo",
               "--data-dir", str(tmp_path / "data"), "--host", "127.0.0.2", "--port", str(free_port()),
               "--bus-port", str(bus_port),
               "--todo-port", str(free_port()), "--service-delay", "0.01", "--auth-token", "demo-token"]  # fmt: skip
    log = tmp_path / "demo.out"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"demo exited:\n{log.read_text()}")
            return "Ready." in log.read_text()

        await wait_until(ready, 60, what="demo Ready.")
        assert f"Bus             127.0.0.1:{bus_port} (bundles presenting --auth-token)" in log.read_text()
        with pytest.raises(OSError):  # noqa: PT011 - refused or unreachable, as the system's network says
            await asyncio.open_connection("127.0.0.2", bus_port)
        with pytest.raises(HandshakeRejectedError, match="AUTH_FAILED"):
            await Bundle("visitor", components=[Quiet]).start(TcpConnector(f"127.0.0.1:{bus_port}"))
        visitor = await started(
            Bundle("visitor", components=[Quiet]), TcpConnector(f"127.0.0.1:{bus_port}", auth_token="demo-token")
        )
        await visitor.stop()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_distributed_demo_gives_every_process_one_bus_token_and_a_loopback_bus() -> None:
    """The launcher's children share one token through the environment (``--auth-token``, or one made for the run:
    never none), the server's bus listens on ``--bus-host`` and the bundles connect there."""
    given = _children(DemoOptions(auth_token="given", host="0.0.0.0"), 1)
    assert {child.env["EVENTO_AUTH_TOKEN"] for child in given} == {"given"}
    server, *bundles = given
    assert server.command[server.command.index("--bus-host") + 1] == "127.0.0.1"
    assert all(bundle.command[bundle.command.index("--server") + 1].startswith("127.0.0.1:") for bundle in bundles)
    made = _children(DemoOptions(), 1)
    tokens = {child.env["EVENTO_AUTH_TOKEN"] for child in made}
    assert len(tokens) == 1
    assert len(tokens.pop()) >= 32
    assert all("given" not in " ".join(child.command) for child in given)  # not on a command line others can read
