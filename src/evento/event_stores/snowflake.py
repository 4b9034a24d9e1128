"""Snowflake ids: time-ordered 63-bit integers that servers generate without talking to each other.

Layout (reference §4.4): 41 bits of milliseconds since 2015-01-01 UTC, 10 bits of node id, 12 bits of counter.
Ids of one generator strictly increase; ids of different nodes never collide (as long as no two live generators
share a node id: the PostgreSQL store claims its node id with an advisory lock); the id of a moment is known, so
"events older than ``fetch_delay``" is a plain ``sequence_number < bound`` (see :func:`lower_bound_at`).

>>> generator = Snowflake(node_id=7)
>>> first, second = generator.next_id(), generator.next_id()
>>> second > first and (first >> 12) & 0x3FF == 7
True
>>> lower_bound_at(timestamp_ms(first)) <= first < lower_bound_at(timestamp_ms(first) + 1)
True
"""

from __future__ import annotations

import time

__all__ = ["EPOCH_MS", "MAX_NODE_ID", "Snowflake", "lower_bound_at", "timestamp_ms"]

EPOCH_MS = 1_420_070_400_000  # 2015-01-01T00:00:00Z
NODE_BITS = 10
COUNTER_BITS = 12
MAX_NODE_ID = (1 << NODE_BITS) - 1
_MAX_COUNTER = (1 << COUNTER_BITS) - 1
_TIME_SHIFT = NODE_BITS + COUNTER_BITS


def lower_bound_at(unix_ms: int) -> int:
    """The smallest id any node can generate at ``unix_ms``: every id below it was made earlier."""
    return (unix_ms - EPOCH_MS) << _TIME_SHIFT


def timestamp_ms(snowflake_id: int) -> int:
    """The Unix time in milliseconds at which ``snowflake_id`` was generated."""
    return (snowflake_id >> _TIME_SHIFT) + EPOCH_MS


class Snowflake:
    """One node's generator. Not thread-safe: the event store calls it from its single writer."""

    def __init__(self, node_id: int) -> None:
        if not 0 <= node_id <= MAX_NODE_ID:
            raise ValueError(f"snowflake node id must be within 0..{MAX_NODE_ID}, got {node_id}")
        self.node_id = node_id
        self._last_ms = 0
        self._counter = 0

    def next_id(self) -> int:
        now = time.time_ns() // 1_000_000
        if now <= self._last_ms:
            # Same millisecond, or the clock stepped back: keep counting on the last millisecond used so ids still
            # increase; when its counter is spent, borrow the next millisecond.
            now = self._last_ms
            self._counter += 1
            if self._counter > _MAX_COUNTER:
                now += 1
                self._counter = 0
        else:
            self._counter = 0
        self._last_ms = now
        return ((now - EPOCH_MS) << _TIME_SHIFT) | (self.node_id << COUNTER_BITS) | self._counter
