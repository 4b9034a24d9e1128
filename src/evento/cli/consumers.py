"""``evento consumers``: the consumers of a running system, through the server's REST API (any server of its
cluster): list them, show one's status or dead events, retry, delete or consume dead events, enable or disable one,
and reset a projector to replay from a sequence number, watching the replay reach the head it started at.

Readable tables by default (``rich``); ``--json`` prints the API's JSON for scripts.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from evento.cli.client import ApiClient, CommandError, Credentials, path_segment

if TYPE_CHECKING:
    import argparse

__all__ = ["add_parser", "run"]

#: Seconds between two looks at a replaying consumer's checkpoint.
POLL_SECONDS = 0.2


def add_parser(commands: Any) -> None:
    """The ``consumers`` command and its subcommands, on the ``evento`` parser's subparsers."""
    consumers = commands.add_parser("consumers", help="consumers of a running system, through the server's API")
    actions = consumers.add_subparsers(dest="consumers_command", required=True)

    def action(name: str, help: str, *, consumer: bool = True) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(name, help=help)
        if consumer:
            parser.add_argument("consumer_id", metavar="CONSUMER", help="the consumer's id, as `consumers list` shows")
        parser.add_argument("--url", help="the server's HTTP URL (default EVENTO_URL, else http://127.0.0.1:3000)")
        parser.add_argument("--user", help="API user (default EVENTO_USER, else admin)")
        parser.add_argument("--password", help="its password (default EVENTO_PASSWORD, else asked on a terminal)")
        parser.add_argument("--json", action="store_true", help="print the API's JSON instead of a table")
        return parser

    action("list", "every consumer of the cluster's bundles", consumer=False)
    action("status", "a consumer's live status: checkpoint, head, lag, errors, dead events")
    action("dead-events", "a consumer's dead event queue")
    retry = action("retry", "flag a dead event for the next consume-dead-queue")
    retry.add_argument("sequence_number", type=int, metavar="SEQ")
    retry.add_argument("--off", action="store_true", help="unflag it instead")
    delete = action("delete", "delete a dead event for good")
    delete.add_argument("sequence_number", type=int, metavar="SEQ")
    action("consume-dead-queue", "handle again the dead events flagged for retry")
    action("enable", "let a consumer consume again")
    action("disable", "pause a consumer")
    reset = action("reset", "replay a consumer from a sequence number, showing its progress")
    reset.add_argument(
        "--from", dest="from_sequence", type=int, default=0, metavar="SEQ", help="replay the events after SEQ (0)"
    )
    reset.add_argument("--no-wait", action="store_true", help="return once the reset is accepted")
    reset.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the replay (600)")


def run(args: argparse.Namespace) -> int:
    """Run one ``evento consumers`` subcommand; raises :class:`CommandError` for what its user must fix."""
    # httpx logs every request at INFO: noise around a table (``--log-level DEBUG`` still shows them).
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    credentials = Credentials.resolve(args.url, args.user, args.password)
    with ApiClient(credentials) as api:
        command = args.consumers_command
        if command == "list":
            items = api.pages("/api/consumer/")
            _show(args, items, _consumer_table)
            return 0
        base = f"/api/consumer/{path_segment(args.consumer_id)}"
        if command == "status":
            _show(args, api.request("GET", base), _status_table)
        elif command == "dead-events":
            _show(args, api.pages(f"{base}/event"), _dead_events_table)
        elif command == "retry":
            retry = "false" if args.off else "true"
            api.request("PUT", f"{base}/event/{args.sequence_number}", params={"retry": retry})
            _done(args, {"sequenceNumber": args.sequence_number, "retry": not args.off},
                  f"dead event {args.sequence_number} {'unflagged' if args.off else 'flagged for retry'}")  # fmt: skip
        elif command == "delete":
            api.request("DELETE", f"{base}/event/{args.sequence_number}")
            _done(args, {"sequenceNumber": args.sequence_number, "deleted": True},
                  f"dead event {args.sequence_number} deleted")  # fmt: skip
        elif command == "consume-dead-queue":
            answer = api.request("POST", f"{base}/consume-dead-queue")
            _done(args, answer, f"{answer['processed']} dead event(s) handled successfully")
        elif command in ("enable", "disable"):
            _show(args, api.request("POST", f"{base}/{command}"), _status_table)
        elif command == "reset":
            _reset(args, api, base)
    return 0


def _reset(args: argparse.Namespace, api: ApiClient, base: str) -> None:
    accepted = api.request("POST", f"{base}/reset", json={"fromSequenceNumber": args.from_sequence})
    if args.no_wait:
        _done(args, accepted, f"reset to {accepted['fromSequenceNumber']}: replaying up to {accepted['head']}")
        return
    start, head = int(accepted["fromSequenceNumber"]), int(accepted["head"])
    deadline = time.monotonic() + args.timeout

    def checkpoint() -> tuple[int, dict[str, Any]]:
        status = api.request("GET", base)
        return (status["checkpoint"] if status["checkpoint"] is not None else start), status

    position, status = checkpoint()
    progress = Progress(
        TextColumn("[bold]replaying[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=args.json,
    )
    with progress:
        task = progress.add_task(args.consumer_id, total=max(head - start, 0))
        while position < head:
            progress.update(task, completed=max(position - start, 0))
            if time.monotonic() > deadline:
                raise CommandError(
                    f"{args.consumer_id}: the replay reached {position} of {head} in {args.timeout:g} s; "
                    "it goes on in the consumer (see `evento consumers status`)"
                )
            time.sleep(POLL_SECONDS)
            position, status = checkpoint()
        progress.update(task, completed=max(head - start, 0))
    _done(args, {**accepted, "status": status}, f"{args.consumer_id} replayed from {start} to {position}")


def _console() -> Console:
    # Piped output keeps whole lines: a table is not squeezed to 80 columns.
    return Console(width=None if sys.stdout.isatty() else 200)


def _show(args: argparse.Namespace, data: Any, table: Any) -> None:
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        _console().print(table(data))


def _done(args: argparse.Namespace, data: Any, line: str) -> None:
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(line)


def _consumer_table(items: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{len(items)} consumer(s)", title_justify="left")
    for column in ("CONSUMER", "COMPONENT", "KIND", "BUNDLE", "VERSION", "CONTEXT", "INSTANCES"):
        table.add_column(column)
    for item in items:
        table.add_row(
            item["consumerId"],
            item["component"],
            item["componentKind"],
            item["bundleId"],
            str(item["bundleVersion"]),
            item["context"],
            ", ".join(item["instances"]) or "(offline)",
        )
    return table


def _status_table(status: dict[str, Any]) -> Table:
    table = Table(title=status["consumerId"], title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for label, key in (
        ("component", "component"), ("kind", "componentKind"), ("bundle", "bundleId"), ("context", "context"),
        ("instance", "instanceId"), ("checkpoint", "checkpoint"), ("head", "head"), ("lag", "lag"),
        ("head reached", "headReached"), ("enabled", "enabled"), ("holds lock", "holdsLock"),
        ("errors", "errorCount"), ("error", "errorMessage"), ("error since", "errorSince"),
        ("dead events", "deadEvents"), ("in flight", "inFlight"),
    ):  # fmt: skip
        value = status.get(key)
        table.add_row(label, "-" if value is None else str(value))
    return table


def _dead_events_table(events: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{len(events)} dead event(s)", title_justify="left")
    for column in ("SEQ", "EVENT", "AGGREGATE", "DEAD AT", "RETRY", "ERROR"):
        table.add_column(column)
    for event in events:
        table.add_row(
            str(event["sequenceNumber"]),
            event["eventName"],
            event.get("aggregateId") or "-",
            event["deadAt"],
            "yes" if event["retry"] else "no",
            event["error"],
        )
    return table
