"""The server runs bundles itself (issue 12): real ``evento server`` processes starting ``tests.deploy_sample``
through the built-in local spawner or a deploy script, over TCP.

- deployed through the API, the instance registers and serves commands; ``kill -9`` of it is replaced within
  seconds and no acknowledged command is lost; a graceful kill leaves no consumer lock held;
- a bounded burst makes the bundle suffer: a second instance appears in the cluster view; idle, the extra
  instance is bored and the bundle is back to its minimum;
- a deploy script that fails is a clear error in the API and the log, retried with a backoff, not in a storm.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from evento import Bundle
from evento.consumer_stores.sqlite import SQLiteConsumerStateStore
from evento.transport.connector import TcpConnector
from tests.deploy_sample import Count, Work
from tests.helpers import ServerProcess, start_server_process, stop_server_process, wait_until
from tests.ticks import Ticker

pytestmark = pytest.mark.slow

TOKEN = "deploy-tests-token"
PASSWORD = "deploy-tests-admin"
CONSUMER = "sample_Tally_1_default"
SAMPLE = {"entryPoint": "tests.deploy_sample:build", "minInstances": 1, "maxInstances": 2, "autorun": True}


class Running:
    """A server process, an admin client of its API and a bundle of the test sending commands over its bus."""

    def __init__(self, process: ServerProcess, admin: httpx.AsyncClient, caller: Bundle) -> None:
        self.process = process
        self.admin = admin
        self.caller = caller

    async def instances(self) -> list[str]:
        view = (await self.admin.get("/api/cluster-status/view")).json()
        return [i["instanceId"] for i in view["instances"] if i["bundleId"] == "sample" and i["enabled"]]

    async def deployment(self) -> dict[str, Any]:
        answer = await self.admin.get("/api/bundle/sample/deployment")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


async def start(tmp_path: Path, *extra: str) -> AsyncIterator[Running]:
    os.environ["EVENTO_SAMPLE_CONSUMERS"] = str(tmp_path / "sample-consumers.db")  # the spawned instances inherit it
    process = await start_server_process(
        tmp_path / "server", "--auth-token", TOKEN, "--admin-password", PASSWORD, "--scale-cooldown", "1",
        "--kill-grace", "5", *extra,
    )  # fmt: skip
    admin = httpx.AsyncClient(base_url=process.http, auth=("admin", PASSWORD), timeout=15)
    caller = Bundle("caller", components=[Ticker])
    try:
        await caller.start(TcpConnector(process.bus, auth_token=TOKEN))
        yield Running(process, admin, caller)
    finally:
        await caller.stop()
        await admin.aclose()
        stop_server_process(process)  # the instances it started stay: stopped below
        for pid in _pids_of_instances():
            os.kill(pid, signal.SIGTERM)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async for value in start(tmp_path):
        yield value


def _pids_of_instances(instance_id: str = "") -> list[int]:
    """The processes whose environment names a sample instance (``EVENTO_INSTANCE_ID=sample-…``)."""
    wanted = f"EVENTO_INSTANCE_ID={instance_id or 'sample-'}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            variables = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(v.startswith(wanted) for v in variables) and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


async def test_spawned_instance_serves_is_replaced_after_kill_9_and_leaves_gracefully(running: Running) -> None:
    answer = await running.admin.put("/api/bundle/sample", json=SAMPLE)
    assert answer.status_code == 200, answer.text
    assert answer.json()["wanted"] == 1
    await wait_until(lambda: _one(running), 30, interval=0.2, what="the spawned instance online")
    first = (await running.instances())[0]
    commands, _ = running.caller.gateways(None)
    acknowledged = [await commands.send(Count(n=n)) for n in range(5)]
    assert len(acknowledged) == 5

    (pid,) = _pids_of_instances(first)
    os.kill(pid, signal.SIGKILL)
    await wait_until(lambda: _replaced(running, first), 15, interval=0.2, what="a replacement online")
    second = (await running.instances())[0]
    for n in range(5, 10):
        await commands.send(Count(n=n))
    # Nothing acknowledged was lost: each aggregate exists (an init command on it is refused).
    for n in range(10):
        with pytest.raises(Exception, match="already exists"):
            await commands.send(Count(n=n))
    decisions = [d["action"] for d in (await running.deployment())["decisions"]]
    assert decisions.count("spawn") == 2
    assert "lost" in decisions

    answer = await running.admin.post(f"/api/bundle/sample/instance/{second}/kill")
    assert answer.status_code == 202, answer.text
    await wait_until(lambda: _gone(running, second), 15, interval=0.2, what="the killed instance gone")
    # Left gracefully: its consumer lock is free at once (its lease had 60 s to run).
    store = SQLiteConsumerStateStore(os.environ["EVENTO_SAMPLE_CONSUMERS"])
    await store.start()
    try:
        assert await store.try_lock(CONSUMER, "the-test", 1.0)
        await store.unlock(CONSUMER, "the-test")
    finally:
        await store.stop()
    await wait_until(lambda: not _pids_of_instances(second), 5, interval=0.1, what="the process ended by itself")
    assert "killed" not in [d["action"] for d in (await running.deployment())["decisions"]]  # no SIGKILL needed
    # At the minimum, a kill is a restart: a third instance comes.
    await wait_until(lambda: _replaced(running, second), 15, interval=0.2, what="the minimum restored")
    refused = await running.admin.post("/api/bundle/sample/instance/nope/kill")
    assert refused.status_code == 404
    assert "no instance 'nope'" in refused.json()["detail"]


async def test_a_burst_scales_up_and_idleness_scales_back(running: Running) -> None:
    await running.admin.put("/api/bundle/sample", json=SAMPLE)
    await wait_until(lambda: _one(running), 30, interval=0.2, what="the spawned instance online")
    commands, _ = running.caller.gateways(None)
    await asyncio.gather(*(commands.send(Work(n=n)) for n in range(12)))  # 0.2 s each: above 2 in flight
    await wait_until(lambda: _count(running, 2), 20, interval=0.2, what="a second instance after the burst")
    state = await running.deployment()
    assert any(d["action"] == "scale-up" and "suffers" in d["reason"] for d in state["decisions"])
    # Idle: bored after 2 s without work; the extra instance goes, the minimum stays.
    await wait_until(lambda: _count(running, 1), 20, interval=0.2, what="back to the minimum")
    state = await running.deployment()
    assert state["wanted"] == 1
    assert any(d["action"] == "kill" and d["reason"].startswith("bored") for d in state["decisions"])
    refused = await running.admin.put("/api/bundle/sample", json={"minInstances": 3, "maxInstances": 2})
    assert refused.status_code == 422
    assert "min instances" in refused.json()["detail"]


async def test_a_failing_deploy_script_is_a_clear_error_without_a_storm(tmp_path: Path) -> None:
    script = tmp_path / "deploy.sh"
    script.write_text('#!/bin/sh\necho "starting $EVENTO_INSTANCE_ID"\necho "docker: not found" >&2\nexit 3\n')
    script.chmod(0o755)
    async for running in start(tmp_path, "--deploy-script", str(script)):
        await running.admin.put("/api/bundle/sample", json=SAMPLE)

        async def failed(running: Running = running) -> bool:
            return bool((await running.deployment())["lastError"])

        await wait_until(failed, 10, interval=0.2, what="the failure in the API")
        state = await running.deployment()
        assert "exited with status 3: docker: not found" in state["lastError"]
        await asyncio.sleep(5)  # the backoff's effect is a count over time: 2 s, then 4 s between tries
        tries = [d for d in (await running.deployment())["decisions"] if d["action"] == "spawn-failed"]
        assert 2 <= len(tries) <= 3, tries
        assert "docker: not found" in running.process.output()
        assert await running.instances() == []


async def _one(running: Running) -> bool:
    return len(await running.instances()) == 1


async def _count(running: Running, n: int) -> bool:
    return len(await running.instances()) == n


async def _replaced(running: Running, old: str) -> bool:
    now = await running.instances()
    return len(now) == 1 and now[0] != old


async def _gone(running: Running, old: str) -> bool:
    return old not in await running.instances()
