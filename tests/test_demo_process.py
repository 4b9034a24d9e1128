"""``evento demo`` as a real process: readiness, health, durability across kill -9, clean shutdown on signals.

Each test starts ``python -m evento.cli demo`` on free ports with its data directory under ``tmp_path`` and waits
for "Ready." on its stdout. Everything the tests wait for is polled under a deadline; stdout and stderr go to files
beside the data directory, and failures quote them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from evento.testing.databases import postgres_database
from tests.helpers import free_port, scan_lists

pytestmark = pytest.mark.slow

T = TypeVar("T")

READY_DEADLINE = 30.0
STOP_DEADLINE = 15.0
CATCH_UP_DEADLINE = 30.0
BURST_SECONDS = 1.5
BURST_CLIENTS = 8
AUTH = {"Authorization": "Bearer alice"}


async def wait_until(predicate: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
    """Re-check ``predicate`` until it returns something truthy (returned) or ``timeout`` seconds pass (fails)."""
    deadline = time.monotonic() + timeout
    while True:
        last = await predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last value {last!r})")
        await asyncio.sleep(0.05)


@dataclass
class Demo:
    """One ``evento demo`` process; its output goes to ``<name>.out`` / ``<name>.err`` under ``logs``."""

    data_dir: Path
    logs: Path
    name: str
    store: str = ""  # --store: empty for the embedded SQLite default
    port: int = field(default_factory=free_port)
    bus_port: int = field(default_factory=free_port)
    todo_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "evento.cli",
            "--log-level",
            "WARNING",
            "demo",
            "--data-dir",
            str(self.data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--bus-port",
            str(self.bus_port),
            "--todo-port",
            str(self.todo_port),
            "--service-delay",
            "0.01",
            *(["--store", self.store] if self.store else []),
        ]

    @property
    def server_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def todo_url(self) -> str:
        return f"http://127.0.0.1:{self.todo_port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stdout(self) -> str:
        path = self.logs / f"{self.name}.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def stderr(self) -> str:
        path = self.logs / f"{self.name}.err"
        return path.read_text(errors="replace") if path.exists() else ""

    def describe(self) -> str:
        return f"stdout:\n{self.stdout()}\nstderr (tail):\n{self.stderr()[-3000:]}"

    async def start(self) -> None:
        """Start the process and return once it printed "Ready." (fails if it exits or takes too long)."""
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{self.name}.out", "wb") as out, open(self.logs / f"{self.name}.err", "wb") as err:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=err, cwd=self.logs)

        async def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"demo exited with {self.process.returncode} before Ready.\n{self.describe()}")
            return "Ready." in self.stdout()

        await wait_until(ready, READY_DEADLINE, f"'Ready.' from {self.name}\n{self.describe()}")

    async def wait_exit(self, timeout: float) -> int:
        """The exit code, once the process ended (fails after ``timeout`` seconds)."""
        process = self.process
        assert process is not None

        async def exited() -> tuple[int] | None:
            code = process.poll()
            return None if code is None else (code,)

        (code,) = await wait_until(exited, timeout, f"exit of {self.name}\n{self.describe()}")
        return code

    def kill(self) -> None:
        """SIGKILL, if it still runs (teardown)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_DEADLINE)


@pytest.fixture
def demos(tmp_path: Path) -> Iterator[Callable[..., Demo]]:
    """Makes :class:`Demo` processes on ``tmp_path/"data"``; those still running at teardown are killed."""
    made: list[Demo] = []

    def make(name: str, store: str = "") -> Demo:
        demo = Demo(tmp_path / "data", tmp_path / "logs", name, store)
        made.append(demo)
        return demo

    yield make
    for demo in made:
        demo.kill()


async def test_health_answers_without_auth(demos: Callable[..., Demo]) -> None:
    """Once "Ready." is printed, GET /api/health answers 200 UP without credentials; the TodoList API wants them."""
    demo = demos("demo")
    await demo.start()
    async with httpx.AsyncClient(timeout=10.0) as client:
        health = await client.get(f"{demo.server_url}/api/health")
        assert health.status_code == 200, health.text
        body = health.json()
        assert body["status"] == "UP"
        assert body["nodes"] == 4  # the four TodoList bundles
        assert body["head"] == 0  # a fresh data directory
        assert (await client.get(f"{demo.todo_url}/todo-list/")).status_code == 401
        assert (await client.get(f"{demo.todo_url}/todo-list/", headers=AUTH)).json() == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_signal_stops_the_demo_cleanly(demos: Callable[..., Demo], sig: signal.Signals) -> None:
    """SIGTERM or SIGINT: the demo stops serving, prints "Stopped." and exits 0, keeping what it acknowledged."""
    demo = demos("demo")
    await demo.start()
    async with httpx.AsyncClient(base_url=demo.todo_url, timeout=10.0) as client:
        created = await client.post("/todo-list/", json={"name": "before the signal"}, headers=AUTH)
        assert created.status_code == 201, created.text
    os.kill(demo.pid, sig)
    assert await demo.wait_exit(STOP_DEADLINE) == 0, demo.describe()
    lines = demo.stdout().splitlines()
    assert lines[-2:] == ["Stopping...", "Stopped."], demo.describe()
    assert "Traceback" not in demo.stderr(), demo.describe()
    assert _created_events(demo) == {created.json()["identifier"]: 1}


@dataclass
class Burst:
    """What a burst of creates saw: the acknowledged lists, and the names whose request got no answer."""

    acknowledged: dict[str, str] = field(default_factory=dict)  # identifier -> name
    unanswered: set[str] = field(default_factory=set)
    other_statuses: list[tuple[int, str]] = field(default_factory=list)


async def _burst(demo: Demo, stop: asyncio.Event, burst: Burst) -> None:
    """``BURST_CLIENTS`` clients create lists back to back until ``stop`` is set or the server goes away."""

    async def client_loop(n: int) -> None:
        async with httpx.AsyncClient(base_url=demo.todo_url, timeout=10.0) as client:
            i = 0
            while not stop.is_set():
                name = f"burst-{n}-{i}"
                i += 1
                try:
                    response = await client.post("/todo-list/", json={"name": name}, headers=AUTH)
                except httpx.HTTPError:
                    burst.unanswered.add(name)  # in flight when the process died: not acknowledged
                    return
                if response.status_code == 201:
                    burst.acknowledged[response.json()["identifier"]] = name
                else:
                    burst.other_statuses.append((response.status_code, response.text))

    await asyncio.gather(*(client_loop(n) for n in range(BURST_CLIENTS)))


def _created_events(demo: Demo) -> dict[str, int]:
    """How many TodoListCreatedEvent the event store holds per list (a read-only look at the demo's store)."""
    sql = "SELECT aggregate_id, COUNT(*) FROM es_events WHERE event_name = 'TodoListCreatedEvent' GROUP BY aggregate_id"
    if demo.store:
        import psycopg

        with psycopg.connect(demo.store) as pg:
            rows = pg.execute(sql).fetchall()
    else:
        events_db = demo.data_dir / "events.db"
        with contextlib.closing(sqlite3.connect(f"file:{events_db}?mode=ro", uri=True)) as conn:
            rows = conn.execute(sql).fetchall()
    return dict(rows)


@pytest.mark.parametrize("storage", ["sqlite", "postgres"])
async def test_kill_9_during_a_burst_loses_no_acknowledged_list(demos: Callable[..., Demo], storage: str) -> None:
    """kill -9 in the middle of a burst of creates, then a restart on the same data directory: every list that got a
    201 is readable, each stored list is stored and listed once, and the only lists beyond the acknowledged ones are
    ones whose request was in flight when the process died. On SQLite, and with ``--store postgresql://`` (events,
    consumer state and read model in PostgreSQL)."""
    with contextlib.ExitStack() as databases:
        store = databases.enter_context(postgres_database()) if storage == "postgres" else ""
        await _kill_9_during_a_burst(demos, store)


async def _kill_9_during_a_burst(demos: Callable[..., Demo], store: str) -> None:
    first = demos("first", store)
    await first.start()
    stop, burst = asyncio.Event(), Burst()
    burst_task = asyncio.create_task(_burst(first, stop, burst))
    await asyncio.sleep(BURST_SECONDS)  # the burst's duration, not a synchronisation
    assert not burst_task.done(), f"the burst ended before the kill\n{first.describe()}"
    os.kill(first.pid, signal.SIGKILL)
    stop.set()
    await asyncio.wait_for(burst_task, STOP_DEADLINE)
    assert await first.wait_exit(STOP_DEADLINE) == -signal.SIGKILL
    acknowledged = burst.acknowledged
    assert burst.other_statuses == []
    assert len(acknowledged) >= BURST_CLIENTS, f"too few creates to mean anything: {len(acknowledged)}"
    assert len(burst.unanswered) <= BURST_CLIENTS  # at most one request in flight per client

    second = demos("second", store)
    second.port, second.bus_port, second.todo_port = first.port, first.bus_port, first.todo_port
    assert second.command == first.command  # the same command on the same data directory
    await second.start()
    async with httpx.AsyncClient(base_url=second.todo_url, timeout=10.0) as client:
        # Nothing writes any more, so the stored lists are fixed; the projector catches up with them after the
        # restart. (After a kill -9 it first waits for the dead process's consumer lease to expire.)
        async def caught_up() -> list[dict[str, Any]] | None:
            listed = await scan_lists(client, AUTH)
            return listed if {i["identifier"] for i in listed} == set(_created_events(second)) else None

        await wait_until(caught_up, CATCH_UP_DEADLINE, "the search to show every stored list")
        listed = await scan_lists(client, AUTH)  # a scan of the caught-up read model (no row moves between its pages)
        stored = _created_events(second)
        identifiers = [item["identifier"] for item in listed]
        assert len(identifiers) == len(set(identifiers)), "a list shows twice in the search results"
        assert set(identifiers) == set(stored), "the search and the event store disagree"
        assert {i: n for i, n in stored.items() if n != 1} == {}, "a list created twice in the event store"
        assert acknowledged.keys() <= set(stored), "an acknowledged list was lost"
        names = {item["identifier"]: item["name"] for item in listed}
        assert {i: names[i] for i in acknowledged if names[i] != acknowledged[i]} == {}
        extra = {names[i] for i in stored if i not in acknowledged}
        assert extra <= burst.unanswered, "a stored list nobody asked for"

        # Every acknowledged list is readable by its identifier.
        slots = asyncio.Semaphore(BURST_CLIENTS)

        async def read(identifier: str) -> tuple[int, str]:
            async with slots:
                response = await client.get(f"/todo-list/{identifier}", headers=AUTH)
                return response.status_code, response.json().get("name", "")

        reads = dict(zip(acknowledged, await asyncio.gather(*(read(i) for i in acknowledged)), strict=True))
        assert {i: r for i, r in reads.items() if r != (200, acknowledged[i])} == {}

    os.kill(second.pid, signal.SIGTERM)
    assert await second.wait_exit(STOP_DEADLINE) == 0, second.describe()


def test_process_counts_without_distributed_are_refused() -> None:
    """--servers/--replicas mean separate processes: the in-process demo says so instead of ignoring them."""
    result = subprocess.run(
        [sys.executable, "-m", "evento.cli", "demo", "--servers", "2"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "add --distributed" in result.stderr
