"""Publishing a bundle project (issue 12): ``evento publish`` of ``tests/publish_sample`` to a real ``evento server``
process, which keeps the wheel and description, shows the bundle in its catalog, and starts it from the wheel in a
venv of that version (the sample is not importable in the server's environment); the instance registers and
serves a command over TCP. An artifact token is good once and not after it expires: otherwise a 401 problem.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from evento import Bundle
from evento.server.deploy.artifacts import ArtifactStore
from evento.storage.database import SQLiteDatabase
from evento.transport.connector import TcpConnector
from tests.helpers import ServerProcess, start_server_process, stop_server_process, wait_until
from tests.ticks import Ticker

pytestmark = pytest.mark.slow

TOKEN = "publish-tests-token"
PASSWORD = "publish-tests-admin"
SAMPLE = Path(__file__).parent / "publish_sample"


def _publish(project: Path, server: ServerProcess) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "EVENTO_URL": server.http, "EVENTO_USER": "admin", "EVENTO_PASSWORD": PASSWORD}
    return subprocess.run(
        [sys.executable, "-m", "evento.cli", "publish", str(project)],
        capture_output=True, text=True, env=environment, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the sample project (building it writes build/ and egg-info beside its sources)."""
    copy = tmp_path / "project"
    shutil.copytree(SAMPLE, copy)
    return copy


async def _server(tmp_path: Path, *extra: str) -> AsyncIterator[tuple[ServerProcess, httpx.AsyncClient]]:
    server = await start_server_process(
        tmp_path / "server", "--auth-token", TOKEN, "--admin-password", PASSWORD, *extra
    )
    admin = httpx.AsyncClient(base_url=server.http, auth=("admin", PASSWORD), timeout=30)
    try:
        yield server, admin
    finally:
        await admin.aclose()
        stop_server_process(server)
        for pid in _pids_of_instances():
            os.kill(pid, signal.SIGTERM)


def _pids_of_instances() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                variables = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(v.startswith(b"EVENTO_INSTANCE_ID=greeter-") for v in variables):
                found.append(int(entry.name))
    return found


async def test_published_bundle_runs_from_its_wheel_and_serves(tmp_path: Path, project: Path) -> None:
    async for server, admin in _server(tmp_path):
        done = _publish(project, server)
        assert done.returncode == 0, done.stderr
        assert "greeter 1: published (1 instance(s) wanted)" in done.stdout
        # The catalog knows it from its description: components, handlers, payload schemas, source link.
        detail = (await admin.get("/api/bundle/greeter")).json()
        assert detail["repositoryUrl"] == "https://example.org/greeter/blob/main/"
        assert [h["payload"] for h in detail["handlers"]] == ["SampleGreet"]
        assert "greeter" in [b["bundleId"] for b in (await admin.get("/api/bundle/")).json()["items"]]

        async def online(admin: httpx.AsyncClient = admin) -> bool:
            view = (await admin.get("/api/cluster-status/view")).json()
            return any(i["bundleId"] == "greeter" for i in view["instances"])

        await wait_until(online, 40, interval=0.2, what="the published bundle's instance online")
        (venv,) = (tmp_path / "server" / "bundles" / "venvs").glob("greeter-1-*")
        assert (venv / ".evento-installed").exists()  # run from the wheel, not the server's environment
        sys.path.insert(0, str(SAMPLE / "src"))  # the test's caller needs the payload classes
        try:
            from evento_publish_sample.bundle import SampleGreet
        finally:
            sys.path.remove(str(SAMPLE / "src"))
        caller = Bundle("publish-caller", components=[Ticker])
        await caller.start(TcpConnector(server.bus, auth_token=TOKEN))
        try:
            commands, _ = caller.gateways(None)
            answer = await commands.send(SampleGreet(name="ada"))
            assert answer.text == "hello ada"
        finally:
            await caller.stop()
        # One more through the API: the venv of version 1 is made already, the new instance runs from it too.
        spawned = await admin.post("/api/bundle/greeter/spawn")
        assert spawned.status_code == 202, spawned.text

        async def two(admin: httpx.AsyncClient = admin) -> bool:
            view = (await admin.get("/api/cluster-status/view")).json()
            return sum(i["bundleId"] == "greeter" for i in view["instances"]) == 2

        await wait_until(two, 30, interval=0.2, what="the spawned second instance online")
        actions = [d["action"] for d in (await admin.get("/api/bundle/greeter/deployment")).json()["decisions"]]
        assert {"publish", "deploy", "spawn", "joined", "scale-up"} <= set(actions)
        assert actions.count("spawn") == 2
        assert [p.name for p in venv.parent.glob("greeter-1-*")] == [venv.name]  # the same wheel: the same venv
        assert list((venv.parent / ".downloads").iterdir()) == []


def test_publish_fails_in_one_line(tmp_path: Path, project: Path) -> None:
    """What the user must fix ends ``evento publish`` with one line: no bundle table, a build that fails."""
    environment = {**os.environ, "EVENTO_URL": "http://127.0.0.1:9", "EVENTO_PASSWORD": "x"}

    def publish(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "evento.cli", "publish", str(path)],
            capture_output=True, text=True, env=environment, timeout=120, check=False,
        )  # fmt: skip

    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "pyproject.toml").write_text('[project]\nname = "bare"\nversion = "1"\n')
    done = publish(bare)
    assert done.returncode == 1
    assert done.stderr.strip() == f"evento: {bare / 'pyproject.toml'} has no [[tool.evento.bundle]] table: nothing" \
        " describes a bundle there"  # fmt: skip
    (project / "pyproject.toml").write_text((project / "pyproject.toml").read_text().replace(
        'where = ["src"]', 'where = ["src"]\nbogus-option = 1'))  # fmt: skip
    broken = publish(project)
    assert broken.returncode == 1
    assert broken.stderr.startswith(f"evento: building the wheel of {project} failed:")
    assert len(broken.stderr.strip().splitlines()) == 1


async def test_artifact_token_is_single_use_and_expires(tmp_path: Path, project: Path) -> None:
    told = tmp_path / "told"
    script = tmp_path / "deploy.sh"  # records what it is given, as a Docker or Kubernetes script would use it
    script.write_text(f'#!/bin/sh\necho "$2 $EVENTO_ARTIFACT_URL" >> {told}\n')
    script.chmod(0o755)
    async for server, admin in _server(tmp_path, "--deploy-script", str(script)):
        assert _publish(project, server).returncode == 0
        await wait_until(lambda: told.exists() and told.read_text().strip() != "", 20, what="the script run")
        token, url = told.read_text().split("\n")[0].split(" ")
        assert url == f"{server.http}/api/bundle/greeter/artifact"
        async with httpx.AsyncClient(timeout=30) as anonymous:  # the token is the only credential
            first = await anonymous.get(url, params={"token": token})
            assert first.status_code == 200, first.text
            assert first.content.startswith(b"PK\x03\x04")
            assert 'filename="evento_publish_sample-0.1.0-py3-none-any.whl"' in first.headers["content-disposition"]
            again = await anonymous.get(url, params={"token": token})
            assert again.status_code == 401
            assert again.headers["content-type"].startswith("application/problem+json")
            assert "already used" in again.json()["detail"]
            # A token past its time (minted on the server's own database, already expired): refused as well.
            database = SQLiteDatabase(tmp_path / "server" / "events.db")
            await database.start()
            try:
                stale = await ArtifactStore(database).mint("greeter", "1", -1.0)
            finally:
                await database.stop()
            expired = await anonymous.get(url, params={"token": stale})
            assert expired.status_code == 401
            wrong_bundle = await anonymous.get(f"{server.http}/api/bundle/other/artifact", params={"token": token})
            assert wrong_bundle.status_code == 401
            assert (await anonymous.get(url)).status_code == 401  # neither a token nor credentials
        by_user = await admin.get("/api/bundle/greeter/artifact")  # an API user gets the deployed version's
        assert by_user.status_code == 200
        assert by_user.content == first.content
        # Publishing is checked: a description of another bundle is refused with one line.
        body = {"spec": {"bundleId": "greeter", "entryPoint": "a:b"}, "registration": {"bundle_id": "x",
                "bundle_version": 1}, "wheelName": "a-1-py3-none-any.whl", "wheel": "UEsDBA=="}  # fmt: skip
        refused = await admin.post("/api/bundle/", json=body)
        assert refused.status_code == 422
        assert "of bundle 'x'" in refused.json()["detail"]
        bad_name = await admin.post("/api/bundle/", json={**body, "wheelName": "../x.whl"})
        assert bad_name.status_code == 422
        anonymous_publish = await httpx.AsyncClient(base_url=server.http).post("/api/bundle/", json=body)
        assert anonymous_publish.status_code == 401


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
async def test_artifacts_and_tokens_in_either_database(tmp_path: Path, dialect: str) -> None:
    """What a cluster shares: a wheel put by one server is read by another, a token minted by one is redeemed once
    at any (two stores on one database stand for two servers)."""
    from contextlib import ExitStack

    from evento.server.deploy.artifacts import Artifact
    from evento.storage.database import Database, PostgresDatabase
    from evento.testing.databases import postgres_database

    with ExitStack() as stack:
        first: Database
        second: Database
        if dialect == "postgres":
            url = stack.enter_context(postgres_database())
            first, second = PostgresDatabase(url), PostgresDatabase(url)
        else:
            first, second = SQLiteDatabase(tmp_path / "a.db"), SQLiteDatabase(tmp_path / "a.db")
        await first.start()
        await second.start()
        try:
            one, other = ArtifactStore(first), ArtifactStore(second)
            await one.start()
            await other.start()
            wheel = b"PK\x03\x04" + bytes(range(256)) * 64  # every byte value survives
            await one.put(Artifact("greeter", "1", "g-1-py3-none-any.whl", wheel, '{"bundle_id":"greeter"}', 5))
            found = await other.get("greeter", "1")
            assert found is not None
            assert (found.wheel, found.wheel_name, found.published_ms) == (wheel, "g-1-py3-none-any.whl", 5)
            assert await other.get("greeter", "2") is None
            token = await one.mint("greeter", "1", 60)
            assert await other.redeem(token, "other") is None  # another bundle's: not spent by the attempt
            assert await other.redeem(token, "greeter") == "1"
            assert await one.redeem(token, "greeter") is None
            stale = await one.mint("greeter", "1", -1)
            assert await other.redeem(stale, "greeter") is None
        finally:
            await first.stop()
            await second.stop()
