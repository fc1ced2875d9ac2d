"""AudioVAD with the real silero VAD (prepared from its wheel) on the sample fixture.

The sample's speech is synthetic (a glottal pulse train through moving formant
resonators, syllable-modulated); silero detects it. Each detected segment
boundary must lie within ``TOLERANCE_S`` of the ground truth in
``examples/sample/sample.json``. Runs on SQLite and PostgreSQL (``store``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from modelmanager import ModelManager
from modelmanager.components import AudioVAD
from modelmanager.components.audio_vad import speech_segments
from modelmanager.index import RunStore
from modelmanager.run.runner import Runner
from modelmanager.store.check import read_artifact
from modelmanager.tools.media import Sample, load_sample
from modelmanager.tools.prepare import PreparedModel, profile_document
from tests.conftest import EXAMPLES
from tests.runner_components import run_context

TOLERANCE_S = 0.1  # measured: every boundary within 0.032 s (one window), fp32 and fp16


@pytest.fixture(scope="module")
def silero(real_models: tuple[Path, list[PreparedModel]]) -> tuple[Path, list[PreparedModel]]:
    """silero VAD fp32 (mapped to audio_vad/vad) and fp16, among the session's real models."""
    return real_models


@pytest.fixture(scope="module")
def sample() -> Sample:
    return load_sample(EXAMPLES / "sample")


def mapping(prepared: list[PreparedModel], precision: str = "fp32") -> dict[str, Any]:
    document = profile_document(prepared)
    if precision == "fp16":
        half = next(m for m in prepared if m.precision == "fp16")
        document["components"]["audio_vad"]["vad"].update(
            model_name=half.name,
            weights_digest=half.weights_digest,
            precision="fp16",
            artifacts={"onnx_path": half.target},
        )
    return document


def run_vad(
    store: RunStore,
    tmp_path: Path,
    silero: tuple[Path, list[PreparedModel]],
    inputs: dict[str, Any],
    *,
    run_id: str = "run-vad",
    precision: str = "fp32",
) -> tuple[str, dict[str, NDArray[Any]], Any]:
    root, prepared = silero
    manager = ModelManager(run_context(run_id), mapping(prepared, precision), models_root=root)
    result = Runner(manager, store, tmp_path / "artifacts").run([AudioVAD()], inputs)
    (entry,) = result.manifest.components
    if entry.artifact is None:
        return entry.status, {}, entry
    arrays, _meta = read_artifact(tmp_path / "artifacts", entry.artifact, schema_version="1")
    return entry.status, arrays, entry


def inside_mask(sample: Sample, starts: NDArray[np.float32]) -> NDArray[np.bool_]:
    """Windows that lie wholly inside a ground-truth speech interval."""
    ends = starts + 512 / sample.sample_rate
    mask = np.zeros(len(starts), bool)
    for start, end in sample.metadata["speech_intervals_s"]:
        mask |= (starts >= start) & (ends <= end)
    return mask


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_segments_match_the_ground_truth(
    store: RunStore,
    tmp_path: Path,
    silero: tuple[Path, list[PreparedModel]],
    sample: Sample,
    precision: str,
) -> None:
    status, arrays, entry = run_vad(
        store, tmp_path, silero, {"audio": sample.audio}, precision=precision
    )
    assert status == "ok", entry.error
    assert entry.batch_size == 1
    assert [(u.role, u.precision) for u in entry.models_used] == [("vad", precision)]
    windows = -(-len(sample.audio) // 512)
    assert arrays["speech_prob"].shape == arrays["window_start_s"].shape == (windows,)
    assert arrays["speech_prob"].dtype == np.float32
    expected = np.asarray(sample.metadata["speech_intervals_s"], np.float32)
    assert arrays["segments"].shape == expected.shape
    np.testing.assert_allclose(arrays["segments"], expected, atol=TOLERANCE_S)


def test_speech_prob_golden(
    store: RunStore,
    tmp_path: Path,
    silero: tuple[Path, list[PreparedModel]],
    sample: Sample,
) -> None:
    """fp32 summary, measured: mean 0.990 inside / 0.053 outside (windows wholly in or out)."""
    _status, arrays, _entry = run_vad(store, tmp_path, silero, {"audio": sample.audio})
    probs, inside = arrays["speech_prob"], inside_mask(sample, arrays["window_start_s"])
    assert float(probs[inside].mean()) == pytest.approx(0.990, abs=0.01)
    assert float(probs[~inside].mean()) == pytest.approx(0.053, abs=0.02)
    assert float(np.median(probs[~inside])) < 0.05  # measured 0.012
    assert float(probs[inside].min()) > 0.5  # measured 0.678


def test_second_run_reuses_the_artifact(
    store: RunStore,
    tmp_path: Path,
    silero: tuple[Path, list[PreparedModel]],
    sample: Sample,
) -> None:
    first, arrays, _ = run_vad(store, tmp_path, silero, {"audio": sample.audio}, run_id="r1")
    second, again, entry = run_vad(store, tmp_path, silero, {"audio": sample.audio}, run_id="r2")
    assert (first, second, entry.cache_hit) == ("ok", "cached", True)
    np.testing.assert_array_equal(arrays["speech_prob"], again["speech_prob"])


def test_wrong_sample_rate_fails_the_component(
    store: RunStore,
    tmp_path: Path,
    silero: tuple[Path, list[PreparedModel]],
    sample: Sample,
) -> None:
    status, _arrays, entry = run_vad(
        store, tmp_path, silero, {"audio": sample.audio, "sample_rate": 8000}
    )
    assert status == "failed"
    assert entry.error_code == "configuration_invalid"


def test_speech_segments_hangover() -> None:
    w = 512 / 16_000
    probs = np.array([0.1, 0.9, 0.9, 0.2, 0.9, 0.9, 0.1, 0.1, 0.1, 0.8, 0.1, 0.1, 0.1], np.float32)
    # A one-window dip is bridged; a lone speech window (9) is too short to count.
    np.testing.assert_allclose(speech_segments(probs), [[1 * w, 6 * w]], rtol=1e-6)
    assert speech_segments(np.zeros(5, np.float32)).shape == (0, 2)
    tail = np.array([0.1, 0.9, 0.9, 0.9], np.float32)  # speech running to the end
    np.testing.assert_allclose(speech_segments(tail), [[1 * w, 4 * w]], rtol=1e-6)
