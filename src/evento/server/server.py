"""The Evento Server core: registry, command broker, query router and event store behind one transport-agnostic API.

Transports (in-process, TCP) call :meth:`EventoServer.attach` when a bundle instance connects and
:meth:`EventoServer.handle` for each request it sends; that is the whole surface they need
(:class:`~evento.transport.base.ServerEndpoint`). The node ``handle`` is given is the bundle instance that sent the
request, as its transport authenticated it: a service command forwarded to its handler names it as its caller. The
command path is walked step by step in :mod:`evento.server.broker`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any

from evento.errors import RegistrationError
from evento.messages import (
    Accepted,
    CommandResult,
    EventBatch,
    EventsAppended,
    FetchEvents,
    GetHead,
    Head,
    QueryResult,
    ReportTelemetry,
    ScalingSignal,
    SendCommand,
    SendQuery,
    ServerRequest,
    ServerResponse,
)
from evento.server.admin import ConsumerAdmin
from evento.server.broker import CommandBroker
from evento.server.catalog import Catalog
from evento.server.metrics import ServerMetrics
from evento.server.queries import QueryRouter
from evento.server.registry import Node, Registry
from evento.server.telemetry import TelemetrySettings, TelemetryStore

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

    from evento.discovery import BundleRegistration, NodeInfo
    from evento.event_stores.base import EventStore
    from evento.server.deploy.supervisor import Supervisor
    from evento.server.story_cache import StoryCache
    from evento.transport.base import BundlePeer

__all__ = ["EventoServer"]

log = logging.getLogger(__name__)

MAX_FETCH = 10_000


class EventoServer:
    """Routes every command (:class:`CommandBroker`) and query (:class:`QueryRouter`) by payload type and keeps
    the event store.

    >>> import asyncio, tempfile, pathlib
    >>> from evento.event_stores import SQLiteEventStore
    >>> async def main() -> int:
    ...     with tempfile.TemporaryDirectory() as tmp:
    ...         server = EventoServer(SQLiteEventStore(pathlib.Path(tmp) / "events.db"))
    ...         await server.start()
    ...         head = await server.store.head()
    ...         await server.stop()
    ...         return head
    >>> asyncio.run(main())
    0
    """

    def __init__(
        self,
        store: EventStore,
        *,
        server_id: str | None = None,
        story_cache: StoryCache | None = None,
        telemetry: TelemetrySettings | None = None,
    ) -> None:
        self.server_id = server_id or f"server-{uuid.uuid4().hex[:8]}"
        self.store = store
        self.registry = Registry()
        self.broker = CommandBroker(self.registry, store, cache=story_cache)
        self.queries = QueryRouter(self.registry)
        # The control plane keeps its tables in the event store's database: shared by a cluster, kept on restart.
        self.database = store.database()
        self.catalog = Catalog(self.database, self.server_id)
        self.metrics = ServerMetrics(store)
        self.telemetry = TelemetryStore(
            self.database, telemetry, server_id=self.server_id, metrics=self.metrics, registry=self.registry
        )
        self.broker.phases = self.queries.phases = self.telemetry.phases
        self.admin = ConsumerAdmin(self)
        self._dispatch: dict[type[Any], Callable[[Node, Any, float], Awaitable[ServerResponse]]] = {
            SendCommand: self._send_command,
            SendQuery: self._send_query,
            FetchEvents: self._fetch,
            GetHead: self._head,
            ReportTelemetry: self._report_telemetry,
            ScalingSignal: self._scaling_signal,
        }
        #: The bundles this server runs through a deploy script (``evento server`` sets it; None: it runs none).
        self.deploy: Supervisor | None = None
        #: Called with the sender and ``suffering`` for each autoscaling signal a bundle instance sends (the
        #: supervisor of :mod:`evento.server.deploy` listens); none: the signals are only logged.
        self.scaling_listeners: list[Callable[[NodeInfo, bool], None]] = []
        # Catalog writes that membership changes (sync calls from the transports) ask for, applied in order by one
        # task: a leave never overtakes the join it undoes.
        self._catalog_updates: asyncio.Queue[Coroutine[Any, Any, None]] = asyncio.Queue()
        self._catalog_writer: asyncio.Task[None] | None = None
        self._started = False

    async def start(self) -> None:
        await self.store.start()
        await self.database.start()
        await self.catalog.start()
        await self.telemetry.start()
        await self.metrics.start()
        self._catalog_writer = asyncio.create_task(self._write_catalog(), name=f"evento-catalog-{self.server_id}")
        self.store.add_listener(self._on_append)
        self._started = True
        log.info("evento server %s started", self.server_id)

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        self.store.remove_listener(self._on_append)
        await self.catalog_settled()
        if self._catalog_writer is not None:
            self._catalog_writer.cancel()
            await asyncio.gather(self._catalog_writer, return_exceptions=True)
        await self.metrics.stop()
        await self.telemetry.stop()
        await self.catalog.stop()
        await self.database.stop()
        await self.store.stop()
        log.info("evento server %s stopped", self.server_id)

    async def catalog_settled(self) -> None:
        """Wait until the catalog holds every membership change reported so far (joins, registrations, leaves)."""
        await self._catalog_updates.join()

    def _update_catalog(self, update: Coroutine[Any, Any, None]) -> None:
        if self._started:
            self._catalog_updates.put_nowait(update)
        else:
            update.close()

    async def _write_catalog(self) -> None:
        while True:
            update = await self._catalog_updates.get()
            try:
                await update
            except Exception:
                log.exception("could not update the catalog")
            finally:
                self._catalog_updates.task_done()

    # --- transport-facing API ----------------------------------------------------------------------------------

    def attach(self, peer: BundlePeer) -> Node:
        """A bundle instance connected (after its handshake was accepted); raises
        :class:`~evento.server.registry.DuplicateInstanceError` while the same instance is attached."""
        node = self.registry.join(peer)
        log.info("node joined: %s", peer.info)
        self._update_catalog(self.catalog.instance_joined(peer.info))
        return node

    def detach(self, node: Node) -> None:
        if self.registry.leave(node):
            log.info("node left: %s", node.info)
            self._update_catalog(self.catalog.instance_left(node.info))

    def register(self, node: Node, registration: BundleRegistration) -> None:
        try:
            self.registry.register(node, registration)
        except RegistrationError as exc:
            log.error("refused the registration of %s: %s", node.info, exc)
            raise
        self._update_catalog(self.catalog.record_registration(node.info, registration))

    def set_enabled(self, node: Node, enabled: bool) -> None:
        self.registry.set_enabled(node, enabled)
        self._update_catalog(self.catalog.instance_enabled(node.info, enabled))

    async def handle(self, node: Node, request: ServerRequest, timeout: float) -> ServerResponse:
        """Handle one request from ``node`` (the bundle instance that sent it); raises the error the caller should
        see. Step 2 of the command path (:mod:`evento.server.broker`)."""
        handler = self._dispatch.get(type(request))
        if handler is None:
            raise TypeError(f"unknown request type {type(request).__name__}")
        return await handler(node, request, timeout)

    # --- request handlers --------------------------------------------------------------------------------------

    async def _send_command(self, node: Node, request: SendCommand, timeout: float) -> CommandResult:
        return await self.broker.command(request.command, timeout, resent=request.resent, caller=node.info)

    async def _send_query(self, node: Node, request: SendQuery, timeout: float) -> QueryResult:
        return await self.queries.query(request.query, timeout)

    async def _fetch(self, node: Node, request: FetchEvents, timeout: float) -> EventBatch:
        limit = max(1, min(request.limit, MAX_FETCH))
        return EventBatch(await self.store.fetch(request.context, request.after, limit))

    async def _head(self, node: Node, request: GetHead, timeout: float) -> Head:
        return Head(await self.store.head())

    async def _report_telemetry(self, node: Node, request: ReportTelemetry, timeout: float) -> Accepted:
        await self.telemetry.record(node.info, request)
        await self.catalog.learn_sends(node.info.bundle_id, request)
        return Accepted()

    async def _scaling_signal(self, node: Node, request: ScalingSignal, timeout: float) -> Accepted:
        log.info("%s is %s", node.info, "suffering" if request.suffering else "bored")
        for listener in self.scaling_listeners:
            listener(node.info, request.suffering)
        return Accepted()

    def _on_append(self, head: int) -> None:
        notification = EventsAppended(head)
        for node in self.registry.nodes:
            # Only bundles that consume events care; the others would get a frame per commit for nothing.
            if node.registration is not None and node.registration.consumers:
                node.peer.notify(notification)
