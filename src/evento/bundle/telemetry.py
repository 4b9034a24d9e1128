"""Telemetry, bundle side: handler service times and what each handling sent, aggregated locally and shipped to
the server as one report per interval (never a message per invocation), sampled by a capture rate.

(Skeleton: filled in by the telemetry work of issue 10.)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TelemetryCollector", "TelemetryOptions"]


@dataclass(frozen=True)
class TelemetryOptions:
    """``capture_rate``: the share of invocations timed (0 turns telemetry off); ``interval``: seconds between
    reports."""

    capture_rate: float = 1.0
    interval: float = 5.0


class TelemetryCollector:
    """Aggregates this instance's handler telemetry and ships it once per interval."""

    def __init__(self, options: TelemetryOptions | None = None) -> None:
        self.options = options or TelemetryOptions()

    def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
