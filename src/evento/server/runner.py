"""``evento server``: the server process (bus on TCP, HTTP with the health check) until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from dataclasses import dataclass
from pathlib import Path

from evento.server.data_dir import hold_data_dir
from evento.server.event_store import open_event_store
from evento.server.http import EmbeddedUvicorn, create_server_app
from evento.server.server import EventoServer
from evento.transport.tcp import BusServer

__all__ = ["ServerOptions", "run_server"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerOptions:
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


def tls_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    if cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def run_server(options: ServerOptions, stop: asyncio.Event | None = None) -> None:
    hold_data_dir(options.data_dir)  # a second process on this directory stops here, naming the holder
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if not options.auth_token:
        log.warning("the bus accepts any bundle: no --auth-token / EVENTO_AUTH_TOKEN is set")
    store = open_event_store(
        options.store, data_dir=options.data_dir, mode=options.es_mode, fetch_delay=options.fetch_delay
    )
    server = EventoServer(store, server_id=options.server_id)
    await server.start()
    bus = BusServer(
        server,
        options.host,
        options.bus_port,
        auth_token=options.auth_token,
        ssl_context=tls_context(options.tls_cert, options.tls_key),
    )
    await bus.start()
    http = EmbeddedUvicorn(create_server_app(server), options.host, options.port)
    try:
        await http.start()
        print(f"Evento server {server.server_id}: bus {options.host}:{bus.port}, http {options.host}:{options.port}")
        print("Ready.", flush=True)
        await stop.wait()
    finally:
        await http.stop()
        await bus.stop()
        await server.stop()
        print("Stopped.", flush=True)
