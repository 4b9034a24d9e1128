"""The API's users: name, role (``viewer`` reads, ``admin`` does everything) and an argon2 hash of the password,
kept in the server's database (:attr:`EventoServer.database`), so every server of a cluster knows every user and
a restart keeps them. The key that signs the API's tokens is kept beside them, generated once, so a token from any
server of a cluster is accepted by all.

>>> import asyncio, tempfile, pathlib
>>> from evento.storage.database import SQLiteDatabase
>>> async def main() -> tuple[object, object]:
...     with tempfile.TemporaryDirectory() as tmp:
...         db = SQLiteDatabase(pathlib.Path(tmp) / "control.db")
...         await db.start()
...         users = UserStore(db)
...         await users.start()
...         await users.add("ann", "correct horse", Role.VIEWER)
...         good, bad = await users.verify("ann", "correct horse"), await users.verify("ann", "wrong")
...         await db.stop()
...         return good and good.role.value, bad
>>> asyncio.run(main())
('viewer', None)
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from evento.errors import EventoError, EventStoreError

if TYPE_CHECKING:
    from evento.storage.database import Cursor, Database

__all__ = [
    "ADMIN_USER",
    "AdminLogin",
    "Role",
    "User",
    "UserExistsError",
    "UserNotFoundError",
    "UserStore",
    "validate_user_name",
]

#: The user the server creates (``--admin-password`` / ``EVENTO_ADMIN_PASSWORD``, or a generated password).
ADMIN_USER = "admin"
#: Seconds a password that verified stays known to this process (by a keyed digest, never the password): HTTP
#: Basic sends it on every request, and argon2 is slow on purpose.
VERIFIED_TTL_SECONDS = 60.0
#: argon2id as OWASP recommends it (19 MiB, 2 passes, 1 lane) rather than argon2-cffi's default of 64 MiB: every
#: login and every uncached Basic request hashes, so the memory of a hash is memory an anonymous caller can make the
#: server spend. ``HASHING_AT_ONCE`` hashes at most run together; the others wait their turn.
HASH_MEMORY_KIB = 19_456
HASH_TIME_COST = 2
HASHING_AT_ONCE = 2

_TABLES = (
    """CREATE TABLE IF NOT EXISTS evento_api_user (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL,
        created_ms BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS evento_api_secret (
        name TEXT PRIMARY KEY,
        secret TEXT NOT NULL
    )""",
)
_TOKEN_KEY = "token-signing-key"


class Role(StrEnum):
    """What a user may do: ``viewer`` reads everything, ``admin`` also changes things."""

    VIEWER = "viewer"
    ADMIN = "admin"


@dataclass(frozen=True)
class User:
    """A user of the API as stored (without its password hash)."""

    name: str
    role: Role
    created_ms: int

    @property
    def roles(self) -> tuple[str, ...]:
        """The roles the user holds: an admin is a viewer too."""
        return (Role.VIEWER.value, Role.ADMIN.value) if self.role is Role.ADMIN else (Role.VIEWER.value,)


@dataclass(frozen=True)
class AdminLogin:
    """The admin login a server start settled on: ``password`` is set only when it was generated just now (to be
    printed once; only its hash is kept)."""

    user: str
    password: str | None


class UserExistsError(EventoError):
    """A user of that name exists already."""


class UserNotFoundError(EventoError, LookupError):
    """No user has that name."""


def validate_user_name(name: str) -> str:
    """``name`` if it is a usable user name (1 to 64 printable characters, no ``:`` which HTTP Basic splits on)."""
    if not 1 <= len(name) <= 64 or not name.isprintable() or ":" in name or name != name.strip():
        raise ValueError(f"{name!r} is not a user name (1 to 64 printable characters, no ':', no outer spaces)")
    return name


class UserStore:
    """The users table on ``database``; hashing and verifying run on a worker thread, off the event loop."""

    def __init__(self, database: Database, hasher: PasswordHasher | None = None) -> None:
        self.database = database
        self._hasher = hasher or PasswordHasher(time_cost=HASH_TIME_COST, memory_cost=HASH_MEMORY_KIB, parallelism=1)
        self._hashing = asyncio.Semaphore(HASHING_AT_ONCE)
        # For a user name whose password is wrong: verifying against this takes as long as a real check.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
        # (name, stored hash) -> (keyed digest of the password that verified, until when).
        self._verified: dict[tuple[str, str], tuple[bytes, float]] = {}
        self._digest_key = secrets.token_bytes(32)

    async def start(self) -> None:
        def create(cursor: Cursor) -> None:
            for statement in _TABLES:
                cursor.execute(statement)

        try:
            await self.database.transaction(create)
        except EventStoreError:  # two servers of a cluster creating the tables at once: one of them won
            await self.database.transaction(create)

    async def _hash(self, password: str) -> str:
        async with self._hashing:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def add(self, name: str, password: str, role: Role) -> User:
        """Create a user; raises :class:`UserExistsError` when the name is taken."""
        validate_user_name(name)
        _check_password(password)
        password_hash = await self._hash(password)
        user = User(name, role, int(time.time() * 1000))
        inserted = await self.database.execute(
            "INSERT INTO evento_api_user (name, password_hash, role, created_ms) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (name) DO NOTHING",
            (name, password_hash, role.value, user.created_ms),
        )
        if not inserted:
            raise UserExistsError(f"the user {name!r} exists already")
        return user

    async def set_password(self, name: str, password: str) -> None:
        """Replace a user's password; raises :class:`UserNotFoundError`."""
        _check_password(password)
        password_hash = await self._hash(password)
        changed = await self.database.execute(
            "UPDATE evento_api_user SET password_hash = ? WHERE name = ?", (password_hash, name)
        )
        if not changed:
            raise UserNotFoundError(f"no user {name!r}")

    async def set_role(self, name: str, role: Role) -> None:
        """Change a user's role; raises :class:`UserNotFoundError`."""
        if not await self.database.execute("UPDATE evento_api_user SET role = ? WHERE name = ?", (role.value, name)):
            raise UserNotFoundError(f"no user {name!r}")

    async def delete(self, name: str) -> bool:
        """Remove a user (its tokens stop working at once); whether it existed."""
        return bool(await self.database.execute("DELETE FROM evento_api_user WHERE name = ?", (name,)))

    async def list(self) -> list[User]:
        """Every user, by name."""
        rows = await self.database.fetchall("SELECT name, role, created_ms FROM evento_api_user ORDER BY name")
        return [User(name, Role(role), int(created)) for name, role, created in rows]

    async def get(self, name: str) -> User | None:
        """The user named ``name``, if any."""
        row = await self.database.fetchone("SELECT name, role, created_ms FROM evento_api_user WHERE name = ?", (name,))
        return None if row is None else User(row[0], Role(row[1]), int(row[2]))

    async def verify(self, name: str, password: str) -> User | None:
        """The user, when ``password`` is theirs; ``None`` otherwise. An unknown name costs as much time as a wrong
        password, so the answer's timing does not tell which names exist."""
        row = await self.database.fetchone(
            "SELECT name, role, created_ms, password_hash FROM evento_api_user WHERE name = ?", (name,)
        )
        stored = self._dummy_hash if row is None else str(row[3])
        key = (name, stored)
        digest = hmac.digest(self._digest_key, password.encode(), hashlib.sha256)
        known = self._verified.get(key)
        now = time.monotonic()
        if row is not None and known is not None and known[1] > now and hmac.compare_digest(known[0], digest):
            return User(row[0], Role(row[1]), int(row[2]))
        async with self._hashing:
            matches = await asyncio.to_thread(self._matches, stored, password)
        if row is None or not matches:
            return None
        if len(self._verified) > 10_000:  # bounded: names are few, a flood of them is an attack
            self._verified.clear()
        self._verified[key] = (digest, now + VERIFIED_TTL_SECONDS)
        return User(row[0], Role(row[1]), int(row[2]))

    def _matches(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    async def ensure_admin(self, password: str = "") -> AdminLogin:
        """The admin user at a server's start: with ``password``, the admin's password becomes it (the user is
        created if missing); without, an admin is created with a generated password, returned to be printed once,
        unless one exists. Servers of a cluster starting together create it once."""
        if password:
            existing = await self.get(ADMIN_USER)
            if existing is None:
                try:
                    await self.add(ADMIN_USER, password, Role.ADMIN)
                except UserExistsError:  # another server of the cluster created it in between
                    await self.set_password(ADMIN_USER, password)
            elif await self.verify(ADMIN_USER, password) is None:
                await self.set_password(ADMIN_USER, password)
            if existing is not None and existing.role is not Role.ADMIN:
                await self.set_role(ADMIN_USER, Role.ADMIN)
            return AdminLogin(ADMIN_USER, None)
        if await self.get(ADMIN_USER) is not None:
            return AdminLogin(ADMIN_USER, None)
        generated = secrets.token_urlsafe(15)
        try:
            await self.add(ADMIN_USER, generated, Role.ADMIN)
        except UserExistsError:
            return AdminLogin(ADMIN_USER, None)
        return AdminLogin(ADMIN_USER, generated)

    async def token_key(self) -> bytes:
        """The key that signs the API's tokens: generated by the first server to ask, then read by every server."""
        candidate = secrets.token_hex(32)

        def settle(cursor: Cursor) -> str:
            cursor.execute(
                "INSERT INTO evento_api_secret (name, secret) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                (_TOKEN_KEY, candidate),
            )
            row = cursor.fetchone("SELECT secret FROM evento_api_secret WHERE name = ?", (_TOKEN_KEY,))
            assert row is not None
            return str(row[0])

        return bytes.fromhex(await self.database.transaction(settle))


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise ValueError("a password has at least 8 characters")
    if len(password) > 1024:
        raise ValueError("a password has at most 1024 characters")
