"""issue 12 (R-FAIL-1): a cached run checks the weights of every component it reuses."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from modelmanager import ModelManager
from modelmanager.index import RunStore
from modelmanager.run.runner import Runner, RunResult
from tests.conftest import EXAMPLES, age
from tests.runner_components import FrameFeatures, SceneStats, frames, mapping, run_context
from tests.weights.onnx_models import flip_one_byte

MODEL = "frame-encoder/1.0.0/model.onnx"


def _models_root(tmp_path: Path) -> Path:
    """A copy of the example encoder, aged out of the digest cache's racy window."""
    root = tmp_path / "models"
    target = root / MODEL
    target.parent.mkdir(parents=True)
    shutil.copyfile(EXAMPLES / "models" / MODEL, target)
    age(target)
    return root


def _run(store: RunStore, tmp_path: Path, models_root: Path, run_id: str) -> RunResult:
    mm = ModelManager(run_context(run_id), mapping(), models_root=models_root)
    with mm:
        return Runner(mm, store, tmp_path / "artifacts").run(
            [FrameFeatures(), SceneStats()], {"frames": frames()}
        )


def _outcomes(result: RunResult) -> list[tuple[str, str, Any]]:
    return [(c.component, c.status, c.error_code) for c in result.manifest.components]


def test_a_cached_rerun_with_one_byte_of_weights_changed_fails_that_component(
    store: RunStore, tmp_path: Path
) -> None:
    """issue 12: the cached re-run gave ``cached``/``ok`` with changed weights; now the
    component that uses them fails with weights_digest_mismatch, the others are reused."""
    root = _models_root(tmp_path)
    first = _run(store, tmp_path, root, "run-1")
    assert _outcomes(first) == [("frame_features", "ok", None), ("scene_stats", "ok", None)]
    flip_one_byte(root / MODEL)
    again = _run(store, tmp_path, root, "run-2")
    assert _outcomes(again) == [
        ("frame_features", "failed", "weights_digest_mismatch"),
        ("scene_stats", "cached", None),
    ]
    entry = again.manifest.components[0]
    assert entry.error_fields["role"] == "encoder"
    assert entry.error_fields["path"] == str(root / MODEL)
    assert entry.model_signature == first.manifest.components[0].model_signature


def test_a_cached_rerun_without_the_models_root_fails_that_component(
    store: RunStore, tmp_path: Path
) -> None:
    """issue 12: a missing models root gave ``cached``; now model_artifact_missing."""
    root = _models_root(tmp_path)
    _run(store, tmp_path, root, "run-1")
    shutil.rmtree(root)
    again = _run(store, tmp_path, root, "run-2")
    assert _outcomes(again) == [
        ("frame_features", "failed", "model_artifact_missing"),
        ("scene_stats", "cached", None),
    ]
