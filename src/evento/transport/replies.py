"""Replies remembered by request key, so a request resent with the same correlation id is answered, not re-run.

Both ends of the wire use it: the server for commands (exactly-once) and for replies to a caller whose connection
dropped while its request was in flight (kept until it reconnects and asks again), a bundle for the commands it
handled. A duplicate that arrives while the first run is still going joins that run instead of starting another.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["ReplyCache"]

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")


@dataclass(slots=True)
class _Entry(Generic[R]):
    reply: asyncio.Future[R]
    expires: float
    weight: int = 0


class ReplyCache(Generic[K, R]):
    """Replies by key, least recently used evicted first, each dropped ``ttl`` seconds after it was started (or
    after :meth:`settle` kept it).

    ``size`` bounds the number of entries and ``max_weight`` the sum of their weights (the weight :meth:`settle`
    gives a kept reply, e.g. its bytes). Eviction only costs a later duplicate a second run, never a lost reply to the
    first caller: whoever awaits a reply holds its future.
    """

    def __init__(self, size: int, ttl: float, *, max_weight: int | None = None) -> None:
        if size <= 0 or ttl <= 0:
            raise ValueError(f"size and ttl must be positive, got {size} and {ttl}")
        self.size, self.ttl, self.max_weight = size, ttl, max_weight
        self._entries: OrderedDict[K, _Entry[R]] = OrderedDict()
        self._weight = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: K) -> bool:
        return self._live(key, time.monotonic()) is not None

    async def run_once(self, key: K, work: Callable[[], Awaitable[R]], ttl: float | None = None) -> R:
        """The reply of the request ``key``: the first run's (waiting for it while in flight), or ``work()``'s, which
        is then remembered for ``ttl`` seconds (default: the cache's).

        The first caller runs the work itself (no task of its own): if that caller is cancelled, the duplicates
        waiting on it see the cancellation and the next duplicate runs the work again.
        """
        now = time.monotonic()
        entry = self._live(key, now)
        if entry is not None:
            self._entries.move_to_end(key)
            return await asyncio.shield(entry.reply)
        reply: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._entries[key] = _Entry(reply, now + (self.ttl if ttl is None else ttl))
        self._evict()
        try:
            result = await work()
        except Exception as exc:
            reply.set_exception(exc)
            reply.exception()  # the duplicates, if any, see it; nobody else needs to
            raise
        except BaseException:
            reply.cancel()
            self._forget(key, reply)
            raise
        reply.set_result(result)
        return result

    def settle(self, key: K, *, keep: bool, ttl: float | None = None, weigh: Callable[[R], int] | None = None) -> None:
        """After a reply was handed to its caller: keep it ``ttl`` more seconds (weighing ``weigh(reply)``), or
        drop it. A run still in flight under ``key`` (a later one) is left alone."""
        entry = self._entries.get(key)
        if entry is None or not entry.reply.done():
            return
        if not keep or entry.reply.cancelled() or entry.reply.exception() is not None:
            self._drop(key)
            return
        weight = weigh(entry.reply.result()) if weigh is not None else 0
        self._weight += weight - entry.weight
        entry.weight = weight
        entry.expires = time.monotonic() + (self.ttl if ttl is None else ttl)
        self._entries.move_to_end(key)
        self._evict()

    def _forget(self, key: K, reply: asyncio.Future[R]) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry.reply is reply:
            self._drop(key)

    def _live(self, key: K, now: float) -> _Entry[R] | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires <= now:
            self._drop(key)
            return None
        return entry

    def _drop(self, key: K) -> None:
        self._weight -= self._entries.pop(key).weight

    def _evict(self) -> None:
        now = time.monotonic()
        while self._entries:  # expired entries at the old end go first (a partial sweep, but free)
            key, entry = next(iter(self._entries.items()))
            if entry.expires > now:
                break
            self._drop(key)
        while len(self._entries) > self.size or (self.max_weight is not None and self._weight > self.max_weight):
            _, entry = self._entries.popitem(last=False)
            self._weight -= entry.weight
