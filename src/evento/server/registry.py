"""The registry: which bundle instances are connected, what they handle, and the routing table built from it."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

from evento.discovery import BundleRegistration, HandlerInfo, HandlerKind, NodeInfo, PayloadInfo
from evento.errors import NoHandlerError
from evento.transport.base import BundlePeer

__all__ = ["Node", "Registry", "Route"]

log = logging.getLogger(__name__)


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
        """Add a node; a new connection for the same instance id supersedes the old one."""
        node = Node(peer)
        key = (peer.info.bundle_id, peer.info.instance_id)
        previous = self._nodes.get(key)
        self._nodes[key] = node
        if previous is not None:
            log.warning("instance %s reconnected; the previous connection is replaced", peer.info)
        self._rebuild()
        return node

    def leave(self, node: Node) -> None:
        key = (node.info.bundle_id, node.info.instance_id)
        if self._nodes.get(key) is node:
            del self._nodes[key]
            self._rebuild()

    def mark_unreachable(self, node: Node) -> None:
        """Stop routing to a node whose connection was seen to drop (its transport reports the leave too)."""
        if node.enabled:
            node.enabled = False
            self._rebuild()

    def register(self, node: Node, registration: BundleRegistration) -> None:
        node.registration = registration
        self._rebuild()

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
        self._routes = {
            name: Route(kind, tuple(nodes.get(name, ())), name in creating) for name, kind in kinds.items()
        }

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
