"""The bundle: a deployable unit hosting components, connected to the Evento Server.

>>> bundle = Bundle("todolist", components=[])  # doctest: +SKIP
>>> await bundle.start(server)                 # doctest: +SKIP

Building a bundle reads and checks every component (capability table, handler signatures) and does no I/O;
``start()`` connects, registers, runs the projectors (and waits for those marked ``wait_for_head_reached``),
enables routing, then starts sagas and observers. ``stop()`` reverses that.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import logging
import pkgutil
import sys
import uuid
from typing import TYPE_CHECKING, Any, TypeVar

from evento.bundle.admin import BundleAdmin
from evento.bundle.calls import HandlerRunner
from evento.bundle.consumers import ConsumerEngine, ConsumerSettings
from evento.bundle.outbox import BundleOutbox
from evento.bundle.request_handlers import RequestHandlers
from evento.bundle.telemetry import TelemetryCollector, TelemetryKey, TelemetryOptions
from evento.bundle.tracing import MessageHandlerInterceptor, TracingAgent
from evento.components.invocation import Invoker, bind_invocation, unbind_invocation
from evento.components.model import ComponentSpec, instantiate, is_component, read_component
from evento.consumer_stores.memory import MemoryConsumerStateStore
from evento.discovery import BundleRegistration, ComponentInfo, ComponentKind, HandlerKind, NodeInfo, PayloadInfo
from evento.errors import RegistrationError
from evento.gateways import CommandGateway, QueryGateway, gateways_for
from evento.messages import (
    AdminDone,
    AggregateCommandRequest,
    BundleRequest,
    BundleResponse,
    EventsAppended,
    HandledMessage,
    QueryRequest,
    ScalingSignal,
    ServiceCommandRequest,
    StopInstance,
    new_message_id,
)
from evento.payloads import Payload, payload_class, payload_description, payload_kind, payload_schema

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from types import ModuleType

    from evento.bundle.autoscaling import AutoscalingProtocol
    from evento.consumer_stores.base import ConsumerStateStore
    from evento.server.server import EventoServer
    from evento.transport.base import Connector, ServerLink

__all__ = ["Bundle"]

log = logging.getLogger(__name__)

InvokerT = TypeVar("InvokerT", bound=Invoker)

_CONSUMER_KINDS = (ComponentKind.PROJECTOR, ComponentKind.SAGA, ComponentKind.OBSERVER)


class _Invocation:
    """The handled message of an invoker call: the root of a correlation chain."""

    def __init__(self, metadata: dict[str, str] | None = None) -> None:
        self.message_id = new_message_id()
        self.metadata = dict(metadata or {})


class Bundle:
    """A set of components deployed together, with its own identity, consumer state store and settings.

    ``request_timeout`` is the deadline in seconds of the requests the bundle's consumers make on their own
    (fetching events, reading the head); a gateway call takes its own ``timeout``. Its handlers and consumers
    reach the server through ``outbox`` (an :class:`~evento.Outbox`); it serves the server's requests as the
    transport's endpoint.
    """

    def __init__(
        self,
        bundle_id: str,
        *,
        components: Iterable[type[Any]] = (),
        package: ModuleType | str | None = None,
        version: int = 1,
        description: str | None = None,
        detail: str | None = None,
        repository_url: str | None = None,
        line_prefix: str | None = None,
        consumer_store: ConsumerStateStore | None = None,
        contexts: Mapping[type[Any], Sequence[str]] | None = None,
        injector: Callable[[Any], Any] | None = None,
        interceptors: Sequence[MessageHandlerInterceptor] = (),
        tracing_agent: TracingAgent | None = None,
        consumer_settings: ConsumerSettings | None = None,
        request_timeout: float = 30.0,
        instance_id: str | None = None,
        telemetry: TelemetryOptions | None = None,
        autoscaling: AutoscalingProtocol | None = None,
    ) -> None:
        if not bundle_id or not bundle_id.strip():
            raise RegistrationError("a bundle needs a non-blank id")
        self.bundle_id = bundle_id
        self.version = version
        self.description = description or bundle_id
        self.detail = detail
        self.repository_url = repository_url
        self.line_prefix = line_prefix
        self.info = NodeInfo(bundle_id, version, instance_id or uuid.uuid4().hex)
        self.consumer_store = consumer_store or MemoryConsumerStateStore()
        self.tracing_agent = tracing_agent or TracingAgent()
        self.consumer_settings = consumer_settings or ConsumerSettings()
        self.request_timeout = request_timeout
        self.outbox = BundleOutbox(self.info, self.tracing_agent)
        self._injector = injector
        self._dependencies: dict[Any, Any] = {}
        self.telemetry = TelemetryCollector(telemetry)
        self._runner = HandlerRunner(interceptors, self.tracing_agent, self.telemetry)

        classes = list(components)
        if package is not None:
            classes.extend(_scan(package))
        if not classes:
            raise RegistrationError(f"bundle {bundle_id} has no components")
        self.components: list[tuple[ComponentSpec, Any]] = []
        for cls in dict.fromkeys(classes):
            spec = read_component(cls, self._dependency)
            self.components.append((spec, self._instantiate(cls)))
        self._contexts = {cls: list(ctx) for cls, ctx in (contexts or {}).items()}
        unknown = [cls.__name__ for cls in self._contexts if cls not in dict.fromkeys(classes)]
        if unknown:
            raise RegistrationError(f"contexts given for components not in the bundle: {', '.join(unknown)}")

        self.autoscaling = autoscaling
        self._requests = RequestHandlers(self.components, self._runner, self.outbox, autoscaling)
        self._dispatch: dict[type[Any], Callable[[Any], Any]] = {
            AggregateCommandRequest: self._requests.aggregate_command,
            ServiceCommandRequest: self._requests.service_command,
            QueryRequest: self._requests.query,
            StopInstance: self._leave,
        }
        #: Set when the server asks this instance to leave (:class:`StopInstance`): whoever runs the bundle
        #: (``evento bundle run``) stops it, which finishes the work in hand and releases the consumer locks.
        self.leave_requested = asyncio.Event()
        self._signals: set[asyncio.Task[Any]] = set()
        self.consumers: dict[str, ConsumerEngine] = {}
        self.admin = BundleAdmin(self.consumers)
        self._dispatch.update(self.admin.handlers())
        self._link: ServerLink | None = None

    def use_instance_id(self, instance_id: str) -> None:
        """Join as ``instance_id`` (before :meth:`start`): a server that spawned this process names it in advance,
        so it knows which connection is the process it started."""
        if self._link is not None:
            raise RuntimeError("the instance id is fixed once the bundle started")
        self.info = NodeInfo(self.bundle_id, self.version, instance_id)
        self.outbox.info = self.info
        self.outbox.owner = f"{self.bundle_id}/{instance_id}"

    # --- building ----------------------------------------------------------------------------------------------

    def _dependency(self, annotation: Any) -> Any:
        if annotation in self._dependencies:
            return self._dependencies[annotation]
        value = self._injector(annotation) if self._injector is not None else None
        if value is None:
            name = getattr(annotation, "__name__", repr(annotation))
            raise RegistrationError(f"nothing to inject for {name}: pass an injector that provides it")
        self._dependencies[annotation] = value
        return value

    def _instantiate(self, cls: type[Any]) -> Any:
        return instantiate(cls, self._dependency)

    def registration(self) -> BundleRegistration:
        """The discovery metadata this bundle sends when it joins."""
        handlers = [h.info() for spec, _ in self.components for h in spec.handlers.values()]
        names = {h.payload for h in handlers}
        for h in handlers:
            names.update(h.invoked_commands)
            names.update(h.invoked_queries)
        names.update(self._requests.returned_event_names())  # the server stores only declared event types
        names.update(h.return_type for h in handlers if h.return_type)  # views too, for the payload catalog
        payloads = []
        for name in sorted(names):
            cls = payload_class(name)
            if cls is not None:
                payloads.append(_payload_info(cls))
        return BundleRegistration(
            bundle_id=self.bundle_id,
            bundle_version=self.version,
            description=self.description,
            detail=self.detail,
            repository_url=self.repository_url,
            line_prefix=self.line_prefix,
            components=[_component_info(spec) for spec, _ in self.components],
            handlers=handlers,
            payloads=payloads,
            consumers=[engine.info for engine in self.consumers.values()],
        )

    # --- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self, server: Connector | EventoServer) -> None:
        """Connect to a server (an :class:`EventoServer` in this process, or a connector) and start consuming."""
        from evento.server.server import EventoServer
        from evento.transport.inprocess import InProcessConnector

        connector: Connector = InProcessConnector(server) if isinstance(server, EventoServer) else server
        await self.consumer_store.start()
        self._build_engines()
        try:
            self._link = await connector.connect(self)
            self.outbox.connect(self._link.request, asyncio.get_running_loop())
            await self._link.register(self.registration())
        except BaseException:
            # Refused (a duplicate instance id, a conflicting handler kind, a token that does not allow this bundle)
            # or unreachable: nothing stays open behind the error.
            await self._close_link()
            await self.consumer_store.stop()
            raise

        projectors = [e for e in self.consumers.values() if e.spec.kind is ComponentKind.PROJECTOR]
        for engine in projectors:
            engine.start()
        gate = [e.head_reached.wait() for e in projectors if e.spec.options.wait_for_head_reached]
        if gate:
            await asyncio.gather(*gate)
        await self._link.set_enabled(True)
        self.telemetry.start(self.outbox.request, self.consumers)
        if self.autoscaling is not None:
            self.autoscaling.bind(self._send_signal)
            self.autoscaling.start()
        later = [e for e in self.consumers.values() if e.spec.kind is not ComponentKind.PROJECTOR]
        for engine in later:
            await engine.seed()
        for engine in later:
            engine.start()
        log.info("bundle %s started with %d components", self.info, len(self.components))

    async def stop(self) -> None:
        if self._link is not None:
            await self._link.set_enabled(False)
        if self.autoscaling is not None:
            await self.autoscaling.stop()
        await asyncio.gather(*(engine.stop() for engine in self.consumers.values()))
        if self._signals:
            await asyncio.gather(*self._signals, return_exceptions=True)
        await self.telemetry.stop()  # the last report, before the link closes
        await self._close_link()
        await self.consumer_store.stop()

    async def _close_link(self) -> None:
        self.outbox.disconnect()
        if self._link is not None:
            await self._link.close()
            self._link = None

    def _build_engines(self) -> None:
        self.consumers.clear()
        for spec, instance in self.components:
            if spec.kind not in _CONSUMER_KINDS:
                continue
            for context in self._contexts.get(spec.cls, ["*"]):
                engine = ConsumerEngine(
                    bundle_id=self.bundle_id,
                    spec=spec,
                    instance=instance,
                    context=context,
                    store=self.consumer_store,
                    outbox=self.outbox,
                    runner=self._runner,
                    settings=self.consumer_settings,
                    request_timeout=self.request_timeout,
                    autoscaling=self.autoscaling,
                )
                self.consumers[engine.consumer_id] = engine

    async def wait_for_head(self, timeout: float = 30.0) -> None:
        """Wait until every consumer has caught up with the log once (handy in tests and scripts)."""
        await asyncio.wait_for(asyncio.gather(*(e.head_reached.wait() for e in self.consumers.values())), timeout)

    # --- transport endpoint ------------------------------------------------------------------------------------

    async def handle_request(self, message: BundleRequest) -> BundleResponse:
        handler = self._dispatch.get(type(message))
        if handler is None:
            raise TypeError(f"unknown request type {type(message).__name__}")
        response: BundleResponse = await handler(message)
        return response

    async def _leave(self, request: StopInstance) -> AdminDone:
        log.info("bundle %s asked to leave (grace %d ms)", self.info, request.grace_ms)
        self.leave_requested.set()
        return AdminDone(True)

    def _send_signal(self, suffering: bool) -> None:
        # Fire and forget: a handler's arrival must not wait for the server; a signal lost with the connection
        # is repeated by the protocol while the condition lasts.
        task = asyncio.get_running_loop().create_task(self._signal(suffering))
        self._signals.add(task)
        task.add_done_callback(self._signals.discard)

    async def _signal(self, suffering: bool) -> None:
        try:
            await self.outbox.request(ScalingSignal(suffering), self.request_timeout)
        except Exception as exc:
            log.warning("could not send the %s signal: %s", "suffering" if suffering else "bored", exc)

    def on_notification(self, message: EventsAppended) -> None:
        for engine in self.consumers.values():
            engine.wake()

    # --- sending ------------------------------------------------------------------------------------------------

    def gateways(self, handled: HandledMessage | None) -> tuple[CommandGateway, QueryGateway]:
        """Gateways that send through this bundle as if handling ``handled`` (``None``: a new correlation)."""
        return gateways_for(self.outbox, handled)

    # --- invokers ----------------------------------------------------------------------------------------------

    def invoker(self, cls: type[InvokerT], metadata: dict[str, str] | None = None) -> InvokerT:
        """An instance of ``cls`` whose invocation handlers send through this bundle."""
        if not (isinstance(cls, type) and issubclass(cls, Invoker)):
            raise RegistrationError(f"{cls!r} must subclass evento.Invoker")
        spec = read_component(cls, self._dependency) if is_component(cls) else None
        instance: InvokerT = self._instantiate(cls)
        handler_names = (
            [h.name for h in spec.handlers_of(HandlerKind.INVOCATION)]
            if spec is not None
            else [n for n, f in vars(cls).items() if hasattr(f, "__evento_handler__")]
        )
        for name in handler_names:
            key = self.telemetry.key(
                cls.__name__, ComponentKind.INVOKER, HandlerKind.INVOCATION, f"{cls.__name__}::{name}"
            )
            setattr(instance, name, self._bind_invocation(getattr(instance, name), metadata, key))
        return instance

    def _bind_invocation(
        self, method: Callable[..., Any], metadata: dict[str, str] | None, key: TelemetryKey
    ) -> Callable[..., Any]:
        # Each call is one invocation: timed (and its sends counted) when telemetry samples it.
        telemetry = self.telemetry if self.telemetry.enabled else None
        if inspect.iscoroutinefunction(method):

            @functools.wraps(method)
            async def call_async(*args: Any, **kwargs: Any) -> Any:
                sample = telemetry.begin(key) if telemetry is not None else None
                sends = sample.sends if sample is not None else None
                token = bind_invocation(*gateways_for(self.outbox, _Invocation(metadata), sends))
                try:
                    return await method(*args, **kwargs)
                finally:
                    unbind_invocation(token)
                    if sample is not None:
                        self.telemetry.end(sample)

            return call_async

        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            # A plain invocation handler may be called from any thread (it sends with *_sync).
            sample = telemetry.begin_threadsafe(key) if telemetry is not None else None
            sends = sample.sends if sample is not None else None
            token = bind_invocation(*gateways_for(self.outbox, _Invocation(metadata), sends))
            try:
                return method(*args, **kwargs)
            finally:
                unbind_invocation(token)
                if sample is not None:
                    self.telemetry.end_threadsafe(sample)

        return call


def _component_info(spec: ComponentSpec) -> ComponentInfo:
    cls = spec.cls
    description, detail = payload_description(cls)
    source_file, line = _source_of(cls)
    return ComponentInfo(
        name=spec.name,
        kind=spec.kind,
        description=description,
        detail=detail,
        domain=_domain_of(cls),
        source_file=source_file,
        line=line,
    )


def _domain_of(cls: type[Any]) -> str | None:
    """The domain a class names (``@domain``), else the last name of the package its module is in."""
    named: str | None = getattr(cls, "__evento_domain__", None)
    if named:
        return named
    module = sys.modules.get(cls.__module__)
    package = cls.__module__ if hasattr(module, "__path__") else cls.__module__.rpartition(".")[0]
    return package.rpartition(".")[2] or None


def _source_of(obj: Any) -> tuple[str | None, int | None]:
    try:
        return inspect.getsourcefile(obj), inspect.getsourcelines(obj)[1]
    except (OSError, TypeError):
        return None, None


def _payload_info(cls: type[Payload]) -> PayloadInfo:
    description, detail = payload_description(cls)
    source_file, line = _source_of(cls)
    return PayloadInfo(
        name=cls.__name__,
        kind=payload_kind(cls),
        json_schema=payload_schema(cls),
        domain=_domain_of(cls),
        description=description,
        detail=detail,
        source_file=source_file,
        line=line,
    )


def _scan(package: ModuleType | str) -> list[type[Any]]:
    """Every component class defined in a package and its subpackages."""
    module = importlib.import_module(package) if isinstance(package, str) else package
    modules = [module]
    if hasattr(module, "__path__"):
        found = pkgutil.walk_packages(module.__path__, module.__name__ + ".")
        modules += [importlib.import_module(info.name) for info in found]
    return [
        value
        for mod in modules
        for value in vars(mod).values()
        if is_component(value) and value.__module__ == mod.__name__
    ]
