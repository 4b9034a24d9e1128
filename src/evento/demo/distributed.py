"""``evento demo [SYSTEM] --distributed``: the TodoList (or another system) as separate OS processes over TCP.

The launcher starts ``evento server`` (or, with ``--servers N``, ``server-1`` … ``server-N`` sharing one PostgreSQL
event store on consecutive ports), then the system's bundle processes (all with ``evento bundle run``): for the
TodoList N replicas each of ``todolist-command``, ``todolist-query`` and ``todolist-saga`` and one
``todolist-web``; for order-inventory and flight one process per service of the contract, named as the service
(``inventory``, ``customers``, ``orders``, ``edge``; ``flights``, ``payments``, ``bookings``, ``edge``). It writes
``DATA_DIR/pids.json`` and restarts any child that dies. Each child logs to ``DATA_DIR/logs/<name>.log``.
SIGINT/SIGTERM stop the children in reverse order (the edge or web first, the server last). The bus listens on
``--bus-host`` (loopback by default) and admits only the launcher's children: they share ``--auth-token``, or a
token made for the run.

With ``--managed`` (the TodoList) the launcher starts only the servers: it deploys the four TodoList bundles in
the servers' database (autorun, one instance each; the command bundle up to three, scaled by its
:class:`~evento.ThreadCountAutoscalingProtocol`) and the spawning server starts them through its deploy script,
replaces any that dies and scales the command bundle on its signals. Without it, those deployments are removed,
so a later plain ``--distributed`` run does not get them started twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from evento import Bundle, ThreadCountAutoscalingProtocol
from evento.demo.runner import DemoOptions
from evento.demo.systems import demo_system
from evento.server.data_dir import hold_data_dir
from evento.server.deploy.spec import BundleSpec
from evento.server.deploy.store import DeployStore
from evento.startup import StartupError

__all__ = ["managed_command", "managed_specs", "run_distributed"]

log = logging.getLogger("evento.demo")

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


@dataclass
class _Child:
    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                self.command, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )

    def readies(self) -> int:
        return self.log_path.read_text(errors="replace").count("Ready.") if self.log_path.exists() else 0

    async def wait_ready(self, previous: int) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while self.readies() <= previous:
            assert self.process is not None
            if self.process.poll() is not None:
                raise StartupError(f"{self.name} exited with {self.process.returncode}{self._last_words()}")
            if time.monotonic() > deadline:
                raise StartupError(f"{self.name} not ready within {READY_TIMEOUT:g}s; see {self.log_path}")
            await asyncio.sleep(0.05)

    def _last_words(self) -> str:
        """The child's own one-line reason (its log's last line) and where the rest of its log is."""
        lines = self.log_path.read_text(errors="replace").strip().splitlines() if self.log_path.exists() else []
        reason = lines[-1].removeprefix("evento: ") if lines else ""
        return f": {reason} (log {self.log_path})" if reason else f"; see {self.log_path}"

    async def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110 - a child's exit sets no Event
            await asyncio.sleep(0.05)
        if process.poll() is None:
            log.warning("%s did not stop within %gs; killing it", self.name, STOP_TIMEOUT)
            process.kill()
            process.wait()


def _children(options: DemoOptions, replicas: int) -> list[_Child]:
    """The server and bundle processes. They share one bus token, through the environment (not the command line,
    which other local users can read): ``--auth-token``, or one made for this run, so the bus never admits a
    process the launcher did not start."""
    data_dir = options.data_dir.resolve()
    logs = data_dir / "logs"
    evento = [sys.executable, "-m", "evento.cli", "--log-level", "WARNING"]
    base_env = {
        **os.environ,
        "EVENTO_AUTH_TOKEN": options.auth_token or secrets.token_urlsafe(32),
        "EVENTO_DATA_DIR": str(data_dir),
        "EVENTO_SERVICE_DELAY": str(options.service_delay),
        "EVENTO_HOST": options.host,
        "EVENTO_TODO_PORT": str(options.todo_port),
        "EVENTO_APP_PORT": str(options.app_port),
        "EVENTO_STORE": options.store,
        "EVENTO_ES_MODE": options.es_mode,
        "EVENTO_FETCH_DELAY_MS": str(options.fetch_delay * 1000),
    }
    if options.bundle_consumer_store:
        base_env["EVENTO_CONSUMER_STORE"] = options.bundle_consumer_store
    # The servers' REST API and telemetry options, for the servers only, through the environment: the admin
    # password stays off the command line, which other local users can read.
    server_env = {
        **base_env,
        "EVENTO_ADMIN_PASSWORD": options.api.admin_password,
        "EVENTO_CLUSTER_NAME": options.api.cluster_name,
        "EVENTO_CORS_ORIGINS": ",".join(options.api.cors_origins),
        "EVENTO_METRICS_PUBLIC": "1" if options.api.metrics_public else "",
        "EVENTO_TELEMETRY_RATE": str(options.telemetry.capture_rate),
        "EVENTO_TELEMETRY_TTL_DAYS": str(options.telemetry.ttl_days),
    }
    children = []
    buses = []
    bus_address = _reachable(options.bus_host)
    for name, port, bus_port in _servers(options):
        buses += ["--server", f"{bus_address}:{bus_port}"]
        command = [*evento, "server", "--data-dir", str(data_dir), "--host", options.host, "--port", str(port),
                   "--bus-host", options.bus_host, "--bus-port", str(bus_port), "--server-id", name]  # fmt: skip
        children.append(_Child(name, command, server_env, logs / f"{name}.log"))
    if options.managed:
        return children  # the servers start the bundles
    for process in demo_system(options.system).processes(replicas):
        command = [*evento, "bundle", "run", process.target, *buses]
        children.append(_Child(process.name, command, {**base_env, **process.env}, logs / f"{process.name}.log"))
    return children


def managed_command() -> Bundle:
    """``todolist-command`` as the managed demo runs it: the aggregate, with the thread-count protocol telling the
    server when it suffers (more than 4 commands in flight, 5 times running) or is bored (20 s without work)."""
    from evento.demo.todolist.aggregate import TodoListAggregate

    return Bundle(
        "todolist-command",
        components=[TodoListAggregate],
        description="TodoList write side",
        autoscaling=ThreadCountAutoscalingProtocol(
            max_thread_count=4, min_thread_count=1, max_overflow_count=5, max_underflow_count=200, bored_timeout=20.0
        ),
    )


def managed_specs(options: DemoOptions) -> list[BundleSpec]:
    """The TodoList bundles the server runs with ``--managed``: entry points importable in its environment, the
    settings every bundle process of the demo gets in theirs."""
    environment = {
        "EVENTO_DATA_DIR": str(options.data_dir.resolve()),
        "EVENTO_SERVICE_DELAY": str(options.service_delay),
        "EVENTO_HOST": options.host,
        "EVENTO_TODO_PORT": str(options.todo_port),
    }
    if options.bundle_consumer_store:
        environment["EVENTO_CONSUMER_STORE"] = options.bundle_consumer_store
    deploy = "evento.demo.todolist.deploy"
    targets = [
        ("todolist-command", "evento.demo.distributed:managed_command", 3),
        ("todolist-query", f"{deploy}:query", 1),
        ("todolist-saga", f"{deploy}:saga", 1),
        ("todolist-web", f"{deploy}:web", 1),  # one HTTP port
    ]
    return [
        BundleSpec(bundle_id=bundle_id, entry_point=target, min_instances=1, max_instances=most, autorun=True,
                   environment=environment, description=f"the demo's {bundle_id}")
        for bundle_id, target, most in targets
    ]  # fmt: skip


async def _deploy_managed(options: DemoOptions) -> None:
    """Deploy (``--managed``) or withdraw the TodoList bundles in the servers' database, before they start: what
    ``PUT /api/bundle/{id}`` with an entry point does, without needing the admin's password."""
    from evento.event_stores.factory import open_event_store

    specs = managed_specs(options)
    store = open_event_store(options.store, data_dir=options.data_dir, mode=options.es_mode)
    database = store.database()  # the server's tables only: the event store itself stays closed
    await database.start()
    try:
        deployments = DeployStore(database, "demo-launcher")
        await deployments.start()
        for spec in specs:
            if options.managed:
                state = await deployments.put(spec)
                await deployments.decide(spec.bundle_id, "deploy", f"evento demo --managed: {state.wanted} wanted")
            elif await deployments.remove(spec.bundle_id):
                await deployments.decide(spec.bundle_id, "undeploy", "evento demo without --managed")
    finally:
        await database.stop()


async def _stop_managed(data_dir: Path) -> None:
    """Stop the bundle processes the servers started (they outlive their server): SIGTERM to each pid the local
    spawner left beside its log, then SIGKILL to those still there after :data:`STOP_TIMEOUT`."""
    pids = []
    for pid_file in (data_dir / "bundles").glob("*/*.pid"):
        with contextlib.suppress(ValueError, OSError):
            pid = int(pid_file.read_text())
            pid_file.unlink()  # its server, which removes it when the process ends, is gone
            os.kill(pid, signal.SIGTERM)
            pids.append(pid)
    deadline = time.monotonic() + STOP_TIMEOUT
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if _alive(pid)]
        await asyncio.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _login_line(children: list[_Child]) -> str:
    """The servers' login line of this start (from their logs): the one showing a generated admin password if a
    server generated it (the first to start, once), else the first server's."""
    logins = []
    for child in children:
        if child.name.startswith("server") and child.log_path.exists():
            lines = child.log_path.read_text(errors="replace").splitlines()
            found = [line for line in lines if line.startswith("Login ")]
            if found:
                logins.append(found[-1])  # the log is appended to across starts: the last is this start's
    generated = [line for line in logins if " / " in line]
    return (generated or logins or ["Login           admin (see the server log)"])[0]


def _reachable(host: str) -> str:
    """Where a local process reaches a listener bound to ``host`` (a wildcard address is reached on loopback)."""
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)


def _servers(options: DemoOptions) -> list[tuple[str, int, int]]:
    """Name, HTTP port and bus port of each server: ``server`` alone, or ``server-1``… on consecutive ports."""
    if options.servers == 1:
        return [("server", options.port, options.bus_port)]
    return [(f"server-{n}", options.port + n - 1, options.bus_port + n - 1) for n in range(1, options.servers + 1)]


def _write_pids(path: Path, children: list[_Child]) -> None:
    pids = {child.name: child.process.pid for child in children if child.process is not None}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(pids, indent=2))
    temporary.replace(path)  # readers never see a half-written file


async def run_distributed(options: DemoOptions, replicas: int = 1, stop: asyncio.Event | None = None) -> None:
    """Run the distributed TodoList until SIGINT/SIGTERM (or ``stop``), restarting children that die."""
    if replicas < 1 or options.servers < 1:
        raise StartupError("--replicas and --servers must be at least 1")
    if options.servers > 1 and not options.store.startswith(("postgresql://", "postgres://")):
        raise StartupError("--servers N > 1 shares one event store between servers: it needs --store postgresql://...")
    demo = demo_system(options.system)
    if replicas > 1 and not demo.replicated:
        raise StartupError(f"{demo.name} runs one process per service: --replicas is for the TodoList")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    options.data_dir.mkdir(parents=True, exist_ok=True)
    hold_data_dir(options.data_dir)  # the children started below (our server) share it
    pids_path = options.data_dir / "pids.json"
    if options.system == "todolist":
        await _deploy_managed(options)
    children = _children(options, replicas)
    try:
        for child in children:  # the server first: bundles need its bus
            marks = child.readies()
            child.start()
            await child.wait_ready(marks)
        _write_pids(pids_path, children)
        for name, port, bus_port in _servers(options):
            print(
                f"Evento {name:<9}http://{options.host}:{port}/api/health, bus {options.bus_host}:{bus_port}",
                flush=True,
            )
        print(f"API             http://{options.host}:{_servers(options)[0][1]}/api/docs", flush=True)
        print(_login_line(children), flush=True)
        print(f"{demo.api_name:<16}http://{options.host}:{options.api_port}{demo.api_path}", flush=True)
        print(f"Processes       {pids_path.resolve()}", flush=True)
        if options.managed:
            api = f"http://{options.host}:{_servers(options)[0][1]}/api/bundle/todolist-command/deployment"
            print(f"Bundles         started by the server: {api}", flush=True)
        print("Ready. Ctrl-C stops.", flush=True)
        while not stop.is_set():
            for child in children:
                assert child.process is not None
                if child.process.poll() is not None and not stop.is_set():
                    child.restarts += 1
                    log.warning("%s exited with %s; restarting it", child.name, child.process.returncode)
                    print(f"Restarting {child.name} (exit {child.process.returncode})", flush=True)
                    child.start()
                    _write_pids(pids_path, children)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)
    finally:
        print("Stopping...", flush=True)
        for child in reversed(children):
            await child.stop()
        if options.managed:
            await _stop_managed(options.data_dir)
        print("Stopped.", flush=True)
