"""Entry points of ``evento bundle run`` for order-inventory's services, one process each::

    EVENTO_DATA_DIR=./data evento bundle run evento.demo.order_inventory.deploy:inventory --server 127.0.0.1:3030
    EVENTO_APP_PORT=8080 evento bundle run evento.demo.order_inventory.deploy:edge --server 127.0.0.1:3030

Settings come from the environment (see :meth:`ExampleConfig.from_env`); ``edge`` also reads ``EVENTO_HOST``
and ``EVENTO_APP_PORT``, where its HTTP API listens.
"""

from __future__ import annotations

import os

from evento import Bundle
from evento.demo.order_inventory import system
from evento.demo.order_inventory.edge import create_app
from evento.demo.shared.system import ExampleConfig, HttpBundle

__all__ = ["customers", "edge", "inventory", "orders"]


def edge() -> Bundle:
    """The ``edge`` bundle with its HTTP API, listening on ``EVENTO_HOST``:``EVENTO_APP_PORT`` (127.0.0.1:8080)."""
    host, port = os.environ.get("EVENTO_HOST", "127.0.0.1"), int(os.environ.get("EVENTO_APP_PORT", "8080"))
    return system.edge(ExampleConfig.from_env(), HttpBundle, app=create_app, host=host, port=port)


def orders() -> Bundle:
    """The ``orders`` bundle: orders, their saga, views and statistics."""
    return system.orders(ExampleConfig.from_env())


def inventory() -> Bundle:
    """The ``inventory`` bundle: products, stock and reservations."""
    return system.inventory(ExampleConfig.from_env())


def customers() -> Bundle:
    """The ``customers`` bundle: balances and notifications."""
    return system.customers(ExampleConfig.from_env())
