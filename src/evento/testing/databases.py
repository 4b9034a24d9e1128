"""The backends Evento's contract suites run on, and throwaway PostgreSQL and MariaDB databases for tests.

:data:`BACKENDS` is the one registry of backend names; :func:`store_url` gives a test a store URL of any of them
(a fresh database each), which :func:`~evento.consumer_stores.open_consumer_store` and
:func:`~evento.event_stores.open_event_store` open. The database servers are the machine's own (127.0.0.1, trust
auth for PostgreSQL, root without password for MariaDB); ``EVENTO_TEST_POSTGRES`` / ``EVENTO_TEST_MYSQL`` point
elsewhere. Under ``CI=true`` an unreachable server fails the test: CI must exercise every backend. Elsewhere the
test is skipped with the reason.

Needs pytest (and the drivers of the databases used), which are not dependencies of Evento itself.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from evento.storage.urls import Backend

__all__ = [
    "BACKENDS",
    "EVENT_STORE_BACKENDS",
    "mysql_database",
    "mysql_url",
    "postgres_database",
    "postgres_url",
    "store_url",
]

#: Every backend Evento ships, by the one spelling of backend names (that of :mod:`evento.storage.urls`).
BACKENDS: tuple[Backend, ...] = ("memory", "sqlite", "postgres", "mysql")
#: The backends an event store can use.
EVENT_STORE_BACKENDS: tuple[Backend, ...] = ("sqlite", "postgres")

POSTGRES_ADMIN_URL = os.environ.get("EVENTO_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
MYSQL_ADMIN_URL = os.environ.get("EVENTO_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")


def _unavailable(what: str, exc: BaseException) -> None:
    message = f"{what} is not reachable: {exc}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: database tests must run)")
    pytest.skip(message)


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


@contextmanager
def postgres_database() -> Iterator[str]:
    """Create an empty PostgreSQL database; yield its URL; drop it (closing what is still connected)."""
    import psycopg

    name = f"evento_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL", exc)
        raise
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield _with_database(POSTGRES_ADMIN_URL, name)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def mysql_database() -> Iterator[str]:
    """Create an empty MariaDB/MySQL database; yield its URL; drop it."""
    import pymysql

    parts = urlsplit(MYSQL_ADMIN_URL)
    name = f"evento_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = pymysql.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=parts.username or "root",
            password=parts.password or "",
            autocommit=True,
            connect_timeout=5,
        )
    except pymysql.MySQLError as exc:
        _unavailable("MariaDB/MySQL", exc)
        raise
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}`")
        try:
            yield _with_database(MYSQL_ADMIN_URL, name)
        finally:
            with admin.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        admin.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """Fixture: the URL of a throwaway PostgreSQL database, dropped after the test."""
    with postgres_database() as url:
        yield url


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """Fixture: the URL of a throwaway MariaDB/MySQL database, dropped after the test."""
    with mysql_database() as url:
        yield url


@contextmanager
def store_url(backend: Backend, storage: Path, file: str = "store.db") -> Iterator[str]:
    """A store URL of ``backend`` for one test: ``memory``, a SQLite ``file`` under ``storage``, or a throwaway
    PostgreSQL or MariaDB database (dropped on exit). Opening it twice reaches the same data (but for memory)."""
    if backend == "memory":
        yield "memory"
    elif backend == "sqlite":
        yield str(storage / file)
    elif backend == "postgres":
        with postgres_database() as url:
            yield url
    else:
        with mysql_database() as url:
            yield url
