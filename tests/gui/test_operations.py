"""Running bundles from the GUI (issue 12), in Chromium against a real ``evento server`` process that starts
bundle instances itself (its built-in local spawner runs ``evento bundle run tests.gui.ops_bundle:build`` in this
environment): an admin raises the bundle's maximum on its page and clicks Spawn, a second instance appears on the
cluster page, Kill (confirmed) makes it leave; the supervisor's decisions show on the bundle's page; a viewer sees
the deployment but no Spawn, Kill or editor.

The package's ``live`` system runs in process without a bus on TCP or a supervisor, so this module overrides
``live`` with a server process; the other fixtures (sessions, pages, screenshots) are the package's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.gui.browser import assert_accessible
from tests.gui.support import ADMIN_PASSWORD, ARTIFACTS, VIEWER_PASSWORD, VIEWER_USER
from tests.helpers import free_port

pytestmark = pytest.mark.slow

BUNDLE = "ops"
DEPLOY = {"entryPoint": "tests.gui.ops_bundle:build", "minInstances": 1, "maxInstances": 1, "autorun": True}
#: How long an instance may take to start and join (a Python process importing evento on a loaded machine).
JOIN_MS = 30_000


@dataclass
class OpsServer:
    """An ``evento server`` process running the ``ops`` bundle, and an admin client of its API."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    admin: httpx.Client

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def instances(self) -> set[str]:
        """The ``ops`` instances online, from the cluster view."""
        view = self.admin.get("/api/cluster-status/view").json()
        return {i["instanceId"] for i in view["instances"] if i["bundleId"] == BUNDLE}


def _wait(what: str, check: Callable[[], bool], timeout: float) -> None:
    """Wait until ``check()`` holds (a process's output, not the page: Playwright's expect waits for those)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def _instance_pids() -> list[int]:
    """The processes of ``ops`` instances (their environment names ``EVENTO_INSTANCE_ID=ops-…``): the server leaves
    the instances it started running when it stops."""
    wanted = f"EVENTO_INSTANCE_ID={BUNDLE}-".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            variables = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(v.startswith(wanted) for v in variables):
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def live(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsServer]:
    """The server process with the admin and the viewer the package's sessions log in as, and ``ops`` deployed
    (autorun, one instance)."""
    directory = tmp_path_factory.mktemp("gui-ops")
    port, bus_port = free_port(), free_port()
    log = directory / "server.log"
    evento = [sys.executable, "-m", "evento.cli"]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [*evento, "--log-level", "WARNING", "server", "--data-dir", str(directory), "--port", str(port),
             "--bus-port", str(bus_port), "--auth-token", "gui-ops-token", "--admin-password", ADMIN_PASSWORD,
             "--kill-grace", "5"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    admin = httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=("admin", ADMIN_PASSWORD), timeout=15)
    server = OpsServer(f"http://127.0.0.1:{port}", process, log, admin)
    try:
        _wait("the server says Ready.", lambda: process.poll() is None and "Ready." in server.output(), 30)
        subprocess.run(
            [*evento, "users", "add", VIEWER_USER, "--role", "viewer", "--password-stdin",
             "--data-dir", str(directory)],
            input=f"{VIEWER_PASSWORD}\n".encode(), check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        answer = admin.put(f"/api/bundle/{BUNDLE}", json=DEPLOY)
        assert answer.status_code == 200, answer.text
        yield server
    finally:
        admin.close()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)
        for pid in _instance_pids():
            os.kill(pid, signal.SIGTERM)


def _deployment(page: Page) -> Any:
    return page.get_by_test_id("deployment")


def test_an_admin_raises_the_maximum_spawns_and_kills_an_instance(
    live: OpsServer, open_page: Callable[..., Page]
) -> None:
    page = open_page()
    page.goto(f"{live.url}/bundles/{BUNDLE}")
    deployment = _deployment(page)
    # The autorun minimum: the supervisor starts one instance, which joins.
    expect(deployment.get_by_test_id("deployment-instances")).to_have_text("1 online of 1 wanted", timeout=JOIN_MS)
    expect(deployment.get_by_test_id("deployment-bounds")).to_have_text("1–1")
    first = live.instances()
    assert len(first) == 1, first

    # At the maximum, Spawn is refused with the API's own words.
    deployment.get_by_role("button", name="Spawn").click()
    expect(deployment.get_by_test_id("deployment-notice")).to_contain_text(
        f"bundle '{BUNDLE}' runs its maximum of 1 instance(s)"
    )

    deployment.get_by_label("Min instances").fill("1")
    deployment.get_by_label("Max instances").fill("2")
    deployment.get_by_role("button", name="Save bounds").click()
    expect(deployment.get_by_test_id("deployment-notice")).to_have_text("Saved: 1 to 2 instances, autorun on")
    expect(deployment.get_by_test_id("deployment-bounds")).to_have_text("1–2")
    deployment.get_by_role("button", name="Spawn").click()
    expect(deployment.get_by_test_id("deployment-notice")).to_have_text("One more instance wanted: 2")
    expect(deployment.get_by_test_id("deployment-instances")).to_have_text("2 online of 2 wanted", timeout=JOIN_MS)
    decisions = deployment.get_by_test_id("decisions")
    expect(decisions.get_by_text("asked by admin: 2 wanted")).to_be_visible()
    expect(decisions.get_by_text("joined", exact=True)).to_have_count(2)
    # The bundle's own list of instances follows, each with its Kill.
    expect(page.get_by_test_id("instances").get_by_role("button", name="Kill instance")).to_have_count(2)
    assert_accessible(page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "operations_bundle_page.png"), full_page=True)

    (spawned,) = live.instances() - first
    (kept,) = first
    page.goto(f"{live.url}/cluster?q={BUNDLE}")
    instances = page.get_by_test_id("instances")
    expect(instances.get_by_text(spawned)).to_be_visible()
    expect(instances.get_by_text(kept)).to_be_visible()
    page.get_by_role("button", name=f"Kill instance {spawned}").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Kill instance {spawned}?")
    assert_accessible(page)
    dialog.get_by_role("button", name="Kill the instance").click()
    expect(dialog).to_have_count(0)
    # It leaves gracefully (well within the grace period) and, above the minimum, nothing replaces it.
    expect(instances.get_by_text(spawned)).to_have_count(0, timeout=JOIN_MS)
    expect(instances.get_by_text(kept)).to_be_visible()
    assert live.instances() == first
    assert_accessible(page)

    page.goto(f"{live.url}/bundles/{BUNDLE}")
    expect(_deployment(page).get_by_test_id("deployment-instances")).to_have_text("1 online of 1 wanted")
    expect(_deployment(page).get_by_test_id("decisions").get_by_text(spawned).first).to_be_visible()

    dark = open_page(color_scheme="dark")
    dark.goto(f"{live.url}/bundles/{BUNDLE}")
    expect(dark.get_by_test_id("instances").get_by_role("button", name=f"Kill instance {kept}")).to_be_visible()
    expect(_deployment(dark).get_by_role("button", name="Spawn")).to_be_visible()
    assert_accessible(dark)


def test_a_viewer_sees_the_deployment_but_no_operation(live: OpsServer, open_page: Callable[..., Page]) -> None:
    page = open_page(user=VIEWER_USER)
    page.goto(f"{live.url}/cluster?q={BUNDLE}")
    expect(page.get_by_test_id("current-role")).to_have_text("viewer")
    expect(page.get_by_test_id("instances").get_by_text(f"{BUNDLE}-").first).to_be_visible(timeout=JOIN_MS)
    expect(page.get_by_role("button", name="Kill")).to_have_count(0)

    page.goto(f"{live.url}/bundles/{BUNDLE}")
    deployment = _deployment(page)
    expect(deployment.get_by_test_id("deployment-instances")).to_contain_text("online of")
    expect(deployment.get_by_test_id("decisions").get_by_text("deploy", exact=True).last).to_be_visible()
    for name in ("Spawn", "Save bounds", "Kill"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    expect(page.get_by_test_id("deployment-editor")).to_have_count(0)
    expect(page.get_by_label("Min instances")).to_have_count(0)
    assert_accessible(page)
