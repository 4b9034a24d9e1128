"""The autoscaling protocol: how a bundle instance tells the server it is bored or suffering.

The bundle calls :meth:`AutoscalingProtocol.arrival` before and :meth:`AutoscalingProtocol.departure` after every
handler execution (a command, a query, a consumer's event or group of events, an observer's event), on its event
loop. A protocol turns that stream into signals: **suffering** (more work than this instance should take: the
server may start another instance, below the bundle's maximum) and **bored** (too little: the server may stop this
one, above the bundle's minimum). What the server does with them is its own decision (``evento.server.deploy``).

>>> protocol = ThreadCountAutoscalingProtocol(max_thread_count=8, min_thread_count=1)
>>> bundle = Bundle("todolist", package="todolist", autoscaling=protocol)  # doctest: +SKIP
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

__all__ = ["AutoscalingProtocol", "Signal", "ThreadCountAutoscalingProtocol"]

log = logging.getLogger(__name__)

#: How a protocol reaches the server: called with ``True`` for suffering, ``False`` for bored (never blocks).
Signal = Callable[[bool], None]


class AutoscalingProtocol(abc.ABC):
    """Arrival and departure around every handler execution, bored and suffering signals to the server.

    Subclasses implement :meth:`arrival` and :meth:`departure` (cheap: they run on every handler execution) and
    call :meth:`send_bored_signal` / :meth:`send_suffering_signal`. The bundle binds the protocol when it starts
    (:meth:`bind`) and calls :meth:`start` and :meth:`stop` around its life; a signal before binding is dropped.
    """

    def __init__(self) -> None:
        self._signal: Signal | None = None
        self.suffering_signals = 0
        self.bored_signals = 0

    def bind(self, signal: Signal) -> None:
        """Send signals through ``signal`` from now on (the bundle's way to the server)."""
        self._signal = signal

    @abc.abstractmethod
    def arrival(self) -> None:
        """A handler execution begins."""

    @abc.abstractmethod
    def departure(self) -> None:
        """A handler execution ended (returned or raised)."""

    def start(self) -> None:
        """Start what runs in the background (a timer); called on the bundle's loop once it is connected."""

    async def stop(self) -> None:
        """Stop what :meth:`start` started."""

    def send_bored_signal(self) -> None:
        """Tell the server this instance has too little to do."""
        self.bored_signals += 1
        log.info("autoscaling: bored")
        if self._signal is not None:
            self._signal(False)

    def send_suffering_signal(self) -> None:
        """Tell the server this instance has more to do than it should take."""
        self.suffering_signals += 1
        log.info("autoscaling: suffering")
        if self._signal is not None:
            self._signal(True)


class ThreadCountAutoscalingProtocol(AutoscalingProtocol):
    """Counts in-flight handler executions and signals when the count stays out of ``[min, max]``.

    - An arrival that takes the count above ``max_thread_count`` is an overflow; ``max_overflow_count``
      consecutive overflows send one suffering signal and start counting again, so load that lasts keeps
      reminding the server (which spawns at most once per cooldown) while a short spike says nothing. An arrival
      within the bound ends the run.
    - A departure that leaves the count below ``min_thread_count`` is an underflow; ``max_underflow_count``
      consecutive underflows send one bored signal and start counting again. A departure at or above the bound
      ends the run.
    - With no departure for ``bored_timeout`` seconds and at most ``min_thread_count`` executions in flight (an
      idle instance has no departures to count), :meth:`check` sends one bored signal per ``bored_timeout``.
      The bundle calls :meth:`check` from a timer every ``bored_timeout / 4``; tests call it with their own
      ``clock``.
    """

    def __init__(
        self,
        max_thread_count: int,
        min_thread_count: int = 0,
        max_overflow_count: int = 3,
        max_underflow_count: int = 10,
        bored_timeout: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if max_thread_count < 1 or min_thread_count < 0 or min_thread_count > max_thread_count:
            raise ValueError("need 0 <= min_thread_count <= max_thread_count and max_thread_count >= 1")
        if max_overflow_count < 1 or max_underflow_count < 1 or bored_timeout <= 0:
            raise ValueError("the overflow and underflow counts must be >= 1 and bored_timeout > 0")
        self.max_thread_count = max_thread_count
        self.min_thread_count = min_thread_count
        self.max_overflow_count = max_overflow_count
        self.max_underflow_count = max_underflow_count
        self.bored_timeout = bored_timeout
        self._clock = clock
        self.thread_count = 0
        self.overflow_count = 0
        self.underflow_count = 0
        self._quiet_since = clock()
        self._timer: asyncio.Task[None] | None = None

    def arrival(self) -> None:
        self.thread_count += 1
        if self.thread_count > self.max_thread_count:
            self.underflow_count = 0
            self.overflow_count += 1
            if self.overflow_count >= self.max_overflow_count:
                self.overflow_count = 0
                self.send_suffering_signal()
        else:
            self.overflow_count = 0

    def departure(self) -> None:
        self.thread_count -= 1
        self._quiet_since = self._clock()
        if self.thread_count < self.min_thread_count:
            self.overflow_count = 0
            self.underflow_count += 1
            if self.underflow_count >= self.max_underflow_count:
                self.underflow_count = 0
                self.send_bored_signal()
        else:
            self.underflow_count = 0

    def check(self) -> None:
        """Send a bored signal when nothing departed for ``bored_timeout`` and the instance is not busy."""
        now = self._clock()
        if now - self._quiet_since >= self.bored_timeout and self.thread_count <= self.min_thread_count:
            self._quiet_since = now  # one signal per bored_timeout of idleness
            self.send_bored_signal()

    def start(self) -> None:
        self._quiet_since = self._clock()
        self._timer = asyncio.create_task(self._tick(), name="evento-autoscaling-timer")

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.bored_timeout / 4)
            self.check()
