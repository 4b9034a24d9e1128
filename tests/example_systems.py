"""Helpers of the order-inventory and flight tests: an example system started in this process on a SQLite event
store, an HTTP client of its API, and waiting for views to converge under a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from hypothesis import HealthCheck, Phase, settings

from evento.bundle.consumers import consumer_id
from evento.consumer_stores import open_consumer_store
from evento.demo.shared.system import ExampleConfig, ExampleSystem
from evento.event_stores import open_event_store
from evento.server import EventoServer

T = TypeVar("T")

#: Hypothesis settings for examples that each run a whole system: the same examples on every run (CI must not find
#: a new one by chance) and no shrinking, which would start hundreds more systems before reporting a failure.
WHOLE_SYSTEM = settings(
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

#: The contract's convergence bounds: a single decision, and a burst of 20.
SINGLE = 10.0
BURST = 30.0


async def converge(read: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float, what: str) -> T:
    """``read()`` again (every 50 ms, as a client polls) until ``done`` holds for its value; fails after
    ``timeout`` seconds with the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last value {value!r})")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running(
    make: Callable[[ExampleConfig], ExampleSystem], data_dir: Path, store: str = "", **config: Any
) -> AsyncIterator[tuple[ExampleSystem, httpx.AsyncClient, EventoServer]]:
    """An example system on a server in this process, everything under ``data_dir``, a client of its API, and
    the server (to start a replacement bundle on)."""
    server = EventoServer(open_event_store(store, data_dir=data_dir))  # SQLite unless ``store`` names PostgreSQL
    await server.start()
    system = make(ExampleConfig(data_dir, **config))
    try:
        await system.start(server)
        await system.wait_for_head(SINGLE)  # sagas fix their start position in their first cycle
        transport = httpx.ASGITransport(app=system.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://example", timeout=30) as client:
            yield system, client, server
    finally:
        await system.stop()
        await server.stop()


def new_uuid() -> str:
    return str(uuid.uuid4())


async def get_json(client: httpx.AsyncClient, path: str) -> Any:
    response = await client.get(path)
    assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
    return response.json()


async def created(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert response.status_code == 201, f"POST {path}: {response.status_code} {response.text}"
    found: dict[str, Any] = response.json()
    assert isinstance(found["id"], str)
    return found


async def accepted(client: httpx.AsyncClient, path: str, body: dict[str, Any] | None = None) -> Any:
    response = await client.post(path, json=body) if body is not None else await client.post(path)
    assert response.status_code == 202, f"POST {path}: {response.status_code} {response.text}"
    return response.json()


# --- ``evento demo SYSTEM`` as processes ------------------------------------------------------------------------------

READY_DEADLINE = 60.0
STOP_DEADLINE = 30.0
#: The contract's bound for decisions after a fault (B.6, C.6).
RECOVERY = 120.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def alive(pid: int) -> bool:
    """The process runs (a zombie, killed but not yet reaped by the launcher, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@dataclass
class Demo:
    """One ``evento demo SYSTEM [--distributed]`` process on free ports, its output in ``root``."""

    root: Path
    system: str
    distributed: bool = True
    extra: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    bus_port: int = field(default_factory=free_port)
    app_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    runs: int = 0

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "evento.cli", "--log-level", "WARNING", "demo", self.system,
            *(["--distributed"] if self.distributed else []), "--data-dir", str(self.data_dir),
            "--host", "127.0.0.1", "--port", str(self.port), "--bus-port", str(self.bus_port),
            "--app-port", str(self.app_port), *self.extra,
        ]  # fmt: skip

    def output(self) -> str:
        path = self.root / f"demo-{self.runs}.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def pids(self) -> dict[str, int]:
        path = self.data_dir / "pids.json"
        pids: dict[str, int] = json.loads(path.read_text()) if path.exists() else {}
        return pids

    def child_log(self, name: str) -> str:
        path = self.data_dir / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def describe(self) -> str:
        logs = "".join(f"\n--- {name}.log (tail):\n{self.child_log(name)[-1500:]}" for name in self.pids())
        return f"demo output:\n{self.output()[-3000:]}{logs}"

    async def start(self) -> None:
        """Start (again, on the same data directory and ports) and return once it printed "Ready."."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.runs += 1
        with open(self.root / f"demo-{self.runs}.out", "wb") as out:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT, cwd=self.root)
        process = self.process

        async def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"demo exited with {process.returncode}\n{self.describe()}")
            return "Ready." in self.output()

        await converge(ready, bool, READY_DEADLINE, f"'Ready.' from evento demo {self.system}\n{self.describe()}")

    async def stop(self) -> int:
        """SIGTERM; the exit code once every process stopped."""
        process = self.process
        assert process is not None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)

        async def exited() -> bool:
            return process.poll() is not None

        await converge(exited, bool, STOP_DEADLINE, f"evento demo to stop\n{self.describe()}")
        return process.returncode

    def signal(self, service: str, sig: signal.Signals) -> int:
        """Send ``sig`` to the process of ``service`` (as pids.json names it); its pid."""
        pid = self.pids()[service]
        os.kill(pid, sig)
        return pid

    async def restarted(self, service: str, old_pid: int) -> None:
        """Wait until the launcher restarted ``service`` and the new process is ready."""

        async def back() -> bool:
            pid = self.pids().get(service, old_pid)
            return pid != old_pid and alive(pid) and self.child_log(service).count("Ready.") >= 2

        await converge(back, bool, READY_DEADLINE, f"{service} restarted\n{self.describe()}")

    def kill(self) -> None:
        """Teardown: nothing of this demo left running (stopped children resumed first, so SIGTERM reaches them)."""
        for pid in self.pids().values():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in self.pids().values():
            if alive(pid) and str(self.data_dir).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


@asynccontextmanager
async def demo(root: Path, system: str, *, distributed: bool = True) -> AsyncIterator[tuple[Demo, httpx.AsyncClient]]:
    """A started demo and a client of its API (a pool of 20 keep-alive connections, as the contract's clients)."""
    process = Demo(root, system, distributed)
    limits = httpx.Limits(max_connections=20, max_keepalive_connections=20)
    try:
        await process.start()
        async with httpx.AsyncClient(base_url=process.url, timeout=30, limits=limits) as client:
            yield process, client
    finally:
        process.kill()


async def replay_saga(system: ExampleSystem, server: EventoServer, service: str, saga: str) -> None:
    """Stop ``service``, move its saga's checkpoint back to the start of the log, and start the service again: the
    saga then handles every event of the system's life a second time, as after the worst of crashes."""
    index = next(n for n, bundle in enumerate(system.bundles) if bundle.bundle_id == service)
    await system.bundles[index].stop()
    config: ExampleConfig = system.config  # type: ignore[attr-defined]
    store = open_consumer_store(f"sqlite:{service}.db", data_dir=config.data_dir)
    await store.start()
    try:
        saga_id = consumer_id(service, saga, 1, "*")
        checkpoint = await store.read_checkpoint(saga_id)
        assert checkpoint is not None
        assert checkpoint.sequence_number > 0
        await store.commit_checkpoint(saga_id, 0, checkpoint.version)
    finally:
        await store.stop()
    factory = importlib.import_module(type(system).__module__).SERVICES[service]
    system.bundles[index] = factory(config)
    await system.bundles[index].start(server)
    await system.bundles[index].wait_for_head(BURST)


async def decided_views(
    client: httpx.AsyncClient, resource: str, ids: list[str], timeout: float = BURST
) -> list[dict[str, Any]]:
    """The views ``GET /{resource}/{id}`` of ``ids`` once every one of them shows a decision (not PENDING)."""

    async def read() -> list[dict[str, Any] | None]:
        views = []
        for identifier in ids:
            response = await client.get(f"/{resource}/{identifier}")
            assert response.status_code in (200, 404), response.text
            views.append(response.json() if response.status_code == 200 else None)
        return views

    views = await converge(read, lambda vs: all(v and v["status"] != "PENDING" for v in vs), timeout, "decisions")
    return [v for v in views if v is not None]
