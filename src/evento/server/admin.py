"""The admin channel, server side: consumer status and dead-event operations asked of the bundle instance that
runs a consumer (reference §4.2 consumer admin surface), in-process or over TCP, on this server or another of its
cluster.

Which instance answers: every instance of a bundle runs its consumers, but only the one holding a consumer's lock
consumes, so status and actions go to that one (its engine knows what is in flight and serialises an action with
the event in hand). When none holds it (the consumer is disabled, or between leases) any instance will do: what is
left to act on is the consumer's store, which they share.

Where the instances are: a bundle normally connects to every server it lists, so the instances connected here are
asked first. An instance connected only to another server of the cluster is reached through that server: the
request is relayed to its API (the URL it advertised in the catalog), with the caller's own credentials, and that
server asks its own instances (:meth:`ConsumerAdmin.relay`), never relaying further.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import msgspec

from evento.errors import EventoError
from evento.messages import (
    AdminDone,
    AdminRequest,
    AdminResponse,
    ConsumeDeadQueue,
    ConsumerStatusResult,
    ConsumerStatusView,
    DeadEventsResult,
    DeadEventView,
    DeleteDeadEvent,
    GetConsumerStatus,
    ListDeadEvents,
    ResetConsumer,
    SetConsumerEnabled,
    SetDeadEventRetry,
)

if TYPE_CHECKING:
    from evento.server.registry import Node
    from evento.server.server import EventoServer

__all__ = [
    "ConsumerAdmin",
    "ConsumerNotFoundError",
    "ConsumerRecord",
    "ConsumerUnreachableError",
    "InstanceStatus",
    "RelayedAnswer",
    "ResetOutcome",
    "relay_path",
]

log = logging.getLogger(__name__)


class ConsumerNotFoundError(EventoError):
    """No bundle of the cluster declares a consumer with this id."""


class ConsumerUnreachableError(EventoError):
    """The consumer is known, but no instance running it answered (none online, or none reachable in time)."""


@dataclass(frozen=True)
class ConsumerRecord:
    """A consumer of the cluster and the online instances that run it (ids, each once)."""

    consumer_id: str
    component: str
    component_kind: str
    bundle_id: str
    bundle_version: int
    context: str
    instances: tuple[str, ...]


@dataclass(frozen=True)
class InstanceStatus:
    """A consumer's status as the instance that answered sees it, and where that instance is connected."""

    bundle_id: str
    instance_id: str
    server_id: str
    status: ConsumerStatusView

    @property
    def lag(self) -> int:
        """Events stored after the consumer's checkpoint (by sequence number; the whole head before a first
        commit)."""
        return max(0, self.status.head - (self.status.checkpoint or 0))


@dataclass(frozen=True)
class ResetOutcome:
    """A reset that was accepted: the consumer replays from ``from_sequence_number`` up to (at least) ``head``."""

    consumer_id: str
    from_sequence_number: int
    head: int


class RelayedAnswer(msgspec.Struct, frozen=True):
    """What a server answers a relayed admin request with: the answer of the instance it asked."""

    instance_id: str
    server_id: str
    response: AdminResponse


def relay_path(consumer_id: str) -> str:
    """The API path (under the server's URL) where a server takes admin requests relayed by another."""
    return f"/api/consumer/{_quote(consumer_id)}/relay"


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


_relay_decoder = msgspec.json.Decoder(RelayedAnswer)


class _Target:
    """An instance picked to answer, with its status; :meth:`ask` sends it one request."""

    def __init__(self, status: InstanceStatus) -> None:
        self.status = status

    async def ask(self, request: AdminRequest, timeout: float) -> AdminResponse:
        raise NotImplementedError


class _LocalTarget(_Target):
    def __init__(self, status: InstanceStatus, node: Node) -> None:
        super().__init__(status)
        self.node = node

    async def ask(self, request: AdminRequest, timeout: float) -> AdminResponse:
        response = await self.node.peer.request(request, timeout)
        if not isinstance(response, AdminDone | ConsumerStatusResult | DeadEventsResult):
            raise ConsumerUnreachableError(f"instance {self.node.info} answered {type(response).__name__}")
        return response


class _RemoteTarget(_Target):
    def __init__(self, status: InstanceStatus, admin: ConsumerAdmin, url: str, authorization: str | None) -> None:
        super().__init__(status)
        self.admin = admin
        self.url = url
        self.authorization = authorization

    async def ask(self, request: AdminRequest, timeout: float) -> AdminResponse:
        return (await self.admin._relay_to(self.url, request, self.authorization, timeout)).response


class ConsumerAdmin:
    """Consumer administration across the instances connected to ``server`` (and, in a cluster, to the others).

    ``timeout`` bounds a status question to one instance; ``action_timeout`` an action (consuming the dead queue
    runs handlers, a reset waits for the event in hand). ``authorization`` (an ``Authorization`` header value) is
    what a request relayed to another server presents there: the API passes its caller's own."""

    def __init__(self, server: EventoServer, *, timeout: float = 10.0, action_timeout: float = 60.0) -> None:
        self.server = server
        self.timeout = timeout
        self.action_timeout = action_timeout

    # --- what there is -----------------------------------------------------------------------------------------

    async def consumers(self) -> list[ConsumerRecord]:
        """Every consumer the cluster's bundles declare, with the online instances running it: the instances
        connected here as they registered, the others from the catalog."""
        found: dict[str, ConsumerRecord] = {}
        instances: dict[str, dict[str, None]] = {}
        for record in await self.server.catalog.consumers():
            info = record.info
            found[info.consumer_id] = ConsumerRecord(
                consumer_id=info.consumer_id,
                component=info.component,
                component_kind=str(info.component_kind),
                bundle_id=record.bundle_id,
                bundle_version=record.bundle_version,
                context=info.context,
                instances=(),
            )
        for instance in await self.server.catalog.instances():
            instances.setdefault(instance.bundle_id, {})[instance.instance_id] = None
        for node in self.server.registry.nodes:
            registration = node.registration
            if registration is None:
                continue
            instances.setdefault(node.info.bundle_id, {})[node.info.instance_id] = None
            for info in registration.consumers:
                found.setdefault(
                    info.consumer_id,
                    ConsumerRecord(
                        consumer_id=info.consumer_id,
                        component=info.component,
                        component_kind=str(info.component_kind),
                        bundle_id=node.info.bundle_id,
                        bundle_version=node.info.bundle_version,
                        context=info.context,
                        instances=(),
                    ),
                )
        return [
            dataclasses.replace(record, instances=tuple(instances.get(record.bundle_id, {})))
            for _, record in sorted(found.items())
        ]

    async def consumer(self, consumer_id: str) -> ConsumerRecord:
        """The consumer with this id; raises :class:`ConsumerNotFoundError`."""
        for record in await self.consumers():
            if record.consumer_id == consumer_id:
                return record
        raise ConsumerNotFoundError(f"no bundle declares a consumer {consumer_id!r}")

    # --- questions and actions ---------------------------------------------------------------------------------

    async def status(self, consumer_id: str, *, authorization: str | None = None) -> InstanceStatus:
        """The consumer's live status, from the instance holding its lock (any instance when none does)."""
        return (await self._locate(consumer_id, authorization)).status

    async def dead_events(self, consumer_id: str, *, authorization: str | None = None) -> list[DeadEventView]:
        """The consumer's dead event queue, in sequence order."""
        response = await self._act(consumer_id, ListDeadEvents(consumer_id), authorization, self.timeout)
        assert isinstance(response, DeadEventsResult)
        return response.events

    async def set_dead_event_retry(
        self, consumer_id: str, sequence_number: int, retry: bool, *, authorization: str | None = None
    ) -> bool:
        """Flag (or unflag) a dead event for the next consumption of the queue; false when there is no such one."""
        request = SetDeadEventRetry(consumer_id, sequence_number, retry)
        return (await self._done(consumer_id, request, authorization)).changed

    async def delete_dead_event(
        self, consumer_id: str, sequence_number: int, *, authorization: str | None = None
    ) -> bool:
        """Drop a dead event for good; false when there is no such one."""
        return (await self._done(consumer_id, DeleteDeadEvent(consumer_id, sequence_number), authorization)).changed

    async def consume_dead_queue(self, consumer_id: str, *, authorization: str | None = None) -> int:
        """Reprocess the dead events flagged for retry; how many succeeded (the others are parked again)."""
        return (await self._done(consumer_id, ConsumeDeadQueue(consumer_id), authorization)).count

    async def reset(
        self, consumer_id: str, from_sequence_number: int, *, authorization: str | None = None
    ) -> ResetOutcome:
        """Replay the consumer from ``from_sequence_number`` (its next event is the first one after it)."""
        if from_sequence_number < 0:
            raise ValueError(f"a sequence number is never negative, got {from_sequence_number}")
        await self._done(consumer_id, ResetConsumer(consumer_id, from_sequence_number), authorization)
        return ResetOutcome(consumer_id, from_sequence_number, await self.server.store.head())

    async def set_enabled(self, consumer_id: str, enabled: bool, *, authorization: str | None = None) -> InstanceStatus:
        """Start or pause the consumer; its status afterwards."""
        await self._done(consumer_id, SetConsumerEnabled(consumer_id, enabled), authorization)
        return await self.status(consumer_id, authorization=authorization)

    async def relay(self, consumer_id: str, request: AdminRequest) -> RelayedAnswer:
        """Answer a request another server relayed: asked of the instances connected here only."""
        if request.consumer_id != consumer_id:
            raise ValueError(f"the relayed request names consumer {request.consumer_id!r}, not {consumer_id!r}")
        target = await self._locate(consumer_id, None, relayed=True)
        timeout = self.timeout if isinstance(request, GetConsumerStatus | ListDeadEvents) else self.action_timeout
        response = (
            ConsumerStatusResult(target.status.status)
            if isinstance(request, GetConsumerStatus)
            else await self._ask(target, request, timeout)
        )
        return RelayedAnswer(target.status.instance_id, target.status.server_id, response)

    async def _done(self, consumer_id: str, request: AdminRequest, authorization: str | None) -> AdminDone:
        response = await self._act(consumer_id, request, authorization, self.action_timeout)
        assert isinstance(response, AdminDone)
        return response

    async def _act(
        self, consumer_id: str, request: AdminRequest, authorization: str | None, timeout: float
    ) -> AdminResponse:
        return await self._ask(await self._locate(consumer_id, authorization), request, timeout)

    async def _ask(self, target: _Target, request: AdminRequest, timeout: float) -> AdminResponse:
        where = f"{target.status.bundle_id}/{target.status.instance_id}"
        try:
            return await target.ask(request, timeout)
        except ConsumerUnreachableError:
            raise
        except Exception as exc:
            raise ConsumerUnreachableError(
                f"instance {where} failed {type(request).__name__} of {request.consumer_id}: {exc}"
            ) from exc

    # --- finding the instance ----------------------------------------------------------------------------------

    async def _locate(self, consumer_id: str, authorization: str | None, *, relayed: bool = False) -> _Target:
        """The instance to ask: the lock holder among those connected here, else among those connected only to
        other servers (unless ``relayed``: then the holder, or any, of those connected here)."""
        record = await self.consumer(consumer_id)
        nodes = [
            node
            for node in self.server.registry.nodes
            if node.registration is not None and any(c.consumer_id == consumer_id for c in node.registration.consumers)
        ]
        local = await self._local_statuses(consumer_id, nodes)
        holder = next((target for target in local if target.status.status.holds_lock), None)
        if holder is not None:
            return holder
        remote: list[_Target] = []
        if not relayed:
            here = {node.info.instance_id for node in nodes}
            remote = await self._remote_statuses(record, here, authorization)
            holder = next((target for target in remote if target.status.status.holds_lock), None)
            if holder is not None:
                return holder
        if local or remote:
            return (local or remote)[0]
        if not record.instances:
            raise ConsumerUnreachableError(f"no instance of bundle {record.bundle_id!r} is online to run {consumer_id}")
        raise ConsumerUnreachableError(f"no instance running {consumer_id} answered within {self.timeout:g} s")

    async def _local_statuses(self, consumer_id: str, nodes: list[Node]) -> list[_Target]:
        async def ask(node: Node) -> _Target | None:
            try:
                response = await node.peer.request(GetConsumerStatus(consumer_id), self.timeout)
            except Exception as exc:
                log.warning("instance %s did not answer the status of %s: %s", node.info, consumer_id, exc)
                return None
            if not isinstance(response, ConsumerStatusResult):
                return None
            status = InstanceStatus(node.info.bundle_id, node.info.instance_id, self.server.server_id, response.status)
            return _LocalTarget(status, node)

        answers = await asyncio.gather(*(ask(node) for node in nodes))
        return [answer for answer in answers if answer is not None]

    async def _remote_statuses(
        self, record: ConsumerRecord, here: set[str], authorization: str | None
    ) -> list[_Target]:
        """Ask the other servers that have instances of the consumer's bundle not connected here."""
        urls = {server.server_id: server.http_url for server in await self.server.catalog.servers() if server.online}
        elsewhere = {
            instance.server_id
            for instance in await self.server.catalog.instances()
            if instance.bundle_id == record.bundle_id
            and instance.instance_id not in here
            and instance.server_id != self.server.server_id
        }

        async def ask(server_id: str) -> _Target | None:
            url = urls.get(server_id)
            if not url:
                log.warning("server %s runs instances of %s but advertised no API URL", server_id, record.bundle_id)
                return None
            try:
                answer = await self._relay_to(url, GetConsumerStatus(record.consumer_id), authorization, self.timeout)
            except ConsumerUnreachableError as exc:
                log.warning("server %s did not answer the status of %s: %s", server_id, record.consumer_id, exc)
                return None
            if not isinstance(answer.response, ConsumerStatusResult):
                return None
            status = InstanceStatus(record.bundle_id, answer.instance_id, answer.server_id, answer.response.status)
            return _RemoteTarget(status, self, url, authorization)

        answers = await asyncio.gather(*(ask(server_id) for server_id in sorted(elsewhere)))
        return [answer for answer in answers if answer is not None]

    async def _relay_to(
        self, url: str, request: AdminRequest, authorization: str | None, timeout: float
    ) -> RelayedAnswer:
        headers = {"Content-Type": "application/json"}
        if authorization:
            headers["Authorization"] = authorization
        body = msgspec.json.encode(request)
        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                response = await client.post(
                    url.rstrip("/") + relay_path(request.consumer_id), content=body, headers=headers
                )
        except httpx.HTTPError as exc:
            raise ConsumerUnreachableError(f"the server at {url} did not answer: {exc}") from exc
        if response.status_code != 200:
            detail = _problem_detail(response)
            raise ConsumerUnreachableError(f"the server at {url} answered {response.status_code}: {detail}")
        try:
            return _relay_decoder.decode(response.content)
        except msgspec.DecodeError as exc:
            raise ConsumerUnreachableError(f"the server at {url} answered what is not a relayed answer: {exc}") from exc


def _problem_detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail) if detail else response.text[:200]
