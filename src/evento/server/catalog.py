"""The catalog the server keeps: bundles, their instances, components, handlers and payloads, and the servers of
the cluster, in the event store's database so a cluster shares it and a restart keeps it.

(Skeleton: filled in by the catalog work of issue 10.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evento.discovery import BundleRegistration, NodeInfo
    from evento.storage.database import Database

__all__ = ["Catalog"]


class Catalog:
    """The catalog rows of one server (shared with every server of its cluster)."""

    def __init__(self, database: Database, server_id: str) -> None:
        self.database = database
        self.server_id = server_id

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def instance_joined(self, info: NodeInfo) -> None:
        return None

    async def instance_left(self, info: NodeInfo) -> None:
        return None

    async def instance_enabled(self, info: NodeInfo, enabled: bool) -> None:
        return None

    async def record_registration(self, info: NodeInfo, registration: BundleRegistration) -> None:
        return None
