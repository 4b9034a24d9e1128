"""Helpers shared by the tests: waiting on conditions with a deadline, a server on a temporary SQLite file, an
`evento server` process, bare bus clients."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evento.consumer_stores import (
    ConsumerStateStore,
    open_consumer_store,
)
from evento.event_stores import SQLiteEventStore
from evento.server import EventoServer
from evento.testing.databases import BACKENDS
from evento.transport.connection import Connection
from evento.transport.connector import HandshakeRejectedError, parse_address
from evento.transport.wire import PROTOCOL_VERSION, Hello, Reject, Welcome


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0, interval: float = 0.01, what: str = ""
) -> None:
    """Re-check ``predicate`` until it holds; fail with ``what`` when the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {what or predicate}")
        await asyncio.sleep(interval)


async def start_server(path: Path) -> EventoServer:
    server = EventoServer(SQLiteEventStore(path / "events.db"))
    await server.start()
    return server


def make_consumer_store(kind: str, path: Path, name: str = "consumers.db") -> ConsumerStateStore:
    """A consumer store of ``kind``: "memory", "sqlite" (the file ``path/name``) or a PostgreSQL/MySQL URL
    (a test's throwaway database, see ``store_kind`` in the guarantee tests; ``name`` is then ignored)."""
    return open_consumer_store(str(path / name) if kind == "sqlite" else kind)


#: The consumer store kinds guarantee tests run on (the backend registry); "postgres" and "mysql" become database
#: URLs per test.
CONSUMER_STORE_KINDS: list[str] = list(BACKENDS)


def free_port() -> int:
    """A TCP port nobody listens on right now (bind to 0 and let the OS choose)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def scan_lists(client: Any, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every todo list the TodoList search endpoint shows, page after page (15 per page)."""
    items: list[dict[str, Any]] = []
    page = 0
    while True:
        response = await client.get("/todo-list/", params={"nameLike": "", "page": page}, headers=headers)
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()
        items.extend(found)
        if len(found) < 15:
            return items
        page += 1


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    bus: str
    http: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


async def start_server_process(directory: Path, *extra: str) -> ServerProcess:
    """An `evento server` process on free ports, its output in DIRECTORY/server.log, once it printed Ready."""
    directory.mkdir(parents=True, exist_ok=True)
    port, bus_port = free_port(), free_port()
    log = directory / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "evento.cli", "--log-level", "WARNING", "server", "--data-dir", str(directory),
             "--port", str(port), "--bus-port", str(bus_port), *extra],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    running = ServerProcess(process, f"127.0.0.1:{bus_port}", f"http://127.0.0.1:{port}", log)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"server exited early:\n{running.output()}")
        return "Ready." in running.output()

    await wait_until(ready, 30, what="server Ready.")
    return running


def stop_server_process(running: ServerProcess) -> None:
    if running.process.poll() is None:
        running.process.send_signal(signal.SIGTERM)
        running.process.wait(timeout=15)


async def handshake(address: str, bundle_id: str, instance_id: str, token: str = "", **options: Any) -> Connection:
    """A bare protocol connection to a bus that has done its handshake and reads nothing more (no read loop: it
    answers no ping, as a half-open connection would not). Raises HandshakeRejectedError when refused."""
    host, port = parse_address(address)
    reader, writer = await asyncio.open_connection(host, port)
    connection = Connection(reader, writer, name=f"{bundle_id}/{instance_id}", **options)
    await connection.send(Hello(PROTOCOL_VERSION, bundle_id, 1, instance_id, token))
    answer = await asyncio.wait_for(connection.receive(), 10)
    if isinstance(answer, Reject):
        await connection.close()
        raise HandshakeRejectedError(f"{answer.code}: {answer.reason}", answer.code)
    assert isinstance(answer, Welcome), answer
    return connection


async def bus_client(
    address: str, bundle_id: str, instance_id: str, token: str = "", **options: Any
) -> tuple[Connection, asyncio.Task[None]]:
    """A bare protocol client: handshake done, its read loop running (it answers pings, refuses requests)."""
    connection = await handshake(address, bundle_id, instance_id, token, **options)
    return connection, asyncio.create_task(connection.run(_no_requests, _no_notifications))


async def _no_requests(request: object) -> Any:
    raise AssertionError("a bare client expects no requests")


async def _no_notifications(notification: object) -> None:
    return None


def memory_kib(pid: int, field: str = "VmRSS") -> int:
    """A process's memory figure from /proc (VmRSS: resident now; VmHWM: the peak resident size so far), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")
