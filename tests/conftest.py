"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from evento import Bundle, CommandGateway
from evento.server import EventoServer
from tests.helpers import start_server
from tests.ticks import Ticker


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[EventoServer]:
    """An in-process server on a SQLite event store under the test's temporary directory."""
    server = await start_server(tmp_path)
    yield server
    await server.stop()


@pytest.fixture
async def ticks(server: EventoServer) -> AsyncIterator[CommandGateway]:
    """The gateway of a bundle holding the :class:`~tests.ticks.Ticker` aggregate, started on ``server``."""
    writer = Bundle("ticker", components=[Ticker])
    await writer.start(server)
    gateway, _ = writer.gateways(None)
    yield gateway
    await writer.stop()
