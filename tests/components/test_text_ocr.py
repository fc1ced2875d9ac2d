"""TextOCR with the real PP-OCR models (prepared from the rapidocr wheel) on the sample fixture.

The sample's frames carry the words MODEL and CACHE, black on a white card,
30 px high on a 160x96 frame (``scripts/make_sample_video.py``); the OCR must
read each frame's word, and nothing on the frames without one. Runs on SQLite and
PostgreSQL (``store``).
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
from modelmanager.run.runner import Runner
from modelmanager.store.check import read_artifact
from modelmanager.tools.media import Sample, load_sample
from modelmanager.tools.prepare import PreparedModel, profile_document
from tests.conftest import EXAMPLES, with_modified_model
from tests.runner_components import run_context

# Measured once with this component on examples/sample (onnxruntime CPU, fp32), per
# worded frame (2-4 MODEL, 7-9 CACHE; the backgrounds differ, so do the boxes):
# boxes exact, scores at rtol 1e-4.
GOLDEN_BOX = [
    [25, 35, 131, 62],
    [25, 35, 131, 62],
    [25, 35, 131, 63],
    [28, 35, 132, 63],
    [27, 33, 133, 64],
    [27, 33, 133, 64],
]
GOLDEN_BOX_SCORE = [0.996490121, 0.995729208, 0.988531888, 0.989358187, 0.98941499, 0.990367591]
GOLDEN_TEXT_SCORE = [0.996320844, 0.996320844, 0.996533751, 0.999762714, 0.999762356, 0.999762356]

Models = tuple[Path, list[PreparedModel]]


@pytest.fixture(scope="module")
def sample() -> Sample:
    return load_sample(EXAMPLES / "sample")


def run_ocr(
    store: RunStore,
    tmp_path: Path,
    models: Models,
    frames: NDArray[np.uint8],
    *,
    document: dict[str, Any] | None = None,
    run_id: str = "run-ocr",
) -> tuple[str, dict[str, NDArray[Any]], Any]:
    root, prepared = models
    mapping = document if document is not None else profile_document(prepared)
    manager = ModelManager(run_context(run_id), mapping, models_root=root)
    result = Runner(manager, store, tmp_path / "artifacts").run([TextOCR()], {"frames": frames})
    (entry,) = result.manifest.components
    if entry.artifact is None:
        return entry.status, {}, entry
    arrays, _meta = read_artifact(tmp_path / "artifacts", entry.artifact, schema_version="1")
    return entry.status, arrays, entry


def test_reads_the_rendered_words(
    store: RunStore, tmp_path: Path, real_models: Models, sample: Sample
) -> None:
    status, arrays, entry = run_ocr(store, tmp_path, real_models, sample.frames)
    assert status == "ok", entry.error
    assert sorted(u.role for u in entry.models_used) == ["classifier", "detector", "recognizer"]
    words = sample.metadata["words_per_frame"]
    worded = [i for i, w in enumerate(words) if w is not None]
    assert arrays["frame_index"].tolist() == worded  # one text per worded frame, none elsewhere
    assert arrays["text"].tolist() == [words[i] for i in worded]
    assert arrays["angle"].tolist() == [0] * len(worded)
    assert arrays["box"].dtype == np.int32
    assert arrays["box"].shape == (len(worded), 4)
    assert arrays["box"].tolist() == GOLDEN_BOX
    np.testing.assert_allclose(arrays["box_score"], GOLDEN_BOX_SCORE, rtol=1e-4)
    np.testing.assert_allclose(arrays["text_score"], GOLDEN_TEXT_SCORE, rtol=1e-4)


def test_identical_frames_give_identical_results(
    store: RunStore, tmp_path: Path, real_models: Models, sample: Sample
) -> None:
    frame = sample.frames[2]  # MODEL
    _, arrays, _ = run_ocr(store, tmp_path, real_models, np.stack([frame, frame, frame]))
    assert arrays["text"].tolist() == ["MODEL"] * 3
    assert len(set(arrays["text_score"].tolist())) == 1
    assert len({tuple(b) for b in arrays["box"].tolist()}) == 1


def test_upside_down_text_is_turned_by_the_classifier(
    store: RunStore, tmp_path: Path, real_models: Models, sample: Sample
) -> None:
    flipped = sample.frames[7:8, ::-1, ::-1].copy()  # CACHE, rotated by 180 degrees
    status, arrays, entry = run_ocr(store, tmp_path, real_models, flipped)
    assert status == "ok", entry.error
    assert arrays["angle"].tolist() == [180]
    assert arrays["text"].tolist() == ["CACHE"]


def test_a_recognizer_without_its_character_set_fails_the_component(
    store: RunStore, tmp_path: Path, real_models: Models, sample: Sample
) -> None:
    onnx = pytest.importorskip("onnx")
    root, prepared = real_models
    rec = next(m for m in prepared if m.name == "ppocr-v4-rec")
    model = onnx.load(str(root / rec.target))
    del model.metadata_props[:]
    document = with_modified_model(real_models, "text_ocr", "recognizer", model, tmp_path.name)
    status, _, entry = run_ocr(store, tmp_path, real_models, sample.frames[:1], document=document)
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
