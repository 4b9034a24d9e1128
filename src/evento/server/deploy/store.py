"""What the cluster keeps to run bundles, in the server's database (shared by a cluster, kept on restart): each
deployed bundle's :class:`BundleSpec` with how many instances are wanted, the decisions taken (spawn, kill, their
failures: people read them in the API), and the lease saying which server spawns.

``wanted`` is the number of instances the cluster should keep running: the minimum for an autorun bundle when it
is deployed, one more for each spawn (by an admin or a suffering instance), one less for each kill (by an admin or a
bored instance), always within ``[min, max]``. The spawning server compares it with the instances online.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from evento.messages import now_ms
from evento.server.deploy.spec import BundleSpec, spec_decoder

if TYPE_CHECKING:
    from evento.storage.database import Cursor, Database

__all__ = ["Decision", "DeployState", "DeployStore"]

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS evento_deploy_bundle (
        bundle_id TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        wanted BIGINT NOT NULL,
        last_scaled_ms BIGINT NOT NULL,
        last_error TEXT,
        updated_ms BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS evento_deploy_decision (
        at_ms BIGINT NOT NULL,
        bundle_id TEXT NOT NULL,
        action TEXT NOT NULL,
        instance_id TEXT,
        server_id TEXT NOT NULL,
        reason TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS evento_deploy_decision_bundle ON evento_deploy_decision (bundle_id, at_ms)",
    """CREATE TABLE IF NOT EXISTS evento_deploy_lease (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        until_ms BIGINT NOT NULL
    )""",
]

#: Decisions kept per bundle (older ones are dropped as new ones come).
KEPT_DECISIONS = 200


@dataclass(frozen=True)
class DeployState:
    """A deployed bundle: its description, the instances wanted, when it last scaled and its last failure."""

    spec: BundleSpec
    wanted: int
    last_scaled_ms: int
    last_error: str | None
    updated_ms: int


@dataclass(frozen=True)
class Decision:
    """One thing the supervisor decided or that happened to a deployed bundle (``action``: spawn, kill,
    spawn-failed, replace, scale-up, scale-down, refused)."""

    at_ms: int
    bundle_id: str
    action: str
    instance_id: str | None
    server_id: str
    reason: str


class DeployStore:
    """The deploy tables of one server's database."""

    def __init__(self, database: Database, server_id: str) -> None:
        self.database = database
        self.server_id = server_id

    async def start(self) -> None:
        await self.database.transaction(self._create)

    def _create(self, cursor: Cursor) -> None:
        if self.database.dialect == "postgres":
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('evento_deploy_schema'))")
        for statement in _SCHEMA:
            cursor.execute(statement)

    # --- bundles -------------------------------------------------------------------------------------------------

    async def put(self, spec: BundleSpec) -> DeployState:
        """Deploy ``spec`` (a new bundle, or a new version or settings of one): ``wanted`` is kept within the new
        bounds, or starts at the minimum of an autorun bundle."""
        now = now_ms()

        def put(cursor: Cursor) -> DeployState:
            row = cursor.fetchone("SELECT wanted FROM evento_deploy_bundle WHERE bundle_id = ?", (spec.bundle_id,))
            start = spec.min_instances if spec.autorun else 0
            wanted = _clamp(int(row[0]) if row is not None else start, spec)
            cursor.execute(
                "INSERT INTO evento_deploy_bundle (bundle_id, spec, wanted, last_scaled_ms, last_error, updated_ms)"
                " VALUES (?, ?, ?, 0, NULL, ?) ON CONFLICT (bundle_id) DO UPDATE SET spec = excluded.spec,"
                " wanted = excluded.wanted, last_error = NULL, updated_ms = excluded.updated_ms",
                (spec.bundle_id, msgspec.json.encode(spec).decode(), wanted, now),
            )
            return DeployState(spec, wanted, 0, None, now)

        return await self.database.transaction(put)

    async def remove(self, bundle_id: str) -> bool:
        """Stop running ``bundle_id`` (its instances are left alone: nothing replaces them); whether it was there."""
        return await self.database.execute("DELETE FROM evento_deploy_bundle WHERE bundle_id = ?", (bundle_id,)) > 0

    async def get(self, bundle_id: str) -> DeployState | None:
        rows = await self.database.fetchall(_SELECT + " WHERE bundle_id = ?", (bundle_id,))
        return _state(rows[0]) if rows else None

    async def all(self) -> list[DeployState]:
        return [_state(row) for row in await self.database.fetchall(_SELECT + " ORDER BY bundle_id")]

    async def change_wanted(self, bundle_id: str, delta: int, *, cooldown_ms: int = 0) -> DeployState | None:
        """Add ``delta`` to ``wanted`` (kept within the bounds) unless the bundle scaled less than ``cooldown_ms``
        ago; returns the new state, or ``None`` when nothing changed (at a bound, cooling down, not deployed)."""
        now = now_ms()

        def change(cursor: Cursor) -> DeployState | None:
            rows = cursor.fetchall(_SELECT + " WHERE bundle_id = ?" + _FOR_UPDATE[self.database.dialect], (bundle_id,))
            if not rows:
                return None
            state = _state(rows[0])
            wanted = _clamp(state.wanted + delta, state.spec)
            if wanted == state.wanted or now - state.last_scaled_ms < cooldown_ms:
                return None
            cursor.execute(
                "UPDATE evento_deploy_bundle SET wanted = ?, last_scaled_ms = ? WHERE bundle_id = ?",
                (wanted, now, bundle_id),
            )
            return DeployState(state.spec, wanted, now, state.last_error, state.updated_ms)

        return await self.database.transaction(change)

    async def set_error(self, bundle_id: str, error: str | None) -> None:
        await self.database.execute(
            "UPDATE evento_deploy_bundle SET last_error = ? WHERE bundle_id = ?", (error, bundle_id)
        )

    # --- decisions -----------------------------------------------------------------------------------------------

    async def decide(self, bundle_id: str, action: str, reason: str, instance_id: str | None = None) -> Decision:
        """Record a decision (and drop the bundle's oldest beyond :data:`KEPT_DECISIONS`)."""
        decision = Decision(now_ms(), bundle_id, action, instance_id, self.server_id, reason)

        def record(cursor: Cursor) -> None:
            cursor.execute(
                "INSERT INTO evento_deploy_decision (at_ms, bundle_id, action, instance_id, server_id, reason)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (decision.at_ms, bundle_id, action, instance_id, self.server_id, reason),
            )
            cursor.execute(
                "DELETE FROM evento_deploy_decision WHERE bundle_id = ? AND at_ms < (SELECT MIN(at_ms) FROM"
                " (SELECT at_ms FROM evento_deploy_decision WHERE bundle_id = ? ORDER BY at_ms DESC LIMIT ?) kept)",
                (bundle_id, bundle_id, KEPT_DECISIONS),
            )

        await self.database.transaction(record)
        return decision

    async def decisions(self, bundle_id: str, limit: int = 50) -> list[Decision]:
        """The bundle's latest decisions, newest first."""
        rows = await self.database.fetchall(
            "SELECT at_ms, bundle_id, action, instance_id, server_id, reason FROM evento_deploy_decision"
            " WHERE bundle_id = ? ORDER BY at_ms DESC LIMIT ?",
            (bundle_id, limit),
        )
        return [Decision(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows]

    # --- the spawning server -------------------------------------------------------------------------------------

    async def hold_lease(self, name: str, seconds: float) -> bool:
        """Take or renew the lease ``name`` for ``seconds``; ``True`` while this server holds it. One server of a
        cluster holds it at a time: a row updated only by its holder or once expired."""
        now = now_ms()
        until = now + round(seconds * 1000)

        def take(cursor: Cursor) -> bool:
            cursor.execute(
                "INSERT INTO evento_deploy_lease (name, holder, until_ms) VALUES (?, ?, ?) ON CONFLICT (name) DO"
                " UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms"
                " WHERE evento_deploy_lease.holder = excluded.holder OR evento_deploy_lease.until_ms < ?",
                (name, self.server_id, until, now),
            )
            row = cursor.fetchone("SELECT holder FROM evento_deploy_lease WHERE name = ?", (name,))
            return row is not None and row[0] == self.server_id

        return await self.database.transaction(take)

    async def release_lease(self, name: str) -> None:
        await self.database.execute(
            "DELETE FROM evento_deploy_lease WHERE name = ? AND holder = ?", (name, self.server_id)
        )


_SELECT = "SELECT spec, wanted, last_scaled_ms, last_error, updated_ms FROM evento_deploy_bundle"
_FOR_UPDATE = {"sqlite": "", "postgres": " FOR UPDATE"}


def _state(row: tuple[Any, ...]) -> DeployState:
    return DeployState(spec_decoder.decode(row[0]), int(row[1]), int(row[2]), row[3], int(row[4]))


def _clamp(wanted: int, spec: BundleSpec) -> int:
    return max(spec.min_instances, min(spec.max_instances, wanted))
