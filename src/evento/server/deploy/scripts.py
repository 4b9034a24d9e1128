"""Deploy scripts: how the server starts one instance of a bundle.

The contract (``evento server --deploy-script PATH``): the server runs ``PATH BUNDLE_JSON TOKEN`` — the bundle's
:class:`~evento.server.deploy.spec.BundleSpec` as JSON and a short-lived token for its artifact — with these
variables added to its own environment:

- ``EVENTO_SERVERS``: the bus addresses (``host:port``, comma-separated) the instance connects to;
- ``EVENTO_AUTH_TOKEN``: the bus token it joins with;
- ``EVENTO_INSTANCE_ID``: the instance id it must join as (``evento bundle run`` reads it), so the server knows
  which connection is the instance it asked for;
- ``EVENTO_ARTIFACT_URL``: where its wheel is downloaded with the token (empty when none was published).

The script starts the instance and exits 0 (``docker run -d``, ``kubectl apply``); anything else is a failed start,
its last line of output the reason. Without ``--deploy-script`` the server uses :class:`LocalSpawner`: a child
process running ``evento bundle run`` in the server's own environment, its output in a log under the data
directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import logging
import os
import shutil
import signal
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from evento.server.deploy.spec import BundleSpec, spec_json

__all__ = ["DeployContext", "DeployError", "DeployScript", "Launch", "LocalSpawner", "ScriptSpawner"]

log = logging.getLogger(__name__)


class DeployError(Exception):
    """A deploy script could not start an instance; the message is the one line to show."""


@dataclass(frozen=True)
class DeployContext:
    """What every start needs besides the bundle: where the bus is, the token to join with, where logs go."""

    servers: tuple[str, ...]
    auth_token: str
    log_dir: Path
    artifact_url: str = ""


@dataclass
class Launch:
    """An instance asked for: its id, and the child process when the spawner runs it itself (the local spawner),
    which the supervisor can kill after a graceful stop's grace period."""

    bundle_id: str
    instance_id: str
    process: asyncio.subprocess.Process | None = None
    log_path: Path | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)

    def kill(self) -> bool:
        """Kill the process now (SIGKILL); ``False`` when there is none to kill."""
        if self.process is None or self.process.returncode is not None:
            return False
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)
        return True

    def last_line(self) -> str:
        """The last line of the instance's log (why it stopped, when it did)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""


class DeployScript(Protocol):
    """Starts one instance of a bundle; raises :class:`DeployError` when it cannot."""

    async def start(self, spec: BundleSpec, instance_id: str, token: str, context: DeployContext) -> Launch: ...


def _environment(spec: BundleSpec, instance_id: str, context: DeployContext) -> dict[str, str]:
    return {
        **os.environ,
        **spec.environment,
        "EVENTO_SERVERS": ",".join(context.servers),
        "EVENTO_AUTH_TOKEN": context.auth_token,
        "EVENTO_INSTANCE_ID": instance_id,
        "EVENTO_ARTIFACT_URL": context.artifact_url,
    }


def importable(entry_point: str) -> bool:
    """Whether the module of ``entry_point`` (``module:object``) can be imported in this environment."""
    module = entry_point.partition(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing
        return False


class LocalSpawner:
    """The built-in deploy script: ``python [interpreter options] -m evento.cli bundle run ENTRY_POINT`` as a child
    of the server, output in ``LOG_DIR/BUNDLE/INSTANCE.log``.

    It runs in the server's own environment when the entry point is importable there; otherwise, for a published
    version, in a virtual environment of that version (``LOG_DIR/venvs/BUNDLE-VERSION``, made once) where the
    wheel, downloaded with the spawn's token, is installed without dependencies: they come from the server's
    environment, which the venv sees through a ``.pth`` file (``--system-site-packages`` alone would show the base
    interpreter's packages, not those of a server itself running in a venv).
    """

    def __init__(self, python: str = sys.executable) -> None:
        self.python = python
        self._preparing: dict[Path, asyncio.Lock] = {}

    async def start(self, spec: BundleSpec, instance_id: str, token: str, context: DeployContext) -> Launch:
        log_path = context.log_dir / spec.bundle_id / f"{instance_id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        python = self.python
        if spec.artifact is not None and not importable(spec.entry_point):
            python = await self._venv(spec, token, context)
        command = [python, *spec.interpreter_options, "-m", "evento.cli", "bundle", "run", spec.entry_point]
        out = _append(log_path)
        try:
            try:
                process = await asyncio.create_subprocess_exec(
                    *command,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    env=_environment(spec, instance_id, context),
                    start_new_session=True,  # a signal to the server's process group does not reach it
                )
            except OSError as exc:
                raise DeployError(f"cannot start {self.python}: {exc}") from exc
        finally:
            os.close(out)  # the child holds its own copy
        launch = Launch(spec.bundle_id, instance_id, process, log_path)
        # The pid beside the log while it runs: the instances outlive the server (a restart does not restart them),
        # so whoever stops the whole system (evento demo --managed) finds them there.
        pid_path = log_path.with_suffix(".pid")
        pid_path.write_text(str(process.pid))
        asyncio.get_running_loop().create_task(_watch(launch, process, pid_path))
        return launch

    async def _venv(self, spec: BundleSpec, token: str, context: DeployContext) -> str:
        """The interpreter of a venv holding the published wheel, made the first time that wheel is seen.

        Every start downloads the wheel (its token is good for nothing else) and the venv is named by the wheel's
        digest: a version published again with other content gets a venv of its own, while instances of the
        previous content keep theirs untouched."""
        if not context.artifact_url or not token:
            raise DeployError(f"{spec.entry_point} is not importable here and no artifact URL was given")
        venvs = context.log_dir / "venvs"
        downloads = venvs / ".downloads"
        await asyncio.to_thread(downloads.mkdir, parents=True, exist_ok=True)
        fetched = downloads / f"{uuid.uuid4().hex}.whl"
        try:
            digest = await _download(f"{context.artifact_url}?token={token}", fetched)
            home = venvs / f"{spec.bundle_id}-{spec.version}-{digest[:12]}"
            python = home / "bin" / "python"
            async with self._preparing.setdefault(home, asyncio.Lock()):
                if await asyncio.to_thread((home / ".evento-installed").exists):
                    return str(python)
                await asyncio.to_thread(shutil.rmtree, home, True)  # a half-made one from a failed try
                await _run([self.python, "-m", "venv", "--system-site-packages", "--without-pip", str(home)], "venv")
                wheel = home / (spec.artifact or "bundle.whl")
                await asyncio.to_thread(fetched.replace, wheel)
                where = "import sysconfig; print(sysconfig.get_path('purelib'))"
                site = await _run([str(python), "-c", where], "venv")
                await asyncio.to_thread(_see_server_environment, Path(site.strip()))
                await _run(
                    [self.python, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                     "--disable-pip-version-check", "--quiet", str(wheel)],
                    "pip install",
                )  # fmt: skip
                await asyncio.to_thread((home / ".evento-installed").touch)
                return str(python)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(fetched)  # kept only when it went into a new venv


async def _run(command: list[str], what: str) -> str:
    """Run ``command`` to its end; its output, or :class:`DeployError` with its last line."""
    process = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    text = out.decode(errors="replace")
    if process.returncode != 0:
        lines = text.strip().splitlines()
        raise DeployError(f"{what} failed ({process.returncode}): {lines[-1] if lines else 'no output'}")
    return text


async def _download(url: str, path: Path) -> str:
    """Fetch the artifact at ``url`` (its token in the query) into ``path``; its SHA-256, in hex."""
    import httpx

    try:
        async with httpx.AsyncClient(timeout=60) as client:
            answer = await client.get(url)
    except httpx.HTTPError as exc:
        raise DeployError(f"cannot download the artifact: {exc or type(exc).__name__}") from exc
    if answer.status_code != 200:
        raise DeployError(f"artifact download refused ({answer.status_code}): {answer.text[:200]}")
    await asyncio.to_thread(path.write_bytes, answer.content)
    return hashlib.sha256(answer.content).hexdigest()


def _see_server_environment(site_packages: Path) -> None:
    """Let a venv import what the server can (evento and the bundle's dependencies): a ``.pth`` file listing the
    server's import path, read after the venv's own packages."""
    paths = [p for p in sys.path if p and Path(p).is_dir()]
    (site_packages / "_evento_server_environment.pth").write_text("\n".join(paths) + "\n")


def _append(path: Path) -> int:
    """A descriptor appending to ``path`` (a local log file: opening it does not wait on anything)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


async def _watch(launch: Launch, process: asyncio.subprocess.Process, pid_path: Path | None = None) -> None:
    await process.wait()
    if pid_path is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pid_path)  # a local file: nothing to wait on
    launch.exited.set()


class ScriptSpawner:
    """An operator's deploy script (``--deploy-script PATH``), run as ``PATH BUNDLE_JSON TOKEN``; it must exit 0
    within ``timeout`` seconds."""

    def __init__(self, path: Path, timeout: float = 120.0) -> None:
        self.path = path
        self.timeout = timeout
        #: The shipped scripts by name (``--deploy-script docker`` or ``kubernetes``, when no such file exists
        #: here): :mod:`evento.server.deploy.containers` with this interpreter.
        self.command = [str(path)]
        if str(path) in ("docker", "kubernetes") and not path.exists():
            self.command = [sys.executable, "-m", "evento.server.deploy.containers", str(path)]

    async def start(self, spec: BundleSpec, instance_id: str, token: str, context: DeployContext) -> Launch:
        log_path = context.log_dir / spec.bundle_id / f"{instance_id}.deploy.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out = _append(log_path)
        try:
            try:
                process = await asyncio.create_subprocess_exec(
                    *self.command,
                    spec_json(spec),
                    token,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    env=_environment(spec, instance_id, context),
                )
            except OSError as exc:
                raise DeployError(f"deploy script {self.path}: {exc.strerror or exc}") from exc
        finally:
            os.close(out)
        launch = Launch(spec.bundle_id, instance_id, None, log_path)
        try:
            code = await asyncio.wait_for(process.wait(), self.timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            raise DeployError(f"deploy script {self.path} did not finish within {self.timeout:g}s") from None
        if code != 0:
            said = launch.last_line() or "no output"
            raise DeployError(f"deploy script {self.path} exited with status {code}: {said}")
        return launch
