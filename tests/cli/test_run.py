"""Issue 6: `modelmanager run` over the sample with the real prepared models; a second run is all hits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from modelmanager.cli import app
from modelmanager.tools.prepare import write_profile
from tests.conftest import REPO

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


def test_a_cached_run_imports_no_runtime_and_full_verification_rehashes(
    prepared: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    args = ["run", str(profile), str(REPO / "examples/sample"), "--models-root", str(root)]
    assert runner.invoke(app, [*args, "--json"]).exit_code == 0  # computes
    # A fresh process, as `modelmanager run` is: which modules did the cached run load?
    probe = (
        "import json, sys\n"
        "from modelmanager.cli import main\n"
        "sys.argv = ['modelmanager', *sys.argv[1:]]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    code = exit.code\n"
        "heavy = ['onnxruntime', 'tritonclient', 'modelmanager.triton', 'modelmanager.runtimes.onnx',"
        " 'alembic', 'scipy', 'torch', 'onnx']\n"
        "from modelmanager.weights.digest import hashing_totals\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "print(json.dumps({'code': code, 'loaded': loaded, 'hashed': hashing_totals().files}),"
        " file=sys.stderr)\n"
    )
    for verify in ("stat", "full"):
        done = subprocess.run(
            [sys.executable, "-c", probe, *args, "--json", "--verify-artifacts", verify],
            capture_output=True,
            text=True,
            check=False,
        )
        report = json.loads(done.stderr.strip().splitlines()[-1])
        hashed = 0 if verify == "stat" else 3  # the three artifacts, re-hashed
        assert report == {"code": 0, "loaded": [], "hashed": hashed}, done.stderr
        manifest = json.loads(done.stdout)
        assert [c["status"] for c in manifest["components"]] == ["cached"] * 3


def test_verify_artifacts_takes_stat_or_full(
    prepared: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, profile = prepared
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    args = ["run", str(profile), str(REPO / "examples/sample"), "--models-root", str(root)]
    result = runner.invoke(app, [*args, "--verify-artifacts", "sha"])
    assert result.exit_code == 2
    help_text = runner.invoke(app, ["run", "--help"], terminal_width=200).output
    assert "--verify-artifacts" in help_text
    assert "re-hashes" in help_text
