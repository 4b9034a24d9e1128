"""The systems ``evento demo`` runs: ``todolist`` (the default), ``order-inventory`` and ``flight``.

A :class:`DemoSystem` tells the launchers what they need and nothing else: how to build the system's bundles in
one process (the embedded demo) and which ``evento bundle run`` processes make it up (``--distributed``), named
as they appear in ``DATA_DIR/pids.json``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI

__all__ = ["SYSTEMS", "DemoSystem", "EmbeddedSystem", "Process", "demo_system"]


class EmbeddedSystem(Protocol):
    """A system's bundles in this process, and its HTTP API."""

    async def start(self, server: Any) -> None: ...

    async def stop(self) -> None: ...

    def app(self) -> FastAPI: ...


@dataclass(frozen=True)
class Process:
    """One ``evento bundle run TARGET`` child of the distributed launcher, ``name`` in ``pids.json``; ``env`` is
    added to the environment every child gets."""

    name: str
    target: str
    env: dict[str, str] = field(default_factory=dict)


Embed = Callable[[Path, float, "str | None"], EmbeddedSystem]


@dataclass(frozen=True)
class DemoSystem:
    """A system the demo launchers can run.

    ``embed(data_dir, service_delay, consumer_store)`` builds its bundles for one process; ``processes(replicas)``
    lists its children for ``--distributed`` (``replicated`` says whether ``--replicas`` means anything to it);
    ``api_name`` and ``api_path`` say where its HTTP API is, for the launchers' banners.
    """

    name: str
    api_name: str
    api_path: str
    embed: Embed
    processes: Callable[[int], list[Process]]
    replicated: bool = False


# --- the TodoList ------------------------------------------------------------------------------------------------


class _TodoListEmbedded:
    def __init__(self, data_dir: Path, service_delay: float, consumer_store: str | None) -> None:
        from evento import ConsumerSettings
        from evento.demo.todolist.system import TodoListSystem

        self.system = TodoListSystem(
            data_dir,
            service_delay=service_delay,
            consumer_settings=ConsumerSettings(error_delay=0.2),
            consumer_store=consumer_store,
        )

    async def start(self, server: Any) -> None:
        await self.system.start(server)

    async def stop(self) -> None:
        await self.system.stop()

    def app(self) -> FastAPI:
        from evento.demo.todolist.web import create_app

        return create_app(self.system.invoker())


def _todolist_processes(replicas: int) -> list[Process]:
    processes = [
        Process(f"todolist-{role}-{replica}", f"evento.demo.todolist.deploy:{role}", {"EVENTO_REPLICA": str(replica)})
        for role in ("command", "query", "saga")
        for replica in range(1, replicas + 1)
    ]
    return [*processes, Process("todolist-web", "evento.demo.todolist.deploy:web")]


# --- the examples of the published contract ---------------------------------------------------------------------------


def _example(package: str) -> tuple[Embed, Callable[[int], list[Process]]]:
    """The embedded system and the processes of ``evento.demo.<package>``: one process per service of its
    ``system.SERVICES``, named as the service, then the ``edge``."""

    def embed(data_dir: Path, service_delay: float, consumer_store: str | None) -> EmbeddedSystem:
        from evento.demo.shared.system import ExampleConfig

        system: Any = importlib.import_module(f"evento.demo.{package}.system")
        built: EmbeddedSystem = system.SYSTEM(ExampleConfig(data_dir, consumer_store=consumer_store))
        return built

    def processes(replicas: int) -> list[Process]:
        services = importlib.import_module(f"evento.demo.{package}.system").SERVICES
        return [Process(name, f"evento.demo.{package}.deploy:{name}") for name in [*services, "edge"]]

    return embed, processes


SYSTEMS: dict[str, DemoSystem] = {
    "todolist": DemoSystem("todolist", "TodoList API", "/todo-list/", _TodoListEmbedded, _todolist_processes, True),
    "order-inventory": DemoSystem("order-inventory", "Orders API", "/stats/orders", *_example("order_inventory")),
    "flight": DemoSystem("flight", "Flights API", "/stats/bookings", *_example("flight")),
}


def demo_system(name: str) -> DemoSystem:
    """The system called ``name`` (a key of :data:`SYSTEMS`)."""
    found = SYSTEMS.get(name)
    if found is None:
        raise ValueError(f"unknown demo system {name!r}: one of {', '.join(SYSTEMS)}")
    return found
