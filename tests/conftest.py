"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from evento.server import EventoServer
from tests.helpers import start_server


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[EventoServer]:
    """An in-process server on a SQLite event store under the test's temporary directory."""
    server = await start_server(tmp_path)
    yield server
    await server.stop()
