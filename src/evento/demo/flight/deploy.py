"""Entry points of ``evento bundle run`` for flight's services, one process each::

    EVENTO_DATA_DIR=./data evento bundle run evento.demo.flight.deploy:flights --server 127.0.0.1:3030
    EVENTO_APP_PORT=8080 evento bundle run evento.demo.flight.deploy:edge --server 127.0.0.1:3030

Settings come from the environment (see :meth:`ExampleConfig.from_env`); ``edge`` also reads ``EVENTO_HOST``
and ``EVENTO_APP_PORT``, where its HTTP API listens.
"""

from __future__ import annotations

import os

from evento import Bundle
from evento.demo.flight import system
from evento.demo.flight.edge import create_app
from evento.demo.shared.system import ExampleConfig, HttpBundle

__all__ = ["bookings", "edge", "flights", "payments"]


def edge() -> Bundle:
    """The ``edge`` bundle with its HTTP API, listening on ``EVENTO_HOST``:``EVENTO_APP_PORT`` (127.0.0.1:8080)."""
    host, port = os.environ.get("EVENTO_HOST", "127.0.0.1"), int(os.environ.get("EVENTO_APP_PORT", "8080"))
    return system.edge(ExampleConfig.from_env(), HttpBundle, app=create_app, host=host, port=port)


def bookings() -> Bundle:
    """The ``bookings`` bundle: bookings, their saga, views and statistics."""
    return system.bookings(ExampleConfig.from_env())


def flights() -> Bundle:
    """The ``flights`` bundle: flights and seat holds, the seat map and the hold expiry clock."""
    return system.flights(ExampleConfig.from_env())


def payments() -> Bundle:
    """The ``payments`` bundle: customers, balances, charges and notifications."""
    return system.payments(ExampleConfig.from_env())
