"""``evento server``: the server process (bus on TCP, HTTP with the REST API) until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from evento.event_stores import open_event_store
from evento.server.api import ApiSettings
from evento.server.bus import BusServer, BusSettings
from evento.server.data_dir import hold_data_dir
from evento.server.deploy.scripts import DeployContext, DeployScript, LocalSpawner, ScriptSpawner
from evento.server.deploy.supervisor import Supervisor, SupervisorSettings
from evento.server.http import ServerHttp
from evento.server.server import EventoServer
from evento.server.telemetry import TelemetrySettings
from evento.startup import naming_the_option, naming_the_port

if TYPE_CHECKING:
    from evento.server.users import AdminLogin

__all__ = ["ServerOptions", "print_login", "run_server"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerOptions:
    """The settings of ``evento server``, as its command line gives them."""

    store: str = ""
    es_mode: str = "cpes"
    fetch_delay: float = 0.069
    data_dir: Path = Path(".evento-server")
    host: str = "127.0.0.1"
    port: int = 3000
    bus_port: int = 3030
    auth_token: str = ""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    server_id: str | None = None
    #: Where the bus listens (default: ``host``).
    bus_host: str | None = None
    #: Per-bundle tokens (``--bus-tokens``): token -> the bundle ids its holder may register as.
    bus_tokens: Mapping[str, Sequence[str]] = field(default_factory=dict)
    #: Limits and timeouts of the bus (``--bus-max-unauthenticated`` sets ``max_unauthenticated``).
    bus_settings: BusSettings = field(default_factory=BusSettings)
    #: The REST API's options: admin password, CORS origins, public ``/metrics``.
    api: ApiSettings = field(default_factory=ApiSettings)
    #: ``--telemetry-rate`` and ``--telemetry-ttl-days``.
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    #: ``--deploy-script``: what starts bundle instances (None: the built-in local spawner).
    deploy_script: Path | None = None
    #: How the supervisor of deployed bundles paces itself (``--scale-cooldown`` sets ``cooldown``).
    supervisor: SupervisorSettings = field(default_factory=SupervisorSettings)


def print_login(url: str, login: AdminLogin) -> None:
    """Print where the API is and how to log in: the admin's password only when it was generated just now (its
    only showing: the server keeps its hash)."""
    print(f"API             {url}/api/docs", flush=True)
    if login.password is not None:
        print(f"Login           {login.user} / {login.password}  (generated: shown once, keep it)", flush=True)
    else:
        print(f"Login           {login.user} (password from --admin-password or set earlier)", flush=True)


def tls_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    if cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def run_server(options: ServerOptions, stop: asyncio.Event | None = None) -> None:
    """Run the server (event store, bus, HTTP health check) until SIGINT, SIGTERM or ``stop``, then stop it.

    The data directory is held first, so a second server on it stops at once; a store URL or a port that fails names
    its option. Prints ``Ready.`` once both ports listen and ``Stopped.`` at the end."""
    hold_data_dir(options.data_dir)  # a second process on this directory stops here, naming the holder
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if not options.auth_token and not options.bus_tokens:
        log.warning("the bus accepts any bundle: neither --auth-token nor --bus-tokens is set")
    with naming_the_option("--store"):
        store = open_event_store(
            options.store, data_dir=options.data_dir, mode=options.es_mode, fetch_delay=options.fetch_delay
        )
    server = EventoServer(store, server_id=options.server_id, telemetry=options.telemetry)
    await server.start()
    bus_host = options.host if options.bus_host is None else options.bus_host
    bus = BusServer(
        server,
        bus_host,
        options.bus_port,
        auth_token=options.auth_token,
        bus_tokens=options.bus_tokens,
        ssl_context=tls_context(options.tls_cert, options.tls_key),
        settings=options.bus_settings,
    )
    with naming_the_port("--bus-port", bus_host, options.bus_port):
        await bus.start()
    http = ServerHttp(server, options.api, options.host, options.port)
    script: DeployScript = LocalSpawner() if options.deploy_script is None else ScriptSpawner(options.deploy_script)
    # The instances it starts reach the bus where it listens (a wildcard host: through the loopback).
    reach = "127.0.0.1" if bus_host in ("", "0.0.0.0", "::") else bus_host
    context = DeployContext((f"{reach}:{bus.port}",), options.auth_token, options.data_dir / "bundles")
    server.deploy = Supervisor(server, script, context, options.supervisor)
    try:
        with naming_the_port("--port", options.host, options.port):
            await http.start()
        await server.catalog.advertise(http.advertised_url())
        await server.deploy.start()
        print(f"Evento server {server.server_id}: bus {bus_host}:{bus.port}, http {options.host}:{http.port}")
        print_login(http.url(), http.context.admin_login)
        print("Ready.", flush=True)
        await stop.wait()
    finally:
        await server.deploy.stop()
        await http.stop()
        await bus.stop()
        await server.stop()
        print("Stopped.", flush=True)
