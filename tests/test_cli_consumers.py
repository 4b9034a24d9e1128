"""``evento consumers`` and ``evento users`` against a real ``evento server`` process with the TodoList bundles
connected over TCP: the commands run as processes, as an operator's shell or script runs them."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from evento import Bundle, ConsumerSettings, event_handler, projector
from evento.consumer_stores import SQLiteConsumerStateStore
from evento.demo.todolist.payloads import TodoListCreatedEvent
from evento.transport.connector import TcpConnector
from tests.api_support import ADMIN_PASSWORD, BUS_TOKEN, DEADLINE, RunningApi, login, running_api_process
from tests.helpers import wait_until

pytestmark = pytest.mark.slow

PROJECTOR = "todolist-query_TodoListProjector_1_*"
AUDIT = "cli-audit_Audit_1_*"


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.code == 0, self.stderr
        return json.loads(self.stdout)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[RunningApi]:
    async with running_api_process(tmp_path) as running:
        yield running


async def evento(
    api: RunningApi, *args: str, user: str = "admin", password: str = ADMIN_PASSWORD, stdin: str = ""
) -> Ran:
    """``evento ARGS`` as a process, its credentials in the environment (as a script sets them)."""
    env = {**os.environ, "EVENTO_URL": api.url, "EVENTO_USER": user, "EVENTO_PASSWORD": password}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "evento.cli", *args, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


def one_line_error(ran: Ran, *parts: str) -> None:
    assert ran.code == 1, ran
    assert "Traceback" not in ran.stderr, ran.stderr
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1, ran.stderr
    assert lines[0].startswith("evento: "), ran.stderr
    for part in parts:
        assert part in lines[0], ran.stderr


async def caught_up(api: RunningApi, consumer_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def done() -> bool:
        nonlocal found
        found = (await api.viewer.get(f"/api/consumer/{consumer_id}")).json()
        return bool(found.get("lag") == 0 and found.get("headReached"))

    await wait_until(done, DEADLINE, what=f"{consumer_id} caught up")
    return found


async def test_consumers_list_status_and_reset_with_its_progress(api: RunningApi) -> None:
    listed = (await evento(api, "consumers", "list", "--json")).json()
    assert [item["consumerId"] for item in listed] == [
        PROJECTOR,
        "todolist-saga_ErpTodoListActivityRegistrationSaga_1_*",
        "todolist-saga_TodoListNotificationObserver_1_*",
    ]
    table = await evento(api, "consumers", "list")
    assert table.code == 0, table.stderr
    assert "CONSUMER" in table.stdout
    assert PROJECTOR in table.stdout
    assert "TodoListProjector" in table.stdout

    invoker = api.system.invoker()
    for name in ("a", "b", "c"):
        await invoker.create_todo_list(name, "alice")
    before = await caught_up(api, PROJECTOR)
    status = (await evento(api, "consumers", "status", PROJECTOR, "--json")).json()
    assert (status["consumerId"], status["checkpoint"], status["lag"]) == (PROJECTOR, before["head"], 0)
    shown = await evento(api, "consumers", "status", PROJECTOR)
    assert "checkpoint" in shown.stdout
    assert str(before["head"]) in shown.stdout

    # A reset replays from 0 up to the head it started at, and the command waits for it.
    reset = (await evento(api, "consumers", "reset", PROJECTOR, "--from", "0", "--json")).json()
    assert (reset["consumerId"], reset["fromSequenceNumber"], reset["head"]) == (PROJECTOR, 0, before["head"])
    assert reset["status"]["checkpoint"] >= before["head"]
    readable = await evento(api, "consumers", "reset", PROJECTOR, "--from", "1")
    assert readable.code == 0, readable.stderr
    assert f"{PROJECTOR} replayed from 1 to {before['head']}" in readable.stdout
    assert sorted(todo_list.name for todo_list in await invoker.search_todo_lists("", 0)) == ["a", "b", "c"]


@dataclass
class Cause:
    """While ``broken``, the audit fails on lists named ``poison``."""

    broken: bool = True
    audited: list[str] = field(default_factory=list)


@projector(version=1)
class Audit:
    """Audits created lists; a list named ``poison`` fails (no retry) while the cause is broken."""

    def __init__(self, cause: Cause) -> None:
        self.cause = cause

    @event_handler(retry=0)
    def on_created(self, event: TodoListCreatedEvent) -> None:
        if self.cause.broken and event.content.startswith("poison"):
            raise ValueError(f"cannot audit {event.content!r}")
        self.cause.audited.append(event.content)


async def test_dead_events_listed_retried_consumed_and_deleted(api: RunningApi, tmp_path: Path) -> None:
    cause = Cause()
    audit = Bundle(
        "cli-audit",
        components=[Audit],
        consumer_store=SQLiteConsumerStateStore(tmp_path / "audit.db"),
        injector=lambda annotation: cause if annotation is Cause else None,
        consumer_settings=ConsumerSettings(error_delay=0.05),
    )
    assert api.process is not None
    await audit.start(TcpConnector(api.process.bus, auth_token=BUS_TOKEN))
    try:
        invoker = api.system.invoker()
        for name in ("poison-1", "fine", "poison-2"):
            await invoker.create_todo_list(name, "alice")
        await caught_up(api, AUDIT)
        dead = (await evento(api, "consumers", "dead-events", AUDIT, "--json")).json()
        assert [(d["payload"]["content"], d["retry"]) for d in dead] == [("poison-1", False), ("poison-2", False)]
        first, second = dead[0]["sequenceNumber"], dead[1]["sequenceNumber"]
        table = await evento(api, "consumers", "dead-events", AUDIT)
        assert "TodoListCreatedEvent" in table.stdout
        assert "cannot audit 'poison-1'" in table.stdout

        flagged = await evento(api, "consumers", "retry", AUDIT, str(first))
        assert flagged.stdout.strip() == f"dead event {first} flagged for retry"
        cause.broken = False
        consumed = (await evento(api, "consumers", "consume-dead-queue", AUDIT, "--json")).json()
        assert consumed == {"processed": 1}
        assert cause.audited == ["fine", "poison-1"]
        deleted = await evento(api, "consumers", "delete", AUDIT, str(second))
        assert deleted.stdout.strip() == f"dead event {second} deleted"
        assert (await evento(api, "consumers", "dead-events", AUDIT, "--json")).json() == []
        one_line_error(await evento(api, "consumers", "delete", AUDIT, str(second)), "has no dead event", "(404)")
    finally:
        await audit.stop()


async def test_what_goes_wrong_is_one_line_and_exit_1(api: RunningApi, tmp_path: Path) -> None:
    one_line_error(await evento(api, "consumers", "list", password="wrong-password"), "wrong user name", "401")
    one_line_error(await evento(api, "consumers", "status", "nobody_Nothing_1_*"), "(404)")
    one_line_error(await evento(api, "consumers", "list", "--url", "http://127.0.0.1:9"), "cannot reach")
    # A viewer reads; it may not act.
    viewer = await evento(api, "users", "add", "reader", "--role", "viewer", "--password-stdin", "--data-dir",
                          str(tmp_path / "server"), stdin="reader-password\n")  # fmt: skip
    assert viewer.stdout.strip() == "added reader (viewer)", viewer.stderr
    denied = await evento(api, "consumers", "disable", PROJECTOR, user="reader", password="reader-password")
    one_line_error(denied, "needs the admin role", "(403)")
    assert (await evento(api, "consumers", "list", "--user", "reader", password="reader-password")).code == 0


async def test_users_are_added_listed_and_deleted_while_the_server_runs(api: RunningApi, tmp_path: Path) -> None:
    data_dir = ("--data-dir", str(tmp_path / "server"))
    added = await evento(api, "users", "add", "bob", "--role", "admin", "--password-stdin", *data_dir,
                         stdin="bob-password\n")  # fmt: skip
    assert (added.code, added.stdout.strip()) == (0, "added bob (admin)"), added.stderr
    token = await login(api.url, "bob", "bob-password")  # the running server knows bob at once
    assert token
    listed = (await evento(api, "users", "list", "--json", *data_dir)).json()
    assert [(u["name"], u["role"]) for u in listed] == [("admin", "admin"), ("bob", "admin"), ("vera", "viewer")]
    one_line_error(
        await evento(api, "users", "add", "bob", "--password-stdin", *data_dir, stdin="another-password\n"),
        "exists already",
    )
    one_line_error(
        await evento(api, "users", "add", "short", "--password-stdin", *data_dir, stdin="short\n"), "8 characters"
    )
    assert (await evento(api, "users", "delete", "bob", *data_dir)).stdout.strip() == "deleted bob"
    gone = await api.client().post("/api/auth/login", json={"username": "bob", "password": "bob-password"})
    assert gone.status_code == 401
    one_line_error(await evento(api, "users", "delete", "bob", *data_dir), "no user 'bob'")
    one_line_error(await evento(api, "users", "list", "--data-dir", str(tmp_path / "elsewhere")), "no server database")
