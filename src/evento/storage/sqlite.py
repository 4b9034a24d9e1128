"""How every Evento SQLite file is opened: the event store, the consumer state store and the read models.

One place decides the journal mode, durability and lock waiting, so that files shared by several stores (or
several processes) are all used the same way.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["connect", "is_busy"]

# SQLITE_BUSY (another connection holds the lock past the busy timeout) and SQLITE_LOCKED (a table is locked).
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` says the file is locked by another connection: busy, not broken, so worth retrying."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    # Extended codes (SQLITE_BUSY_SNAPSHOT...) carry the primary code in their low byte.
    return code is not None and code & 0xFF in _BUSY_CODES


def connect(path: str | Path, *, synchronous: str = "FULL", wait: float = 30.0) -> sqlite3.Connection:
    """A connection set up the way every Evento SQLite file is used: WAL, busy timeout, autocommit.

    Connections opening a new file at once (processes or replicas starting together) can get "database is
    locked" from the switch to WAL straight away, without SQLite's busy handler: that is waited out (up to
    ``wait`` seconds). Once the file is in WAL mode, which it keeps, the switch is a no-op.
    """
    deadline = time.monotonic() + wait
    pause = 0.001
    while True:
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=wait)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={synchronous}")
            conn.execute(f"PRAGMA busy_timeout={round(wait * 1000)}")
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            if not is_busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
