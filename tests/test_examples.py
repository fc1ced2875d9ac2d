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
