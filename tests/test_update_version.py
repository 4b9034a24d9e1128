"""``evento update-version`` and the ``[[tool.evento.bundle]]`` tables it reads: the version moves by the part
asked, nothing else in the file changes, several bundles per project, and one clear line when there is none."""

from __future__ import annotations

from pathlib import Path

import pytest

from evento.cli.app import main
from evento.cli.client import CommandError
from evento.cli.project import bump, read_bundles, update_version
from tests.test_cli import assert_refused_in_one_line, evento_cli

PROJECT = """\
[project]
name = "todo"   # the distribution
version = "0.1.0"

# The bundles this project deploys.
[[tool.evento.bundle]]
id = "todolist"
version = "1.4.2"  # bumped by evento update-version
entry-point = "todo.bundle:build"
min-instances = 1
max-instances = 3
autorun = true
environment = { TODO_MODE = "fast" }

[[tool.evento.bundle]]
id = "reports"
version = 7
entry-point = "todo.reports:bundle"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(PROJECT)
    return tmp_path


def test_reads_every_bundle_of_a_project(project: Path) -> None:
    todolist, reports = read_bundles(project)
    assert (todolist.bundle_id, todolist.version, todolist.entry_point) == ("todolist", "1.4.2", "todo.bundle:build")
    assert (todolist.min_instances, todolist.max_instances, todolist.autorun) == (1, 3, True)
    assert todolist.environment == {"TODO_MODE": "fast"}
    assert (reports.bundle_id, reports.version, reports.min_instances, reports.autorun) == ("reports", "7", 0, False)


@pytest.mark.parametrize(
    ("part", "todolist", "reports"), [("patch", "1.4.3", "8"), ("minor", "1.5.0", "8"), ("major", "2.0.0", "8")]
)
def test_bumps_by_part_and_changes_nothing_else(project: Path, part: str, todolist: str, reports: str) -> None:
    assert main(["update-version", str(project), "--part", part]) == 0
    text = (project / "pyproject.toml").read_text()
    expected = PROJECT.replace('version = "1.4.2"', f'version = "{todolist}"').replace(
        "version = 7", f"version = {reports}"
    )
    assert text == expected  # comments, order, spacing and the project's own version kept
    assert [spec.version for spec in read_bundles(project)] == [todolist, reports]


def test_one_bundle_of_several(project: Path) -> None:
    assert update_version(project / "pyproject.toml", "minor", "reports") == [("reports", "7", "8")]
    assert [spec.version for spec in read_bundles(project)] == ["1.4.2", "8"]
    with pytest.raises(CommandError, match="no bundle 'nope'"):
        update_version(project, "patch", "nope")


def test_a_single_table_is_one_bundle(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.evento.bundle]\nid = "solo"\nversion = "0.9"\nentry-point = "a:b"\n'
    )
    assert update_version(tmp_path) == [("solo", "0.9", "0.9.1")]
    assert read_bundles(tmp_path)[0].version == "0.9.1"


def test_bump() -> None:
    assert bump("1.4.2", "patch") == "1.4.3"
    assert bump("3", "minor") == "3.1.0"
    assert bump(1, "major") == 2
    with pytest.raises(CommandError, match=r"neither an integer nor MAJOR\.MINOR\.PATCH"):
        bump("1.2-beta", "patch")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[project]\nname = "x"\n', "has no [[tool.evento.bundle]] table"),
        ('[[tool.evento.bundle]]\nid = "a"\n', "bundle a: Object missing required field `entry-point`"),
        ('[[tool.evento.bundle]]\nid = "a"\nentry-point = "a:b"\nmin-instance = 1\n', "unknown key(s) min-instance"),
        ('[[tool.evento.bundle]]\nid = "a"\nentry-point = "nocolon"\n', "entry point must be module:object"),
        ("[[tool.evento.bundle]\n", "not valid TOML"),
    ],
)
def test_refusals_name_the_file_and_the_fault(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "pyproject.toml").write_text(text)
    with pytest.raises(CommandError) as refused:
        update_version(tmp_path)
    assert expected in str(refused.value)
    assert str(tmp_path / "pyproject.toml") in str(refused.value)
    assert (tmp_path / "pyproject.toml").read_text() == text  # untouched


def test_the_command_fails_in_one_line_without_a_description(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    finished = evento_cli("update-version", str(tmp_path), cwd=tmp_path)
    assert_refused_in_one_line(finished, "has no [[tool.evento.bundle]] table")
    finished = evento_cli("update-version", str(tmp_path / "missing"), cwd=tmp_path)
    assert_refused_in_one_line(finished, "no pyproject.toml at")
