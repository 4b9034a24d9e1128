"""Per-lock-id locks of one server: commands sharing a lock id take turns on this server.

Across servers sharing a store the event store's cluster lock does the same (:meth:`EventStore.cluster_lock`).
"""

from __future__ import annotations

import asyncio

__all__ = ["LockManager"]


class LockManager:
    """One asyncio lock per lock id, created on demand and dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def hold(self, lock_id: str | None) -> _Held:
        """``async with locks.hold(lock_id):`` (a plain object, not a generator: this runs for every command).

        ``None`` holds nothing: a command without a lock id runs at once.
        """
        return _Held(self._locks, lock_id)

    def __len__(self) -> int:
        return len(self._locks)


class _Held:
    __slots__ = ("_lock_id", "_locks")

    def __init__(self, locks: dict[str, tuple[asyncio.Lock, int]], lock_id: str | None) -> None:
        self._locks = locks
        self._lock_id = lock_id

    async def __aenter__(self) -> None:
        lock_id = self._lock_id
        if lock_id is None:
            return
        lock, users = self._locks.get(lock_id, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[lock_id] = (lock, users + 1)
        try:
            await lock.acquire()
        except BaseException:
            self._leave(lock_id)
            raise

    async def __aexit__(self, *exc: object) -> None:
        lock_id = self._lock_id
        if lock_id is None:
            return
        self._locks[lock_id][0].release()
        self._leave(lock_id)

    def _leave(self, lock_id: str) -> None:
        lock, users = self._locks[lock_id]
        if users == 1:
            del self._locks[lock_id]
        else:
            self._locks[lock_id] = (lock, users - 1)
