"""Which psycopg errors mean "the PostgreSQL database is unavailable": one answer for every PostgreSQL store.

Imported only by the PostgreSQL backends, so psycopg stays an optional extra.
"""

from __future__ import annotations

import psycopg
from psycopg_pool import PoolTimeout

__all__ = ["is_unavailable"]

# SQLSTATE classes meaning "the server is unreachable, going away or out of room": 08 connection exception,
# 53 insufficient resources (too many connections), 57 operator intervention (shutdown, statement cancelled).
_UNAVAILABLE_CLASSES = ("08", "53", "57")


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached now (worth retrying later), not that it refused."""
    if isinstance(exc, PoolTimeout | psycopg.InterfaceError):
        return True  # no connection came free in time, or the connection is closed on our side
    if not isinstance(exc, psycopg.OperationalError):
        return False
    # Errors raised by libpq itself (connection refused, server closed the connection) have no SQLSTATE.
    return exc.sqlstate is None or exc.sqlstate[:2] in _UNAVAILABLE_CLASSES
