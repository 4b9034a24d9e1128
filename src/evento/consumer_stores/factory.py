"""Open a consumer state store from one configuration string (CLI flag, environment variable, bundle option)."""

from __future__ import annotations

from pathlib import Path

from evento.consumer_stores.base import ConsumerStateStore
from evento.consumer_stores.memory import MemoryConsumerStateStore
from evento.consumer_stores.sqlite import SQLiteConsumerStateStore

__all__ = ["ACCEPTED_FORMS", "open_consumer_store"]

ACCEPTED_FORMS = (
    "memory",
    "sqlite:///absolute/path.db",
    "sqlite:relative/path.db",
    "path/to/file.db",
    "postgresql://user:pass@host:5432/db (or postgres://)",
    "mysql://user:pass@host:3306/db (or mariadb://)",
)


def _unknown(spec: str, why: str) -> ValueError:
    return ValueError(f"{why}: {spec!r}; a consumer state store is one of: {', '.join(ACCEPTED_FORMS)}")


def _sqlite_path(raw: str, data_dir: Path | None) -> Path:
    path = Path(raw).expanduser()
    # A relative file belongs with the rest of the node's data, else (no data directory) in the working one.
    return path if path.is_absolute() or data_dir is None else data_dir / path


def open_consumer_store(spec: str, *, data_dir: Path | None = None) -> ConsumerStateStore:
    """The consumer state store ``spec`` names, not started yet (constructors do no I/O).

    >>> open_consumer_store("memory").dialect
    'memory'
    >>> open_consumer_store("sqlite:state.db", data_dir=Path("/var/evento")).path.as_posix()
    '/var/evento/state.db'

    Relative SQLite paths are taken relative to ``data_dir`` (or the working directory without one). The
    PostgreSQL and MySQL backends need their extras installed; anything else raises :class:`ValueError`
    naming the accepted forms.
    """
    text = spec.strip()
    scheme, colon, rest = text.partition(":")
    scheme = scheme.lower() if colon else ""
    if text == "memory":
        return MemoryConsumerStateStore()
    if scheme == "sqlite":
        if rest.startswith("//") and not rest.startswith("///"):
            raise _unknown(spec, "a sqlite URL has three slashes before an absolute path or none before a relative one")
        raw = rest[2:] if rest.startswith("///") else rest
        if not raw:
            raise _unknown(spec, "the sqlite store needs a file")
        return SQLiteConsumerStateStore(_sqlite_path(raw, data_dir))
    if scheme in ("postgresql", "postgres"):
        try:
            from evento.consumer_stores.postgres import PostgresConsumerStateStore
        except ImportError as exc:
            raise ValueError(f"{spec!r} needs psycopg: pip install 'evento-framework[postgres]' ({exc})") from exc
        return PostgresConsumerStateStore(text)
    if scheme in ("mysql", "mariadb"):
        try:
            from evento.consumer_stores.mysql import MySQLConsumerStateStore
        except ImportError as exc:
            raise ValueError(f"{spec!r} needs PyMySQL: pip install 'evento-framework[mysql]' ({exc})") from exc
        return MySQLConsumerStateStore(text)
    if text.endswith(".db") and "://" not in text:
        return SQLiteConsumerStateStore(_sqlite_path(text, data_dir))
    raise _unknown(spec, "unknown consumer state store")
