"""``evento bundle run MODULE:OBJECT``: one bundle instance as a process, connected over TCP."""

from __future__ import annotations

import asyncio
import importlib
import signal
from typing import TYPE_CHECKING, Any

from evento.bundle.bundle import Bundle
from evento.transport.connector import TcpConnector

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["load_bundle", "run_bundle"]


def load_bundle(target: str) -> Bundle:
    """``package.module:name``, where ``name`` is a Bundle or a callable returning one."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"expected MODULE:OBJECT, got {target!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    bundle = obj() if callable(obj) and not isinstance(obj, Bundle) else obj
    if not isinstance(bundle, Bundle):
        raise TypeError(f"{target} is a {type(bundle).__name__}, not an evento Bundle")
    return bundle


async def run_bundle(
    bundle: Bundle, servers: Sequence[str], auth_token: str = "", stop: asyncio.Event | None = None
) -> None:
    """Connect ``bundle`` to ``servers`` over TCP and run it until SIGINT, SIGTERM, ``stop`` or the server asks it
    to leave, then stop it.

    Prints ``Ready.`` once connected and ``Stopped.`` at the end, for whoever supervises the process."""
    if not servers:
        raise ValueError("a bundle needs at least one server address")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await bundle.start(TcpConnector(list(servers), auth_token=auth_token))
    print(f"Bundle {bundle.info} connected to {', '.join(servers)}", flush=True)
    print("Ready.", flush=True)
    try:
        # SIGTERM, the caller, or the server asking this instance to leave (a graceful kill, a bored instance).
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(bundle.leave_requested.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
    finally:
        await bundle.stop()
        print("Stopped.", flush=True)
