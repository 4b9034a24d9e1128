"""Telemetry, bundle side: handler service times and what each handling sent, aggregated locally and shipped to
the server as one report per interval (never a message per invocation), sampled by a capture rate.

Every handler kind is timed where its whole handling is visible:

* aggregate command, service command and projection query handlers per request
  (:mod:`evento.bundle.request_handlers`): decoding the payload, an aggregate's replay of its story and the
  encoding of its event, the handler — the bundle's share of a command as the server's performance model sees it;
* projector, saga and observer event handlers per event, dead-queue replays included
  (:class:`~evento.bundle.calls.HandlerRunner`): the handler call itself (on its worker thread for a plain ``def``);
* invoker invocation handlers per call (``Bundle.invoker``).

A consumer's handlers are not all of its work: each report also carries, per consumer engine, the events it
consumed and its busy time (from taking an event, or a group of them, to its checkpoint committed: thread hops,
the commit, a saga's state, an observer's claim; waits for new events, between retries and for an observer slot
left out). The server subtracts the handlers' time from it for the consumer's overhead per event.

The hot path holds a :class:`TelemetryKey` per handler and calls :meth:`TelemetryCollector.begin` and
:meth:`~TelemetryCollector.end` around the handling. With a capture rate of 0 nothing calls them at all (the
runner keeps its bare path). Below 1, each handling is timed with that probability; every handling counts as an
arrival either way, so arrival rates stay exact while service times are sampled. A sampled handling also counts
what it sent: its gateways are given the sample's ``sends`` dict (commands and queries by payload type).

Counts are aggregated per (component, handler kind, payload) in memory — on the event loop without a lock, from
worker threads (plain handlers) under one — and swapped out once per interval into one
:class:`~evento.messages.ReportTelemetry`, with the positions of this instance's consumers. Shipping runs in a
task of its own with a deadline: a report the server does not take (restarting, unreachable) is dropped and
logged, never retried, and no handler ever waits for it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import threading
import time
from dataclasses import dataclass
from time import perf_counter_ns
from typing import TYPE_CHECKING

from evento.messages import Accepted, ConsumerTelemetry, HandlerTelemetry, ReportTelemetry, now_ms

if TYPE_CHECKING:
    from collections.abc import Mapping

    from evento.bundle.consumers import ConsumerEngine
    from evento.bundle.outbox import Send
    from evento.components.model import HandlerSpec

__all__ = ["TelemetryCollector", "TelemetryKey", "TelemetryOptions", "TelemetrySample"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TelemetryOptions:
    """``capture_rate``: the share of handler invocations timed, 0 to 1 (0 turns telemetry off: no clock is read,
    nothing is reported); ``interval``: seconds between reports; ``report_timeout``: seconds a report may take to
    reach the server before it is dropped."""

    capture_rate: float = 1.0
    interval: float = 5.0
    report_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.capture_rate <= 1.0:
            raise ValueError(f"the telemetry capture rate must be between 0 and 1, not {self.capture_rate}")
        if not self.interval > 0:
            raise ValueError(f"the telemetry interval must be positive, not {self.interval}")
        if not self.report_timeout > 0:
            raise ValueError(f"the telemetry report timeout must be positive, not {self.report_timeout}")


class TelemetryKey:
    """One handler as telemetry names it; compared by identity (one per handler, made once)."""

    __slots__ = ("component", "component_kind", "handler_kind", "payload")

    def __init__(self, component: str, component_kind: str, handler_kind: str, payload: str) -> None:
        self.component = component
        self.component_kind = component_kind
        self.handler_kind = handler_kind
        self.payload = payload


class TelemetrySample(tuple[TelemetryKey, int, dict[str, int]]):
    """One timed handling: its key, when it began (``perf_counter_ns``) and what it sent (payload type -> count,
    filled by its gateways). A tuple: one is made per timed handling, and a tuple is the cheapest record."""

    __slots__ = ()

    @property
    def key(self) -> TelemetryKey:
        return self[0]

    @property
    def start(self) -> int:
        return self[1]

    @property
    def sends(self) -> dict[str, int]:
        return self[2]


_new_sample = tuple.__new__
#: Seconds the last report, made when the bundle stops, may take.
_LAST_REPORT_TIMEOUT = 1.0
#: Handlings finished on worker threads that are folded into the tallies at once (bounds the deque's memory).
_FOLD_AT = 1024


class _Tally:
    """What one handler did in the current interval (times in nanoseconds)."""

    __slots__ = ("arrivals", "count", "last", "maximum", "minimum", "sends", "total")

    def __init__(self) -> None:
        self.arrivals = 0
        self.count = 0
        self.total = 0
        self.minimum = 0
        self.maximum = 0
        self.last = 0
        self.sends: dict[str, int] = {}


class TelemetryCollector:
    """Aggregates this instance's handler telemetry and ships it once per interval (see the module docstring).

    ``enabled`` is false at a capture rate of 0: callers then skip it entirely.
    """

    def __init__(self, options: TelemetryOptions | None = None) -> None:
        self.options = options = options or TelemetryOptions()
        self.enabled = options.capture_rate > 0
        self._rate = options.capture_rate
        self._always = options.capture_rate >= 1.0
        self._random = random.random
        self._lock = threading.Lock()
        self._keys: dict[int, TelemetryKey] = {}
        self._named: dict[tuple[str, str, str, str], TelemetryKey] = {}
        self._tallies: dict[TelemetryKey, _Tally] = {}
        # Handlings finished on worker threads, not yet in the tallies: a sample with its end, or a key (an arrival
        # not timed) with 0.
        self._finished: collections.deque[tuple[TelemetrySample | TelemetryKey, int]] = collections.deque()
        self._since = now_ms()
        self._send: Send | None = None
        self._consumers: Mapping[str, ConsumerEngine] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        #: Reports the server took, and reports dropped (not taken within the timeout, or refused).
        self.reports_sent = 0
        self.reports_dropped = 0

    # --- naming handlers -------------------------------------------------------------------------------------

    def key(self, component: str, component_kind: str, handler_kind: str, payload: str) -> TelemetryKey:
        """The key of a handler named by its component, kinds and handled payload (the same key every time)."""
        name = (component, str(component_kind), str(handler_kind), payload)
        found = self._named.get(name)
        if found is None:
            found = self._named.setdefault(name, TelemetryKey(*name))
        return found

    def key_of(self, handler: HandlerSpec) -> TelemetryKey:
        """The key of a component's handler (cached by the handler's identity: handlers live as long as the
        bundle)."""
        found = self._keys.get(id(handler))
        if found is None:
            component = handler.component
            found = self.key(component.name, component.kind, handler.kind, handler.payload_name)
            self._keys[id(handler)] = found
        return found

    # --- the hot path ----------------------------------------------------------------------------------------
    #
    # Handlings on the bundle's event loop (requests, invokers called from async code, async consumer handlers)
    # update the tallies without a lock: the loop is also where the tallies are taken, so nothing interleaves.
    # Plain handlers finish on worker threads (replays run them by the thousand) and use the ``_threadsafe`` pair:
    # each handling is appended to a deque (atomic, no lock) and folded into the tallies under the lock, by the
    # thread that fills the deque past a bound or when the tallies are taken. The two kinds never share a handler
    # (a handler is either ``async def`` or not), so a fold never touches a tally the loop is updating.

    def begin(self, key: TelemetryKey) -> TelemetrySample | None:
        """A handling of ``key`` begins (on the event loop): its sample when this one is timed, else ``None`` (its
        arrival is counted here, so arrivals stay exact at any capture rate)."""
        if self._always or self._random() < self._rate:
            return _new_sample(TelemetrySample, (key, perf_counter_ns(), {}))
        self._arrive(key)
        return None

    def end(self, sample: TelemetrySample) -> None:
        """A timed handling ended (on the event loop), whether it succeeded or raised: add its service time and
        sends."""
        # _add written out: this runs for every timed request and invocation, and a call costs what the rest does.
        key, start, sends = sample
        elapsed = perf_counter_ns() - start
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = _Tally()
        tally.arrivals += 1
        if tally.count == 0 or elapsed < tally.minimum:
            tally.minimum = elapsed
        if elapsed > tally.maximum:
            tally.maximum = elapsed
        tally.count += 1
        tally.total += elapsed
        tally.last = elapsed
        if sends:
            counted = tally.sends
            for name, n in sends.items():
                counted[name] = counted.get(name, 0) + n

    def sampled(self) -> bool:
        """Whether the next handling is timed (the capture rate's draw)."""
        return self._always or self._random() < self._rate

    def add_tallies(self, tallies: dict[TelemetryKey, list[int]]) -> None:
        """Handlings counted by their caller, from any thread: per handler ``[timed, total ns, min ns, max ns, last
        ns, arrivals]`` (a group of replayed events, counted by the runner as it ran them)."""
        with self._lock:
            for key, (count, total, minimum, maximum, last, arrivals) in tallies.items():
                tally = self._tallies.get(key)
                if tally is None:
                    tally = self._tallies[key] = _Tally()
                tally.arrivals += arrivals
                if count:
                    if tally.count == 0 or minimum < tally.minimum:
                        tally.minimum = minimum
                    if maximum > tally.maximum:
                        tally.maximum = maximum
                    tally.count += count
                    tally.total += total
                    tally.last = last

    def begin_threadsafe(self, key: TelemetryKey) -> TelemetrySample | None:
        """:meth:`begin` from any thread."""
        if self._always or self._random() < self._rate:
            return _new_sample(TelemetrySample, (key, perf_counter_ns(), {}))
        finished = self._finished
        finished.append((key, 0))
        if len(finished) >= _FOLD_AT:
            self._fold()
        return None

    def end_threadsafe(self, sample: TelemetrySample) -> None:
        """:meth:`end` from any thread."""
        finished = self._finished
        finished.append((sample, perf_counter_ns()))
        if len(finished) >= _FOLD_AT:
            self._fold()

    def _fold(self) -> None:
        """Move what worker threads finished into the tallies."""
        finished = self._finished
        with self._lock:
            while finished:
                item, ended = finished.popleft()
                if isinstance(item, TelemetrySample):
                    self._add(item, ended)
                else:
                    self._arrive(item)

    def _arrive(self, key: TelemetryKey) -> None:
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = _Tally()
        tally.arrivals += 1

    def _add(self, sample: TelemetrySample, ended: int) -> None:
        key, start, sends = sample
        tally = self._add_elapsed(key, ended - start)
        if sends:
            counted = tally.sends
            for name, n in sends.items():
                counted[name] = counted.get(name, 0) + n

    def _add_elapsed(self, key: TelemetryKey, elapsed: int) -> _Tally:
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = _Tally()
        tally.arrivals += 1
        if tally.count == 0 or elapsed < tally.minimum:
            tally.minimum = elapsed
        if elapsed > tally.maximum:
            tally.maximum = elapsed
        tally.count += 1
        tally.total += elapsed
        tally.last = elapsed
        return tally

    # --- reports ---------------------------------------------------------------------------------------------

    def take(self) -> tuple[int, int, list[HandlerTelemetry]]:
        """The interval so far (start and end in epoch milliseconds) with what each handler did, and start a new
        one."""
        self._fold()
        with self._lock:
            tallies, self._tallies = self._tallies, {}
            since, self._since = self._since, now_ms()
            until = self._since
        handlers = [
            HandlerTelemetry(
                component=key.component,
                component_kind=key.component_kind,
                handler_kind=key.handler_kind,
                payload=key.payload,
                count=tally.count,
                total_ms=tally.total / 1e6,
                min_ms=tally.minimum / 1e6,
                max_ms=tally.maximum / 1e6,
                last_ms=tally.last / 1e6,
                arrivals=tally.arrivals,
                sends=tally.sends,
            )
            for key, tally in tallies.items()
        ]
        return since, until, handlers

    def take_loads(self) -> dict[str, tuple[int, float]]:
        """Each consumer's events consumed and busy milliseconds since the last report, taken from its engine
        (and started anew). Taken right after the handlers' tallies, with no ``await`` between, so a report's busy
        time and its handlers' time cover the same handlings."""
        return {engine.consumer_id: engine.take_load() for engine in list(self._consumers.values())}

    async def consumer_positions(self, loads: Mapping[str, tuple[int, float]] | None = None) -> list[ConsumerTelemetry]:
        """Where each consumer of this instance stands (read from its engine and consumer store), with its load
        over the interval from ``loads`` (:meth:`take_loads`)."""
        positions = []
        for engine in list(self._consumers.values()):
            events, busy_ms = (loads or {}).get(engine.consumer_id, (0, 0.0))
            try:
                status = await engine.describe()
            except Exception as exc:  # a store that is down: its consumers are left out of this report
                log.debug("no telemetry position for consumer %s: %s", engine.consumer_id, exc)
                continue
            positions.append(
                ConsumerTelemetry(
                    consumer_id=status.consumer_id,
                    checkpoint=status.checkpoint,
                    dead_events=status.dead_events,
                    enabled=status.enabled,
                    holds_lock=engine.holds_lock,
                    error_count=status.error.error_count,
                    component=engine.spec.name,
                    events=events,
                    busy_ms=busy_ms,
                )
            )
        return positions

    async def flush(self, timeout: float | None = None) -> bool:
        """Ship what was collected since the last report now, as one report; whether the server took it within
        ``timeout`` seconds (default ``report_timeout``). A report that fails or times out is dropped (what it held
        is lost: telemetry is a measurement, not a ledger)."""
        send = self._send
        if send is None:
            return False
        since, until, handlers = self.take()
        consumers = await self.consumer_positions(self.take_loads())
        # Sent even when empty: an interval without handlings is what brings the arrival rates down.
        report = ReportTelemetry(since, until, handlers, consumers)
        timeout = self.options.report_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(timeout):
                answer = await send(report, timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.reports_dropped += 1
            log.info("telemetry report of %d handlers dropped: %r", len(handlers), exc)
            return False
        if not isinstance(answer, Accepted):
            self.reports_dropped += 1
            log.info("telemetry report refused: %r", answer)
            return False
        self.reports_sent += 1
        return True

    # --- lifecycle -------------------------------------------------------------------------------------------

    def start(self, send: Send, consumers: Mapping[str, ConsumerEngine]) -> None:
        """Report every ``interval`` through ``send`` (the bundle's outbox), with the positions of ``consumers``
        (the bundle's engines, read when each report is made). Nothing starts at a capture rate of 0."""
        if not self.enabled or self._task is not None:
            return
        self._send = send
        self._consumers = consumers
        self._stopping = asyncio.Event()
        self.take()  # what was counted before the bundle connected belongs to no interval it reports
        self.take_loads()
        self._task = asyncio.create_task(self._report_every_interval(), name="evento-telemetry")

    async def stop(self) -> None:
        """Stop reporting after one last report of what is left, given a second at most: a bundle stopping
        because its server is gone must not wait for it."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        task.cancel()  # a report in flight is dropped; the last one below carries what is left
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(Exception):
            await self.flush(min(self.options.report_timeout, _LAST_REPORT_TIMEOUT))
        self._send = None
        self._consumers = {}

    async def _report_every_interval(self) -> None:
        interval = self.options.interval
        next_at = time.monotonic() + interval
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), max(0.0, next_at - time.monotonic()))
            if self._stopping.is_set():
                return
            next_at += interval
            try:
                await self.flush()
            except Exception:
                log.exception("telemetry report failed")
            # A report that took longer than an interval does not make the next ones pile up.
            next_at = max(next_at, time.monotonic())
