"""The ``evento`` commands end a failure the operator can fix with one line and a non-zero status (issue 9, item 5).

Real processes on free ports. A driver extra that is not installed is simulated the only way a test here can: a
directory first on ``PYTHONPATH`` whose ``psycopg.py`` (or ``pymysql.py``) raises the ``ModuleNotFoundError`` an
absent package raises, so the command runs exactly as it would without ``evento-framework[postgres]``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest

import evento
from tests.helpers import free_port

pytestmark = pytest.mark.slow

#: A command refused at start exits well within this (the unreachable database waits for its 10 s pool timeout).
EXIT_DEADLINE = 60.0


@dataclass(frozen=True)
class Finished:
    code: int
    stdout: str
    stderr: str

    @property
    def last_line(self) -> str:
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else ""

    def describe(self) -> str:
        return f"exit {self.code}\nstdout:\n{self.stdout[-2000:]}\nstderr:\n{self.stderr[-4000:]}"


def evento_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Finished:
    """Run ``evento ARGS`` to its end in ``cwd``, with ``env`` added to this environment."""
    command = [sys.executable, "-m", "evento.cli", *args]
    done = subprocess.run(
        command, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=EXIT_DEADLINE
    )
    return Finished(done.returncode, done.stdout, done.stderr)


def assert_refused_in_one_line(finished: Finished, *expected: str) -> None:
    """Non-zero, no traceback, never ready, and the last line says ``evento: …`` with every ``expected`` part."""
    assert finished.code != 0, finished.describe()
    assert "Traceback" not in finished.stderr, finished.describe()
    assert "Ready." not in finished.stdout, finished.describe()
    assert finished.last_line.startswith("evento: "), finished.describe()
    for part in expected:
        assert part in finished.last_line, finished.describe()


@pytest.fixture
def occupied_port() -> Iterator[int]:
    """A port another listener holds for the whole test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def _without(tmp_path: Path, module: str) -> dict[str, str]:
    """An environment in which ``import module`` fails as it does when the package is not installed."""
    hidden = tmp_path / "hidden"
    hidden.mkdir(exist_ok=True)
    (hidden / f"{module}.py").write_text(
        f"raise ModuleNotFoundError(\"No module named '{module}'\", name='{module}')\n"
    )
    return {"PYTHONPATH": os.pathsep.join([str(hidden), *filter(None, [os.environ.get("PYTHONPATH")])])}


def _server(data_dir: Path, *extra: str) -> list[str]:
    return ["server", "--data-dir", str(data_dir), "--auth-token", "t", *extra]


def _demo(data_dir: Path, *extra: str) -> list[str]:
    return ["demo", "--data-dir", str(data_dir), "--service-delay", "0.01", *extra]


DEMO_PORTS = ("port", "bus_port", "todo_port", "app_port")
SERVER_PORTS = ("port", "bus_port")


def _ports(names: tuple[str, ...] = DEMO_PORTS, **given: int) -> list[str]:
    """``--port 0 --bus-port 0 …`` (port 0: the system picks a free one) for ``names``, except the ``given``
    ones, e.g. ``todo_port=8080``."""
    ports = {name: given.get(name, 0) for name in names}
    return [word for name, port in ports.items() for word in (f"--{name.replace('_', '-')}", str(port))]


def test_a_postgresql_store_without_the_postgres_extra_names_the_extra_and_not_the_password(tmp_path: Path) -> None:
    url = "postgresql://app:s3cret@127.0.0.1/evento"
    for command in (
        _server(tmp_path / "server", *_ports(SERVER_PORTS), "--store", url),
        _demo(tmp_path / "demo", *_ports(), "--store", url),
    ):
        finished = evento_cli(*command, cwd=tmp_path, env=_without(tmp_path, "psycopg"))
        assert_refused_in_one_line(
            finished, "--store postgresql://app:***@127.0.0.1/evento", "pip install 'evento-framework[postgres]'"
        )
        assert "s3cret" not in finished.stderr, finished.describe()


def test_a_mysql_consumer_store_without_the_mysql_extra_names_the_extra(tmp_path: Path) -> None:
    finished = evento_cli(
        *_demo(tmp_path / "demo", *_ports(), "--consumer-store", "mysql://root@127.0.0.1/test"),
        cwd=tmp_path,
        env=_without(tmp_path, "pymysql"),
    )
    assert_refused_in_one_line(
        finished, "--consumer-store mysql://root@127.0.0.1/test", "pip install 'evento-framework[mysql]'"
    )


@pytest.mark.parametrize("flag", ["--port", "--bus-port"])
def test_a_server_port_in_use_names_its_flag(tmp_path: Path, occupied_port: int, flag: str) -> None:
    command = _server(tmp_path / "data", *_ports(SERVER_PORTS, **{flag[2:].replace("-", "_"): occupied_port}))
    finished = evento_cli(*command, cwd=tmp_path)
    assert_refused_in_one_line(finished, f"{flag} {occupied_port}: ", "already in use")


@pytest.mark.parametrize(("system", "port"), [("todolist", "todo_port"), ("todolist", "port"), ("flight", "app_port")])
def test_a_demo_port_in_use_names_its_flag(tmp_path: Path, occupied_port: int, system: str, port: str) -> None:
    finished = evento_cli(*_demo(tmp_path / "data", system, *_ports(DEMO_PORTS, **{port: occupied_port})), cwd=tmp_path)
    assert_refused_in_one_line(finished, f"--{port.replace('_', '-')} {occupied_port}: ", "already in use")


def test_the_distributed_launcher_repeats_the_line_its_server_ended_with(tmp_path: Path, occupied_port: int) -> None:
    finished = evento_cli(*_demo(tmp_path / "data", "--distributed", *_ports(bus_port=occupied_port)), cwd=tmp_path)
    assert_refused_in_one_line(finished, "server exited with 1: ", f"--bus-port {occupied_port}: ", "already in use")


def test_an_unreachable_database_is_named_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql://postgres:s3cret@127.0.0.1:{free_port()}/evento"  # nothing listens there
    finished = evento_cli(*_server(tmp_path / "data", *_ports(SERVER_PORTS), "--store", url), cwd=tmp_path)
    assert_refused_in_one_line(finished, f"--store {url.replace(':s3cret@', ':***@')}: ", "cannot connect")
    assert "s3cret" not in finished.stderr, finished.describe()


def test_an_unreachable_consumer_store_of_the_demo_is_named_without_its_password(tmp_path: Path) -> None:
    """The TodoList read model lives in the consumer store's database: the first to find it unreachable."""
    url = f"mysql://root:s3cret@127.0.0.1:{free_port()}/test"  # nothing listens there
    finished = evento_cli(*_demo(tmp_path / "data", *_ports(), "--consumer-store", url), cwd=tmp_path)
    assert_refused_in_one_line(finished, f"--consumer-store {url.replace(':s3cret@', ':***@')}: ")
    assert "s3cret" not in finished.stderr, finished.describe()


def test_a_port_out_of_range_is_a_usage_error_not_another_port(tmp_path: Path) -> None:
    """A port number above 65535 used to be bound modulo 65536: the server listened where nobody asked."""
    finished = evento_cli(*_server(tmp_path / "data", "--port", "70000"), cwd=tmp_path)
    assert finished.code == 2, finished.describe()
    assert finished.last_line.endswith("argument --port: 70000 is not a TCP port (0 to 65535; 0: any free port)")


@pytest.mark.parametrize(
    ("command", "flag", "value"),
    [("server", "--store", "mongodb://db/events"), ("demo", "--consumer-store", "bogus"), ("demo", "--store", "x://")],
)
def test_a_store_url_of_no_known_form_names_its_flag(tmp_path: Path, command: str, flag: str, value: str) -> None:
    make = _server if command == "server" else _demo
    ports = _ports(SERVER_PORTS if command == "server" else DEMO_PORTS)
    finished = evento_cli(*make(tmp_path / "data", *ports, flag, value), cwd=tmp_path)
    assert_refused_in_one_line(finished, f"{flag}: ", repr(value))


@pytest.mark.parametrize(
    ("variable", "value", "flag"),
    [
        ("EVENTO_PORT", "abc", "--port"),
        ("EVENTO_LOG_LEVEL", "loud", "--log-level"),
        ("EVENTO_ES_MODE", "x", "--es-mode"),
    ],
)
def test_a_bad_value_from_the_environment_ends_in_the_usage_line(
    tmp_path: Path, variable: str, value: str, flag: str
) -> None:
    finished = evento_cli(*_server(tmp_path / "data"), cwd=tmp_path, env={variable: value})
    assert finished.code == 2, finished.describe()
    assert "Traceback" not in finished.stderr, finished.describe()
    assert f"error: argument {flag}: " in finished.last_line, finished.describe()
    assert repr(value) in finished.last_line, finished.describe()


def test_debug_logging_shows_the_traceback_before_the_line(tmp_path: Path, occupied_port: int) -> None:
    command = _server(tmp_path / "data", *_ports(SERVER_PORTS, bus_port=occupied_port))
    finished = evento_cli("--log-level", "DEBUG", *command, cwd=tmp_path)
    assert finished.code == 1, finished.describe()
    assert "Traceback" in finished.stderr, finished.describe()
    assert finished.last_line.startswith(f"evento: --bus-port {occupied_port}: "), finished.describe()


def test_version_comes_from_the_package_metadata(tmp_path: Path) -> None:
    finished = evento_cli("--version", cwd=tmp_path)
    assert finished.code == 0, finished.describe()
    assert finished.stdout.strip() == f"evento {version('evento-framework')}"
    assert evento.__version__ == version("evento-framework")
