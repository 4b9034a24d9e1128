"""The ``evento`` command line: ``demo``, ``server`` and ``bundle run`` start processes (:mod:`evento.cli.app`);
``consumers`` operates a running system through the server's REST API (:mod:`evento.cli.consumers`); ``users``
manages the API's users in the server's database (:mod:`evento.cli.users`). Options also come from ``EVENTO_*``
environment variables."""

from __future__ import annotations

from evento.cli.app import main

__all__ = ["main"]
