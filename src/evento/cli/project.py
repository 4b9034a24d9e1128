"""A bundle project's configuration: the ``[[tool.evento.bundle]]`` tables of its ``pyproject.toml``, and
``evento update-version``.

One table per bundle (a project may build several from one package), keys in TOML's kebab-case::

    [[tool.evento.bundle]]
    id = "todolist"
    version = "1.0.0"
    entry-point = "todolist.bundle:build"
    description = "Todo lists"
    repository-url = "https://github.com/acme/todolist/blob/main/"
    environment = { TODO_STORE = "sqlite" }
    interpreter-options = ["-X", "dev"]
    min-instances = 1
    max-instances = 3
    autorun = true

A single ``[tool.evento.bundle]`` table is read the same. Reading uses :mod:`tomllib`; the version bump edits the
file with tomlkit, which keeps its comments, order and spacing.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import tomlkit

from evento.cli.client import CommandError
from evento.server.deploy.spec import BundleSpec

if TYPE_CHECKING:
    import argparse

__all__ = ["PARTS", "add_parser", "bump", "pyproject_of", "read_bundles", "run_update_version", "update_version"]

PARTS = ("major", "minor", "patch")

#: TOML key -> the JSON name of the BundleSpec field.
_KEYS = {
    "id": "bundleId",
    "version": "version",
    "entry-point": "entryPoint",
    "description": "description",
    "repository-url": "repositoryUrl",
    "environment": "environment",
    "interpreter-options": "interpreterOptions",
    "min-instances": "minInstances",
    "max-instances": "maxInstances",
    "autorun": "autorun",
}


def pyproject_of(path: Path) -> Path:
    """The ``pyproject.toml`` that ``path`` names (the file, or a project directory holding it)."""
    file = path / "pyproject.toml" if path.is_dir() else path
    if not file.is_file():
        raise CommandError(f"no pyproject.toml at {path}")
    return file


def _tables(document: Any, file: Path) -> list[Any]:
    tool = document.get("tool", {}).get("evento", {})
    tables = tool.get("bundle") if isinstance(tool, dict) else None
    if tables is None:
        raise CommandError(f"{file} has no [[tool.evento.bundle]] table: nothing describes a bundle there")
    tables = [tables] if isinstance(tables, dict) else list(tables)
    if not tables or not all(isinstance(table, dict) for table in tables):
        raise CommandError(f"{file}: tool.evento.bundle must be a table or an array of tables")
    return tables


def read_bundles(path: Path) -> list[BundleSpec]:
    """Every bundle a project's ``pyproject.toml`` describes; raises :class:`CommandError` naming the file and
    what is wrong (none declared, an unknown key, a missing or mistyped field)."""
    file = pyproject_of(path)
    try:
        document = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise CommandError(f"{file}: not valid TOML: {exc}") from exc
    specs = []
    for n, table in enumerate(_tables(document, file)):
        unknown = sorted(set(table) - set(_KEYS))
        if unknown:
            raise CommandError(f"{file}: bundle {n + 1}: unknown key(s) {', '.join(unknown)}")
        fields = {_KEYS[key]: value for key, value in table.items()}
        if isinstance(fields.get("version"), int):
            fields["version"] = str(fields["version"])
        try:
            specs.append(msgspec.convert(fields, BundleSpec))
        except (msgspec.ValidationError, ValueError) as exc:
            said = str(exc)
            for key, name in _KEYS.items():  # the message in the file's own words
                said = said.replace(f"`{name}`", f"`{key}`").replace(f"$.{name}", key)
            raise CommandError(f"{file}: bundle {table.get('id', n + 1)}: {said}") from exc
    return specs


def bump(version: str | int, part: str) -> str | int:
    """``version`` one step on: an integer (the runtime's ``Bundle(version=…)``) by one whatever ``part``; a
    ``MAJOR.MINOR.PATCH`` string by ``part``, the parts after it back to 0.

    >>> bump("1.4.2", "minor"), bump("1.4.2", "major"), bump(7, "patch")
    ('1.5.0', '2.0.0', 8)
    """
    if isinstance(version, int) and not isinstance(version, bool):
        return version + 1
    pieces = str(version).split(".")
    if len(pieces) > 3 or not all(piece.isdigit() for piece in pieces):
        raise CommandError(f"version {version!r} is neither an integer nor MAJOR.MINOR.PATCH")
    numbers = [int(piece) for piece in pieces] + [0] * (3 - len(pieces))
    at = PARTS.index(part)
    numbers[at] += 1
    numbers[at + 1 :] = [0] * (2 - at)
    return ".".join(str(number) for number in numbers)


def update_version(path: Path, part: str = "patch", bundle_id: str | None = None) -> list[tuple[str, str, str]]:
    """Bump the version of the project's bundles (or of ``bundle_id`` only) in place; returns ``(id, old, new)``
    for each. Only the version values change in the file."""
    file = pyproject_of(path)
    read_bundles(file)  # the same checks as publishing: a broken description is not bumped
    document = tomlkit.parse(file.read_text(encoding="utf-8"))
    changed = []
    for table in _tables(document, file):
        if bundle_id is not None and table.get("id") != bundle_id:
            continue
        old = table.get("version", 1)
        new = bump(old.unwrap() if hasattr(old, "unwrap") else old, part)
        table["version"] = new
        changed.append((str(table.get("id")), str(old), str(new)))
    if not changed:
        raise CommandError(f"{file} describes no bundle {bundle_id!r}")
    file.write_text(tomlkit.dumps(document), encoding="utf-8")
    return changed


def add_parser(commands: Any) -> None:
    """The ``update-version`` command, on the ``evento`` parser's subparsers."""
    update = commands.add_parser("update-version", help="bump the version of a project's bundles in pyproject.toml")
    update.add_argument("path", nargs="?", type=Path, default=Path(), help="the project (default: here)")
    update.add_argument("--part", choices=PARTS, default="patch", help="which part of MAJOR.MINOR.PATCH")
    update.add_argument("--bundle", default=None, help="only this bundle of the project")


def run_update_version(args: argparse.Namespace) -> int:
    """``evento update-version``: print each bundle's old and new version."""
    for bundle_id, old, new in update_version(args.path, args.part, args.bundle):
        print(f"{bundle_id}: {old} -> {new}")
    return 0
