"""Store URLs: the one set of rules by which ``--store``, ``--consumer-store`` and the read models name a database.

The event store, the consumer state store and the read models read the same spellings, so a database written
once for one of them means the same file or server for the others:

* ``memory``: kept in the process (consumer state only);
* ``sqlite:///absolute/path.db`` or ``sqlite:relative/path.db``; a bare path ending in ``.db`` or holding a
  ``/``: a SQLite file. Relative paths are under the data directory (the working directory without one) and
  ``~`` is the user's home;
* ``postgresql://…`` (or ``postgres://``): PostgreSQL; ``mysql://…`` (or ``mariadb://``): MySQL/MariaDB.

Schemes are case-insensitive. The statements of every SQL store and read model are written once with ``?``
placeholders; :func:`format_placeholders` gives the ``%s`` spelling psycopg and PyMySQL want.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "ACCEPTED_FORMS",
    "EVENT_STORE_FORMS",
    "Backend",
    "StoreLocation",
    "format_placeholders",
    "parse_store_url",
    "without_passwords",
]

#: The backends a store URL can name, in the one spelling used everywhere (contract suites included).
Backend = Literal["memory", "sqlite", "postgres", "mysql"]

ACCEPTED_FORMS = (
    "memory",
    "sqlite:///absolute/path.db",
    "sqlite:relative/path.db",
    "path/to/file.db",
    "postgresql://user:pass@host:5432/db (or postgres://)",
    "mysql://user:pass@host:3306/db (or mariadb://)",
)

_SCHEMES: dict[str, Backend] = {
    "sqlite": "sqlite",
    "postgresql": "postgres",
    "postgres": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
}


@dataclass(frozen=True, slots=True)
class StoreLocation:
    """Where a store URL points: a backend and, for SQLite, the file; for a database server, the URL itself."""

    backend: Backend
    path: Path | None = None
    url: str = ""


#: The forms an event store takes (no memory store, no MySQL).
EVENT_STORE_FORMS = tuple(form for form in ACCEPTED_FORMS if not form.startswith(("memory", "mysql")))


def _refused(spec: str, why: str, what: str, accepted: tuple[str, ...]) -> ValueError:
    return ValueError(f"{why}: {spec!r}; {what} is one of: {', '.join(accepted)}")


def _sqlite(raw: str, data_dir: Path | None) -> StoreLocation:
    path = Path(raw).expanduser()
    # A relative file belongs with the rest of the node's data, else (no data directory) in the working one.
    return StoreLocation("sqlite", path if path.is_absolute() or data_dir is None else data_dir / path)


def parse_store_url(
    spec: str, *, data_dir: Path | None = None, what: str = "a store", accepted: tuple[str, ...] = ACCEPTED_FORMS
) -> StoreLocation:
    """Where ``spec`` points, by the rules of this module; :class:`ValueError` naming the accepted forms otherwise.

    ``what`` names the store and ``accepted`` the forms it takes in that message. Nothing is opened or checked on
    disk.

    >>> parse_store_url("SQLite:state.db", data_dir=Path("/data"))
    StoreLocation(backend='sqlite', path=PosixPath('/data/state.db'), url='')
    >>> parse_store_url("sqlite:////srv/events.db").path
    PosixPath('//srv/events.db')
    >>> parse_store_url("Postgres://db/evento").backend
    'postgres'
    """
    text = spec.strip()
    if text == "memory":
        return StoreLocation("memory")
    scheme, colon, rest = text.partition(":")
    backend = _SCHEMES.get(scheme.lower()) if colon else None
    if backend == "sqlite":
        if rest.startswith("//") and not rest.startswith("///"):
            why = "a sqlite URL has three slashes before an absolute path or none before a relative one"
            raise _refused(spec, why, what, accepted)
        raw = rest[2:] if rest.startswith("///") else rest
        if not raw:
            raise _refused(spec, "the sqlite store needs a file", what, accepted)
        return _sqlite(raw, data_dir)
    if backend is not None:
        return StoreLocation(backend, url=f"{scheme.lower()}:{rest}")  # libpq reads the scheme case-sensitively
    if text and "://" not in text and (text.endswith(".db") or "/" in text):
        return _sqlite(text, data_dir)
    raise _refused(spec, "not a store URL", what, accepted)


def format_placeholders(statement: str) -> str:
    """``statement``, written with ``?`` placeholders, in the ``%s`` style of psycopg and PyMySQL.

    A literal ``%`` is doubled, as those drivers read it when parameters are given; so the statement must hold no
    ``?`` of its own outside parameters.

    >>> format_placeholders("SELECT name FROM t WHERE id = ? AND name LIKE '%x'")
    "SELECT name FROM t WHERE id = %s AND name LIKE '%%x'"
    """
    return statement.replace("%", "%%").replace("?", "%s")


_URL_PASSWORD = re.compile(r"(://[^:/@\s]*):[^@/\s]*@")


def without_passwords(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***`` (for logs, errors and lock files).

    >>> without_passwords("cannot reach postgresql://app:s3cret@db:5432/evento")
    'cannot reach postgresql://app:***@db:5432/evento'
    """
    return _URL_PASSWORD.sub(r"\1:***@", text)
