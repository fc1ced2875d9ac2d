"""The example profile points at real ONNX files the repository makes with a script."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from modelmanager import ModelManager, resolve_mapping

from .conftest import EXAMPLES, REPO


def test_example_models_are_what_the_script_makes(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "make_example_models", REPO / "scripts/make_example_models.py"
    )
    assert spec is not None
    assert spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    for path in script.write_all(tmp_path):
        rel = path.relative_to(tmp_path)
        assert path.read_bytes() == (EXAMPLES / "models" / rel).read_bytes(), rel


def test_example_profile_verifies_real_digests() -> None:
    mapping, _ = resolve_mapping(profile_path=EXAMPLES / "profile.yaml")
    mm = ModelManager(None, mapping, models_root=EXAMPLES / "models")
    verified = mm.verify_all()
    assert len(verified) == 3
    assert {len(mapping.components["text_ocr"])} == {2}


def test_example_models_run_in_onnxruntime() -> None:
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(EXAMPLES / "models/frame-encoder/1.0.0/model.onnx")
    (features,) = session.run(None, {"pixels": np.ones((2, 3, 8, 8), np.float32)})
    assert features.shape == (2, 16)


def test_run_example_second_run_is_all_cache_hits(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "MODELMANAGER_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "run_example.py"), "--run-id", "t"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.split("second run")
    assert first.count("│ ok") == 2
    assert second.count("│ cached │ yes") == 2
    assert (tmp_path / "modelmanager.sqlite3").is_file()
    assert len(list((tmp_path / "artifacts").rglob("*.npz"))) == 2
