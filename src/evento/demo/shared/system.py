"""How an example system's services become bundles: one consumer store (and read model) per stateful service,
the same bundles in one process (``evento demo NAME``) or one process each (``--distributed``).

Each service of the contract's topology is a function of an :class:`ExampleConfig` returning its bundle; the
system lists them in start order. :mod:`evento.demo.systems` turns that list into the launcher's processes.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from evento import Bundle, ConsumerSettings
from evento.consumer_stores import open_consumer_store
from evento.demo.shared.read_model import ExampleReadModel
from evento.demo.todolist.system import QueryBundle
from evento.server.http import EmbeddedUvicorn

__all__ = ["ExampleConfig", "ExampleSystem", "HttpBundle", "ServiceFactory", "service_bundle"]


def example_consumer_settings() -> ConsumerSettings:
    """Quick retries: a saga waiting for a service that restarts tries again within a second or two."""
    return ConsumerSettings(error_delay=0.1, max_backoff=1.0, lease_seconds=5.0, idle_poll=1.0)


@dataclass
class ExampleConfig:
    """What the services of an example share: the data directory, where consumer state and read models live
    (``None``: one SQLite file per service under ``data_dir``; else a consumer store spec shared by all), the
    consumers' settings, and the flight system's seat hold timeout in seconds."""

    data_dir: Path
    consumer_store: str | None = None
    consumer_settings: ConsumerSettings = field(default_factory=example_consumer_settings)
    hold_timeout: float = 6.0

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)

    @classmethod
    def from_env(cls) -> ExampleConfig:
        """From ``EVENTO_DATA_DIR``, ``EVENTO_CONSUMER_STORE`` and ``EVENTO_HOLD_TIMEOUT`` (``evento bundle run``)."""
        return cls(
            data_dir=Path(os.environ.get("EVENTO_DATA_DIR", ".evento-demo")),
            consumer_store=os.environ.get("EVENTO_CONSUMER_STORE") or None,
            hold_timeout=float(os.environ.get("EVENTO_HOLD_TIMEOUT", "6.0")),
        )


ServiceFactory = Callable[[ExampleConfig], Bundle]


def service_bundle(
    config: ExampleConfig,
    name: str,
    components: Sequence[type[Any]],
    read_model: type[ExampleReadModel],
    tables: Sequence[str],
    bundle_class: type[QueryBundle] = QueryBundle,
    contexts: Mapping[type[Any], Sequence[str]] | None = None,
) -> Bundle:
    """The bundle of service ``name``: its consumer state in its own store (``name.db`` under the data directory
    by default) and its views (``read_model`` over ``tables``) in that store's database, so each event's rows
    commit with the projector's checkpoint. The instance id is stable: a restarted process takes its consumer
    locks back at once instead of waiting for its previous lease to run out. ``contexts`` narrows what a consumer
    reads (every context by default): a projector of one service's view need not commit a checkpoint for every
    other event."""
    spec = config.consumer_store or f"sqlite:{name}.db"
    store = open_consumer_store(spec, data_dir=config.data_dir)
    database = spec if store.supports_transactions else f"sqlite:{name}-views.db"
    model = read_model(database, tables=tables, data_dir=config.data_dir)
    return bundle_class(
        name,
        read_model=model,
        components=components,
        consumer_store=store,
        injector=lambda annotation: (
            model if annotation is read_model else config if annotation is ExampleConfig else None
        ),
        consumer_settings=config.consumer_settings,
        contexts=contexts,
        instance_id=f"{name}-1",
    )


class HttpBundle(Bundle):
    """The edge as a process: the invoker bundle plus the HTTP API it serves, started and stopped together."""

    def __init__(self, *args: Any, app: Callable[[Bundle], FastAPI], host: str, port: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._app, self._host, self._port = app, host, port
        self._http: EmbeddedUvicorn | None = None

    async def start(self, server: Any) -> None:
        await super().start(server)
        self._http = EmbeddedUvicorn(self._app(self), self._host, self._port)
        await self._http.start()

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.stop()
        await super().stop()


class ExampleSystem:
    """An example's bundles in one process, started in order and stopped in reverse; ``app`` is its HTTP API."""

    def __init__(self, bundles: Sequence[Bundle], app: Callable[[Bundle], FastAPI]) -> None:
        self.bundles = list(bundles)
        self._app = app

    @property
    def edge(self) -> Bundle:
        """The edge bundle (the first one): the invoker the HTTP API calls."""
        return self.bundles[0]

    def app(self) -> FastAPI:
        return self._app(self.edge)

    async def start(self, server: Any) -> None:
        for bundle in reversed(self.bundles):  # owners first, the edge last
            await bundle.start(server)

    async def stop(self) -> None:
        for bundle in self.bundles:
            await bundle.stop()

    async def wait_for_head(self, timeout: float = 30.0) -> None:
        await asyncio.gather(*(bundle.wait_for_head(timeout) for bundle in self.bundles))
