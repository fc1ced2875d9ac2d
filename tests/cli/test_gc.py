"""R-GC-1..4 from the command line: gc, orphans, delete-video (human and --json output, errors)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from modelmanager.cli import app
from modelmanager.index import RunStore
from tests.retention.test_retention import NOW, PLATFORM, VIDEO, History

runner = CliRunner()
AT = ["--now", NOW.strftime("%Y-%m-%dT%H:%M:%S%z")]


def run(*args: Any) -> Any:
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def cli_history(
    store: RunStore, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> History:
    """Five runs of one group (r1..r5, oldest first) and a running one, seen by the CLI."""
    root = tmp_path / "artifacts"
    root.mkdir()
    monkeypatch.setenv("MODELMANAGER_DATABASE_URL", store_url)
    monkeypatch.setenv("MODELMANAGER_ARTIFACT_ROOT", str(root))
    h = History(store, root)
    for i, days in enumerate((9, 8, 7, 6, 5), start=1):
        h.run(f"r{i}", days)
    h.run("live", 1, status="running", config="cfg-live")
    return h


def test_gc_dry_run_then_real_run(cli_history: History) -> None:
    h = cli_history
    dry = run("gc", "--dry-run", "--json", *AT)
    assert dry.exit_code == 0, dry.output
    doc = json.loads(dry.output)
    assert [(r["run_id"], r["reason"]) for r in doc["runs"]] == [
        ("r1", "superseded"),
        ("r2", "superseded"),
    ]
    assert (doc["dry_run"], doc["runs_collected"], doc["files"]) == (True, 2, 6)
    assert doc["policy"] == {"keep_previous": 2, "temp_ttl_days": 7.0, "hard_cap_days": 60.0}
    assert h.runs() == {"r1", "r2", "r3", "r4", "r5", "live"}

    text = run("gc", *AT)
    assert text.exit_code == 0, text.output
    assert "r1" in text.output
    assert "superseded" in text.output
    assert f"6 files, freed {doc['bytes_freed']} B" in text.output
    assert h.runs() == {"r3", "r4", "r5", "live"}
    assert "0 runs of 1 videos collected" in run("gc", *AT).output


def test_gc_flags_override_the_settings(
    cli_history: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELMANAGER_GC_KEEP_PREVIOUS", "4")
    assert json.loads(run("gc", "--dry-run", "--json", *AT).output)["runs"] == []
    doc = json.loads(run("gc", "--dry-run", "--json", "--keep-previous", "0", *AT).output)
    assert [r["run_id"] for r in doc["runs"]] == ["r1", "r2", "r3", "r4"]
    doc = json.loads(run("gc", "--dry-run", "--json", "--hard-cap-days", "6.5", *AT).output)
    assert [(r["run_id"], r["reason"]) for r in doc["runs"]][:3] == [
        ("r1", "hard_cap"),
        ("r2", "hard_cap"),
        ("r3", "hard_cap"),
    ]
    bad = run("gc", "--json", "--hard-cap-days", "0")
    assert bad.exit_code == 2
    assert json.loads(bad.output)["error_code"] == "configuration_invalid"


def test_delete_video_prints_what_it_removed_and_finds_nothing_again(
    cli_history: History,
) -> None:
    h = cli_history
    h.run("other", 3, video="vid-other")
    blocked = run("delete-video", "--platform-id", PLATFORM, "--video-id", VIDEO, "--json")
    assert blocked.exit_code == 1
    assert json.loads(blocked.output)["error_code"] == "deletion_blocked"

    args = ["delete-video", "--platform-id", PLATFORM, "--video-id", VIDEO, "--force"]
    dry = run(*args, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"would delete {PLATFORM}/{VIDEO}: 6 runs, 12 component rows, 17 files" in dry.output
    done = run(*args, "--actor", "privacy-desk")
    assert done.exit_code == 0, done.output
    assert f"deleted {PLATFORM}/{VIDEO}: 6 runs" in done.output
    assert "actor privacy-desk" in done.output
    again = run(*args, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["found"] is False
    assert "nothing found" in run(*args).output
    assert h.runs("vid-other") == {"other"}
    assert not (h.root / PLATFORM / VIDEO).exists()

    bad = run("delete-video", "--platform-id", PLATFORM, "--video-id", "a/../b", "--json")
    assert bad.exit_code == 2
    assert json.loads(bad.output)["error_code"] == "invalid_run_context"


def test_orphans_report_and_fix(cli_history: History) -> None:
    h = cli_history
    h.write("stray/file.bin", b"1234")
    (h.root / h.store.component_runs("r5")[0].artifact_path).unlink()  # type: ignore[operator]
    report = run("orphans")
    assert report.exit_code == 1, report.output  # found some, --fix not given
    assert "unknown file  stray/file.bin" in report.output
    assert "missing artifact" in report.output
    assert "run with --fix" in report.output
    found = run("orphans", "--json")
    assert found.exit_code == 1
    assert json.loads(found.stdout)["unknown_files"] == ["stray/file.bin"]
    fixing = run("orphans", "--fix", "--json")
    assert fixing.exit_code == 0, fixing.output
    fixed = json.loads(fixing.stdout)
    assert (fixed["fixed"], fixed["rows_invalidated"]) == (True, 1)
    assert fixed["unknown_files"] == ["stray/file.bin"]
    clean = run("orphans")
    assert clean.exit_code == 0
    assert "no orphans" in clean.output
    assert "--fix" in run("orphans", "--help").output


def test_bad_artifact_root_and_unreachable_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    monkeypatch.setenv("MODELMANAGER_DATABASE_URL", f"sqlite:///{tmp_path / 'i.sqlite3'}")
    monkeypatch.setenv("MODELMANAGER_ARTIFACT_ROOT", str(not_a_dir))
    bad = run("gc", "--json")
    assert bad.exit_code == 2
    assert json.loads(bad.output)["error_code"] == "artifact_root_missing"
    monkeypatch.setenv("MODELMANAGER_DATABASE_URL", "postgresql+psycopg://u@127.0.0.1:1/x")
    down = run("orphans")
    assert down.exit_code == 1
    assert "[database_error]" in down.output
