"""The telemetry store: per-handler statistics and time buckets from the bundles' reports, and the server's own
phases, in the event store's database (purged after a TTL).

(Skeleton: filled in by the telemetry work of issue 10.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evento.discovery import NodeInfo
    from evento.messages import ReportTelemetry
    from evento.storage.database import Database

__all__ = ["TelemetrySettings", "TelemetryStore"]


@dataclass(frozen=True)
class TelemetrySettings:
    """``capture_rate``: the share of handler invocations bundles time (``--telemetry-rate``); ``ttl_days``: how
    long time buckets are kept (``--telemetry-ttl-days``)."""

    capture_rate: float = 1.0
    ttl_days: float = 365.0


class TelemetryStore:
    """Per-handler statistics and time buckets of one server (shared with every server of its cluster)."""

    def __init__(self, database: Database, settings: TelemetrySettings | None = None) -> None:
        self.database = database
        self.settings = settings or TelemetrySettings()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def record(self, info: NodeInfo, report: ReportTelemetry) -> None:
        return None
