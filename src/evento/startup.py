"""Why an ``evento`` process could not start, said in one line the operator can act on.

A port already taken, a store URL whose driver extra is not installed, a database that does not answer: these
are not bugs, so the commands print one line naming the flag or the URL to change and exit non-zero, instead of
a traceback (which ``--log-level DEBUG`` still shows). The runners raise :class:`StartupError` where they know
the flag; :func:`evento.cli.main` turns it, and the other errors named here, into that line.
"""

from __future__ import annotations

import contextlib
import errno
from typing import TYPE_CHECKING

from evento.errors import EventoError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["StartupError", "driver_error", "missing_extra", "naming_the_option", "naming_the_port"]

#: The driver modules of the optional extras: module -> (extra, what it connects to).
_DRIVER_EXTRAS = {
    "psycopg": ("postgres", "PostgreSQL"),
    "psycopg_pool": ("postgres", "PostgreSQL"),
    "pymysql": ("mysql", "MySQL/MariaDB"),
}
#: The URL schemes each extra serves, to name the flag whose store needs it.
EXTRA_SCHEMES = {"postgres": ("postgresql:", "postgres:"), "mysql": ("mysql:", "mariadb:")}

_LISTEN_ERRORS = {
    errno.EADDRINUSE: "already in use",
    errno.EACCES: "not allowed for this user",
    errno.EADDRNOTAVAIL: "not an address of this machine",
}


class StartupError(EventoError):
    """The process cannot start as configured; the message is one line saying what to change."""


@contextlib.contextmanager
def naming_the_port(flag: str, host: str, port: int) -> Iterator[None]:
    """Around the start of a listener: a port that cannot be bound becomes a :class:`StartupError` naming
    ``flag``, the option that chose it."""
    try:
        yield
    except OSError as exc:
        reason = _LISTEN_ERRORS.get(exc.errno or 0)
        if reason is None:
            raise
        raise StartupError(f"{flag} {port}: cannot listen on {host or '*'}:{port}: {reason}") from exc


@contextlib.contextmanager
def naming_the_option(flag: str) -> Iterator[None]:
    """Around the use of an option's value (a store URL): the :class:`ValueError` it raises becomes a
    :class:`StartupError` naming ``flag``. A driver extra that is not installed keeps its error, for its own
    line (:func:`missing_extra`)."""
    try:
        yield
    except ValueError as exc:
        if missing_extra(exc) is not None:
            raise
        raise StartupError(f"{flag}: {exc}") from exc


def missing_extra(error: BaseException) -> tuple[str, str] | None:
    """``(extra, database)`` when ``error`` (or an error it was raised from) is the import of a driver of an
    optional extra that is not installed, e.g. ``("postgres", "PostgreSQL")`` for psycopg."""
    for current in _chain(error):
        if isinstance(current, ImportError):
            module = (current.name or "").partition(".")[0]
            if module in _DRIVER_EXTRAS:
                return _DRIVER_EXTRAS[module]
    return None


def driver_error(error: BaseException) -> tuple[str, BaseException] | None:
    """``(extra, the driver's error)`` when a database driver raised ``error`` or an error it was raised from:
    a database a store or read model could not reach or use, named by the extra whose driver it is."""
    for current in _chain(error):
        module = type(current).__module__.partition(".")[0]
        if module in _DRIVER_EXTRAS:
            return _DRIVER_EXTRAS[module][0], current
    return None


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and the errors it was raised from or during, nearest first."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
