"""MockRuntime: the in-library test double runs components through the real manager and runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelmanager import InvalidModelSpec, MockRuntime, ModelManager, RunStore, resolve_mapping
from tests.conftest import EXAMPLES, RUN_CONTEXT
from tests.runner_components import FrameFeatures, frames


def _features(spec: Any, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"features": inputs["pixels"].reshape(len(inputs["pixels"]), -1)[:, :16]}


def _manager() -> ModelManager:
    mapping, _ = resolve_mapping(profile_path=EXAMPLES / "profile.yaml")
    return ModelManager(
        RUN_CONTEXT,
        mapping,
        models_root=EXAMPLES / "models",
        runtime_factory=MockRuntime.factory(_features),
    )


def test_a_mocked_model_answers_and_records_its_calls() -> None:
    with _manager() as mm:
        handle = mm.get_runtime(mm.resolve("frame_features", "encoder"))
        assert isinstance(handle, MockRuntime)
        out = handle({"pixels": frames(2)})
        assert out["features"].shape == (2, 16)
        assert len(handle.calls) == 1
        assert handle.metadata().runtime == "mock"
        assert handle.health().ok


def test_declared_io_is_checked_as_a_backend_would() -> None:
    with _manager() as mm:
        scorer = mm.get_runtime(mm.resolve("scene_score", "scorer"))  # triton I/O declared
        with pytest.raises(InvalidModelSpec, match="shape") as err:
            scorer({"pixels": np.zeros((1, 3, 4, 4), np.float32)})
        assert err.value.fields["field"] == "inputs"
        assert scorer.calls == []  # refused before the handler ran


def test_the_runner_runs_a_component_on_a_mock(tmp_path: Path) -> None:
    from modelmanager import Runner

    with _manager() as mm, RunStore.open(f"sqlite:///{tmp_path}/index.sqlite3") as store:
        result = Runner(mm, store, tmp_path / "artifacts").run(
            [FrameFeatures()], {"frames": frames()}
        )
    assert result.ok
    (entry,) = result.manifest.components
    assert (entry.status, entry.batch_size) == ("ok", 4)
