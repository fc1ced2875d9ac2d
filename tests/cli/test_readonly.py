"""Issue 12: commands that change nothing never create a run index; `db upgrade` does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelmanager.cli import app

runner = CliRunner()

READ_ONLY = [
    ["runs", "list"],
    ["runs", "show", "run-1"],
    ["profiles", "list"],
    ["gc", "--dry-run"],
    ["orphans"],
    ["delete-video", "--platform-id", "p", "--video-id", "v", "--dry-run"],
]


@pytest.mark.parametrize("args", READ_ONLY, ids=lambda a: " ".join(a))
def test_a_read_only_command_creates_no_run_index(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "index.sqlite3"
    monkeypatch.setenv("MODELMANAGER_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("MODELMANAGER_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 1, result.output
    error = json.loads(result.output)
    assert error["error_code"] == "database_error"
    assert "db upgrade" in error.get("hint", "") or "db upgrade" in error["error"]
    assert not db.exists() or db.stat().st_size == 0


def test_db_upgrade_creates_it_and_then_they_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELMANAGER_DATABASE_URL", f"sqlite:///{tmp_path / 'index.sqlite3'}")
    monkeypatch.setenv("MODELMANAGER_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    assert runner.invoke(app, ["db", "upgrade", "--json"]).exit_code == 0
    listed = runner.invoke(app, ["runs", "list", "--json"])
    assert (listed.exit_code, json.loads(listed.output)) == (0, [])
