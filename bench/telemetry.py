"""What telemetry costs: TCP command throughput with telemetry at capture rate 1 ÷ with telemetry off, same run.

Processes as in :mod:`bench.tcp`: an ``evento server`` process (SQLite WAL, ``synchronous=FULL``, auth token) and,
in the bench process, the TodoList's ``todolist-command`` (the aggregate) and ``todolist-web`` (the invoker that
sends) bundles, each on its own TCP connection. Two server processes run side by side for the whole benchmark:
one with ``--telemetry-rate 1`` (the broker times every command's phases) and one with ``--telemetry-rate 0``; the
bundles connected to the first report telemetry at capture rate 1 every interval (aggregate requests and invoker
calls timed, sends counted), those connected to the second have it off (``TelemetryOptions(capture_rate=0)``: the
handler runner's bare path, no clock read). Everything else is the same.

Figure: ``telemetry_overhead_ratio`` = commands/s with telemetry on ÷ commands/s with it off (issue target
≥ 0.9), each the best of alternating trials (on, off, on, off, …: a disturbance on the machine hits both alike) of
64 concurrent callers sending the TodoList command mix of :mod:`bench.command_throughput` after a warm-up. The
details give every trial, the ratio of each on/off pair, and the CPU time per command of the server process and of
the bench process (both bundles and the callers) in each mode: their difference is what telemetry costs per
command, in µs, robust to other work on the machine. The reports themselves are checked: the server's telemetry
must have counted every timed command. ``hot_path_us_per_command`` is the telemetry work of one command timed alone
in this process (bundle side and server side), a floor the CPU noise of the trials cannot blur.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import timeit
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.command_throughput import _drive
from bench.common import Figure, RunConfig, Stopwatch, best
from bench.tcp import TOKEN, _cpu_seconds, _evento_server_process, _sigterm_raises
from evento import Bundle
from evento.bundle.telemetry import TelemetryOptions
from evento.demo.todolist.aggregate import TodoListAggregate
from evento.demo.todolist.invoker import TodoListInvoker
from evento.transport.connector import TcpConnector

__all__ = ["FIGURES", "run"]

FIGURES = ("telemetry_overhead_ratio",)
CALLERS = 64


@dataclass
class _Mode:
    """One side of the comparison: its server process, the bundles' telemetry, and what its trials measured."""

    name: str
    capture_rate: float
    bus: str = ""
    server_pid: int = 0
    rates: list[float] = field(default_factory=list)
    server_cpu_us: list[float] = field(default_factory=list)
    bench_cpu_us: list[float] = field(default_factory=list)
    commands_sent: int = 0


async def _trial(mode: _Mode, warmup: int, commands: int) -> None:
    """Connect the command and web bundles to ``mode``'s server, warm up, then time ``commands`` commands."""
    options = TelemetryOptions(capture_rate=mode.capture_rate)
    bundles = [
        Bundle("todolist-command", components=[TodoListAggregate], telemetry=options),
        Bundle("todolist-web", components=[TodoListInvoker], telemetry=options),
    ]
    started: list[Bundle] = []
    try:
        for bundle in bundles:
            await bundle.start(TcpConnector(mode.bus, auth_token=TOKEN))
            started.append(bundle)
        invoker = bundles[1].invoker(TodoListInvoker)
        await _drive(invoker, warmup, CALLERS)
        server_cpu, bench_cpu = _cpu_seconds(mode.server_pid), time.process_time()
        with Stopwatch() as sw:
            await _drive(invoker, commands, CALLERS)
        mode.server_cpu_us.append(1e6 * (_cpu_seconds(mode.server_pid) - server_cpu) / commands)
        mode.bench_cpu_us.append(1e6 * (time.process_time() - bench_cpu) / commands)
        mode.rates.append(commands / sw.seconds)
        mode.commands_sent += warmup + commands
        if mode.capture_rate > 0:
            # The last report of the aggregate bundle must reach the server: a collector that reports nothing
            # would cost nothing.
            assert await bundles[0].telemetry.flush(), "the telemetry report was not taken"
    finally:
        for bundle in reversed(started):
            await bundle.stop()


def _hot_path_us() -> dict[str, float]:
    """What telemetry adds to one TodoList command, timed alone in this process (best of repeats, µs): the bundle
    side (the invoker's call and the aggregate's request timed, the command counted as a send) and the server side
    (the broker's phases and the append's metrics). A floor that CPU noise cannot blur, beside the trials."""
    from time import perf_counter_ns

    from evento.bundle.telemetry import TelemetryCollector
    from evento.server.metrics import ServerMetrics
    from evento.server.phases import BrokerPhases

    collector = TelemetryCollector(TelemetryOptions())
    invocation = collector.key("TodoListInvoker", "Invoker", "InvocationHandler", "TodoListInvoker::add_todo")
    request = collector.key("TodoListAggregate", "Aggregate", "AggregateCommandHandler", "TodoListAddTodoCommand")
    phases = BrokerPhases(1.0)
    phases.on_append = ServerMetrics().observe_append

    def bundle_side() -> None:
        outer = collector.begin(invocation)
        assert outer is not None
        outer.sends["TodoListAddTodoCommand"] = outer.sends.get("TodoListAddTodoCommand", 0) + 1
        inner = collector.begin(request)
        assert inner is not None
        collector.end(inner)
        collector.end(outer)

    def server_side() -> None:
        clock = phases.begin()
        assert clock is not None
        phases.appended(perf_counter_ns(), clock)
        clock.aggregate = True
        phases.end(clock, "TodoListAddTodoCommand")

    def best_us(work: Any, n: int = 20_000) -> float:
        return min(timeit.repeat(work, number=n, repeat=5)) / n * 1e6

    result = {"bundle_side": round(best_us(bundle_side), 2), "server_side": round(best_us(server_side), 2)}
    collector.take()
    phases.take()
    return result


def run(config: RunConfig, figures: frozenset[str] = frozenset(FIGURES)) -> list[Figure]:
    trials = 2 if config.quick else 6
    warmup, commands = (5 * CALLERS, 1_000) if config.quick else (5 * CALLERS, 3_000)
    on, off = _Mode("on", 1.0), _Mode("off", 0.0)
    with (
        _sigterm_raises(),
        _evento_server_process(config.scratch("telemetry-on"), "--telemetry-rate", "1") as (on.bus, on.server_pid),
        _evento_server_process(config.scratch("telemetry-off"), "--telemetry-rate", "0") as (
            off.bus,
            off.server_pid,
        ),
    ):
        for trial in range(trials):
            # Alternate which mode goes first, so neither always runs on a warmer machine.
            for mode in (on, off) if trial % 2 == 0 else (off, on):
                asyncio.run(_trial(mode, warmup, commands))
        counted = asyncio.run(_counted_commands(config.workdir / "telemetry-on" / "events.db"))
    if counted < on.commands_sent:
        raise AssertionError(f"the server's telemetry counted {counted} commands of {on.commands_sent} sent")
    return [_figure(config, on, off, commands, counted, _hot_path_us())]


async def _counted_commands(events_db: Path) -> int:
    """The aggregate command handlings the telemetry-on server recorded (read from its database afterwards)."""
    from evento.storage.database import SQLiteDatabase

    database = SQLiteDatabase(events_db)
    await database.start()
    try:
        row = await database.fetchone(
            "SELECT SUM(arrivals) FROM evento_telemetry_handler WHERE bundle_id = ? AND handler_kind = ?",
            ("todolist-command", "AggregateCommandHandler"),
        )
    finally:
        await database.stop()
    return int(row[0] or 0) if row else 0


def _figure(
    config: RunConfig, on: _Mode, off: _Mode, commands: int, counted: int, hot_path: dict[str, float]
) -> Figure:
    pairs = [a / b for a, b in zip(on.rates, off.rates, strict=True)]
    cost: dict[str, Any] = {
        "server_process_cpu_us_per_command": {
            "on": [round(x, 1) for x in on.server_cpu_us],
            "off": [round(x, 1) for x in off.server_cpu_us],
            "median_difference": round(statistics.median(on.server_cpu_us) - statistics.median(off.server_cpu_us), 1),
        },
        "bench_process_cpu_us_per_command": {
            "on": [round(x, 1) for x in on.bench_cpu_us],
            "off": [round(x, 1) for x in off.bench_cpu_us],
            "median_difference": round(statistics.median(on.bench_cpu_us) - statistics.median(off.bench_cpu_us), 1),
        },
    }
    config.details["telemetry"] = {
        "topology": (
            "two evento server processes (SQLite WAL, synchronous=FULL), --telemetry-rate 1 and 0; per trial the "
            "todolist-command and todolist-web bundles in the bench process over TCP with TelemetryOptions "
            "capture_rate 1 or 0"
        ),
        "callers": CALLERS,
        "commands_per_trial": commands,
        "on_trials_cmd_per_s": [round(x) for x in on.rates],
        "off_trials_cmd_per_s": [round(x) for x in off.rates],
        "pair_ratios": [round(x, 3) for x in pairs],
        "median_pair_ratio": round(statistics.median(pairs), 3),
        "cpu": cost,
        "hot_path_us_per_command": hot_path,
        "commands_counted_by_telemetry": counted,
        "commands_sent_with_telemetry": on.commands_sent,
    }
    print(
        f"  telemetry: on {', '.join(f'{x:,.0f}' for x in on.rates)} cmd/s, off "
        f"{', '.join(f'{x:,.0f}' for x in off.rates)} cmd/s; CPU per command (median on - off): server "
        f"{cost['server_process_cpu_us_per_command']['median_difference']} µs, bench "
        f"{cost['bench_process_cpu_us_per_command']['median_difference']} µs; hot path alone: bundles "
        f"{hot_path['bundle_side']} µs, server {hot_path['server_side']} µs",
        file=sys.stderr,
        flush=True,
    )
    return Figure.compare(
        "telemetry_overhead_ratio", best(on.rates), "cmd/s", "telemetry_off_cmd_per_s", best(off.rates)
    )
