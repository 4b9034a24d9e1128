"""Entry points for running the TodoList bundles as separate processes with ``evento bundle run``.

Each factory reads its settings from the environment, so one command line serves every replica::

    EVENTO_DATA_DIR=./data EVENTO_REPLICA=2 \\
        evento bundle run evento.demo.todolist.deploy:query --server 127.0.0.1:3030

``EVENTO_DATA_DIR`` (shared files: the read model, saga state), ``EVENTO_CONSUMER_STORE`` (where consumer state
and the read model live instead: ``postgresql://…``, ``mysql://…``, a SQLite file or ``memory``; see
:class:`~evento.demo.todolist.system.TodoListConfig`), ``EVENTO_REPLICA`` (replica number, gives the stable
instance id), ``EVENTO_SERVICE_DELAY`` (simulated ERP/notification latency), and for ``web`` ``EVENTO_HOST`` /
``EVENTO_TODO_PORT`` (where the HTTP API listens).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from evento import Bundle, ConsumerSettings
from evento.demo.todolist import system
from evento.demo.todolist.invoker import TodoListInvoker
from evento.demo.todolist.web import create_app
from evento.server.http import EmbeddedUvicorn

__all__ = ["command", "query", "saga", "web"]


def _config() -> system.TodoListConfig:
    return system.TodoListConfig(
        data_dir=Path(os.environ.get("EVENTO_DATA_DIR", ".evento-demo")),
        service_delay=float(os.environ.get("EVENTO_SERVICE_DELAY", "1.0")),
        consumer_settings=ConsumerSettings(error_delay=0.2, lease_seconds=5.0, idle_poll=1.0),
        replica=int(os.environ.get("EVENTO_REPLICA", "1")),
        consumer_store=os.environ.get("EVENTO_CONSUMER_STORE") or None,
    )


def command() -> Bundle:
    """The ``todolist-command`` bundle: the aggregate."""
    return system.command_bundle(_config())


def query() -> Bundle:
    """The ``todolist-query`` bundle: projector and projection over the read model."""
    return system.query_bundle(_config())


def saga() -> Bundle:
    """The ``todolist-saga`` bundle: the ERP saga, the notification observer and the two services."""
    return system.saga_bundle(_config())


class _WebBundle(Bundle):
    """The invoker bundle plus the HTTP API it serves, started and stopped together."""

    host: str
    port: int

    async def start(self, server: Any) -> None:
        await super().start(server)
        self._http = EmbeddedUvicorn(create_app(self.invoker(TodoListInvoker)), self.host, self.port)
        await self._http.start()

    async def stop(self) -> None:
        await self._http.stop()
        await super().stop()


def web() -> Bundle:
    """The ``todolist-web`` bundle with its HTTP API, on ``EVENTO_HOST``:``EVENTO_TODO_PORT`` (127.0.0.1:8080)."""
    bundle = system.web_bundle(_config(), _WebBundle)
    assert isinstance(bundle, _WebBundle)
    bundle.host = os.environ.get("EVENTO_HOST", "127.0.0.1")
    bundle.port = int(os.environ.get("EVENTO_TODO_PORT", "8080"))
    return bundle
