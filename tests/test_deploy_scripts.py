"""The shipped Docker and Kubernetes deploy scripts (``python -m evento.server.deploy.containers KIND JSON TOKEN``),
run as the server runs them: what they render with ``EVENTO_DRY_RUN=1`` (the docker command line's env and args,
accepted by the real docker CLI when one is installed; the Pod manifest valid YAML with the right image, env and
command), and, without it, the tool they run given the rendering (a recording stand-in for docker and kubectl: no
daemon or cluster here)."""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from msgspec.structs import replace

from evento.server.deploy.containers import container_script
from evento.server.deploy.scripts import DeployContext, ScriptSpawner
from evento.server.deploy.spec import BundleSpec, spec_json

SPEC = BundleSpec(
    bundle_id="todolist_command",
    version="1.2.0",
    entry_point="todolist.bundle:build",
    environment={"TODO_STORE": "sqlite"},
    interpreter_options=["-X", "dev"],
    artifact="todolist-1.2.0-py3-none-any.whl",
)
TOKEN = "artifact-token-1"
BASE = {
    "EVENTO_SERVERS": "10.0.0.5:3030",
    "EVENTO_AUTH_TOKEN": "bus-secret",
    "EVENTO_INSTANCE_ID": "todolist_command-ab12cd34ef56",
    "EVENTO_ARTIFACT_URL": "http://10.0.0.5:3000/api/bundle/todolist_command/artifact",
    "EVENTO_IMAGE": "registry.example/evento-python:3.11",
}


def _script(kind: str, extra: dict[str, str], spec: BundleSpec = SPEC) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **BASE, **extra}
    return subprocess.run(
        [sys.executable, "-m", "evento.server.deploy.containers", kind, spec_json(spec), TOKEN],
        capture_output=True, text=True, env=environment, timeout=60, check=False,
    )  # fmt: skip


def _pairs(values: list[str]) -> dict[str, str]:
    return dict(value.split("=", 1) for value in values)


def test_docker_dry_run_renders_the_run_command() -> None:
    done = _script("docker", {"EVENTO_DRY_RUN": "1", "EVENTO_DOCKER_ARGS": "--memory 512m"})
    assert done.returncode == 0, done.stdout + done.stderr
    command = shlex.split(done.stdout)
    assert command[:5] == ["docker", "run", "-d", "--name", "evento-todolist-command-ab12cd34ef56"]
    options = list(itertools.pairwise(command))
    labels = _pairs([value for flag, value in options if flag == "--label"])
    assert labels == {
        "evento.bundle": "todolist_command",
        "evento.instance": "todolist_command-ab12cd34ef56",
        "evento.version": "1.2.0",
    }
    assert ("--network", "host") in options
    assert ("--memory", "512m") in options
    env = _pairs([value for flag, value in options if flag == "-e"])
    assert env["TODO_STORE"] == "sqlite"  # the bundle's own environment
    assert env["EVENTO_SERVERS"] == "10.0.0.5:3030"
    assert env["EVENTO_AUTH_TOKEN"] == "bus-secret"
    assert env["EVENTO_INSTANCE_ID"] == "todolist_command-ab12cd34ef56"
    assert env["EVENTO_ARTIFACT_URL"] == BASE["EVENTO_ARTIFACT_URL"]
    assert env["EVENTO_ARTIFACT_TOKEN"] == TOKEN
    assert env["EVENTO_WHEEL"] == "todolist-1.2.0-py3-none-any.whl"
    assert env["EVENTO_ENTRY_POINT"] == "todolist.bundle:build"
    assert env["EVENTO_INTERPRETER_OPTIONS"] == "-X dev"
    assert env["EVENTO_REQUIREMENT"].startswith("evento-framework==")
    image = command.index(BASE["EVENTO_IMAGE"])
    assert command[image + 1 :] == ["sh", "-c", container_script()]
    assert "bundle run" in command[-1]
    if shutil.which("docker"):  # the real CLI parses it: only the missing daemon stops it, no flag is unknown
        refused = subprocess.run(
            command, capture_output=True, text=True, timeout=30, check=False,
            env={**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"},
        )  # fmt: skip
        assert refused.returncode != 0
        assert "unknown flag" not in refused.stderr
        assert "nonexistent/docker.sock" in refused.stderr


def test_kubernetes_dry_run_renders_a_valid_pod() -> None:
    extra = {"EVENTO_DRY_RUN": "1", "EVENTO_K8S_NAMESPACE": "shop", "EVENTO_K8S_MEMORY": "256Mi",
             "EVENTO_CONTAINER_SERVERS": "evento-bus.shop.svc:3030"}  # fmt: skip
    done = _script("kubernetes", extra)
    assert done.returncode == 0, done.stdout + done.stderr
    pod: dict[str, Any] = yaml.safe_load(done.stdout)  # what kubectl apply -f - reads
    assert pod["apiVersion"] == "v1"
    assert pod["kind"] == "Pod"
    metadata = pod["metadata"]
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", metadata["name"])  # DNS-1123
    assert metadata["namespace"] == "shop"
    assert metadata["labels"]["evento.io/bundle"] == "todolist_command"
    assert metadata["annotations"]["evento.io/instance"] == "todolist_command-ab12cd34ef56"
    assert pod["spec"]["restartPolicy"] == "Never"  # the server replaces a dead instance, under a new id
    (container,) = pod["spec"]["containers"]
    assert container["image"] == BASE["EVENTO_IMAGE"]
    assert container["command"] == ["sh", "-c", container_script()]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["EVENTO_SERVERS"] == "evento-bus.shop.svc:3030"  # as the Pod reaches the bus
    assert env["EVENTO_ARTIFACT_TOKEN"] == TOKEN
    assert env["EVENTO_ENTRY_POINT"] == "todolist.bundle:build"
    assert env["TODO_STORE"] == "sqlite"
    assert all(isinstance(value, str) for value in env.values())  # Kubernetes takes only strings
    assert container["resources"] == {"requests": {"memory": "256Mi"}, "limits": {"memory": "256Mi"}}


def test_without_an_artifact_the_image_holds_the_bundle() -> None:
    done = _script("docker", {"EVENTO_DRY_RUN": "1", "EVENTO_REQUIREMENT": ""}, replace(SPEC, artifact=None))
    command = shlex.split(done.stdout)
    env = _pairs([value for flag, value in itertools.pairwise(command) if flag == "-e"])
    assert env["EVENTO_ARTIFACT_URL"] == env["EVENTO_ARTIFACT_TOKEN"] == env["EVENTO_REQUIREMENT"] == ""


@pytest.mark.parametrize("kind", ["docker", "kubernetes"])
def test_the_tool_is_run_and_its_failure_reported(tmp_path: Path, kind: str) -> None:
    recorded = tmp_path / "recorded"
    tool = tmp_path / "tool"
    tool.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {recorded}.args\ncat > {recorded}.stdin\necho "started"\n')
    tool.chmod(0o755)
    variable = "EVENTO_DOCKER" if kind == "docker" else "EVENTO_KUBECTL"
    done = _script(kind, {variable: str(tool)})
    assert done.returncode == 0, done.stdout
    assert done.stdout.strip() == "started"
    args = Path(f"{recorded}.args").read_text().splitlines()
    if kind == "docker":
        assert args[:3] == ["run", "-d", "--name"]
    else:
        assert args == ["apply", "-f", "-"]
        pod = json.loads(Path(f"{recorded}.stdin").read_text())
        assert pod["metadata"]["annotations"]["evento.io/instance"] == BASE["EVENTO_INSTANCE_ID"]
    tool.write_text('#!/bin/sh\necho "Error from server (Forbidden): pods is forbidden" >&2\nexit 1\n')
    failed = _script(kind, {variable: str(tool)})
    assert failed.returncode == 1
    assert failed.stdout.strip().splitlines()[-1] == "Error from server (Forbidden): pods is forbidden"
    missing = _script(kind, {variable: str(tmp_path / "nope")})
    assert missing.returncode == 127
    assert "No such file" in missing.stdout


def test_bad_input_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "evento.server.deploy.containers", "docker", "{}", TOKEN],
        capture_output=True, text=True, timeout=60, check=False, env={**os.environ, **BASE},
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stdout.startswith("not a bundle's JSON")


async def test_the_server_runs_the_shipped_script_by_its_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--deploy-script docker``: the server's script spawner runs the shipped script with the contract's
    arguments and variables (the docker stand-in records what it was given)."""
    recorded = tmp_path / "args"
    tool = tmp_path / "docker"
    tool.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {recorded}\n')
    tool.chmod(0o755)
    monkeypatch.setenv("EVENTO_DOCKER", str(tool))
    monkeypatch.chdir(tmp_path / "..")  # no file named docker here: the name is the shipped script's
    spawner = ScriptSpawner(Path("docker"))
    context = DeployContext(("127.0.0.1:3030",), "bus-secret", tmp_path / "logs", BASE["EVENTO_ARTIFACT_URL"])
    launch = await spawner.start(SPEC, "todolist_command-0001", TOKEN, context)
    assert launch.instance_id == "todolist_command-0001"
    args = recorded.read_text().splitlines()
    assert args[:4] == ["run", "-d", "--name", "evento-todolist-command-0001"]
    assert "EVENTO_SERVERS=127.0.0.1:3030" in args
    assert f"EVENTO_ARTIFACT_TOKEN={TOKEN}" in args
