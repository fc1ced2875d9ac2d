"""D10, one contract for every command, walked from the click command tree (a new command is
covered without a change here): with ``--json`` stdout holds exactly one JSON document for
every outcome, usage errors included; exit codes mean the same everywhere (0 ok, 1 failed
operation, 2 bad input); help texts name no requirement ids."""

from __future__ import annotations

import enum
import json
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from modelmanager import __version__
from modelmanager.cli.app import app

runner = CliRunner()


def _tree(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _tree(sub, (*path, name))


ROOT = typer.main.get_command(app)
EVERY = list(_tree(ROOT))
LEAVES = [(path, cmd) for path, cmd in EVERY if not hasattr(cmd, "commands")]
GROUPS = [(path, cmd) for path, cmd in EVERY if hasattr(cmd, "commands")]


def _ids(items: list[tuple[tuple[str, ...], Any]]) -> list[str]:
    return [" ".join(path) or "modelmanager" for path, _ in items]


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def one_json_document(result: Any) -> dict[str, Any]:
    """stdout parses as exactly one JSON document (json.loads refuses trailing text)."""
    document = json.loads(result.stdout)
    assert isinstance(document, dict), result.stdout
    return document


def _dummy_values(command: Any) -> list[str]:
    """Placeholder values for the command's required arguments and options."""
    values: list[str] = []
    for param in command.params:
        if not param.required:
            continue
        if param.param_type_name == "option":
            values += [param.opts[0], "x"]
        else:
            values += ["x"] * max(param.nargs, 1)
    return values


@pytest.mark.parametrize(("path", "command"), LEAVES, ids=_ids(LEAVES))
def test_every_command_has_json(path: tuple[str, ...], command: Any) -> None:
    assert any("--json" in param.opts for param in command.params), path


@pytest.mark.parametrize(("path", "command"), LEAVES, ids=_ids(LEAVES))
def test_unknown_option_under_json_is_one_json_document_exit_2(
    path: tuple[str, ...], command: Any
) -> None:
    result = invoke(*path, "--json", "--no-such-option")
    assert result.exit_code == 2, result.output
    error = one_json_document(result)
    assert error["error_code"] == "configuration_invalid"
    assert "--no-such-option" in error["error"]
    assert error["command"] == " ".join(("modelmanager", *path))


WITH_REQUIRED = [(path, cmd) for path, cmd in LEAVES if any(p.required for p in cmd.params)]


@pytest.mark.parametrize(("path", "command"), WITH_REQUIRED, ids=_ids(WITH_REQUIRED))
def test_missing_argument_under_json_is_one_json_document_exit_2(
    path: tuple[str, ...], command: Any
) -> None:
    required = [p for p in command.params if p.required]
    result = invoke(*path, "--json")
    assert result.exit_code == 2, result.output
    error = one_json_document(result)
    assert error["error_code"] == "configuration_invalid"
    assert error["param"] == required[0].name


def _is_choice(param: Any) -> bool:
    """An option typer turns into a choice: an Enum (or Literal) annotation."""
    descriptor = getattr(param, "type_descriptor", None)
    annotation = getattr(descriptor, "annotation", None)
    if annotation is None:
        return getattr(getattr(param, "type", None), "choices", None) is not None
    return (isinstance(annotation, type) and issubclass(annotation, enum.Enum)) or (
        typing.get_origin(annotation) is typing.Literal
    )


CHOICES = [
    (path, command, param)
    for path, command in LEAVES
    for param in command.params
    if param.param_type_name == "option" and _is_choice(param)
]


@pytest.mark.parametrize(
    ("path", "command", "param"),
    CHOICES,
    ids=[f"{' '.join(path)} {param.opts[0]}" for path, _, param in CHOICES],
)
def test_bad_choice_under_json_is_one_json_document_exit_2(
    path: tuple[str, ...], command: Any, param: Any
) -> None:
    result = invoke(*path, *_dummy_values(command), param.opts[0], "no-such-choice", "--json")
    assert result.exit_code == 2, result.output
    error = one_json_document(result)
    assert error["error_code"] == "configuration_invalid"
    assert error["param"] == param.name
    assert "no-such-choice" in error["error"]


@pytest.mark.parametrize(("path", "group"), GROUPS, ids=_ids(GROUPS))
def test_unknown_subcommand_under_json_is_one_json_document_exit_2(
    path: tuple[str, ...], group: Any
) -> None:
    result = invoke(*path, "no-such-command", "--json")
    assert result.exit_code == 2, result.output
    assert one_json_document(result)["error_code"] == "configuration_invalid"


def test_usage_errors_without_json_keep_the_usage_text() -> None:
    result = invoke("run")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "Usage:" in result.output
    assert "Missing argument" in result.output


REQUIREMENT_ID = re.compile(r"\bR-[A-Z]+-\d")


@pytest.mark.parametrize(("path", "command"), EVERY, ids=_ids(EVERY))
def test_help_names_no_requirement_ids(path: tuple[str, ...], command: Any) -> None:
    texts = [command.help or "", command.short_help or ""]
    texts += [getattr(param, "help", None) or "" for param in command.params]
    for text in texts:
        assert not REQUIREMENT_ID.search(text), (path, text)
    result = invoke(*path, "--help")
    assert result.exit_code == 0, result.output
    assert not REQUIREMENT_ID.search(result.output), result.output


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"modelmanager {__version__}"


def test_a_missing_path_is_bad_input_everywhere(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    for args in (["digest", missing], ["lint-offline", missing]):
        result = invoke(*args, "--json")
        assert result.exit_code == 2, (args, result.output)
        error = one_json_document(result)
        assert error["path"] == [missing], args


def test_digest_of_a_missing_file_is_bad_input_with_a_path_hint(tmp_path: Path) -> None:
    result = invoke("digest", str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert "[configuration_invalid]" in result.stderr
    assert "hint: Check the paths" in result.stderr
    assert "MODELMANAGER_" not in result.stderr


def test_the_tree_is_walked() -> None:
    names = {" ".join(path) for path, _ in LEAVES}
    assert {"run", "digest", "explain", "orphans", "runs show", "triton serve"} <= names
    assert {"run"} <= {" ".join(path) for path, _ in WITH_REQUIRED}
    assert {"--runtime", "--verify-artifacts"} <= {param.opts[0] for _, _, param in CHOICES}


# Every exception that reaches the command line is under the error root; a traceback only
# with -v (issue: faults, point 2).

HOSTILE = {
    "a file where the data directory should be": lambda tmp: ["--data-dir", _a_file(tmp)],
    "a database URL of no known dialect": lambda tmp: ["--database-url", "nosuch://x"],
    "a models root that is a file": lambda tmp: ["--models-root", _a_file(tmp)],
}


def _a_file(tmp: Path) -> str:
    path = tmp / "a-file"
    path.write_text("not a directory")
    return str(path)


@pytest.mark.parametrize("setting", sorted(HOSTILE))
@pytest.mark.parametrize(("path", "command"), LEAVES, ids=_ids(LEAVES))
def test_no_command_prints_a_traceback_without_v(
    path: tuple[str, ...], command: Any, setting: str, tmp_path: Path
) -> None:
    flags = HOSTILE[setting](tmp_path)
    args = [*path, *_dummy_values(command)]
    plain = invoke(*flags, *args)
    assert plain.exit_code in (0, 1, 2), plain.output
    assert "Traceback" not in plain.output, plain.output
    as_json = invoke(*flags, *args, "--json")
    assert as_json.exit_code == plain.exit_code, as_json.output
    document = json.loads(as_json.stdout)  # exactly one document, whatever the outcome
    if as_json.exit_code:
        assert document["error_code"], document
    assert "Traceback" not in as_json.output


def test_a_bug_is_internal_error_and_its_traceback_needs_v(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("modelmanager.cli.runs.open_run_store", broken)
    plain = invoke("runs", "list")
    assert plain.exit_code == 1
    assert plain.stderr.startswith("error [internal_error] unexpected ZeroDivisionError: a bug")
    assert "rerun with -v" in plain.stderr
    assert "Traceback" not in plain.output
    as_json = invoke("runs", "list", "--json")
    assert as_json.exit_code == 1
    assert one_json_document(as_json)["error_code"] == "internal_error"
    verbose = invoke("-v", "runs", "list", "--json")
    assert one_json_document(verbose)["exception"] == "ZeroDivisionError"
    assert "Traceback" in verbose.stderr
    assert "raise ZeroDivisionError" in verbose.stderr


def test_v_shows_the_cause_of_a_reported_error(tmp_path: Path) -> None:
    flags = ["--data-dir", _a_file(tmp_path)]
    assert "Traceback" not in invoke(*flags, "runs", "list").output
    verbose = invoke("-v", *flags, "runs", "list")
    assert verbose.exit_code == 1
    assert "[database_error]" in verbose.stderr
    assert "Traceback" in verbose.stderr


# Every setting also as a flag of the command itself (issue: faults, point 4).

ROOT_OPTIONS = {param.name: param for param in ROOT.params}
SETTING_VALUES: dict[str, tuple[str, Any]] = {
    "models_root": ("/m", Path("/m")),
    "cache_dir": ("/c", Path("/c")),
    "digest_workers": ("3", 3),
    "data_dir": ("/d", Path("/d")),
    "database_url": ("sqlite:////db/x.sqlite3", "sqlite:////db/x.sqlite3"),
    "artifact_root": ("/a", Path("/a")),
    "lease_ttl_s": ("7.5", 7.5),
    "lease_wait_s": ("0", 0.0),
    "gc_keep_previous": ("5", 5),
    "gc_temp_ttl_days": ("1.5", 1.5),
    "gc_hard_cap_days": ("30", 30.0),
    "gpu_inventory": ("/g.json", Path("/g.json")),
}


def test_every_setting_is_a_flag() -> None:
    from modelmanager.config import Settings

    assert set(Settings.model_fields) <= set(ROOT_OPTIONS)
    assert set(Settings.model_fields) == set(SETTING_VALUES)
    for name in Settings.model_fields:
        option = ROOT_OPTIONS[name]
        assert option.opts == ["--" + name.replace("_", "-")], option.opts
        assert f"MODELMANAGER_{name.upper()}" in option.help, option.help


@pytest.mark.parametrize("name", sorted(SETTING_VALUES))
def test_a_setting_flag_wins_over_its_variable(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelmanager.cli import _common
    from modelmanager.config import Settings

    monkeypatch.setenv(f"MODELMANAGER_{name.upper()}", "1" if "url" not in name else "sqlite://")
    seen: list[Settings] = []

    def watched(*args: Any, **kwargs: Any) -> Any:
        seen.append(_common.current_settings())
        raise RunNotFoundStop

    monkeypatch.setattr("modelmanager.cli.runs.open_run_store", watched)
    given, expected = SETTING_VALUES[name]
    invoke("--" + name.replace("_", "-"), given, "runs", "list")
    assert getattr(seen[0], name) == expected


class RunNotFoundStop(Exception):
    """Stops a command right after its settings were read."""


def test_a_bad_setting_flag_is_bad_input_naming_it() -> None:
    result = invoke("--gc-keep-previous", "-1", "gc", "--json")
    assert result.exit_code == 2
    error = one_json_document(result)
    assert error["error_code"] == "configuration_invalid"
    assert error["setting"] == "gc_keep_previous"


def test_the_database_url_flag_is_the_index_used(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'flag.sqlite3'}"
    result = invoke("--database-url", url, "db", "upgrade", "--json")
    assert result.exit_code == 0, result.output
    assert one_json_document(result)["database"] == url
    assert (tmp_path / "flag.sqlite3").is_file()
