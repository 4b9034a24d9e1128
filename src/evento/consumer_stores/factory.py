"""Open a consumer state store from one configuration string (CLI flag, environment variable, bundle option)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from evento.consumer_stores.memory import MemoryConsumerStateStore
from evento.consumer_stores.sqlite import SQLiteConsumerStateStore
from evento.storage.urls import parse_store_url

if TYPE_CHECKING:
    from pathlib import Path

    from evento.consumer_stores.base import ConsumerStateStore

__all__ = ["open_consumer_store"]


def open_consumer_store(spec: str, *, data_dir: Path | None = None) -> ConsumerStateStore:
    """The consumer state store ``spec`` names, not started yet (constructors do no I/O).

    >>> from pathlib import Path
    >>> open_consumer_store("memory").dialect
    'memory'
    >>> open_consumer_store("sqlite:state.db", data_dir=Path("/var/evento")).path.as_posix()
    '/var/evento/state.db'

    ``spec`` follows the rules of :mod:`evento.storage.urls`: relative SQLite paths are taken relative to
    ``data_dir`` (or the working directory without one). The PostgreSQL and MySQL backends need their extras
    installed; anything else raises :class:`ValueError` naming the accepted forms.
    """
    location = parse_store_url(spec, data_dir=data_dir, what="a consumer state store")
    if location.backend == "memory":
        return MemoryConsumerStateStore()
    if location.backend == "sqlite":
        assert location.path is not None
        return SQLiteConsumerStateStore(location.path)
    if location.backend == "postgres":
        try:
            from evento.consumer_stores.postgres import PostgresConsumerStateStore
        except ImportError as exc:
            raise ValueError(f"{spec!r} needs psycopg: pip install 'evento-framework[postgres]' ({exc})") from exc
        return PostgresConsumerStateStore(location.url)
    try:
        from evento.consumer_stores.mysql import MySQLConsumerStateStore
    except ImportError as exc:
        raise ValueError(f"{spec!r} needs PyMySQL: pip install 'evento-framework[mysql]' ({exc})") from exc
    return MySQLConsumerStateStore(location.url)
