"""The TodoList system assembled: its bundles, and the embedded demo that runs them with the server.

The bundles are split as they would be deployed: ``todolist-command`` (the aggregate), ``todolist-query``
(projector + projection, read model in its consumer store's database), ``todolist-saga`` (saga, observer and
the two services) and ``todolist-web`` (the invoker behind the HTTP API).

Consumer state lives where :attr:`TodoListConfig.consumer_store` says: by default one SQLite file per bundle
under the data directory; or one PostgreSQL or MySQL database shared by both consuming bundles, the read model's
tables beside the consumer state so each event's rows commit with the projector's checkpoint.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evento import Bundle, ConsumerSettings
from evento.consumer_stores import ConsumerStateStore, open_consumer_store
from evento.demo.todolist.aggregate import TodoListAggregate
from evento.demo.todolist.invoker import TodoListInvoker
from evento.demo.todolist.observer import TodoListNotificationObserver
from evento.demo.todolist.projection import TodoListProjection
from evento.demo.todolist.projector import TodoListProjector
from evento.demo.todolist.read_model import TodoListReadModel
from evento.demo.todolist.saga import ErpTodoListActivityRegistrationSaga
from evento.demo.todolist.services import ErpService, NotificationService, ServiceSettings

__all__ = [
    "QueryBundle",
    "TodoListConfig",
    "TodoListSystem",
    "command_bundle",
    "query_bundle",
    "saga_bundle",
    "web_bundle",
]


@dataclass
class TodoListConfig:
    """What the TodoList bundles share: where their files live, the services' latency, the replica number, and
    where consumer state and the read model are kept.

    ``consumer_store`` is a consumer store spec (:func:`~evento.consumer_stores.open_consumer_store`):
    ``postgresql://…``, ``mysql://…``, a SQLite file or ``memory``. ``None`` keeps each bundle's state in its own
    SQLite file under ``data_dir``. The read model lives in the query bundle's store database; with ``memory``,
    which has none, in ``todolist-query.db`` under ``data_dir``.
    """

    data_dir: Path
    service_delay: float = 1.0
    consumer_settings: ConsumerSettings = field(default_factory=ConsumerSettings)
    replica: int = 1
    consumer_store: str | None = None

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        self.services = ServiceSettings(delay=self.service_delay)

    @property
    def instance_id(self) -> str:
        # A stable instance id per replica: after a crash the restarted instance is the same consumer-lock owner,
        # so it resumes at once instead of waiting for its own previous lease to expire.
        return f"replica-{self.replica}"

    def provide(self, annotation: Any) -> Any:
        return {ServiceSettings: self.services}.get(annotation)

    def open_store(self, default_file: str) -> tuple[str, ConsumerStateStore]:
        """The spec and a new (unstarted) consumer store for a bundle whose default is ``default_file``."""
        spec = self.consumer_store or f"sqlite:{default_file}"
        return spec, open_consumer_store(spec, data_dir=self.data_dir)


class QueryBundle(Bundle):
    """The query bundle with its read model: the tables are created before the projector starts (a ``CREATE``
    inside a projection transaction would commit it early on MySQL), and the read model's connections close
    when the bundle stops."""

    def __init__(self, *args: Any, read_model: TodoListReadModel, **kwargs: Any) -> None:
        self.read_model = read_model
        super().__init__(*args, **kwargs)

    async def start(self, server: Any) -> None:
        await asyncio.to_thread(self.read_model.open)
        await super().start(server)

    async def stop(self) -> None:
        await super().stop()
        await asyncio.to_thread(self.read_model.close)


def command_bundle(config: TodoListConfig) -> Bundle:
    """``todolist-command``: the aggregate."""
    return Bundle(
        "todolist-command",
        components=[TodoListAggregate],
        description="TodoList write side",
        instance_id=config.instance_id,
    )


def query_bundle(config: TodoListConfig) -> QueryBundle:
    """``todolist-query``: projector and projection over the read model, kept in the consumer store's database so
    each event's rows commit with the projector's checkpoint.

    Every query replica reads and writes the same read model; the consumer lock picks the active projector.
    """
    spec, store = config.open_store("todolist-query.db")
    # A memory store has no database: the read model then keeps the file the SQLite store would have used. A spec
    # relative to data_dir, as the store's own: data_dir / file would be put under data_dir a second time.
    database = spec if store.supports_transactions else "sqlite:todolist-query.db"
    read_model = TodoListReadModel(database, data_dir=config.data_dir)
    return QueryBundle(
        "todolist-query",
        read_model=read_model,
        components=[TodoListProjector, TodoListProjection],
        consumer_store=store,
        injector=lambda annotation: read_model if annotation is TodoListReadModel else config.provide(annotation),
        consumer_settings=config.consumer_settings,
        description="TodoList read side",
        instance_id=config.instance_id,
    )


def saga_bundle(config: TodoListConfig) -> Bundle:
    """``todolist-saga``: the ERP saga, the notification observer and the two services."""
    return Bundle(
        "todolist-saga",
        components=[ErpTodoListActivityRegistrationSaga, TodoListNotificationObserver, ErpService, NotificationService],
        consumer_store=config.open_store("todolist-saga.db")[1],
        injector=config.provide,
        consumer_settings=config.consumer_settings,
        description="TodoList processes and external services",
        instance_id=config.instance_id,
    )


def web_bundle(config: TodoListConfig, bundle_class: type[Bundle] = Bundle) -> Bundle:
    """``todolist-web``: the invoker (its HTTP server is started by whoever hosts it)."""
    return bundle_class(
        "todolist-web", components=[TodoListInvoker], description="TodoList HTTP API", instance_id=config.instance_id
    )


class TodoListSystem:
    """The four TodoList bundles over one data directory, in one process (``consumer_store``: see
    :class:`TodoListConfig`)."""

    def __init__(
        self,
        data_dir: Path,
        service_delay: float = 1.0,
        consumer_settings: ConsumerSettings | None = None,
        consumer_store: str | None = None,
    ) -> None:
        self.config = TodoListConfig(
            data_dir, service_delay, consumer_settings or ConsumerSettings(), consumer_store=consumer_store
        )
        self.services = self.config.services
        self.command = command_bundle(self.config)
        self.query = query_bundle(self.config)
        self.read_model = self.query.read_model
        self.saga = saga_bundle(self.config)
        self.web = web_bundle(self.config)

    @property
    def bundles(self) -> list[Bundle]:
        return [self.command, self.query, self.saga, self.web]

    def invoker(self) -> TodoListInvoker:
        return self.web.invoker(TodoListInvoker)

    async def start(self, server: Any) -> None:
        for bundle in self.bundles:
            await bundle.start(server)

    async def stop(self) -> None:
        for bundle in reversed(self.bundles):
            await bundle.stop()
