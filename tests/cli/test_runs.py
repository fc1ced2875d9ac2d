"""R-MAP-1/2, R-SIG-5: runs, explain of two runs, and database profiles from the command line."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from modelmanager.cli import app
from modelmanager.index import RunStore
from tests.conftest import EXAMPLES
from tests.runner_components import (
    Broken,
    FrameFeatures,
    SceneStats,
    frames,
    make_runner,
    mapping,
)

runner = CliRunner()


def run(*args: Any) -> Any:
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def runs(
    store: RunStore, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> RunStore:
    """Two runs in the index: run-1 computes, run-2 changes the encoder's precision."""
    monkeypatch.setenv("MODELMANAGER_DATABASE_URL", store_url)
    monkeypatch.setenv("MODELMANAGER_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    inputs = {"frames": frames()}
    make_runner(store, tmp_path / "artifacts", "run-1").run([FrameFeatures(), SceneStats()], inputs)
    changed = mapping()
    changed["components"]["frame_features"]["encoder"]["precision"] = "fp16"
    make_runner(store, tmp_path / "artifacts", "run-2", mapping=changed).run(
        [FrameFeatures(), SceneStats()], inputs
    )
    return store


def test_runs_list_and_show(runs: RunStore) -> None:
    listed = json.loads(run("runs", "list", "--json").output)
    assert [r["run_id"] for r in listed] == ["run-2", "run-1"]
    shown = run("runs", "show", "run-2", "--json")
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.output)
    assert [(c["component"], c["status"], c["cache_hit"]) for c in doc["components"]] == [
        ("frame_features", "ok", False),
        ("scene_stats", "cached", True),
    ]
    table = run("runs", "show", "run-1").output
    assert "frame_features" in table
    assert "miss" in table
    missing = run("runs", "show", "nope", "--json")
    assert missing.exit_code == 2
    assert json.loads(missing.output)["error_code"] == "run_not_found"


def test_explain_two_runs_names_the_field(runs: RunStore) -> None:
    result = run("explain", "run-1", "run-2", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["scene_stats"] == {"same": True, "differences": []}
    fields = [d["field"] for d in doc["frame_features"]["differences"]]
    assert fields == ["cache_key", "model_signature", "models_used[encoder].precision"]
    text = run("explain", "run-1", "run-2", "--component", "frame_features").output
    assert 'models_used[encoder].precision: "fp32" → "fp16"' in text
    assert "scene_stats" not in text


def test_explain_unknown_run(runs: RunStore) -> None:
    result = run("explain", "run-1", "run-9")
    assert result.exit_code == 2
    assert "[run_not_found]" in result.output


def test_explain_an_unknown_component_is_bad_input_naming_it(runs: RunStore) -> None:
    result = run("explain", "-c", "nope", "run-1", "run-2", "--json")
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)
    assert (error["error_code"], error["component"]) == ("model_mapping_missing", "nope")
    assert "'nope'" in error["error"]
    assert run("explain", "-c", "nope", "run-1", "run-2").exit_code == 2


def test_runs_show_and_the_run_table_print_a_failed_components_message(
    store: RunStore, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rich.console import Console

    from modelmanager.cli.run_videos import run_table

    monkeypatch.setenv("MODELMANAGER_DATABASE_URL", store_url)
    monkeypatch.setenv("MODELMANAGER_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    result = make_runner(store, tmp_path / "artifacts", "run-broken").run(
        [FrameFeatures(), Broken()], {"frames": frames()}
    )
    console = Console(width=400, record=True, file=io.StringIO())
    console.print(run_table(result))
    table = console.export_text()
    assert "[component_failed]" in table
    assert "division by zero in the component" in table
    shown = run("runs", "show", "run-broken")
    assert shown.exit_code == 0, shown.output
    assert "[component_failed]" in shown.output
    assert "division by zero in the component" in shown.output
    doc = json.loads(run("runs", "show", "run-broken", "--json").stdout)
    broken = next(c for c in doc["components"] if c["component"] == "scene_stats")
    assert broken["error_code"] == "component_failed"
    assert "division by zero in the component" in broken["error"]


def test_database_profile_is_a_mapping_source(
    store: RunStore, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELMANAGER_DATABASE_URL", store_url)
    loaded = run("profiles", "load", EXAMPLES / "profile.yaml", "--json")
    assert loaded.exit_code == 0, loaded.output
    result = run(
        "resolve", "example-cpu", "--models-root", EXAMPLES / "models", "--json", "-c", "text_ocr"
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["source"] == "database:example-cpu"
    from_file = json.loads(
        run(
            "resolve",
            EXAMPLES / "profile.yaml",
            "--models-root",
            EXAMPLES / "models",
            "--json",
            "-c",
            "text_ocr",
        ).output
    )
    for key in ("models_used", "model_signature"):  # the same identity from either layer
        assert doc["components"]["text_ocr"][key] == from_file["components"]["text_ocr"][key]
    missing = run("resolve", "no-such-profile", "--json")
    assert (missing.exit_code, json.loads(missing.output)["error_code"]) == (
        2,
        "model_mapping_missing",
    )
