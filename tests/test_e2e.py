"""End to end (R-TEST-1): the three real components over the sample, in-process and via Triton.

The same profile (``models prepare`` of ``examples/models.yaml``) runs once with
in-process onnxruntime and once against a real ``tritonserver`` started from it
(:func:`modelmanager.triton.local.local_triton`). Both runs must make sense on
their own — VAD finds the speech put in the sample, OCR reads its words,
identical frames get identical features — and agree with each other. Each
component's golden values are pinned in its own test module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from modelmanager import ModelManager, resolve_mapping
from modelmanager.components import REGISTRY
from modelmanager.index import RunStore
from modelmanager.mapping.spec import ResolvedMapping, parse_mapping
from modelmanager.run.runner import Runner, RunResult
from modelmanager.store.check import read_artifact
from modelmanager.tools.media import Sample, load_sample
from modelmanager.tools.prepare import PreparedModel, profile_document
from modelmanager.triton.local import local_triton

from .conftest import EXAMPLES
from .runner_components import run_context

Outputs = dict[str, dict[str, NDArray[Any]]]
VAD_TOLERANCE_S = 0.1


@pytest.fixture(scope="module")
def sample() -> Sample:
    return load_sample(EXAMPLES / "sample")


@pytest.fixture(scope="module")
def mapping(real_models: tuple[Path, list[PreparedModel]]) -> ResolvedMapping:
    return parse_mapping(profile_document(real_models[1]))


def run_all(
    mapping: ResolvedMapping, models_root: Path, store: RunStore, artifacts: Path, sample: Sample
) -> tuple[RunResult, Outputs]:
    components = [REGISTRY[name]() for name in mapping.components]
    inputs = {"audio": sample.audio, "sample_rate": sample.sample_rate, "frames": sample.frames}
    run_id = f"run-{len(store.list_runs()) + 1}"
    with ModelManager(run_context(run_id), mapping, models_root=models_root) as mm:
        result = Runner(mm, store, artifacts).run(components, inputs)
    outputs = {}
    for entry in result.manifest.components:
        assert entry.artifact is not None, entry.error
        arrays, _ = read_artifact(artifacts, entry.artifact, schema_version=entry.schema_version)
        outputs[entry.component] = arrays
    return result, outputs


def check_outputs(outputs: Outputs, sample: Sample) -> None:
    """What a user would check by eye, for either runtime."""
    expected = np.asarray(sample.metadata["speech_intervals_s"], np.float32)
    np.testing.assert_allclose(outputs["audio_vad"]["segments"], expected, atol=VAD_TOLERANCE_S)
    words = sample.metadata["words_per_frame"]
    ocr = outputs["text_ocr"]
    assert ocr["frame_index"].tolist() == [i for i, w in enumerate(words) if w is not None]
    assert ocr["text"].tolist() == [w for w in words if w is not None]
    features = outputs["frame_safety"]["features"]
    assert features.shape == (len(sample.frames), 1024)
    # Frames 2 and 3 differ only in their moving square and background tint; 0 and 2
    # differ by a caption: features see the caption more than the tint.
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    assert float(unit[2] @ unit[3]) > float(unit[0] @ unit[2])
    assert (outputs["frame_safety"]["nsfw_score"] < 0.5).all()


def test_in_process_and_via_triton(
    real_models: tuple[Path, list[PreparedModel]],
    mapping: ResolvedMapping,
    sample: Sample,
    tmp_path: Path,
) -> None:
    root = real_models[0]
    artifacts = tmp_path / "artifacts"
    with RunStore.open(f"sqlite:///{tmp_path / 'index.sqlite3'}") as store:
        local, local_out = run_all(mapping, root, store, artifacts, sample)
        assert [(c.component, c.status) for c in local.manifest.components] == [
            ("audio_vad", "ok"),
            ("text_ocr", "ok"),
            ("frame_safety", "ok"),
        ]
        check_outputs(local_out, sample)

        with local_triton(mapping, root, work_dir=tmp_path / "triton") as served:
            remote, remote_out = run_all(served, root, store, artifacts, sample)
        assert [(c.component, c.status, c.cache_hit) for c in remote.manifest.components] == [
            ("audio_vad", "ok", False),
            ("text_ocr", "ok", False),
            ("frame_safety", "ok", False),
        ]
        check_outputs(remote_out, sample)

        # The same models and bytes, another runtime: models_used differ only in runtime,
        # so every signature (and cache key) differs.
        for a, b in zip(local.manifest.components, remote.manifest.components, strict=True):
            assert a.model_signature != b.model_signature
            assert {u.runtime for u in a.models_used} == {"inprocess"}
            assert {u.runtime for u in b.models_used} == {"triton"}
            strip = [u.model_dump(exclude={"runtime"}) for u in a.models_used]
            assert strip == [u.model_dump(exclude={"runtime"}) for u in b.models_used]
        # ... and the same results, to float tolerance.
        for component, arrays in local_out.items():
            for name, array in arrays.items():
                other = remote_out[component][name]
                if array.dtype.kind in "fc":
                    np.testing.assert_allclose(other, array, rtol=1e-4, atol=1e-6)
                else:
                    np.testing.assert_array_equal(other, array)

        again, _ = run_all(mapping, root, store, artifacts, sample)
        assert [(c.status, c.cache_hit) for c in again.manifest.components] == [
            ("cached", True)
        ] * 3


def test_changing_one_models_precision_reruns_only_its_component(
    real_models: tuple[Path, list[PreparedModel]],
    sample: Sample,
    tmp_path: Path,
) -> None:
    root, prepared = real_models
    document = profile_document(prepared)
    artifacts = tmp_path / "artifacts"
    with RunStore.open(f"sqlite:///{tmp_path / 'index.sqlite3'}") as store:
        first, _ = run_all(parse_mapping(document), root, store, artifacts, sample)
        half = next(m for m in prepared if m.precision == "fp16")
        document["components"]["audio_vad"]["vad"].update(
            model_name=half.name,
            weights_digest=half.weights_digest,
            precision="fp16",
            artifacts={"onnx_path": half.target},
        )
        second, outputs = run_all(parse_mapping(document), root, store, artifacts, sample)
    assert [(c.component, c.status) for c in second.manifest.components] == [
        ("audio_vad", "ok"),
        ("text_ocr", "cached"),
        ("frame_safety", "cached"),
    ]
    before = {c.component: c.model_signature for c in first.manifest.components}
    after = {c.component: c.model_signature for c in second.manifest.components}
    assert before["audio_vad"] != after["audio_vad"]
    assert (before["text_ocr"], before["frame_safety"]) == (
        after["text_ocr"],
        after["frame_safety"],
    )
    check_outputs(outputs, sample)  # the half-precision VAD finds the same speech


def test_local_triton_serves_only_the_in_process_entries(tmp_path: Path) -> None:
    """The example profile's own Triton entry (scene_score) keeps its server; the repository
    holds exactly the in-process ONNX entries, which answer on the local server."""
    mapping, _ = resolve_mapping(profile_path=EXAMPLES / "profile.yaml")
    with local_triton(mapping, EXAMPLES / "models", work_dir=tmp_path) as served:
        repository = sorted(p.name for p in (tmp_path / "repository").iterdir())
        assert repository == ["frame_features.encoder", "text_ocr.detector", "text_ocr.recognizer"]
        scene = served.components["scene_score"]["scorer"]
        assert scene == mapping.components["scene_score"]["scorer"]
        encoder = served.components["frame_features"]["encoder"]
        assert encoder.runtime == "triton"
        assert encoder.triton is not None
        assert encoder.triton.preprocess_preset == "frame-resize-8x8@1"
        with ModelManager(None, served, models_root=EXAMPLES / "models") as mm:
            out = mm.get_runtime(encoder)({"pixels": np.ones((2, 3, 8, 8), np.float32)})
        assert out["features"].shape == (2, 16)
