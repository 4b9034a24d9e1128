"""Self-discovery metadata: what a bundle tells the server about its components, handlers and payloads.

The server routes from it (which payload types an instance handles, and how) and the catalogs, graphs and flows
are drawn from it. Everything here is plain data so it crosses the wire unchanged.
"""

from __future__ import annotations

import enum

import msgspec

__all__ = [
    "BundleRegistration",
    "ComponentInfo",
    "ComponentKind",
    "ConsumerInfo",
    "HandlerInfo",
    "HandlerKind",
    "NodeInfo",
    "PayloadInfo",
]


class ComponentKind(enum.StrEnum):
    """The kinds of component, as the decorators mark them and the catalogs name them."""

    AGGREGATE = "Aggregate"
    SERVICE = "Service"
    PROJECTOR = "Projector"
    PROJECTION = "Projection"
    INVOKER = "Invoker"
    SAGA = "Saga"
    OBSERVER = "Observer"


class HandlerKind(enum.StrEnum):
    """The kinds of handler, as the decorators mark them; the server routes requests by them."""

    AGGREGATE_COMMAND = "AggregateCommandHandler"
    COMMAND = "CommandHandler"
    QUERY = "QueryHandler"
    EVENT = "EventHandler"
    EVENT_SOURCING = "EventSourcingHandler"
    INVOCATION = "InvocationHandler"
    SAGA_EVENT = "SagaEventHandler"


class NodeInfo(msgspec.Struct, frozen=True):
    """Who a bundle instance is."""

    bundle_id: str
    bundle_version: int
    instance_id: str

    def __str__(self) -> str:
        return f"{self.bundle_id}@{self.bundle_version}/{self.instance_id}"


class HandlerInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One handler of one component, with what it sends (found by AST analysis of its body)."""

    component: str
    component_kind: ComponentKind
    handler_kind: HandlerKind
    payload: str
    payload_kind: str
    handler_name: str
    return_type: str | None = None
    return_is_multiple: bool = False
    association_property: str | None = None
    init: bool = False
    source_file: str | None = None
    line: int | None = None
    invoked_commands: dict[str, str] = {}
    invoked_queries: dict[str, str] = {}
    description: str | None = None

    @property
    def routes_requests(self) -> bool:
        """Whether the server routes commands or queries of this payload to the component."""
        return self.handler_kind in (HandlerKind.AGGREGATE_COMMAND, HandlerKind.COMMAND, HandlerKind.QUERY)


class PayloadInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One payload type a bundle declares: its kind, JSON Schema, domain and docstring (``description`` its first
    line, ``detail`` the rest), for the catalogs."""

    name: str
    kind: str
    json_schema: dict[str, object]
    domain: str | None = None
    description: str | None = None
    detail: str | None = None
    source_file: str | None = None
    line: int | None = None


class ComponentInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One component of a bundle, for the component catalog: its docstring's first line (``description``) and the
    rest (``detail``), its domain (the module's last package, unless the component names one) and where its source
    is."""

    name: str
    kind: ComponentKind
    description: str | None = None
    detail: str | None = None
    domain: str | None = None
    source_file: str | None = None
    line: int | None = None


class ConsumerInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One consumer (component × context) a bundle instance runs."""

    consumer_id: str
    component: str
    component_kind: ComponentKind
    context: str


class BundleRegistration(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a bundle instance declares when it joins."""

    bundle_id: str
    bundle_version: int
    description: str | None = None
    detail: str | None = None
    #: Where the source is browsable: ``repository_url`` + ``line_prefix`` + a line number links a handler
    #: (``https://github.com/o/r/blob/main/`` and ``#L``).
    repository_url: str | None = None
    line_prefix: str | None = None
    components: list[ComponentInfo] = []
    handlers: list[HandlerInfo] = []
    payloads: list[PayloadInfo] = []
    consumers: list[ConsumerInfo] = []
