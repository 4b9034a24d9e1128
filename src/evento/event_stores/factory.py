"""Open an event store from one ``--store`` value (the rules of :mod:`evento.storage.urls`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from evento.storage.urls import EVENT_STORE_FORMS, parse_store_url

if TYPE_CHECKING:
    from pathlib import Path

    from evento.event_stores.base import EventStore

__all__ = ["open_event_store"]


def open_event_store(
    spec: str, *, data_dir: Path, mode: str = "cpes", fetch_delay: float = 0.069, pool_size: int = 10
) -> EventStore:
    """The event store a ``--store`` value names (not started; constructors do no I/O).

    * empty: ``DATA_DIR/events.db`` (SQLite, the embedded default);
    * ``sqlite:///abs/path.db``, ``sqlite:rel/path.db`` or a file path (relative ones under ``data_dir``): SQLite;
    * ``postgresql://…`` / ``postgres://…``: PostgreSQL, in ``mode`` ``cpes`` or ``apes`` (``fetch_delay`` seconds).

    >>> from pathlib import Path
    >>> open_event_store("", data_dir=Path("/data")).path
    PosixPath('/data/events.db')
    >>> open_event_store("sqlite:es.db", data_dir=Path("/data")).path
    PosixPath('/data/es.db')
    >>> open_event_store("mysql://db/evento", data_dir=Path("/data"))
    Traceback (most recent call last):
    ...
    ValueError: the event store needs SQLite or PostgreSQL, not 'mysql://db/evento'
    """
    if mode not in ("cpes", "apes"):
        raise ValueError(f"event store mode must be cpes or apes, got {mode!r}")
    location = (
        parse_store_url(spec, data_dir=data_dir, what="an event store", accepted=EVENT_STORE_FORMS)
        if spec.strip()
        else None
    )
    if location is not None and location.backend == "postgres":
        try:
            from evento.event_stores.postgres import PostgresEventStore
        except ImportError as exc:
            raise ValueError(f"{spec!r} needs psycopg: pip install 'evento-framework[postgres]' ({exc})") from exc

        return PostgresEventStore(location.url, mode=mode, fetch_delay=fetch_delay, pool_size=pool_size)  # type: ignore[arg-type]
    if location is not None and location.backend != "sqlite":
        raise ValueError(f"the event store needs SQLite or PostgreSQL, not {spec!r}")
    if mode != "cpes":
        raise ValueError("SQLite stores are consistent (CPES) by construction: --es-mode apes needs PostgreSQL")
    from evento.event_stores.sqlite import SQLiteEventStore

    return SQLiteEventStore(location.path if location is not None and location.path else data_dir / "events.db")
