"""``evento publish``: build a bundle project's wheel, describe its bundles and upload both to a server.

The wheel is built by pip (``python -m pip wheel --no-deps``), by default without build isolation so it works
offline with the build backend installed in this environment (``--build-isolation`` lets pip fetch the project's
``build-system.requires``). The description is what an instance sends when it joins (components, handlers, what
they send, payload schemas, source links): the entry point's :class:`~evento.Bundle` is loaded from the project's
sources and asked for its ``registration()``. The server keeps both per version, shows the bundle in its catalog at
once and starts its instances from the wheel.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from evento.cli.client import ApiClient, CommandError, Credentials, path_segment
from evento.cli.project import pyproject_of, read_bundles

if TYPE_CHECKING:
    import argparse

    from evento.discovery import BundleRegistration
    from evento.server.deploy.spec import BundleSpec

__all__ = ["add_parser", "build_wheel", "describe", "publish", "run_publish"]


def build_wheel(project: Path, into: Path, *, isolation: bool = False) -> Path:
    """The project's wheel, built by pip into ``into``; :class:`CommandError` with pip's last line on failure."""
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q", "-w"]
    command += [str(into), str(project)]
    if not isolation:
        command.insert(4, "--no-build-isolation")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        said = next((line for line in reversed(lines) if line.strip()), "no output")
        raise CommandError(f"building the wheel of {project} failed: {said.strip()}")
    wheels = sorted(into.glob("*.whl"))
    if len(wheels) != 1:
        raise CommandError(f"building the wheel of {project} made {len(wheels)} wheels, expected one")
    return wheels[0]


def describe(project: Path, spec: BundleSpec) -> BundleRegistration:
    """What the bundle's instances will declare when they join, from the project's sources."""
    from evento.bundle.runner import load_bundle

    for source in (project, project / "src"):  # flat or src layout
        if source.is_dir() and str(source) not in sys.path:
            sys.path.insert(0, str(source))
    try:
        bundle = load_bundle(spec.entry_point)
    except Exception as exc:  # the project's own code: whatever it raises, the user fixes it
        raise CommandError(f"loading {spec.entry_point} from {project}: {type(exc).__name__}: {exc}") from exc
    registration = bundle.registration()
    if registration.repository_url is None and spec.repository_url is not None:  # what pyproject.toml says of it
        registration = msgspec.structs.replace(registration, repository_url=spec.repository_url)
    if registration.bundle_id != spec.bundle_id:
        raise CommandError(
            f"{spec.entry_point} is bundle {registration.bundle_id!r}, pyproject.toml says {spec.bundle_id!r}"
        )
    return registration


def publish(
    project: Path, client: ApiClient, *, bundle_id: str | None = None, isolation: bool = False
) -> list[dict[str, Any]]:
    """Build, describe and upload the project's bundles (or ``bundle_id`` only); the server's deployments."""
    project = pyproject_of(project).parent.resolve()
    specs = [spec for spec in read_bundles(project) if bundle_id is None or spec.bundle_id == bundle_id]
    if not specs:
        raise CommandError(f"{project / 'pyproject.toml'} describes no bundle {bundle_id!r}")
    with tempfile.TemporaryDirectory(prefix="evento-publish-") as into:
        wheel = build_wheel(project, Path(into), isolation=isolation)
        content = base64.b64encode(wheel.read_bytes()).decode()
        answers = []
        for spec in specs:
            body = {
                "spec": msgspec.to_builtins(spec),
                "registration": msgspec.to_builtins(describe(project, spec)),
                "wheelName": wheel.name,
                "wheel": content,
            }
            answers.append(client.request("POST", "/api/bundle/", json=body))
    return answers


def add_parser(commands: Any) -> None:
    """The ``publish`` command, on the ``evento`` parser's subparsers."""
    command = commands.add_parser("publish", help="build a bundle project's wheel and publish it to a server")
    command.add_argument("path", nargs="?", type=Path, default=Path(), help="the project (default: here)")
    command.add_argument("--url", default=None, help="the server's API (default EVENTO_URL or http://127.0.0.1:3000)")
    command.add_argument("--token", default=None, help="an API token of an admin (default EVENTO_TOKEN)")
    command.add_argument("--user", default=None, help="an admin (default EVENTO_USER or admin)")
    command.add_argument("--password", default=None, help="its password (default EVENTO_PASSWORD)")
    command.add_argument("--bundle", default=None, help="only this bundle of the project")
    command.add_argument(
        "--build-isolation", action="store_true", help="let pip build in an isolated environment (needs an index)"
    )


def run_publish(args: argparse.Namespace) -> int:
    """``evento publish``: one line per bundle published."""
    token = args.token or os.environ.get("EVENTO_TOKEN")
    if token:
        credentials = Credentials((args.url or os.environ.get("EVENTO_URL") or "http://127.0.0.1:3000"), "token", "")
    else:
        credentials = Credentials.resolve(args.url, args.user, args.password)
    with ApiClient(credentials, timeout=120) as client:
        if token:
            client._token = token  # a bearer token given: no login
        for state in publish(args.path, client, bundle_id=args.bundle, isolation=args.build_isolation):
            where = f"{credentials.url.rstrip('/')}/api/bundle/{path_segment(state['bundleId'])}"
            print(f"{state['bundleId']} {state['version']}: published ({state['wanted']} instance(s) wanted) {where}")
    return 0
