"""One process owns a data directory, and one server an SQLite event store file, at a time.

A second ``evento demo`` or ``evento server`` on the same directory would write the same files: every write of
one would then fail (UNIQUE constraint errors) or, worse, interleave with the other's. An exclusive ``flock`` on
a lock file (``DATA_DIR/.lock``; ``<file>.lock`` beside an SQLite event store) makes the second process stop at
start with a :class:`~evento.errors.DataInUseError` naming the holder, whose pid and command line are written in
the lock file. The kernel drops the lock when its holder exits, kill -9 included, so nothing stale is left to
clean up.

What is not locked, on purpose: consumer state stores and read models in SQLite files. Replicas of a bundle
share them across processes (the distributed demo does), and SQLite serialises their writes itself.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from evento.errors import DataInUseError
from evento.storage.file_lock import FileLock

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["hold_data_dir"]

_held_dirs: dict[Path, FileLock] = {}


def hold_data_dir(data_dir: Path) -> FileLock | None:
    """Hold ``DATA_DIR/.lock`` for the rest of this process (``release()`` ends it earlier).

    Raises :class:`DataInUseError` naming the process that holds it. Calling it again in the same process is a
    no-op. A process whose parent holds the directory shares it and takes nothing (returns ``None``): the
    distributed demo's launcher owns its directory and starts its server there.
    """
    directory = data_dir.resolve()
    held = _held_dirs.get(directory)
    if held is not None and held.held:
        return held
    lock = FileLock(directory / ".lock", f"data directory {directory}")
    try:
        lock.acquire()
    except DataInUseError:
        if lock.holder_pid() == os.getppid():
            return None
        raise
    _held_dirs[directory] = lock
    return lock
