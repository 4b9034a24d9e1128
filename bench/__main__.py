"""``python -m bench``: run the benchmarks, print the table, write ``.bench/results.json``.

Every figure is measured next to its baseline in the same run, with all files under one temporary directory
(same machine, same disk). ``--only`` takes a figure name or a benchmark name (``commands``, ``latency``,
``append``, ``tcp``, ``postgres``, ``examples``, ``model``, ``telemetry``, ``gui``, ``gui_graph``) and may be
repeated; ``--quick`` shrinks the counts for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import (
    command_throughput,
    examples,
    gui,
    gui_graph,
    model_prediction,
    postgres,
    projection_latency,
    store_append,
    tcp,
    telemetry,
)
from bench.common import Figure, RunConfig, fmt


@dataclass(frozen=True)
class Benchmark:
    name: str
    figures: tuple[str, ...]
    run: Callable[[RunConfig, frozenset[str]], list[Figure]]


BENCHMARKS = (
    Benchmark("commands", command_throughput.FIGURES, command_throughput.run),
    Benchmark("latency", projection_latency.FIGURES, projection_latency.run),
    Benchmark("append", store_append.FIGURES, store_append.run),
    Benchmark("tcp", tcp.FIGURES, tcp.run),
    Benchmark("postgres", postgres.FIGURES, postgres.run),
    Benchmark("examples", examples.FIGURES, examples.run),
    Benchmark("model", model_prediction.FIGURES, model_prediction.run),
    Benchmark("telemetry", telemetry.FIGURES, telemetry.run),
    Benchmark("gui", gui.FIGURES, gui.run),
    Benchmark("gui_graph", gui_graph.FIGURES, gui_graph.run),
)
ALL_FIGURES = tuple(name for benchmark in BENCHMARKS for name in benchmark.figures)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller counts, one trial each (smoke run)")
    choices = [b.name for b in BENCHMARKS] + list(ALL_FIGURES)
    parser.add_argument(
        "--only", action="append", metavar="NAME", choices=choices, help=f"run only this (one of: {', '.join(choices)})"
    )
    parser.add_argument("--output", type=Path, default=Path(".bench/results.json"), help="where to write the JSON")
    return parser.parse_args(argv)


def _selection(only: list[str] | None) -> list[tuple[Benchmark, frozenset[str]]]:
    selected = []
    for benchmark in BENCHMARKS:
        if not only or benchmark.name in only:
            figures = frozenset(benchmark.figures)
        else:
            figures = frozenset(name for name in benchmark.figures if name in only)
        if figures:
            selected.append((benchmark, figures))
    return selected


def _table(figures: list[Figure]) -> str:
    header = ("figure", "value", "unit", "baseline", "baseline value", "ratio")
    rows = [header] + [
        (f.name, fmt(f.value), f.unit, f.baseline, fmt(f.baseline_value), f"{f.ratio:.3f}") for f in figures
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    right = {1, 4, 5}
    lines = []
    for n, row in enumerate(rows):
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.WARNING)
    figures: list[Figure] = []
    started = time.perf_counter()
    details: dict[str, Any] = {"machine": _machine(), "quick": args.quick}
    with tempfile.TemporaryDirectory(prefix="evento-bench-") as tmp:
        details["machine"]["tempdir"] = tmp
        config = RunConfig(Path(tmp), quick=args.quick, details=details)
        for benchmark, names in _selection(args.only):
            print(f"running {benchmark.name} ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            figures.extend(benchmark.run(config, names))
            print(f"  {benchmark.name} took {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    details["seconds"] = round(time.perf_counter() - started, 1)
    print(_table(figures))
    print(f"\n({details['seconds']}s{', quick' if args.quick else ''}; details in {args.output})")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"figures": [f.as_json() for f in figures], "details": details}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
