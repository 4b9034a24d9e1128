"""The registry: which bundle instances are connected, what they handle, and the routing table built from it.

One entry per live connection: a second connection for a (bundle id, instance id) already present is refused
(:class:`DuplicateInstanceError`), so no join or leave of one connection can change another's routes. A transport
that finds the present connection dead removes it before it joins the newcomer. A registration that would route a
payload by a handler kind other than the one already routed for it is refused (:class:`HandlerKindConflictError`).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

from evento.discovery import BundleRegistration, HandlerInfo, HandlerKind, NodeInfo, PayloadInfo
from evento.errors import NoHandlerError, RegistrationError
from evento.transport.base import BundlePeer

__all__ = ["DuplicateInstanceError", "HandlerKindConflictError", "Node", "Registry", "Route"]

log = logging.getLogger(__name__)


class DuplicateInstanceError(RegistrationError):
    """A bundle instance with this bundle id and instance id is connected already (its reject code on the wire is
    ``DUPLICATE_INSTANCE``): usually a second process started with the same instance id."""


class HandlerKindConflictError(RegistrationError):
    """A registration would route a payload by another handler kind than the one already routed for it."""


@dataclass(eq=False)
class Node:
    """One connected bundle instance."""

    peer: BundlePeer
    registration: BundleRegistration | None = None
    enabled: bool = False

    @property
    def info(self) -> NodeInfo:
        return self.peer.info


@dataclass(frozen=True)
class Route:
    """How a payload type is handled: by which handler kind, on which nodes."""

    handler_kind: HandlerKind
    nodes: tuple[Node, ...] = field(default=())
    #: An aggregate command whose handler creates the aggregate (``init=True``).
    creates_aggregate: bool = False


class Registry:
    """Connected nodes, their discovery metadata, and the routing table derived from them."""

    def __init__(self) -> None:
        self._nodes: dict[tuple[str, str], Node] = {}  # by (bundle id, instance id)
        self._routes: dict[str, Route] = {}
        self._rng = random.Random()

    # --- membership --------------------------------------------------------------------------------------------

    def join(self, peer: BundlePeer) -> Node:
        """Add a node; refused while a node with the same (bundle id, instance id) is registered here."""
        info = peer.info
        present = self._nodes.get((info.bundle_id, info.instance_id))
        if present is not None:
            raise DuplicateInstanceError(
                f"instance {info.instance_id!r} of bundle {info.bundle_id!r} is connected already ({present.info});"
                " is a second process running with the same instance id?"
            )
        node = Node(peer)
        self._nodes[(info.bundle_id, info.instance_id)] = node
        self._rebuild()
        return node

    def node(self, bundle_id: str, instance_id: str) -> Node | None:
        """The node registered for this bundle instance, if any."""
        return self._nodes.get((bundle_id, instance_id))

    def leave(self, node: Node) -> bool:
        """Remove ``node``; whether it was still here (a node leaves once, whoever reports it)."""
        key = (node.info.bundle_id, node.info.instance_id)
        if self._nodes.get(key) is not node:
            return False
        del self._nodes[key]
        self._rebuild()
        return True

    def mark_unreachable(self, node: Node) -> None:
        """Stop routing to a node whose connection was seen to drop (its transport reports the leave too)."""
        if node.enabled:
            node.enabled = False
            self._rebuild()

    def register(self, node: Node, registration: BundleRegistration) -> None:
        """Record what ``node`` handles. Refused (nothing changes) when the registration names another bundle than
        the node's, or routes a payload by another handler kind than the registry already does."""
        if registration.bundle_id != node.info.bundle_id:
            raise RegistrationError(
                f"{node.info} sent a registration for bundle {registration.bundle_id!r}; a connection registers"
                " its own bundle only"
            )
        self._check_kinds(node, registration)
        node.registration = registration
        self._rebuild()

    def _check_kinds(self, node: Node, registration: BundleRegistration) -> None:
        routed: dict[str, tuple[HandlerKind, str]] = {}  # payload -> (handler kind, who routes it so)
        for other in self._nodes.values():
            if other is not node and other.registration is not None:
                for handler in other.registration.handlers:
                    if handler.routes_requests:
                        routed.setdefault(handler.payload, (handler.handler_kind, other.info.bundle_id))
        for handler in registration.handlers:
            if not handler.routes_requests:
                continue
            kind, owner = routed.setdefault(handler.payload, (handler.handler_kind, node.info.bundle_id))
            if kind != handler.handler_kind:
                raise HandlerKindConflictError(
                    f"{node.info} cannot register {handler.payload} as a {handler.handler_kind}: bundle {owner!r}"
                    f" handles it as a {kind}"
                )

    def set_enabled(self, node: Node, enabled: bool) -> None:
        node.enabled = enabled
        self._rebuild()

    @property
    def nodes(self) -> list[Node]:
        return list(self._nodes.values())

    # --- routing -----------------------------------------------------------------------------------------------

    def route(self, payload_name: str) -> tuple[HandlerKind, Node]:
        """The handler kind for a payload type and one enabled node chosen uniformly at random."""
        route = self._routes.get(payload_name)
        if route is None or not route.nodes:
            raise NoHandlerError(f"no handler for {payload_name}")
        nodes = route.nodes
        # random() rather than choice(): this runs for every request, and choice's integer draw costs more.
        return route.handler_kind, nodes[0] if len(nodes) == 1 else nodes[int(self._rng.random() * len(nodes))]

    def handler_kind(self, payload_name: str) -> HandlerKind | None:
        route = self._routes.get(payload_name)
        return route.handler_kind if route else None

    def creates_aggregate(self, payload_name: str) -> bool:
        """Whether the payload's handler creates its aggregate (an ``init`` aggregate command handler)."""
        route = self._routes.get(payload_name)
        return route is not None and route.creates_aggregate

    def _rebuild(self) -> None:
        # Rebuilt wholesale on every membership change: changes are rare, lookups are on the hot path.
        kinds: dict[str, HandlerKind] = {}
        creating: set[str] = set()
        nodes: dict[str, list[Node]] = {}
        for node in self._nodes.values():
            if node.registration is None:
                continue
            for handler in node.registration.handlers:
                if not handler.routes_requests:
                    continue
                kinds[handler.payload] = handler.handler_kind
                if handler.init:
                    creating.add(handler.payload)
                if node.enabled:
                    nodes.setdefault(handler.payload, []).append(node)
        self._routes = {name: Route(kind, tuple(nodes.get(name, ())), name in creating) for name, kind in kinds.items()}

    # --- catalog -----------------------------------------------------------------------------------------------

    def handlers(self) -> list[HandlerInfo]:
        """Every handler of every registered bundle (one copy per bundle, not per instance)."""
        seen: dict[tuple[str, str, str, str], HandlerInfo] = {}
        for node in self._nodes.values():
            if node.registration is None:
                continue
            for handler in node.registration.handlers:
                seen[(node.info.bundle_id, handler.component, handler.handler_kind, handler.payload)] = handler
        return list(seen.values())

    def payloads(self) -> dict[str, PayloadInfo]:
        found: dict[str, PayloadInfo] = {}
        for node in self._nodes.values():
            if node.registration is not None:
                for payload in node.registration.payloads:
                    found[payload.name] = payload
        return found
