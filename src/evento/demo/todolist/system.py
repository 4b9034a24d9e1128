"""The TodoList system assembled: its bundles, and the embedded demo that runs them with the server.

The bundles are split as they would be deployed: ``todolist-command`` (the aggregate), ``todolist-query``
(projector + projection, read model in its consumer store's SQLite file), ``todolist-saga`` (saga, observer and
the two services) and ``todolist-web`` (the invoker behind the HTTP API).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evento import Bundle, ConsumerSettings
from evento.consumer_stores.sqlite import SQLiteConsumerStateStore
from evento.demo.todolist.aggregate import TodoListAggregate
from evento.demo.todolist.invoker import TodoListInvoker
from evento.demo.todolist.observer import TodoListNotificationObserver
from evento.demo.todolist.projection import TodoListProjection
from evento.demo.todolist.projector import TodoListProjector
from evento.demo.todolist.read_model import TodoListReadModel
from evento.demo.todolist.saga import ErpTodoListActivityRegistrationSaga
from evento.demo.todolist.services import ErpService, NotificationService, ServiceSettings

__all__ = ["TodoListSystem"]


@dataclass
class TodoListSystem:
    """The four TodoList bundles over one data directory."""

    data_dir: Path
    service_delay: float = 1.0
    consumer_settings: ConsumerSettings = field(default_factory=ConsumerSettings)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        self.services = ServiceSettings(delay=self.service_delay)
        self.read_model = TodoListReadModel(self.data_dir / "todolist-query.db")
        provided: dict[Any, Any] = {TodoListReadModel: self.read_model, ServiceSettings: self.services}
        self.command = Bundle(
            "todolist-command", components=[TodoListAggregate], description="TodoList write side", **self._identity(1)
        )
        self.query = Bundle(
            "todolist-query",
            components=[TodoListProjector, TodoListProjection],
            consumer_store=SQLiteConsumerStateStore(self.read_model.path),
            injector=provided.get,
            consumer_settings=self.consumer_settings,
            description="TodoList read side",
            **self._identity(1),
        )
        self.saga = Bundle(
            "todolist-saga",
            components=[
                ErpTodoListActivityRegistrationSaga,
                TodoListNotificationObserver,
                ErpService,
                NotificationService,
            ],
            consumer_store=SQLiteConsumerStateStore(self.data_dir / "todolist-saga.db"),
            injector=provided.get,
            consumer_settings=self.consumer_settings,
            description="TodoList processes and external services",
            **self._identity(1),
        )
        self.web = Bundle(
            "todolist-web", components=[TodoListInvoker], description="TodoList HTTP API", **self._identity(1)
        )

    def _identity(self, replica: int) -> dict[str, Any]:
        # A stable instance id per replica: after a crash the restarted instance is the same consumer-lock owner,
        # so it resumes at once instead of waiting for its own previous lease to expire.
        return {"instance_id": f"replica-{replica}"}

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
