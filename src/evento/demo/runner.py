"""``evento demo [SYSTEM]``: the TodoList (or another system of :mod:`evento.demo.systems`) in one process
(in-process transport; SQLite unless ``--store`` says).

Everything lives under the data directory, so the demo resumes where it stopped, after a kill -9 too: every
acknowledged command's event is on disk (the event store commits with fsync before replying) and consumers
continue from their checkpoints.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field
from pathlib import Path

from evento.demo.systems import DemoSystem, demo_system
from evento.event_stores import open_event_store
from evento.server import EventoServer
from evento.server.api import ApiSettings
from evento.server.bus import BusServer
from evento.server.data_dir import hold_data_dir
from evento.server.http import EmbeddedUvicorn, ServerHttp
from evento.server.runner import print_login
from evento.server.telemetry import TelemetrySettings
from evento.startup import naming_the_option, naming_the_port

log = logging.getLogger("evento.demo")


@dataclass(frozen=True)
class DemoOptions:
    """The settings of ``evento demo``, as its command line gives them."""

    data_dir: Path = Path(".evento-demo")
    host: str = "127.0.0.1"
    port: int = 3000
    bus_port: int = 3030
    todo_port: int = 8080
    service_delay: float = 1.0
    store: str = ""
    es_mode: str = "cpes"
    fetch_delay: float = 0.069
    consumer_store: str | None = None
    servers: int = 1
    #: Which system of :data:`evento.demo.systems.SYSTEMS` runs; its HTTP API listens on ``api_port``.
    system: str = "todolist"
    app_port: int = 8080
    #: The bus listens on ``bus_host`` (loopback unless asked: ``--host`` opens only the HTTP APIs) and, with an
    #: ``auth_token``, admits only bundles presenting it.
    bus_host: str = "127.0.0.1"
    auth_token: str = ""
    #: The server's REST API (admin password, CORS, public ``/metrics``) and its telemetry settings.
    api: ApiSettings = field(default_factory=ApiSettings)
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    #: With ``--distributed``: the server starts and supervises the bundles itself (``--managed``).
    managed: bool = False

    @property
    def api_port(self) -> int:
        """The TodoList keeps ``--todo-port``; the other systems listen on ``--app-port``."""
        return self.todo_port if self.system == "todolist" else self.app_port

    @property
    def bundle_consumer_store(self) -> str | None:
        """Where the bundles keep consumer state and the read model: ``--consumer-store``, else the event store's
        database when that is PostgreSQL, else (``None``) SQLite files in the data directory."""
        if self.consumer_store:
            return self.consumer_store
        return self.store if self.store.startswith(("postgresql://", "postgres://")) else None


async def run_demo(options: DemoOptions, stop: asyncio.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM (or until ``stop`` is set), then shut down cleanly."""
    hold_data_dir(options.data_dir)  # a second process on this directory stops here, naming the holder
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    with naming_the_option("--store"):
        store = open_event_store(
            options.store, data_dir=options.data_dir, mode=options.es_mode, fetch_delay=options.fetch_delay
        )
    demo = demo_system(options.system)
    with naming_the_option("--consumer-store"):  # the systems open their consumer stores as they are built
        system = demo.embed(options.data_dir, options.service_delay, options.bundle_consumer_store)
    server = EventoServer(store, server_id="evento-demo", telemetry=options.telemetry)
    await server.start()
    await system.start(server)
    # Lets bundle processes join the embedded system.
    bus = BusServer(server, options.bus_host, options.bus_port, auth_token=options.auth_token)
    api_flag = "--todo-port" if options.system == "todolist" else "--app-port"
    server_http = ServerHttp(server, options.api, options.host, options.port)
    https: list[tuple[str, ServerHttp | EmbeddedUvicorn]] = [
        ("--port", server_http),
        (api_flag, EmbeddedUvicorn(system.app(), options.host, options.api_port)),
    ]
    try:  # a listener that fails to start stops what did start, in order
        with naming_the_port("--bus-port", options.bus_host, options.bus_port):
            await bus.start()
        for flag, http in https:
            port = http.uvicorn.config.port if isinstance(http, ServerHttp) else http.config.port
            with naming_the_port(flag, options.host, port):
                await http.start()
        await server.catalog.advertise(server_http.advertised_url())
        _print_banner(options, demo, bus.port, server_http)
        await stop.wait()
    finally:
        print("Stopping...", flush=True)
        for _, http in https:
            await http.stop()
        await system.stop()
        await bus.stop()
        await server.stop()
        print("Stopped.", flush=True)


def _print_banner(options: DemoOptions, demo: DemoSystem, bus_port: int, server_http: ServerHttp) -> None:
    print(f"Evento server   {server_http.url()}/api/health", flush=True)
    print(f"GUI             {server_http.url()}/", flush=True)
    print_login(server_http.url(), server_http.context.admin_login)
    print(f"{demo.api_name:<16}http://{options.host}:{options.api_port}{demo.api_path}", flush=True)
    admits = "bundles presenting --auth-token" if options.auth_token else "open to whoever reaches it: no --auth-token"
    print(f"Bus             {options.bus_host}:{bus_port} ({admits})", flush=True)
    print(f"Data directory  {options.data_dir.resolve()}", flush=True)
    print("Ready. Ctrl-C stops.", flush=True)
