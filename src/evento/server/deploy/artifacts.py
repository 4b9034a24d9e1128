"""Published bundles: each version's wheel and description, and the single-use tokens a deploy script downloads a
wheel with.

Both live in the server's database, so every server of a cluster on PostgreSQL serves what was published to any of
them, and a token minted by the spawning server is redeemed at whichever server the script reaches. A token names
one bundle version, expires after a short time and is deleted when redeemed: an instance's token is good for its one
download, and a leaked one for nothing afterwards.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evento.messages import now_ms

if TYPE_CHECKING:
    from evento.storage.database import Cursor, Database

__all__ = ["MAX_WHEEL_BYTES", "Artifact", "ArtifactStore", "valid_wheel_name"]

#: The largest wheel a server keeps (a bundle's code, not its data).
MAX_WHEEL_BYTES = 32 * 1024 * 1024

# PEP 427: {distribution}-{version}(-{build})?-{python}-{abi}-{platform}.whl, no path separators.
_WHEEL_NAME = re.compile(
    r"^[A-Za-z0-9_.]+-[A-Za-z0-9_.!+]+(-[0-9][A-Za-z0-9_.]*)?-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+\.whl$"
)


def valid_wheel_name(name: str) -> bool:
    """Whether ``name`` is a wheel's file name (and nothing that could name another path)."""
    return len(name) <= 255 and _WHEEL_NAME.match(name) is not None


def _schema(dialect: str) -> list[str]:
    blob = "BYTEA" if dialect == "postgres" else "BLOB"
    return [
        f"""CREATE TABLE IF NOT EXISTS evento_deploy_artifact (
            bundle_id TEXT NOT NULL,
            version TEXT NOT NULL,
            wheel_name TEXT NOT NULL,
            wheel {blob} NOT NULL,
            registration TEXT NOT NULL,
            published_ms BIGINT NOT NULL,
            PRIMARY KEY (bundle_id, version)
        )""",
        """CREATE TABLE IF NOT EXISTS evento_deploy_token (
            token TEXT PRIMARY KEY,
            bundle_id TEXT NOT NULL,
            version TEXT NOT NULL,
            expires_ms BIGINT NOT NULL
        )""",
    ]


@dataclass(frozen=True)
class Artifact:
    """One published version of a bundle: its wheel and the description (a ``BundleRegistration`` as JSON)."""

    bundle_id: str
    version: str
    wheel_name: str
    wheel: bytes
    registration: str
    published_ms: int


class ArtifactStore:
    """The artifact and token tables of one server's database."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def start(self) -> None:
        def create(cursor: Cursor) -> None:
            if self.database.dialect == "postgres":
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext('evento_deploy_artifact_schema'))")
            for statement in _schema(self.database.dialect):
                cursor.execute(statement)

        await self.database.transaction(create)

    async def put(self, artifact: Artifact) -> None:
        """Keep ``artifact`` (publishing a version again replaces its wheel and description)."""
        await self.database.execute(
            "INSERT INTO evento_deploy_artifact (bundle_id, version, wheel_name, wheel, registration, published_ms)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (bundle_id, version) DO UPDATE SET wheel_name ="
            " excluded.wheel_name, wheel = excluded.wheel, registration = excluded.registration,"
            " published_ms = excluded.published_ms",
            (artifact.bundle_id, artifact.version, artifact.wheel_name, artifact.wheel, artifact.registration,
             artifact.published_ms),
        )  # fmt: skip

    async def get(self, bundle_id: str, version: str) -> Artifact | None:
        row = await self.database.fetchone(
            "SELECT bundle_id, version, wheel_name, wheel, registration, published_ms FROM evento_deploy_artifact"
            " WHERE bundle_id = ? AND version = ?",
            (bundle_id, version),
        )
        if row is None:
            return None
        return Artifact(row[0], row[1], row[2], bytes(row[3]), row[4], int(row[5]))

    async def mint(self, bundle_id: str, version: str, seconds: float) -> str:
        """A new token good for one download of ``bundle_id``'s ``version`` within ``seconds``."""
        token = secrets.token_urlsafe(32)
        now = now_ms()

        def mint(cursor: Cursor) -> None:
            cursor.execute("DELETE FROM evento_deploy_token WHERE expires_ms < ?", (now,))  # the expired are litter
            cursor.execute(
                "INSERT INTO evento_deploy_token (token, bundle_id, version, expires_ms) VALUES (?, ?, ?, ?)",
                (token, bundle_id, version, now + round(seconds * 1000)),
            )

        await self.database.transaction(mint)
        return token

    async def redeem(self, token: str, bundle_id: str) -> str | None:
        """The version ``token`` allows downloading of ``bundle_id``, once: the token is gone afterwards. ``None``
        when it is unknown, used, expired or for another bundle."""
        now = now_ms()

        def redeem(cursor: Cursor) -> str | None:
            row = cursor.fetchone(
                "SELECT version, expires_ms FROM evento_deploy_token WHERE token = ? AND bundle_id = ?",
                (token, bundle_id),
            )
            if row is None:
                return None
            # Deleted whatever its age; two servers redeeming it at once: only the one that deletes the row serves.
            if cursor.execute("DELETE FROM evento_deploy_token WHERE token = ?", (token,)) != 1:
                return None
            return str(row[0]) if int(row[1]) >= now else None

        return await self.database.transaction(redeem)
