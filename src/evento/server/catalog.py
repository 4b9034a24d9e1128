"""The catalog the server keeps: bundles, their instances, components, handlers, payloads and consumers, and the
servers of the cluster, in the event store's database so a cluster shares it and a restart keeps it.

What a bundle declares when it joins (its :class:`~evento.discovery.BundleRegistration`) replaces that bundle's
rows in one transaction; what telemetry learns a handler sends at run time (sends the AST analysis missed) is kept
beside them and merged in when handlers are read. Instances are rows per (bundle, instance, server): each server
writes its own connections, removes them when it stops cleanly, and beats a heartbeat in its ``servers`` row, so an
instance whose server stopped beating (killed, cut off) no longer counts as online anywhere in the cluster. A
bundle whose instances are all gone stays in the catalog, offline, until it is deleted.

Reads go to the database every time: the catalog is small, read by people and scripts, and another server of the
cluster may have changed it a moment ago.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from evento.discovery import ComponentInfo, ConsumerInfo, HandlerInfo, PayloadInfo
from evento.errors import EventoError
from evento.messages import now_ms
from evento.payloads import PayloadKind

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from evento.discovery import BundleRegistration, NodeInfo
    from evento.messages import ReportTelemetry
    from evento.storage.database import Cursor, Database

__all__ = [
    "BundleConsumerRecord",
    "BundleNotFoundError",
    "BundleOnlineError",
    "BundleRecord",
    "Catalog",
    "CatalogNotFoundError",
    "ComponentRecord",
    "HandlerRecord",
    "InstanceRecord",
    "PayloadRecord",
    "ServerRecord",
]

log = logging.getLogger(__name__)

# CREATE TABLE IF NOT EXISTS on both engines; TEXT keys, BIGINT epoch milliseconds, INTEGER flags. The ``info``
# columns hold the msgspec JSON of what the bundle declared, the other columns what is filtered or joined on.
_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS evento_catalog_server (
        server_id TEXT PRIMARY KEY,
        http_url TEXT,
        started_ms BIGINT NOT NULL,
        last_seen_ms BIGINT NOT NULL,
        stopped_ms BIGINT
    )""",
    """CREATE TABLE IF NOT EXISTS evento_catalog_bundle (
        bundle_id TEXT PRIMARY KEY,
        version BIGINT NOT NULL,
        description TEXT,
        detail TEXT,
        repository_url TEXT,
        line_prefix TEXT,
        digest TEXT NOT NULL,
        first_seen_ms BIGINT NOT NULL,
        last_seen_ms BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS evento_catalog_instance (
        bundle_id TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        server_id TEXT NOT NULL,
        bundle_version BIGINT NOT NULL,
        enabled INTEGER NOT NULL,
        joined_ms BIGINT NOT NULL,
        PRIMARY KEY (bundle_id, instance_id, server_id)
    )""",
    """CREATE TABLE IF NOT EXISTS evento_catalog_component (
        bundle_id TEXT NOT NULL,
        name TEXT NOT NULL,
        info TEXT NOT NULL,
        PRIMARY KEY (bundle_id, name)
    )""",
    """CREATE TABLE IF NOT EXISTS evento_catalog_handler (
        bundle_id TEXT NOT NULL,
        component TEXT NOT NULL,
        handler_kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        info TEXT NOT NULL,
        PRIMARY KEY (bundle_id, component, handler_kind, payload)
    )""",
    """CREATE TABLE IF NOT EXISTS evento_catalog_payload (
        bundle_id TEXT NOT NULL,
        name TEXT NOT NULL,
        info TEXT NOT NULL,
        PRIMARY KEY (bundle_id, name)
    )""",
    """CREATE TABLE IF NOT EXISTS evento_catalog_consumer (
        bundle_id TEXT NOT NULL,
        consumer_id TEXT NOT NULL,
        info TEXT NOT NULL,
        PRIMARY KEY (bundle_id, consumer_id)
    )""",
    """CREATE TABLE IF NOT EXISTS evento_catalog_learned_send (
        bundle_id TEXT NOT NULL,
        component TEXT NOT NULL,
        handler_kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        sent TEXT NOT NULL,
        learned_ms BIGINT NOT NULL,
        PRIMARY KEY (bundle_id, component, handler_kind, payload, sent)
    )""",
]

#: The tables holding what a bundle declared (replaced by each new registration, deleted with the bundle).
_DECLARED = ("evento_catalog_component", "evento_catalog_handler", "evento_catalog_payload", "evento_catalog_consumer")

_COMMAND_KINDS = frozenset({PayloadKind.DOMAIN_COMMAND, PayloadKind.SERVICE_COMMAND})

_component_decoder = msgspec.json.Decoder(ComponentInfo)
_handler_decoder = msgspec.json.Decoder(HandlerInfo)
_payload_decoder = msgspec.json.Decoder(PayloadInfo)
_consumer_decoder = msgspec.json.Decoder(ConsumerInfo)
_encoder = msgspec.json.Encoder()


class BundleOnlineError(EventoError):
    """A bundle cannot be deleted from the catalog while instances of it are online."""


class CatalogNotFoundError(EventoError, LookupError):
    """The catalog has nothing of that name (a bundle, a component, a payload)."""


class BundleNotFoundError(CatalogNotFoundError):
    """No bundle with this id is in the catalog."""


@dataclass(frozen=True)
class InstanceRecord:
    """One online bundle instance as one server of the cluster sees it (an instance connected to two servers is
    two records)."""

    bundle_id: str
    instance_id: str
    bundle_version: int
    server_id: str
    enabled: bool
    joined_ms: int


@dataclass(frozen=True)
class BundleRecord:
    """A bundle the cluster has seen, with its online instances (none: offline)."""

    bundle_id: str
    version: int
    description: str | None
    detail: str | None
    repository_url: str | None
    line_prefix: str | None
    first_seen_ms: int
    last_seen_ms: int
    instances: tuple[InstanceRecord, ...]

    @property
    def online(self) -> bool:
        return bool(self.instances)


@dataclass(frozen=True)
class ComponentRecord:
    """One component of a bundle."""

    bundle_id: str
    info: ComponentInfo


@dataclass(frozen=True)
class HandlerRecord:
    """One handler of a bundle; ``info`` holds what it sends, the AST analysis's finds and what telemetry learned
    at run time (those with an empty line)."""

    bundle_id: str
    info: HandlerInfo

    @property
    def handler_id(self) -> str:
        return f"{self.bundle_id}:{self.info.component}:{self.info.payload}"


@dataclass(frozen=True)
class PayloadRecord:
    """One payload type, as the bundles that declare it describe it: who declares it (``bundle_ids``), which
    components return or send it (``producers``) and which handle it (``consumers``)."""

    info: PayloadInfo
    bundle_ids: tuple[str, ...]
    producers: tuple[str, ...]
    consumers: tuple[str, ...]


@dataclass(frozen=True)
class BundleConsumerRecord:
    """A consumer (component × context) a bundle declared."""

    bundle_id: str
    bundle_version: int
    info: ConsumerInfo


@dataclass(frozen=True)
class ServerRecord:
    """A server of the cluster: ``online`` while it beats its heartbeat and has not stopped."""

    server_id: str
    http_url: str | None
    started_ms: int
    last_seen_ms: int
    online: bool


class Catalog:
    """The catalog rows of one server (shared with every server of its cluster).

    ``heartbeat_seconds`` is how often this server marks itself alive; a server silent for
    ``heartbeat_seconds * stale_beats`` counts as gone, with its instances.
    """

    def __init__(
        self, database: Database, server_id: str, *, heartbeat_seconds: float = 5.0, stale_beats: float = 3.0
    ) -> None:
        self.database = database
        self.server_id = server_id
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_ms = round(heartbeat_seconds * stale_beats * 1000)
        self._heartbeat: asyncio.Task[None] | None = None
        # Runtime-learned sends this server has written already: a report repeats them every interval.
        self._learned: set[tuple[str, str, str, str, str]] = set()

    # --- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the tables (once, even when servers of a cluster start together) and mark this server alive;
        instance rows a previous run of this server left behind (a crash) are dropped."""
        await self.database.transaction(self._create_tables)
        now = now_ms()

        def mark_started(cursor: Cursor) -> None:
            cursor.execute(
                "INSERT INTO evento_catalog_server (server_id, started_ms, last_seen_ms) VALUES (?, ?, ?)"
                " ON CONFLICT (server_id) DO UPDATE SET started_ms = excluded.started_ms,"
                " last_seen_ms = excluded.last_seen_ms, stopped_ms = NULL",
                (self.server_id, now, now),
            )
            cursor.execute("DELETE FROM evento_catalog_instance WHERE server_id = ?", (self.server_id,))

        await self.database.transaction(mark_started)
        self._heartbeat = asyncio.create_task(self._beat(), name=f"evento-catalog-heartbeat-{self.server_id}")

    def _create_tables(self, cursor: Cursor) -> None:
        if self.database.dialect == "postgres":
            # Concurrent CREATE TABLE IF NOT EXISTS can collide on PostgreSQL's catalog (a unique violation on
            # pg_type): servers starting together create the tables one after the other.
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('evento_catalog_schema'))")
        for statement in _SCHEMA:
            cursor.execute(statement)

    async def stop(self) -> None:
        """Stop the heartbeat, drop this server's instances and mark it stopped: its bundles go offline at once
        rather than when the heartbeat goes stale."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        now = now_ms()

        def mark_stopped(cursor: Cursor) -> None:
            self._touch_bundles_of_this_server(cursor, now)
            cursor.execute("DELETE FROM evento_catalog_instance WHERE server_id = ?", (self.server_id,))
            cursor.execute(
                "UPDATE evento_catalog_server SET last_seen_ms = ?, stopped_ms = ? WHERE server_id = ?",
                (now, now, self.server_id),
            )

        try:
            await self.database.transaction(mark_stopped)
        except EventoError as exc:  # the database is gone: the heartbeat going stale says the same, later
            log.warning("could not mark server %s stopped in the catalog: %s", self.server_id, exc)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                await self.heartbeat()
            except EventoError as exc:
                log.warning("catalog heartbeat of server %s failed: %s", self.server_id, exc)

    async def heartbeat(self) -> None:
        """Mark this server (and the bundles it has instances of) seen now."""
        now = now_ms()

        def beat(cursor: Cursor) -> None:
            cursor.execute(
                "UPDATE evento_catalog_server SET last_seen_ms = ?, stopped_ms = NULL WHERE server_id = ?",
                (now, self.server_id),
            )
            self._touch_bundles_of_this_server(cursor, now)

        await self.database.transaction(beat)

    def _touch_bundles_of_this_server(self, cursor: Cursor, now: int) -> None:
        cursor.execute(
            "UPDATE evento_catalog_bundle SET last_seen_ms = ? WHERE bundle_id IN"
            " (SELECT bundle_id FROM evento_catalog_instance WHERE server_id = ?)",
            (now, self.server_id),
        )

    async def advertise(self, http_url: str | None) -> None:
        """Record where this server's API answers, so the other servers of the cluster can forward to it."""
        await self.database.execute(
            "UPDATE evento_catalog_server SET http_url = ? WHERE server_id = ?", (http_url, self.server_id)
        )

    # --- membership (applied in order by the server's catalog task) -------------------------------------------

    async def instance_joined(self, info: NodeInfo) -> None:
        now = now_ms()
        await self.database.execute(
            "INSERT INTO evento_catalog_instance (bundle_id, instance_id, server_id, bundle_version, enabled,"
            " joined_ms) VALUES (?, ?, ?, ?, 0, ?) ON CONFLICT (bundle_id, instance_id, server_id) DO UPDATE"
            " SET bundle_version = excluded.bundle_version, enabled = 0, joined_ms = excluded.joined_ms",
            (info.bundle_id, info.instance_id, self.server_id, info.bundle_version, now),
        )

    async def instance_left(self, info: NodeInfo) -> None:
        now = now_ms()

        def leave(cursor: Cursor) -> None:
            cursor.execute(
                "DELETE FROM evento_catalog_instance WHERE bundle_id = ? AND instance_id = ? AND server_id = ?",
                (info.bundle_id, info.instance_id, self.server_id),
            )
            cursor.execute(
                "UPDATE evento_catalog_bundle SET last_seen_ms = ? WHERE bundle_id = ?", (now, info.bundle_id)
            )

        await self.database.transaction(leave)

    async def instance_enabled(self, info: NodeInfo, enabled: bool) -> None:
        await self.database.execute(
            "UPDATE evento_catalog_instance SET enabled = ? WHERE bundle_id = ? AND instance_id = ? AND server_id = ?",
            (int(enabled), info.bundle_id, info.instance_id, self.server_id),
        )

    async def record_registration(self, info: NodeInfo, registration: BundleRegistration) -> None:
        """Replace the bundle's rows with what ``registration`` declares (one transaction); a registration equal
        to the stored one (another instance of the same build) only marks the bundle seen."""
        digest = hashlib.sha256(_encoder.encode(registration)).hexdigest()
        bundle_id = registration.bundle_id
        now = now_ms()

        def record(cursor: Cursor) -> None:
            if self.database.dialect == "postgres":
                # Two servers recording the same bundle at once (its instances join every server) would both
                # delete and insert its rows: one after the other, the second finding the digest unchanged.
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"evento_catalog:{bundle_id}",))
            row = cursor.fetchone("SELECT digest, version FROM evento_catalog_bundle WHERE bundle_id = ?", (bundle_id,))
            if row is not None and row[0] == digest:
                cursor.execute(
                    "UPDATE evento_catalog_bundle SET last_seen_ms = ? WHERE bundle_id = ?", (now, bundle_id)
                )
                return
            if row is not None and row[1] != registration.bundle_version:
                # What a handler sent at run time was learned of the previous version's code.
                cursor.execute("DELETE FROM evento_catalog_learned_send WHERE bundle_id = ?", (bundle_id,))
            cursor.execute(
                "INSERT INTO evento_catalog_bundle (bundle_id, version, description, detail, repository_url,"
                " line_prefix, digest, first_seen_ms, last_seen_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (bundle_id) DO UPDATE SET version = excluded.version,"
                " description = excluded.description, detail = excluded.detail,"
                " repository_url = excluded.repository_url, line_prefix = excluded.line_prefix,"
                " digest = excluded.digest, last_seen_ms = excluded.last_seen_ms",
                (
                    bundle_id,
                    registration.bundle_version,
                    registration.description,
                    registration.detail,
                    registration.repository_url,
                    registration.line_prefix,
                    digest,
                    now,
                    now,
                ),
            )
            for table in _DECLARED:
                cursor.execute(f"DELETE FROM {table} WHERE bundle_id = ?", (bundle_id,))
            _insert_declared(cursor, registration)

        await self.database.transaction(record)

    async def learn_sends(self, bundle_id: str, report: ReportTelemetry) -> None:
        """Keep what the handlers of a report sent at run time (by payload type), so the catalog's handlers show
        sends the AST analysis could not see. Only sends not written before cost a statement."""
        new = [
            (bundle_id, handler.component, handler.handler_kind, handler.payload, sent)
            for handler in report.handlers
            for sent, count in handler.sends.items()
            if count > 0
        ]
        new = [key for key in dict.fromkeys(new) if key not in self._learned]
        if not new:
            return
        now = now_ms()
        await self.database.executemany(
            "INSERT INTO evento_catalog_learned_send (bundle_id, component, handler_kind, payload, sent,"
            " learned_ms) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(*key, now) for key in new],
        )
        self._learned.update(new)

    async def delete_bundle(self, bundle_id: str) -> None:
        """Forget a bundle and what it declared; refused with :class:`BundleOnlineError` while instances of it are
        online, :class:`BundleNotFoundError` when the catalog has no such bundle."""
        alive_since = now_ms() - self.stale_ms

        def delete(cursor: Cursor) -> None:
            online = cursor.fetchone(
                "SELECT COUNT(*) FROM evento_catalog_instance i JOIN evento_catalog_server s"
                " ON s.server_id = i.server_id WHERE i.bundle_id = ? AND s.stopped_ms IS NULL AND s.last_seen_ms >= ?",
                (bundle_id, alive_since),
            )
            if online is not None and online[0]:
                raise BundleOnlineError(f"bundle {bundle_id!r} has {online[0]} instance(s) online")
            for table in (*_DECLARED, "evento_catalog_learned_send", "evento_catalog_instance"):
                cursor.execute(f"DELETE FROM {table} WHERE bundle_id = ?", (bundle_id,))
            if not cursor.execute("DELETE FROM evento_catalog_bundle WHERE bundle_id = ?", (bundle_id,)):
                raise BundleNotFoundError(f"no bundle {bundle_id!r} in the catalog")

        await self.database.transaction(delete)

    # --- reads -------------------------------------------------------------------------------------------------

    async def servers(self) -> list[ServerRecord]:
        """Every server the cluster has seen, this one included."""
        alive_since = now_ms() - self.stale_ms
        rows = await self.database.fetchall(
            "SELECT server_id, http_url, started_ms, last_seen_ms, stopped_ms FROM evento_catalog_server"
            " ORDER BY server_id"
        )
        return [
            ServerRecord(row[0], row[1], int(row[2]), int(row[3]), row[4] is None and int(row[3]) >= alive_since)
            for row in rows
        ]

    async def instances(self) -> list[InstanceRecord]:
        """The online instances of every server of the cluster."""
        return await self.database.transaction(lambda cursor: self._instances(cursor, None), write=False)

    def _instances(self, cursor: Cursor, bundle_id: str | None) -> list[InstanceRecord]:
        sql = (
            "SELECT i.bundle_id, i.instance_id, i.bundle_version, i.server_id, i.enabled, i.joined_ms"
            " FROM evento_catalog_instance i JOIN evento_catalog_server s ON s.server_id = i.server_id"
            " WHERE s.stopped_ms IS NULL AND s.last_seen_ms >= ?"
        )
        params: list[Any] = [now_ms() - self.stale_ms]
        if bundle_id is not None:
            sql += " AND i.bundle_id = ?"
            params.append(bundle_id)
        rows = cursor.fetchall(sql + " ORDER BY i.bundle_id, i.instance_id, i.server_id", params)
        return [InstanceRecord(r[0], r[1], int(r[2]), r[3], bool(r[4]), int(r[5])) for r in rows]

    async def bundles(self) -> list[BundleRecord]:
        """Every bundle in the catalog, online or not, by id."""
        return await self.database.transaction(lambda cursor: self._bundles(cursor, None), write=False)

    async def bundle(self, bundle_id: str) -> BundleRecord | None:
        found = await self.database.transaction(lambda cursor: self._bundles(cursor, bundle_id), write=False)
        return found[0] if found else None

    def _bundles(self, cursor: Cursor, bundle_id: str | None) -> list[BundleRecord]:
        sql = (
            "SELECT bundle_id, version, description, detail, repository_url, line_prefix, first_seen_ms,"
            " last_seen_ms FROM evento_catalog_bundle"
        )
        params: tuple[Any, ...] = ()
        if bundle_id is not None:
            sql += " WHERE bundle_id = ?"
            params = (bundle_id,)
        rows = cursor.fetchall(sql + " ORDER BY bundle_id", params)
        by_bundle: dict[str, list[InstanceRecord]] = {}
        for instance in self._instances(cursor, bundle_id):
            by_bundle.setdefault(instance.bundle_id, []).append(instance)
        return [
            BundleRecord(
                bundle_id=row[0],
                version=int(row[1]),
                description=row[2],
                detail=row[3],
                repository_url=row[4],
                line_prefix=row[5],
                first_seen_ms=int(row[6]),
                last_seen_ms=int(row[7]),
                instances=tuple(by_bundle.get(row[0], ())),
            )
            for row in rows
        ]

    async def components(self) -> list[ComponentRecord]:
        """Every component of every bundle, by bundle and name."""
        rows = await self.database.fetchall(
            "SELECT bundle_id, info FROM evento_catalog_component ORDER BY bundle_id, name"
        )
        return [ComponentRecord(row[0], _component_decoder.decode(row[1])) for row in rows]

    async def consumers(self) -> list[BundleConsumerRecord]:
        """Every consumer every bundle declared, by bundle and consumer id."""

        def read(cursor: Cursor) -> list[BundleConsumerRecord]:
            versions = dict(cursor.fetchall("SELECT bundle_id, version FROM evento_catalog_bundle"))
            rows = cursor.fetchall(
                "SELECT bundle_id, info FROM evento_catalog_consumer ORDER BY bundle_id, consumer_id"
            )
            return [
                BundleConsumerRecord(row[0], int(versions.get(row[0], 0)), _consumer_decoder.decode(row[1]))
                for row in rows
            ]

        return await self.database.transaction(read, write=False)

    async def handlers(self, bundle_id: str | None = None) -> list[HandlerRecord]:
        """Every handler (of one bundle, or of all), with the sends telemetry learned merged into its own."""
        return (await self.database.transaction(lambda cursor: self._read_handlers(cursor, bundle_id), write=False))[0]

    def _read_handlers(
        self, cursor: Cursor, bundle_id: str | None
    ) -> tuple[list[HandlerRecord], dict[str, PayloadInfo]]:
        where, params = ("WHERE bundle_id = ?", (bundle_id,)) if bundle_id is not None else ("", ())
        rows = cursor.fetchall(
            f"SELECT bundle_id, info FROM evento_catalog_handler {where}"
            " ORDER BY bundle_id, component, handler_kind, payload",
            params,
        )
        learned: dict[tuple[str, str, str, str], list[str]] = {}
        for row in cursor.fetchall(
            f"SELECT bundle_id, component, handler_kind, payload, sent FROM evento_catalog_learned_send {where}"
            " ORDER BY sent",
            params,
        ):
            learned.setdefault((row[0], row[1], row[2], row[3]), []).append(row[4])
        payloads = _merge_payloads(cursor.fetchall("SELECT bundle_id, info FROM evento_catalog_payload"))
        records = []
        for row in rows:
            info = _handler_decoder.decode(row[1])
            sent = learned.get((row[0], info.component, info.handler_kind, info.payload))
            if sent:
                info = _with_learned(info, sent, payloads)
            records.append(HandlerRecord(row[0], info))
        return records, payloads

    async def payloads(self) -> list[PayloadRecord]:
        """Every payload type any bundle declared (one record per name), with its producers and consumers."""

        def read(cursor: Cursor) -> list[PayloadRecord]:
            declared = cursor.fetchall("SELECT bundle_id, info FROM evento_catalog_payload ORDER BY bundle_id")
            handlers, payloads = self._read_handlers(cursor, None)
            bundles: dict[str, list[str]] = {}
            for row in declared:
                name = _payload_decoder.decode(row[1]).name
                bundles.setdefault(name, []).append(row[0])
            producers: dict[str, dict[str, None]] = {}
            consumers: dict[str, dict[str, None]] = {}
            for record in handlers:
                info = record.info
                consumers.setdefault(info.payload, {})[info.component] = None
                made = [info.return_type] if info.return_type and info.routes_requests else []
                for name in (*made, *info.invoked_commands, *info.invoked_queries):
                    producers.setdefault(name, {})[info.component] = None
            return [
                PayloadRecord(
                    info=payloads[name],
                    bundle_ids=tuple(bundles.get(name, ())),
                    producers=tuple(producers.get(name, {})),
                    consumers=tuple(consumers.get(name, {})),
                )
                for name in sorted(payloads)
            ]

        return await self.database.transaction(read, write=False)


def _insert_declared(cursor: Cursor, registration: BundleRegistration) -> None:
    bundle_id = registration.bundle_id
    _insert_unique(
        cursor,
        "INSERT INTO evento_catalog_component (bundle_id, name, info) VALUES (?, ?, ?)",
        {(c.name,): (bundle_id, c.name, _json(c)) for c in registration.components},
    )
    _insert_unique(
        cursor,
        "INSERT INTO evento_catalog_handler (bundle_id, component, handler_kind, payload, info) VALUES (?, ?, ?, ?, ?)",
        {
            (h.component, h.handler_kind, h.payload): (bundle_id, h.component, str(h.handler_kind), h.payload, _json(h))
            for h in registration.handlers
        },
    )
    _insert_unique(
        cursor,
        "INSERT INTO evento_catalog_payload (bundle_id, name, info) VALUES (?, ?, ?)",
        {(p.name,): (bundle_id, p.name, _json(p)) for p in registration.payloads},
    )
    _insert_unique(
        cursor,
        "INSERT INTO evento_catalog_consumer (bundle_id, consumer_id, info) VALUES (?, ?, ?)",
        {(c.consumer_id,): (bundle_id, c.consumer_id, _json(c)) for c in registration.consumers},
    )


def _insert_unique(cursor: Cursor, sql: str, rows: dict[tuple[str, ...], tuple[Any, ...]]) -> None:
    # Keyed by the table's primary key: a registration naming something twice keeps the last, as a dict would.
    if rows:
        cursor.executemany(sql, list(rows.values()))


def _json(value: msgspec.Struct) -> str:
    return _encoder.encode(value).decode()


def _merge_payloads(rows: Iterable[Sequence[Any]]) -> dict[str, PayloadInfo]:
    """One description per payload name: bundles declare the same class, the one with the most said wins."""
    found: dict[str, PayloadInfo] = {}
    for row in rows:
        info = _payload_decoder.decode(row[1])
        present = found.get(info.name)
        if present is None or _richness(info) > _richness(present):
            found[info.name] = info
    return found


def _richness(info: PayloadInfo) -> int:
    return sum(value is not None for value in (info.domain, info.description, info.detail, info.source_file))


def _with_learned(info: HandlerInfo, sent: list[str], payloads: dict[str, PayloadInfo]) -> HandlerInfo:
    """``info`` with the sends learned at run time added (no line: the analysis did not see them)."""
    commands, queries = dict(info.invoked_commands), dict(info.invoked_queries)
    for name in sent:
        if name in commands or name in queries:
            continue
        declared = payloads.get(name)
        is_command = declared.kind in _COMMAND_KINDS if declared is not None else not name.endswith("Query")
        (commands if is_command else queries)[name] = ""
    return msgspec.structs.replace(info, invoked_commands=commands, invoked_queries=queries)
