"""The shipped Docker and Kubernetes deploy scripts: ``evento server --deploy-script docker`` (or ``kubernetes``)
starts each bundle instance as a container instead of a local process.

Both follow the deploy script contract (:mod:`evento.server.deploy.scripts`): they are run as
``python -m evento.server.deploy.containers KIND BUNDLE_JSON TOKEN`` with ``EVENTO_SERVERS``, ``EVENTO_AUTH_TOKEN``,
``EVENTO_INSTANCE_ID`` and ``EVENTO_ARTIFACT_URL`` in their environment, render what starts the instance — a
``docker run -d …`` command line, or a Kubernetes Pod manifest (JSON, which ``kubectl apply -f -`` reads like YAML)
— and run it, or print it and exit 0 when ``EVENTO_DRY_RUN=1``.

The container installs evento (``EVENTO_REQUIREMENT``, default this version from the package index) and, when a
wheel was published, downloads it with the spawn's single-use token and installs it with its dependencies, then
runs ``python -m evento.cli bundle run ENTRY_POINT``; an image that already holds the bundle
(``EVENTO_IMAGE`` built with it, ``EVENTO_REQUIREMENT=`` empty) starts at once. Settings, from the environment:

- ``EVENTO_IMAGE``: the image (default ``python:3.11-slim``);
- ``EVENTO_CONTAINER_SERVERS`` / ``EVENTO_CONTAINER_ARTIFACT_URL``: the bus and artifact addresses as the
  container reaches them, when they differ from the server's own (default: the server's, which works with
  Docker's host network);
- Docker: ``EVENTO_DOCKER`` (the command, default ``docker``), ``EVENTO_DOCKER_NETWORK`` (default ``host``),
  ``EVENTO_DOCKER_ARGS`` (more ``docker run`` options, shell-quoted);
- Kubernetes: ``EVENTO_KUBECTL`` (default ``kubectl``), ``EVENTO_K8S_NAMESPACE`` (default ``default``),
  ``EVENTO_K8S_SERVICE_ACCOUNT``, ``EVENTO_K8S_CPU`` and ``EVENTO_K8S_MEMORY`` (requests and limits).

The Pod's ``restartPolicy`` is ``Never`` and the container is not ``--restart``-ed: the server replaces an
instance that dies, under a new instance id.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from evento._version import __version__
from evento.server.deploy.spec import BundleSpec, spec_decoder

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["KINDS", "container_environment", "container_script", "docker_command", "main", "pod_manifest"]

KINDS = ("docker", "kubernetes")

# Inside the container: install evento and the published wheel (when there is one), then run the bundle. The
# values come from the container's environment, so nothing of the spec is spliced into shell text.
_SCRIPT = """set -e
if [ -n "$EVENTO_REQUIREMENT" ]; then pip install --no-cache-dir --quiet "$EVENTO_REQUIREMENT"; fi
if [ -n "$EVENTO_ARTIFACT_URL" ]; then
  python -c 'import os, urllib.parse, urllib.request
url = os.environ["EVENTO_ARTIFACT_URL"] + "?token=" + urllib.parse.quote(os.environ["EVENTO_ARTIFACT_TOKEN"])
urllib.request.urlretrieve(url, "/tmp/" + os.environ["EVENTO_WHEEL"])'
  pip install --no-cache-dir --quiet "/tmp/$EVENTO_WHEEL"
fi
exec python $EVENTO_INTERPRETER_OPTIONS -m evento.cli bundle run "$EVENTO_ENTRY_POINT"
"""


def container_script() -> str:
    """The shell script the container runs (``sh -c``)."""
    return _SCRIPT


def container_environment(spec: BundleSpec, token: str, env: Mapping[str, str]) -> dict[str, str]:
    """The container's variables: the bundle's own environment, then what evento needs to join and install."""
    artifact_url = env.get("EVENTO_CONTAINER_ARTIFACT_URL") or env.get("EVENTO_ARTIFACT_URL", "")
    if spec.artifact is None:
        artifact_url = ""  # nothing published: the image holds the bundle
    return {
        **spec.environment,
        "EVENTO_SERVERS": env.get("EVENTO_CONTAINER_SERVERS") or env.get("EVENTO_SERVERS", ""),
        "EVENTO_AUTH_TOKEN": env.get("EVENTO_AUTH_TOKEN", ""),
        "EVENTO_INSTANCE_ID": env["EVENTO_INSTANCE_ID"],
        "EVENTO_ARTIFACT_URL": artifact_url,
        "EVENTO_ARTIFACT_TOKEN": token if artifact_url else "",
        "EVENTO_WHEEL": spec.artifact or "",
        "EVENTO_ENTRY_POINT": spec.entry_point,
        "EVENTO_INTERPRETER_OPTIONS": shlex.join(spec.interpreter_options),
        "EVENTO_REQUIREMENT": env.get("EVENTO_REQUIREMENT", f"evento-framework=={__version__}"),
    }


def _name(instance_id: str) -> str:
    """A container or Pod name from an instance id: DNS-1123 (lowercase alphanumerics and '-', at most 63)."""
    name = re.sub(r"[^a-z0-9-]+", "-", f"evento-{instance_id}".lower()).strip("-")[:63]
    return name.rstrip("-")


def _label(value: str) -> str:
    """A Kubernetes label value: at most 63 of [A-Za-z0-9._-], alphanumeric at both ends."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", value)[:63].strip("-._")


def docker_command(spec: BundleSpec, token: str, env: Mapping[str, str]) -> list[str]:
    """The ``docker run -d …`` that starts the instance."""
    instance_id = env["EVENTO_INSTANCE_ID"]
    command = [env.get("EVENTO_DOCKER", "docker"), "run", "-d", "--name", _name(instance_id)]
    command += ["--label", f"evento.bundle={spec.bundle_id}", "--label", f"evento.instance={instance_id}"]
    command += ["--label", f"evento.version={spec.version}", "--network", env.get("EVENTO_DOCKER_NETWORK", "host")]
    command += shlex.split(env.get("EVENTO_DOCKER_ARGS", ""))
    for key, value in container_environment(spec, token, env).items():
        command += ["-e", f"{key}={value}"]
    command += [env.get("EVENTO_IMAGE", "python:3.11-slim"), "sh", "-c", container_script()]
    return command


def pod_manifest(spec: BundleSpec, token: str, env: Mapping[str, str]) -> dict[str, Any]:
    """The Kubernetes Pod that runs the instance."""
    instance_id = env["EVENTO_INSTANCE_ID"]
    container: dict[str, Any] = {
        "name": "bundle",
        "image": env.get("EVENTO_IMAGE", "python:3.11-slim"),
        "command": ["sh", "-c", container_script()],
        "env": [{"name": k, "value": v} for k, v in container_environment(spec, token, env).items()],
    }
    resources = {k: v for k, v in (("cpu", env.get("EVENTO_K8S_CPU")), ("memory", env.get("EVENTO_K8S_MEMORY"))) if v}
    if resources:
        container["resources"] = {"requests": resources, "limits": resources}
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if env.get("EVENTO_K8S_SERVICE_ACCOUNT"):
        pod_spec["serviceAccountName"] = env["EVENTO_K8S_SERVICE_ACCOUNT"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": _name(instance_id),
            "namespace": env.get("EVENTO_K8S_NAMESPACE", "default"),
            "labels": {
                "app.kubernetes.io/managed-by": "evento",
                "evento.io/bundle": _label(spec.bundle_id),
                "evento.io/version": _label(spec.version),
            },
            "annotations": {"evento.io/instance": instance_id},
        },
        "spec": pod_spec,
    }


def main(argv: Sequence[str], env: Mapping[str, str] = os.environ) -> int:
    """``KIND BUNDLE_JSON TOKEN``: render and run (or, with ``EVENTO_DRY_RUN=1``, print) what starts the
    instance; the exit status is the tool's, its last line of output the reason of a failure."""
    if len(argv) != 3 or argv[0] not in KINDS:
        print(f"usage: python -m evento.server.deploy.containers {{{','.join(KINDS)}}} BUNDLE_JSON TOKEN")
        return 2
    kind, spec_text, token = argv
    try:
        spec = spec_decoder.decode(spec_text)
    except ValueError as exc:
        print(f"not a bundle's JSON: {exc}")
        return 2
    if not env.get("EVENTO_INSTANCE_ID"):
        print("EVENTO_INSTANCE_ID is not set: the server names the instance it starts")
        return 2
    dry = env.get("EVENTO_DRY_RUN", "") not in ("", "0")
    if kind == "docker":
        command = docker_command(spec, token, env)
        if dry:
            print(shlex.join(command))
            return 0
        return _run(command, None)
    manifest = json.dumps(pod_manifest(spec, token, env), indent=2)
    if dry:
        print(manifest)
        return 0
    kubectl = [env.get("EVENTO_KUBECTL", "kubectl"), "apply", "-f", "-"]
    return _run(kubectl, manifest)


def _run(command: list[str], stdin: str | None) -> int:
    try:
        done = subprocess.run(command, input=stdin, capture_output=True, text=True, check=False)
    except OSError as exc:
        print(f"{command[0]}: {exc.strerror or exc}")
        return 127
    sys.stdout.write(done.stdout)
    sys.stdout.write(done.stderr)  # the last line is what the server reports of a failure
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
