"""Shared pieces of the benchmarks: the figure record, the run settings, timing and formatting helpers."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Figure", "RunConfig", "Stopwatch", "best", "fmt", "percentile"]


@dataclass(frozen=True)
class Figure:
    """One measured figure next to the baseline it was measured against in the same run.

    ``ratio`` is ``value / baseline_value``: above 1 is better for a rate, below 1 is better for a latency.
    """

    name: str
    value: float
    unit: str
    baseline: str
    baseline_value: float
    ratio: float

    @classmethod
    def compare(cls, name: str, value: float, unit: str, baseline: str, baseline_value: float) -> Figure:
        ratio = value / baseline_value if baseline_value else math.nan
        return cls(name, round(value, 3), unit, baseline, round(baseline_value, 3), round(ratio, 3))

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunConfig:
    """What one ``python -m bench`` invocation was asked to do, and where it may write."""

    workdir: Path
    quick: bool = False
    #: Free-form facts each benchmark records for the report (settings found, sub-measurements).
    details: dict[str, Any] = field(default_factory=dict)

    def scratch(self, name: str) -> Path:
        """A fresh directory under the run's temporary directory (same disk for every measurement)."""
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=False)
        return path


class Stopwatch:
    """Wall-clock timer on ``time.perf_counter``."""

    def __enter__(self) -> Stopwatch:
        self.seconds = 0.0
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between closest ranks."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def best(trials: Sequence[float], *, higher_is_better: bool = True) -> float:
    """The best of repeated trials (the least disturbed by other work on the machine)."""
    pick: Callable[[Sequence[float]], float] = max if higher_is_better else min
    return pick(trials)


def fmt(value: float) -> str:
    """A number for the table: thousands separators for big ones, three significant decimals for small ones."""
    if math.isnan(value):
        return "nan"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"
