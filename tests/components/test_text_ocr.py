"""TextOCR with the real PP-OCR models (prepared from the rapidocr wheel) on the example videos.

The videos' frames carry the words MODEL and CACHE, black on a white card scaled with the
frame (30 px high on 160x96, 35 px on 192x112; ``scripts/make_sample_videos.py``), over two
scenes, through H.264 or VP9. Decoded with the default policy (one frame a second), the OCR
must read the word ``examples/videos/videos.json`` puts on each sampled frame, and nothing on
the frames without one. Runs on SQLite and PostgreSQL (``store``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from modelmanager import ModelManager
from modelmanager.components import TextOCR
from modelmanager.components.text_ocr import ctc_decode, detect_boxes
from modelmanager.index import RunStore
from modelmanager.media import DecodedVideo
from modelmanager.run.runner import Runner
from modelmanager.store.check import read_artifact
from modelmanager.tools.prepare import PreparedModel, profile_document
from tests.conftest import TRUTH, with_modified_model
from tests.runner_components import run_context

# Measured once with this component on the decoded videos (default policy; onnxruntime CPU,
# fp32), per worded frame (talk: 1 MODEL, 4-5 CACHE; street: 1 CACHE, 3-4 MODEL; silent:
# 1 MODEL, 3 CACHE; the backgrounds and the compression differ, so do the boxes): boxes
# exact, scores at rtol 1e-4.
GOLDEN: dict[str, dict[str, list[Any]]] = {
    "talk": {
        "box": [[25, 35, 130, 62], [28, 35, 132, 63], [28, 35, 132, 63]],
        "box_score": [0.997077525, 0.98864758, 0.992966413],
        "text_score": [0.996238112, 0.999688625, 0.999661446],
    },
    "street": {
        "box": [[35, 40, 159, 73], [34, 42, 155, 72], [34, 41, 155, 72]],
        "box_score": [0.995419025, 0.994450092, 0.994037569],
        "text_score": [0.999521434, 0.996482015, 0.995589733],
    },
    "silent": {
        "box": [[25, 35, 130, 62], [28, 35, 132, 63]],
        "box_score": [0.995660067, 0.989084721],
        "text_score": [0.996036053, 0.999675095],
    },
}

Models = tuple[Path, list[PreparedModel]]


def words_on_frames(video: str, decoded: DecodedVideo) -> list[str | None]:
    """The ground truth's word on each sampled frame (``start_s <= t < end_s``), or None."""
    spans = TRUTH[video]["words"]
    return [
        next((w["word"] for w in spans if w["start_s"] <= t + 1e-9 < w["end_s"]), None)
        for t in decoded.frame_times_s.tolist()
    ]


def frame_with(videos: dict[str, DecodedVideo], word: str) -> NDArray[np.uint8]:
    """talk.mp4's first sampled frame that shows ``word``."""
    frames: NDArray[np.uint8] = videos["talk"].frames
    return frames[words_on_frames("talk", videos["talk"]).index(word)]


def run_ocr(
    store: RunStore,
    tmp_path: Path,
    models: Models,
    frames: NDArray[np.uint8],
    *,
    document: dict[str, Any] | None = None,
    video: str = "talk",
    run_id: str = "run-ocr",
) -> tuple[str, dict[str, NDArray[Any]], Any]:
    root, prepared = models
    mapping = document if document is not None else profile_document(prepared)
    context = run_context(run_id, platform_id="local", video_id=video)
    manager = ModelManager(context, mapping, models_root=root)
    result = Runner(manager, store, tmp_path / "artifacts").run([TextOCR()], {"frames": frames})
    (entry,) = result.manifest.components
    if entry.artifact is None:
        return entry.status, {}, entry
    arrays, _meta = read_artifact(tmp_path / "artifacts", entry.artifact, schema_version="1")
    return entry.status, arrays, entry


@pytest.mark.parametrize("video", list(TRUTH))
def test_reads_the_words_on_the_frames_that_show_them(
    store: RunStore,
    tmp_path: Path,
    real_models: Models,
    videos: dict[str, DecodedVideo],
    video: str,
) -> None:
    decoded = videos[video]
    status, arrays, entry = run_ocr(store, tmp_path, real_models, decoded.frames, video=video)
    assert status == "ok", entry.error
    assert sorted(u.role for u in entry.models_used) == ["classifier", "detector", "recognizer"]
    words = words_on_frames(video, decoded)
    worded = [i for i, w in enumerate(words) if w is not None]
    assert worded  # the default policy samples at least one frame of each word span
    assert {words[i] for i in worded} == {w["word"] for w in TRUTH[video]["words"]}
    assert arrays["frame_index"].tolist() == worded  # one text per worded frame, none elsewhere
    assert arrays["text"].tolist() == [words[i] for i in worded]
    assert arrays["angle"].tolist() == [0] * len(worded)
    assert arrays["box"].dtype == np.int32
    assert arrays["box"].shape == (len(worded), 4)
    golden = GOLDEN[video]
    assert arrays["box"].tolist() == golden["box"]
    np.testing.assert_allclose(arrays["box_score"], golden["box_score"], rtol=1e-4)
    np.testing.assert_allclose(arrays["text_score"], golden["text_score"], rtol=1e-4)


def test_identical_frames_give_identical_results(
    store: RunStore, tmp_path: Path, real_models: Models, videos: dict[str, DecodedVideo]
) -> None:
    frame = frame_with(videos, "MODEL")
    _, arrays, _ = run_ocr(store, tmp_path, real_models, np.stack([frame, frame, frame]))
    assert arrays["text"].tolist() == ["MODEL"] * 3
    assert len(set(arrays["text_score"].tolist())) == 1
    assert len({tuple(b) for b in arrays["box"].tolist()}) == 1


def test_upside_down_text_is_turned_by_the_classifier(
    store: RunStore, tmp_path: Path, real_models: Models, videos: dict[str, DecodedVideo]
) -> None:
    flipped = frame_with(videos, "CACHE")[None, ::-1, ::-1].copy()  # rotated by 180 degrees
    status, arrays, entry = run_ocr(store, tmp_path, real_models, flipped)
    assert status == "ok", entry.error
    assert arrays["angle"].tolist() == [180]
    assert arrays["text"].tolist() == ["CACHE"]


def test_a_recognizer_without_its_character_set_fails_the_component(
    store: RunStore, tmp_path: Path, real_models: Models, videos: dict[str, DecodedVideo]
) -> None:
    onnx = pytest.importorskip("onnx")
    root, prepared = real_models
    rec = next(m for m in prepared if m.name == "ppocr-v4-rec")
    model = onnx.load(str(root / rec.target))
    del model.metadata_props[:]
    document = with_modified_model(real_models, "text_ocr", "recognizer", model, tmp_path.name)
    frames = videos["talk"].frames[:1]
    status, _, entry = run_ocr(store, tmp_path, real_models, frames, document=document)
    assert status == "failed"
    assert entry.error_code == "invalid_model_spec"
    assert entry.error is not None
    assert "character" in entry.error


def test_ctc_decode_merges_repeats_and_drops_blanks() -> None:
    chars = ["A", "B", " "]
    steps = [0, 1, 1, 0, 1, 2, 2, 3, 0]  # blank A A blank A B B space blank
    probs = np.full((len(steps), 4), 0.1, np.float32)
    probs[np.arange(len(steps)), steps] = 0.7
    text, score = ctc_decode(probs, chars)
    assert text == "AAB "
    assert score == pytest.approx(0.7)
    assert ctc_decode(np.eye(4, dtype=np.float32)[[0, 0]], chars) == ("", 0.0)


def test_detect_boxes_unclips_and_scales_to_the_frame() -> None:
    prob = np.zeros((32, 64), np.float32)
    prob[10:20, 8:48] = 0.9  # a 10 x 40 region
    prob[2:4, 60:62] = 0.9  # too small: 2 px
    prob[25:30, 5:15] = 0.5  # above DET_THRESHOLD but below BOX_THRESHOLD
    (box,) = detect_boxes(prob, (64, 128))  # the frame is twice the map's size
    grow = 10 * 40 * 1.5 / (2 * 50)  # DB unclip distance: area * ratio / perimeter = 6
    assert (box.x0, box.y0, box.x1, box.y1) == (
        int((8 - grow) * 2),
        int((10 - grow) * 2),
        int((48 + grow) * 2),
        int((20 + grow) * 2),
    )
    assert box.score == pytest.approx(0.9)
