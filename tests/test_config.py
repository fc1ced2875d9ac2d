"""Settings: bad ``MODELMANAGER_*`` values are ``configuration_invalid``, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelmanager import ConfigurationInvalid, ModelManager
from modelmanager.cli import app
from modelmanager.config import Settings

BAD_VALUES = [
    ("MODELMANAGER_GC_KEEP_PREVIOUS", "abc", "valid integer"),
    ("MODELMANAGER_GC_KEEP_PREVIOUS", "-1", "greater than or equal to 0"),
    ("MODELMANAGER_LEASE_TTL_S", "0", "greater than 0"),
    ("MODELMANAGER_DIGEST_WORKERS", "many", "valid integer"),
    ("MODELMANAGER_GC_HARD_CAP_DAYS", "sixty", "valid number"),
]


@pytest.mark.parametrize(("variable", "value", "reason"), BAD_VALUES)
def test_bad_environment_value_names_the_variable_and_reason(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, reason: str
) -> None:
    """Issue 12 (R-FAIL): ``Settings()`` raised pydantic's ValidationError; now it raises
    ConfigurationInvalid (exit 2) naming the variable, the value and why."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationInvalid) as info:
        Settings()
    error = info.value
    assert error.code == "configuration_invalid"
    assert error.exit_code == 2
    assert error.fields["variable"] == variable
    assert error.fields["setting"] == variable.removeprefix("MODELMANAGER_").lower()
    assert reason in error.fields["reason"]
    assert f"{variable}={value!r} is not valid: " in error.message
    assert variable in error.fields["hint"]


def test_every_bad_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12: two bad variables are both in the message, so one run shows what to fix."""
    monkeypatch.setenv("MODELMANAGER_GC_KEEP_PREVIOUS", "abc")
    monkeypatch.setenv("MODELMANAGER_LEASE_WAIT_S", "-5")
    with pytest.raises(ConfigurationInvalid) as info:
        Settings()
    assert "MODELMANAGER_GC_KEEP_PREVIOUS='abc'" in info.value.message
    assert "MODELMANAGER_LEASE_WAIT_S='-5'" in info.value.message


def test_bad_keyword_is_named_as_the_keyword() -> None:
    """Issue 12 (R-FAIL): a value passed in code is named by its keyword, not a variable."""
    with pytest.raises(ConfigurationInvalid) as info:
        Settings(gc_keep_previous=-3)
    assert info.value.fields["setting"] == "gc_keep_previous"
    assert "variable" not in info.value.fields
    assert info.value.message.startswith("gc_keep_previous=-3 is not valid: ")


def test_good_environment_values_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELMANAGER_GC_KEEP_PREVIOUS", "5")
    monkeypatch.setenv("MODELMANAGER_LEASE_TTL_S", "2.5")
    settings = Settings()
    assert (settings.gc_keep_previous, settings.lease_ttl_s) == (5, 2.5)


def test_the_manager_reports_a_bad_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12 (R-FAIL): the manager reads Settings() when no models_root is given; it gets
    the same ConfigurationInvalid as the CLI."""
    monkeypatch.setenv("MODELMANAGER_DIGEST_WORKERS", "0")
    with pytest.raises(ConfigurationInvalid) as info:
        ModelManager(None, {"format_version": 1, "profile": "p", "components": {}})
    assert info.value.fields["variable"] == "MODELMANAGER_DIGEST_WORKERS"


@pytest.mark.parametrize(
    "command", [["runs", "list"], ["gc", "--dry-run"]], ids=["runs-list", "gc-dry-run"]
)
def test_cli_reports_a_bad_environment_as_json(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: list[str]
) -> None:
    """Issue 12 (R-FAIL): every command crashed with a ValidationError traceback; now exit 2
    and, with --json, exactly one JSON document carrying the error code and the variable."""
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MODELMANAGER_GC_KEEP_PREVIOUS", "abc")
    result = CliRunner().invoke(app, [*command, "--json"])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    document = json.loads(result.stdout)  # one document: json.loads refuses trailing data
    assert document["error_code"] == "configuration_invalid"
    assert document["variable"] == "MODELMANAGER_GC_KEEP_PREVIOUS"
    assert "valid integer" in document["reason"]
    assert not (tmp_path / "data").exists()  # refused before the run index was touched


@pytest.mark.parametrize(
    "command", [["runs", "list"], ["gc", "--dry-run"]], ids=["runs-list", "gc-dry-run"]
)
def test_cli_reports_a_bad_environment_as_text(
    monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """Issue 12 (R-FAIL): without --json, the message and hint, exit 2, no traceback."""
    monkeypatch.setenv("MODELMANAGER_GC_KEEP_PREVIOUS", "abc")
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2, result.output
    assert "error [configuration_invalid] MODELMANAGER_GC_KEEP_PREVIOUS='abc'" in result.stderr
    assert "hint: Fix or unset MODELMANAGER_GC_KEEP_PREVIOUS." in result.stderr
    assert "Traceback" not in result.output
