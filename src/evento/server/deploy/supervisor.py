"""The supervisor: keeps each deployed bundle's instances at the number wanted, and scales on their signals.

Every ``tick`` the server holding the cluster's ``spawner`` lease (one at a time: a lease row in the shared
database) compares, for each deployed bundle, the instances wanted with those online (the catalog, every server's)
and those it started that have not joined yet, and starts the missing ones through the deploy script. So an
autorun bundle gets its minimum when the server starts, and an instance that disappears without leaving (killed,
crashed, its machine gone) is replaced at the next tick. A start that fails is recorded with its reason and retried
after a backoff that doubles up to ``max_backoff``: a broken script never becomes a storm.

Scaling changes the number wanted (in the database, so any server may take the decision): a spawn asked by an admin
or a suffering instance adds one (below the maximum; signals at most once per ``cooldown``), a kill or a bored
instance removes one (above the minimum) and asks that instance to leave (:class:`~evento.messages.StopInstance`):
it stops taking work, finishes, releases its consumer locks and disconnects; a process of ours still there after
``grace`` seconds is killed. Every decision is logged and kept (:meth:`DeployStore.decisions`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import msgspec

from evento.discovery import BundleRegistration, NodeInfo
from evento.errors import EventoError
from evento.messages import StopInstance, now_ms
from evento.server.deploy.artifacts import Artifact, ArtifactStore
from evento.server.deploy.scripts import DeployError, Launch
from evento.server.deploy.store import Decision, DeployState, DeployStore

if TYPE_CHECKING:
    from evento.server.deploy.scripts import DeployContext, DeployScript
    from evento.server.deploy.spec import BundleSpec
    from evento.server.server import EventoServer

__all__ = ["DeployRefusedError", "InstanceNotFoundError", "Supervisor", "SupervisorSettings"]

log = logging.getLogger(__name__)

replace_struct = msgspec.structs.replace

_LEASE = "spawner"


class DeployRefusedError(EventoError):
    """A spawn or kill the bundle's bounds do not allow, or a bundle that is not deployed."""

    http_status = 409


class InstanceNotFoundError(EventoError, LookupError):
    """No such instance is connected to this server."""


@dataclass(frozen=True)
class SupervisorSettings:
    """How often the supervisor looks, how long things may take, how fast it scales."""

    tick: float = 1.0
    lease_seconds: float = 10.0
    #: An instance started but not online after this long counts as a failed start.
    join_timeout: float = 60.0
    #: How long a graceful kill waits before killing the process.
    grace: float = 10.0
    #: The least time between two scaling decisions of a bundle (signals within it are ignored).
    cooldown: float = 10.0
    backoff: float = 2.0
    max_backoff: float = 60.0
    #: How long a spawn's artifact token is good for (one download, by the deploy script).
    artifact_token_seconds: float = 120.0


@dataclass
class _Failures:
    count: int = 0
    retry_at: float = 0.0


class Supervisor:
    """Runs the deployed bundles of one server (the spawning one of its cluster, or ready to take over)."""

    def __init__(
        self,
        server: EventoServer,
        script: DeployScript,
        context: DeployContext,
        settings: SupervisorSettings | None = None,
    ) -> None:
        self.server = server
        self.script = script
        self.context = context
        self.settings = settings or SupervisorSettings()
        self.store = DeployStore(server.database, server.server_id)
        self.artifacts = ArtifactStore(server.database)
        self.spawning = False  # whether this server holds the lease
        self._launches: dict[str, Launch] = {}  # by instance id: those started here, until they are gone
        self._pending: dict[str, float] = {}  # instance id -> when it was started, until it joins
        self._leaving: set[str] = set()  # asked to leave: their exit is not a crash
        self._failures: dict[str, _Failures] = {}
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._reconciling = asyncio.Lock()

    async def start(self) -> None:
        await self.store.start()
        await self.artifacts.start()
        self.server.scaling_listeners.append(self._on_signal)
        self._task = asyncio.create_task(self._run(), name=f"evento-supervisor-{self.server.server_id}")

    async def stop(self) -> None:
        """Stop supervising; the instances started keep running (a server restart does not restart them)."""
        with contextlib.suppress(ValueError):
            self.server.scaling_listeners.remove(self._on_signal)
        for task in (self._task, *self._background):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (self._task, *self._background) if t is not None), return_exceptions=True)
        with contextlib.suppress(Exception):  # the database is gone: the lease expires by itself
            await self.store.release_lease(_LEASE)

    # --- the loop ------------------------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the supervisor's round failed")
            await asyncio.sleep(self.settings.tick)

    async def reconcile(self) -> None:
        """One round: take or renew the lease, then start what each deployed bundle misses."""
        async with self._reconciling:
            self.spawning = await self.store.hold_lease(_LEASE, self.settings.lease_seconds)
            if not self.spawning:
                return
            online: dict[str, set[str]] = {}
            for instance in await self.server.catalog.instances():
                online.setdefault(instance.bundle_id, set()).add(instance.instance_id)
            everywhere = set().union(*online.values())
            self._leaving = {i for i in self._leaving if i in everywhere or i in self._launches}
            for state in await self.store.all():
                await self._reconcile(state, online.get(state.spec.bundle_id, set()))

    async def _reconcile(self, state: DeployState, online: set[str]) -> None:
        bundle_id = state.spec.bundle_id
        loop_now = asyncio.get_running_loop().time()
        for instance_id, started in list(self._pending.items()):
            launch = self._launches[instance_id]
            if launch.bundle_id != bundle_id:
                continue
            if instance_id in online:
                del self._pending[instance_id]
                self._failures.pop(bundle_id, None)
                await self._decide(bundle_id, "joined", "the instance started and joined", instance_id)
            elif launch.exited.is_set() or loop_now - started > self.settings.join_timeout:
                del self._pending[instance_id]
                launch.kill()
                said = launch.last_line() or "no output"
                why = "exited before joining" if launch.exited.is_set() else "did not join in time"
                await self._failed(bundle_id, f"instance {instance_id} {why}: {said}", instance_id)
        for instance_id, launch in list(self._launches.items()):
            if launch.bundle_id == bundle_id and launch.exited.is_set() and instance_id not in self._pending:
                del self._launches[instance_id]
                if instance_id not in self._leaving:
                    reason = f"the instance's process ended without leaving ({launch.last_line() or 'no output'})"
                    await self._decide(bundle_id, "lost", reason, instance_id)
                self._leaving.discard(instance_id)
        pending = sum(1 for i in self._pending if self._launches[i].bundle_id == bundle_id)
        missing = state.wanted - len(online - self._leaving) - pending
        failures = self._failures.get(bundle_id)
        if missing <= 0 or (failures is not None and loop_now < failures.retry_at):
            return
        for _ in range(missing):
            if not await self._spawn(state.spec, f"{len(online)} online + {pending} starting < {state.wanted} wanted"):
                return

    async def _spawn(self, spec: BundleSpec, reason: str) -> bool:
        instance_id = f"{spec.bundle_id}-{uuid.uuid4().hex[:12]}"
        token, context = "", self.context
        if spec.artifact is not None:  # a published version: the script downloads its wheel with a token of its own
            token = await self.artifacts.mint(spec.bundle_id, spec.version, self.settings.artifact_token_seconds)
            context = replace(context, artifact_url=await self._artifact_url(spec.bundle_id))
        try:
            launch = await self.script.start(spec, instance_id, token, context)
        except DeployError as exc:
            await self._failed(spec.bundle_id, str(exc), instance_id)
            return False
        self._launches[instance_id] = launch
        self._pending[instance_id] = asyncio.get_running_loop().time()
        await self._decide(spec.bundle_id, "spawn", reason, instance_id)
        return True

    async def _artifact_url(self, bundle_id: str) -> str:
        """Where this server serves ``bundle_id``'s wheel (its advertised API address)."""
        for record in await self.server.catalog.servers():
            if record.server_id == self.server.server_id and record.http_url:
                return f"{record.http_url.rstrip('/')}/api/bundle/{bundle_id}/artifact"
        return ""

    async def _failed(self, bundle_id: str, error: str, instance_id: str | None) -> None:
        failures = self._failures.setdefault(bundle_id, _Failures())
        failures.count += 1
        delay = min(self.settings.max_backoff, self.settings.backoff * 2 ** (failures.count - 1))
        failures.retry_at = asyncio.get_running_loop().time() + delay
        log.error("bundle %s: could not start an instance: %s (next try in %.0fs)", bundle_id, error, delay)
        await self.store.set_error(bundle_id, error)
        await self._decide(bundle_id, "spawn-failed", f"{error} (next try in {delay:.0f}s)", instance_id)

    async def _decide(self, bundle_id: str, action: str, reason: str, instance_id: str | None = None) -> Decision:
        log.info("bundle %s: %s %s: %s", bundle_id, action, instance_id or "", reason)
        return await self.store.decide(bundle_id, action, reason, instance_id)

    # --- what admins and signals ask ----------------------------------------------------------------------------

    async def deploy(self, spec: BundleSpec) -> DeployState:
        """Deploy (or redeploy) a bundle; the spawning server starts what it needs at its next round."""
        state = await self.store.put(spec)
        await self._decide(spec.bundle_id, "deploy", f"version {spec.version}, {state.wanted} wanted")
        return state

    async def publish(
        self, spec: BundleSpec, registration: BundleRegistration, wheel_name: str, wheel: bytes
    ) -> DeployState:
        """Keep a published version (its wheel and description), show its description in the catalog before any
        instance runs, and deploy it: the spawning server starts its instances from the wheel."""
        encoded = msgspec.json.encode(registration).decode()
        await self.artifacts.put(Artifact(spec.bundle_id, spec.version, wheel_name, wheel, encoded, now_ms()))
        info = NodeInfo(spec.bundle_id, registration.bundle_version, "published")
        await self.server.catalog.record_registration(info, registration)
        await self._decide(spec.bundle_id, "publish", f"version {spec.version}: {wheel_name} ({len(wheel)} bytes)")
        return await self.deploy(replace_struct(spec, artifact=wheel_name))

    async def spawn(self, bundle_id: str, reason: str = "asked by an admin") -> DeployState:
        """One more instance wanted; refused at the maximum."""
        state = await self._deployed(bundle_id)
        changed = await self.store.change_wanted(bundle_id, +1)
        if changed is None:
            raise DeployRefusedError(f"bundle {bundle_id!r} runs its maximum of {state.spec.max_instances} instance(s)")
        await self._decide(bundle_id, "scale-up", f"{reason}: {changed.wanted} wanted")
        return changed

    async def kill(self, bundle_id: str, instance_id: str, reason: str = "asked by an admin") -> DeployState:
        """Ask an instance to leave (one fewer wanted, above the minimum; at it, a replacement starts)."""
        state = await self._deployed(bundle_id)
        node = self._node(bundle_id, instance_id)
        changed = await self.store.change_wanted(bundle_id, -1)
        await self._stop_instance(node.info, reason)
        return changed or state

    async def _deployed(self, bundle_id: str) -> DeployState:
        state = await self.store.get(bundle_id)
        if state is None:
            raise DeployRefusedError(f"bundle {bundle_id!r} is not deployed: publish it or PUT its description")
        return state

    def _node(self, bundle_id: str, instance_id: str) -> Any:
        for node in self.server.registry.nodes:
            if node.info.bundle_id == bundle_id and node.info.instance_id == instance_id:
                return node
        raise InstanceNotFoundError(f"no instance {instance_id!r} of bundle {bundle_id!r} is connected here")

    async def _stop_instance(self, info: NodeInfo, reason: str) -> None:
        self._leaving.add(info.instance_id)
        await self._decide(info.bundle_id, "kill", reason, info.instance_id)
        grace = self.settings.grace
        node = self._node(info.bundle_id, info.instance_id)
        try:
            await node.peer.request(StopInstance(round(grace * 1000)), min(grace, 10.0))
        except Exception as exc:  # gone already, or not answering: the grace period's end settles it
            log.warning("instance %s did not take the request to leave: %s", info, exc)
        self._in_background(self._kill_after_grace(info))

    async def _kill_after_grace(self, info: NodeInfo) -> None:
        deadline = asyncio.get_running_loop().time() + self.settings.grace
        while asyncio.get_running_loop().time() < deadline:
            if not any(node.info == info for node in self.server.registry.nodes):
                return
            await asyncio.sleep(0.1)
        launch = self._launches.get(info.instance_id)
        if launch is not None and launch.kill():
            await self._decide(
                info.bundle_id, "killed", f"still there after {self.settings.grace:g}s", info.instance_id
            )

    def _in_background(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _on_signal(self, info: NodeInfo, suffering: bool) -> None:
        self._in_background(self._scale(info, suffering))

    async def _scale(self, info: NodeInfo, suffering: bool) -> None:
        state = await self.store.get(info.bundle_id)
        if state is None:
            return  # not a bundle the server runs: nothing to scale
        cooldown = round(self.settings.cooldown * 1000)
        if suffering:
            changed = await self.store.change_wanted(info.bundle_id, +1, cooldown_ms=cooldown)
            if changed is not None:
                await self._decide(info.bundle_id, "scale-up", f"{info.instance_id} suffers: {changed.wanted} wanted")
            return
        online = {i.instance_id for i in await self.server.catalog.instances() if i.bundle_id == info.bundle_id}
        if len(online - self._leaving) <= state.spec.min_instances or info.instance_id in self._leaving:
            return
        changed = await self.store.change_wanted(info.bundle_id, -1, cooldown_ms=cooldown)
        if changed is not None:
            await self._stop_instance(info, f"bored: {changed.wanted} wanted")

    def launches(self) -> dict[str, Launch]:
        """The instances this server started that are still known (by instance id)."""
        return dict(self._launches)
