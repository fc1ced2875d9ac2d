"""Issue 6: `modelmanager run` over the sample with the real prepared models; a second run is all hits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from modelmanager.cli import app
from modelmanager.tools.prepare import write_profile

from .conftest import REPO

runner = CliRunner()


@pytest.fixture(scope="module")
def prepared(
    real_models: tuple[Path, list[Any]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """The session's real models and a profile written from them."""
    root, models = real_models
    profile = tmp_path_factory.mktemp("profile") / "profile.yaml"
    write_profile(models, profile)
    return root, profile


def test_run_twice_second_is_all_cache_hits(
    prepared: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    args = ["run", str(profile), str(REPO / "examples/sample"), "--models-root", str(root)]
    first = runner.invoke(app, [*args, "--json"])
    assert first.exit_code == 0, first.output
    manifest = json.loads(first.output)
    assert [(c["component"], c["status"]) for c in manifest["components"]] == [
        ("audio_vad", "ok"),
        ("text_ocr", "ok"),
        ("frame_safety", "ok"),
    ]
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert second.output.count("│ cached │ yes") == 3
    assert "manifest" in second.output


def test_run_with_a_missing_sample_is_bad_input(
    prepared: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    result = runner.invoke(
        app, ["run", str(profile), str(tmp_path / "nope"), "--models-root", str(root), "--json"]
    )
    assert result.exit_code == 2
    assert json.loads(result.output)["error_code"] == "configuration_invalid"


def test_run_against_a_local_triton(
    prepared: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    args = ["run", str(profile), str(REPO / "examples/sample"), "--models-root", str(root)]
    result = runner.invoke(app, [*args, "--runtime", "triton", "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.output)
    assert [(c["component"], c["status"]) for c in manifest["components"]] == [
        ("audio_vad", "ok"),
        ("text_ocr", "ok"),
        ("frame_safety", "ok"),
    ]
    runtimes = {u["runtime"] for c in manifest["components"] for u in c["models_used"]}
    assert runtimes == {"triton"}


def test_run_against_triton_needs_a_models_root(
    prepared: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    result = runner.invoke(
        app, ["run", str(profile), str(REPO / "examples/sample"), "--runtime", "triton", "--json"]
    )
    assert result.exit_code == 2
    assert json.loads(result.output)["error_code"] == "configuration_invalid"
