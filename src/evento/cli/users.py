"""``evento users``: the REST API's users, in the server's database (the same ``--store`` / ``--data-dir`` as
``evento server``; a PostgreSQL store's users are its whole cluster's). Works while the server runs: users are
read at each login and request."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from evento.cli.client import CommandError
from evento.event_stores import open_event_store
from evento.event_stores.sqlite import SQLiteEventStore
from evento.server.users import Role, User, UserExistsError, UserStore
from evento.startup import naming_the_option

if TYPE_CHECKING:
    import argparse

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    """The ``users`` command and its subcommands, on the ``evento`` parser's subparsers."""
    users = commands.add_parser("users", help="the REST API's users, in the server's database")
    actions = users.add_subparsers(dest="users_command", required=True)

    def action(name: str, help: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(name, help=help)
        parser.add_argument(
            "--store",
            default=os.environ.get("EVENTO_STORE", ""),
            help="the server's event store, as `evento server --store` (default DATA_DIR/events.db)",
        )
        parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("EVENTO_DATA_DIR", ".evento-server")))
        return parser

    add = action("add", "add a user (its password asked twice, or read from stdin)")
    add.add_argument("name")
    add.add_argument("--role", choices=[role.value for role in Role], default=Role.VIEWER.value)
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    password = action("set-password", "change a user's password")
    password.add_argument("name")
    password.add_argument("--password-stdin", action="store_true")
    listing = action("list", "every user and its role")
    listing.add_argument("--json", action="store_true")
    delete = action("delete", "delete a user (its tokens stop working at once)")
    delete.add_argument("name")


def run(args: argparse.Namespace) -> int:
    """Run one ``evento users`` subcommand; raises :class:`CommandError` for what its user must fix."""
    password = _password(args) if args.users_command in ("add", "set-password") else ""
    return asyncio.run(_run(args, password))


async def _run(args: argparse.Namespace, password: str) -> int:
    with naming_the_option("--store"):
        store = open_event_store(args.store, data_dir=args.data_dir)
    if isinstance(store, SQLiteEventStore) and not store.path.exists():
        raise CommandError(f"no server database at {store.path}: start `evento server` once, or check --data-dir")
    database = store.database()
    await database.start()
    try:
        users = UserStore(database)
        await users.start()
        command = args.users_command
        try:
            if command == "add":
                user = await users.add(args.name, password, Role(args.role))
                print(f"added {user.name} ({user.role.value})")
            elif command == "set-password":
                await users.set_password(args.name, password)
                print(f"password of {args.name} changed")
            elif command == "delete":
                if not await users.delete(args.name):
                    raise CommandError(f"no user {args.name!r}")
                print(f"deleted {args.name}")
            elif command == "list":
                _list(await users.list(), args.json)
        except (UserExistsError, LookupError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
    finally:
        await database.stop()
    return 0


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise CommandError("no terminal to ask the password on: pipe it with --password-stdin")
    first = getpass.getpass(f"Password for {args.name}: ")
    if getpass.getpass("Again: ") != first:
        raise CommandError("the two passwords differ")
    return first


def _list(users: list[User], as_json: bool) -> None:
    if as_json:
        print(json.dumps([{"name": u.name, "role": u.role.value, "createdMs": u.created_ms} for u in users], indent=2))
        return
    table = Table(title=f"{len(users)} user(s)", title_justify="left")
    table.add_column("NAME")
    table.add_column("ROLE")
    for user in users:
        table.add_row(user.name, user.role.value)
    Console().print(table)
