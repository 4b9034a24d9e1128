"""One process owns a data directory, and one server an SQLite event store file (issue 8, finding 7).

A second ``evento demo`` or ``evento server`` on the same directory used to start, and every write of it then
failed with a UNIQUE constraint error. Real processes on free ports here: the second one exits non-zero with one
line naming the holder's pid, and the first keeps serving.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from evento import Bundle, DataInUseError
from evento.event_stores import SQLiteEventStore
from evento.transport.connector import TcpConnector
from tests.bank import Account, OpenAccount
from tests.helpers import free_port, wait_until

pytestmark = pytest.mark.slow

READY_DEADLINE = 30.0
EXIT_DEADLINE = 30.0
AUTH = {"Authorization": "Bearer alice"}


@dataclass
class Process:
    """An ``evento`` command line run as a process, its stdout and stderr in files under ``logs``."""

    args: list[str]
    logs: Path
    name: str
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{self.name}.out", "wb") as out, open(self.logs / f"{self.name}.err", "wb") as err:
            command = [sys.executable, "-m", "evento.cli", "--log-level", "WARNING", *self.args]
            self.process = subprocess.Popen(command, stdout=out, stderr=err)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stdout(self) -> str:
        return (self.logs / f"{self.name}.out").read_text(errors="replace")

    def stderr(self) -> str:
        return (self.logs / f"{self.name}.err").read_text(errors="replace")

    def describe(self) -> str:
        return f"{self.name} stdout:\n{self.stdout()}\nstderr:\n{self.stderr()[-3000:]}"

    async def ready(self) -> None:
        def printed_ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"exited with {self.process.returncode} before Ready.\n{self.describe()}")
            return "Ready." in self.stdout()

        await wait_until(printed_ready, READY_DEADLINE, what=f"Ready. from {self.name}")

    async def exit_code(self) -> int:
        process = self.process
        assert process is not None
        await wait_until(lambda: process.poll() is not None, EXIT_DEADLINE, what=f"{self.name} exits")
        return process.returncode

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, sig)
            self.process.wait(timeout=15)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[Process]]:
    """Processes a test starts; those still running at teardown are stopped."""
    made: list[Process] = []
    yield made
    for process in made:
        process.stop(signal.SIGKILL)


def _demo(data_dir: Path, logs: Path, name: str) -> tuple[Process, str, str]:
    port, todo_port = free_port(), free_port()
    args = ["demo", "--data-dir", str(data_dir), "--port", str(port), "--bus-port", str(free_port()),
            "--todo-port", str(todo_port), "--service-delay", "0.01"]  # fmt: skip
    return Process(args, logs, name), f"http://127.0.0.1:{port}", f"http://127.0.0.1:{todo_port}"


def _server(data_dir: Path, logs: Path, name: str, *extra: str) -> tuple[Process, str, str]:
    port, bus_port = free_port(), free_port()
    args = ["server", "--data-dir", str(data_dir), "--port", str(port), "--bus-port", str(bus_port), *extra]
    return Process(args, logs, name), f"http://127.0.0.1:{port}", f"127.0.0.1:{bus_port}"


async def _refused_naming(second: Process, holder: Process, what: str) -> None:
    """``second`` exits non-zero, its last words one line naming ``what`` and the holder's pid, no traceback."""
    code = await second.exit_code()
    assert code != 0, second.describe()
    assert "Traceback" not in second.stderr(), second.describe()
    last = second.stderr().strip().splitlines()[-1]
    assert last.startswith(f"evento: {what} process {holder.pid} ("), second.describe()
    assert "Ready." not in second.stdout(), second.describe()


async def test_a_second_demo_on_a_data_directory_exits_naming_the_first_which_keeps_serving(
    tmp_path: Path, processes: list[Process]
) -> None:
    data_dir = tmp_path / "data"
    first, server_url, todo_url = _demo(data_dir, tmp_path / "logs", "first")
    second, _, _ = _demo(data_dir, tmp_path / "logs", "second")
    processes += [first, second]
    first.start()
    await first.ready()
    second.start()
    await _refused_naming(second, first, f"data directory {data_dir.resolve()} is in use by")
    async with httpx.AsyncClient(timeout=10.0) as client:
        assert (await client.get(f"{server_url}/api/health")).status_code == 200
        created = await client.post(f"{todo_url}/todo-list/", json={"name": "still served"}, headers=AUTH)
        assert created.status_code == 201, created.text


async def test_a_second_server_on_a_data_directory_exits_naming_the_first_and_a_killed_holder_frees_it(
    tmp_path: Path, processes: list[Process]
) -> None:
    """The same for ``evento server``; and the kernel drops the lock of a process killed with SIGKILL, so the
    directory is usable again at once (no stale lock to remove by hand)."""
    data_dir = tmp_path / "data"
    first, http, bus = _server(data_dir, tmp_path / "logs", "first")
    second, _, _ = _server(data_dir, tmp_path / "logs", "second")
    processes += [first, second]
    first.start()
    await first.ready()
    second.start()
    await _refused_naming(second, first, f"data directory {data_dir.resolve()} is in use by")
    async with httpx.AsyncClient(timeout=10.0) as client:
        assert (await client.get(f"{http}/api/health")).status_code == 200
    accounts = Bundle("accounts", components=[Account])
    await accounts.start(TcpConnector(bus))
    try:
        commands, _ = accounts.gateways(None)
        await commands.send(OpenAccount(account="A"))
    finally:
        await accounts.stop()
    first.stop(signal.SIGKILL)
    third, _, _ = _server(data_dir, tmp_path / "logs", "third")
    processes.append(third)
    third.start()
    await third.ready()


async def test_a_second_server_on_the_same_sqlite_event_store_file_exits_naming_the_first(
    tmp_path: Path, processes: list[Process]
) -> None:
    """Two servers with data directories of their own but ``--store`` on one SQLite file: the second is refused."""
    store = f"sqlite:///{tmp_path / 'shared' / 'events.db'}"
    first, http, _ = _server(tmp_path / "a", tmp_path / "logs", "first", "--store", store)
    second, _, _ = _server(tmp_path / "b", tmp_path / "logs", "second", "--store", store)
    processes += [first, second]
    first.start()
    await first.ready()
    second.start()
    await _refused_naming(second, first, f"event store {tmp_path / 'shared' / 'events.db'} is in use by")
    async with httpx.AsyncClient(timeout=10.0) as client:
        assert (await client.get(f"{http}/api/health")).status_code == 200


async def test_two_event_stores_on_one_sqlite_file_in_one_process_are_refused_until_the_first_stops(
    tmp_path: Path,
) -> None:
    first = SQLiteEventStore(tmp_path / "events.db")
    second = SQLiteEventStore(tmp_path / "events.db")
    await first.start()
    try:
        with pytest.raises(DataInUseError, match=f"is in use by this process \\(pid {os.getpid()}\\)"):
            await second.start()
    finally:
        await first.stop()
    await second.start()  # the first released the file when it stopped
    await second.stop()
