"""The server's cache of aggregate stories, so a command on a busy aggregate does not read its story every time.

The command broker (:mod:`evento.server.broker`) fills it after every append and evicts an aggregate whenever its
cached story may be wrong (a version conflict, a failed append, a command that asks to invalidate caches).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evento.event_stores.base import Story

__all__ = ["StoryCache"]


class StoryCache:
    """LRU cache of aggregate stories with an expiry (reference defaults: 1024 entries, 150 s)."""

    def __init__(self, size: int = 1024, ttl: float = 150.0) -> None:
        self.size = size
        self.ttl = ttl
        self._entries: OrderedDict[str, tuple[Story, float]] = OrderedDict()

    def get(self, aggregate_id: str) -> Story | None:
        """The cached story, or ``None`` when there is none or it expired."""
        entry = self._entries.get(aggregate_id)
        if entry is None:
            return None
        story, expires = entry
        if expires < time.monotonic():
            del self._entries[aggregate_id]
            return None
        self._entries.move_to_end(aggregate_id)
        return story

    def put(self, aggregate_id: str, story: Story) -> None:
        """Remember ``story`` for ``ttl`` seconds, dropping the least recently used beyond ``size`` entries."""
        if self.size <= 0:
            return
        self._entries[aggregate_id] = (story, time.monotonic() + self.ttl)
        self._entries.move_to_end(aggregate_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def evict(self, aggregate_id: str) -> None:
        """Forget the aggregate's story: the next command reads it from the store."""
        self._entries.pop(aggregate_id, None)
