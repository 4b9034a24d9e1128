"""An exclusive advisory file lock that names its holder: one owner of a file or directory at a time.

An exclusive ``flock`` on a lock file: a second holder stops at once with a :class:`~evento.errors.DataInUseError`
naming the first, whose pid and command line (secrets hidden) are written in the file. The kernel drops the lock
when its holder exits, kill -9 included, so nothing stale is left to clean up. The SQLite event store holds one
beside its file; the server holds one on its data directory (:mod:`evento.server.data_dir`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shlex
import sys
from typing import TYPE_CHECKING

from evento.errors import DataInUseError
from evento.storage.urls import without_passwords

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType

__all__ = ["FileLock"]

_SECRET_OPTION = re.compile(r"token|password|secret|key", re.IGNORECASE)
_MAX_COMMAND = 300


class FileLock:
    """An exclusive advisory lock on ``path`` (created if missing) for ``what`` it protects.

    ``acquire`` raises :class:`DataInUseError` at once when another holder has it (another process, or another
    ``FileLock`` in this one): the message names the holder.
    """

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_CLOEXEC: a child process must not keep the lock alive after this process is gone.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise DataInUseError(f"{self.what} is in use by {_describe(holder)}") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n{_command_line()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # no pid left behind to mislead a reader
            os.close(fd)  # closing drops the lock; the file stays (removing it would race with a new holder)

    def holder_pid(self) -> int | None:
        """The pid written in the lock file (by its current holder, if any)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            return _read_holder(fd)[0]
        finally:
            os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()


def _read_holder(fd: int) -> tuple[int | None, str]:
    try:
        text = os.pread(fd, 4096, 0).decode(errors="replace")
    except OSError:
        return None, ""
    first, _, rest = text.partition("\n")
    pid = int(first) if first.strip().isdigit() else None
    return pid, rest.strip()


def _describe(holder: tuple[int | None, str]) -> str:
    pid, command = holder
    if pid is None:  # between another holder's lock and its write of its pid
        return "another process"
    if pid == os.getpid():
        return f"this process (pid {pid})"
    return f"process {pid} ({command})" if command else f"process {pid}"


def _command_line() -> str:
    """This process's command line, without the values of secret-looking options or passwords in URLs."""
    words: list[str] = []
    hide_next = False
    for word in sys.orig_argv:
        if hide_next:
            words.append("***")
            hide_next = False
            continue
        option, equals, _ = word.partition("=")
        if word.startswith("-") and _SECRET_OPTION.search(option):
            words.append(f"{option}=***" if equals else word)
            hide_next = not equals
            continue
        words.append(without_passwords(word))
    return shlex.join(words)[:_MAX_COMMAND].replace("\n", " ")
