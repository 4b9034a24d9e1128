"""``evento demo --distributed --managed`` as a real process: the launcher starts only the server, which starts
the four TodoList bundles itself through its deploy script; ``kill -9`` of a bundle process is answered by the
server starting a replacement, and the TodoList's HTTP API still takes commands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import free_port, wait_until

pytestmark = pytest.mark.slow

PASSWORD = "managed-demo-admin"
BUNDLES = {"todolist-command", "todolist-query", "todolist-saga", "todolist-web"}
AUTH = {"Authorization": "Bearer alice"}


async def _online(api: httpx.AsyncClient) -> dict[str, list[str]]:
    view = (await api.get("/api/cluster-status/view")).json()
    found: dict[str, list[str]] = {}
    for instance in view["instances"]:
        found.setdefault(instance["bundleId"], []).append(instance["instanceId"])
    return found


def _pid_of(data_dir: Path, instance_id: str) -> int:
    (pid_file,) = (data_dir / "bundles").glob(f"*/{instance_id}.pid")
    return int(pid_file.read_text())


async def test_the_server_runs_the_todolist_and_replaces_a_killed_bundle(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    port, bus_port, todo_port = free_port(), free_port(), free_port()
    out = tmp_path / "demo.out"
    command = [sys.executable, "-m", "evento.cli", "--log-level", "WARNING", "demo", "--distributed", "--managed",
               "--data-dir", str(data_dir), "--port", str(port), "--bus-port", str(bus_port), "--todo-port",
               str(todo_port), "--service-delay", "0.01", "--admin-password", PASSWORD]  # fmt: skip
    with open(out, "wb") as sink:
        demo = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", auth=("admin", PASSWORD), timeout=15)
    todo = httpx.AsyncClient(base_url=f"http://127.0.0.1:{todo_port}", timeout=15)
    try:

        def ready() -> bool:
            if demo.poll() is not None:
                raise AssertionError(f"demo exited early:\n{out.read_text()}")
            return "Ready." in out.read_text()

        await wait_until(ready, 30, what="the demo's Ready.")
        assert "started by the server" in out.read_text()

        async def all_online() -> bool:
            return set(await _online(api)) >= BUNDLES

        await wait_until(all_online, 45, interval=0.2, what="every TodoList bundle online")
        deployment: dict[str, Any] = (await api.get("/api/bundle/todolist-command/deployment")).json()
        assert (deployment["minInstances"], deployment["maxInstances"], deployment["autorun"]) == (1, 3, True)
        assert deployment["entryPoint"] == "evento.demo.distributed:managed_command"

        for bundle in ("todolist-command", "todolist-query"):  # the write side and the read model's projector
            (victim,) = (await _online(api))[bundle]
            os.kill(_pid_of(data_dir, victim), signal.SIGKILL)

            async def replaced(bundle: str = bundle, victim: str = victim) -> bool:
                now = (await _online(api)).get(bundle, [])
                return len(now) == 1 and now[0] != victim

            await wait_until(replaced, 30, interval=0.2, what=f"a replacement of {bundle}")
            decisions = (await api.get(f"/api/bundle/{bundle}/deployment")).json()["decisions"]
            assert any(d["action"] == "lost" and d["instanceId"] == victim for d in decisions)

        async def created() -> str | None:
            answer = await todo.post("/todo-list/", json={"name": "after the kill"}, headers=AUTH)
            return str(answer.json()["identifier"]) if answer.status_code in (200, 201) else None

        identifier = await _first(created)

        async def readable() -> bool:
            answer = await todo.get(f"/todo-list/{identifier}", headers=AUTH)
            return answer.status_code == 200 and answer.json()["name"] == "after the kill"

        await wait_until(readable, 20, interval=0.2, what="the new list in the read model")
    finally:
        await api.aclose()
        await todo.aclose()
        started = [int(path.read_text()) for path in (data_dir / "bundles").glob("*/*.pid")]
        if demo.poll() is None:
            demo.send_signal(signal.SIGTERM)
            demo.wait(timeout=40)
    # The launcher stopped what the server started: no bundle process of this run is left.
    assert len(started) == 4
    assert [pid for pid in started if Path(f"/proc/{pid}").exists()] == []
    assert not list((data_dir / "bundles").glob("*/*.pid"))


async def _first(make: Any) -> str:
    """The first truthy answer of ``make`` within 20 s (the web bundle may still be starting its consumers)."""
    found: list[str] = []

    async def attempt() -> bool:
        value = await make()
        if value:
            found.append(value)
        return bool(value)

    await wait_until(attempt, 20, interval=0.2, what="a TodoList command accepted")
    return found[0]
