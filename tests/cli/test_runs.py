"""R-MAP-1/2, R-SIG-5: runs, explain of two runs, and database profiles from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from modelmanager.cli import app
from modelmanager.index import RunStore
from tests.conftest import EXAMPLES
from tests.runner_components import FrameFeatures, SceneStats, frames, make_runner, mapping

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
