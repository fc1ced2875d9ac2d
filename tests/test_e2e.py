"""End to end (R-TEST-1): the three real components over the example videos, in-process and via
Triton.

The same profile (``models prepare`` of ``examples/models.yaml``) runs once with
in-process onnxruntime and once against a real ``tritonserver`` started from it
(:func:`modelmanager.triton.local.local_triton`), over each video of ``examples/videos``
decoded with the default policy (talk.mp4 H.264+AAC, street.webm VP9+Opus, silent.mp4 without
audio: its ``videos.json`` entry names only the components that read frames). Both runs must
make sense on their own — VAD finds the speech ``videos.json`` states, OCR reads its words,
features see a caption more than motion — and agree with each other. Each component's golden
values are pinned in its own test module.
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
from modelmanager.media import DecodedVideo
from modelmanager.run.runner import Runner, RunResult
from modelmanager.store.check import read_artifact
from modelmanager.tools.prepare import PreparedModel, profile_document
from modelmanager.triton.local import local_triton

from .conftest import EXAMPLES, TRUTH
from .runner_components import run_context

Outputs = dict[str, dict[str, NDArray[Any]]]
VAD_TOLERANCE_S = 0.2
"""Measured: starts within 0.024 s, ends up to 0.18 s late (fp32 and fp16; silero's probability
decays for ~150 ms after speech that stops mid-syllable). tests/components/test_audio_vad.py
checks starts and ends apart, more tightly."""


@pytest.fixture(scope="module")
def mapping(real_models: tuple[Path, list[PreparedModel]]) -> ResolvedMapping:
    return parse_mapping(profile_document(real_models[1]))


def components_of(mapping: ResolvedMapping, video: str) -> list[str]:
    """The video's ``videos.json`` components (silent.mp4: no audio_vad), else all mapped."""
    return list(TRUTH[video].get("components") or mapping.components)


def run_all(
    mapping: ResolvedMapping,
    models_root: Path,
    store: RunStore,
    artifacts: Path,
    videos: dict[str, DecodedVideo],
) -> dict[str, tuple[RunResult, Outputs]]:
    """One run per video (each under its own video_id), in ``videos.json``'s order."""
    runs = {}
    for video, decoded in videos.items():
        components = [REGISTRY[name]() for name in components_of(mapping, video)]
        inputs = {
            "audio": decoded.audio,
            "sample_rate": decoded.sample_rate,
            "frames": decoded.frames,
        }
        run_id = f"run-{len(store.list_runs()) + 1}"
        context = run_context(run_id, platform_id="local", video_id=video)
        with ModelManager(context, mapping, models_root=models_root) as mm:
            result = Runner(mm, store, artifacts).run(components, inputs)
        outputs = {}
        for entry in result.manifest.components:
            assert entry.artifact is not None, (video, entry.error)
            arrays, _ = read_artifact(
                artifacts, entry.artifact, schema_version=entry.schema_version
            )
            outputs[entry.component] = arrays
        runs[video] = result, outputs
    return runs


def statuses(runs: dict[str, tuple[RunResult, Outputs]]) -> dict[str, list[tuple[Any, ...]]]:
    return {
        video: [(c.component, c.status, c.cache_hit) for c in result.manifest.components]
        for video, (result, _) in runs.items()
    }


def check_outputs(video: str, outputs: Outputs, decoded: DecodedVideo) -> None:
    """What a user would check by eye, for either runtime, against ``videos.json``."""
    truth = TRUTH[video]
    if "audio_vad" in outputs:
        expected = np.asarray(truth["speech"], np.float32)
        segments = outputs["audio_vad"]["segments"]
        assert segments.shape == expected.shape
        np.testing.assert_allclose(segments, expected, atol=VAD_TOLERANCE_S)
    times = decoded.frame_times_s.tolist()
    words = [
        next((w["word"] for w in truth["words"] if w["start_s"] <= t + 1e-9 < w["end_s"]), None)
        for t in times
    ]
    scenes = [sum(t + 1e-9 >= s for s in truth["scene_changes_s"]) for t in times]
    ocr = outputs["text_ocr"]
    assert ocr["frame_index"].tolist() == [i for i, w in enumerate(words) if w is not None]
    assert ocr["text"].tolist() == [w for w in words if w is not None]
    features = outputs["frame_safety"]["features"]
    assert features.shape == (len(decoded.frames), 1024)
    # Two plain frames of a scene differ only by a moving square and the background's drift;
    # a frame of that scene with a caption differs by the caption: features see the caption
    # more than the motion (talk: 0.96 vs 0.83-0.84; street: 0.95 vs 0.84-0.85).
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    plain = [i for i, w in enumerate(words) if w is None]
    triples = [
        (a, b, c)
        for a in plain
        for b in plain
        for c, w in enumerate(words)
        if a != b and w is not None and scenes[a] == scenes[b] == scenes[c]
    ]
    assert triples or video == "silent"  # silent.mp4 shows one plain frame per scene
    for a, b, c in triples:
        assert float(unit[a] @ unit[b]) > float(unit[a] @ unit[c]), (video, a, b, c)
    assert (outputs["frame_safety"]["nsfw_score"] < 0.5).all()


def test_in_process_and_via_triton(
    real_models: tuple[Path, list[PreparedModel]],
    mapping: ResolvedMapping,
    videos: dict[str, DecodedVideo],
    tmp_path: Path,
) -> None:
    root = real_models[0]
    artifacts = tmp_path / "artifacts"
    all_three = ["audio_vad", "text_ocr", "frame_safety"]
    with RunStore.open(f"sqlite:///{tmp_path / 'index.sqlite3'}") as store:
        local = run_all(mapping, root, store, artifacts, videos)
        assert statuses(local) == {
            "talk": [(c, "ok", False) for c in all_three],
            "street": [(c, "ok", False) for c in all_three],
            "silent": [(c, "ok", False) for c in all_three[1:]],
        }
        for video, (_, outputs) in local.items():
            check_outputs(video, outputs, videos[video])

        with local_triton(mapping, root, work_dir=tmp_path / "triton") as served:
            remote = run_all(served, root, store, artifacts, videos)
        assert statuses(remote) == statuses(local)  # all computed again: another runtime
        for video, (_, outputs) in remote.items():
            check_outputs(video, outputs, videos[video])

        for video in videos:
            (local_result, local_out), (remote_result, remote_out) = local[video], remote[video]
            # The same models and bytes, another runtime: models_used differ only in runtime,
            # so every signature (and cache key) differs.
            for a, b in zip(
                local_result.manifest.components, remote_result.manifest.components, strict=True
            ):
                assert a.model_signature != b.model_signature
                assert {u.runtime for u in a.models_used} == {"inprocess"}
                assert {u.runtime for u in b.models_used} == {"triton"}
                strip = [u.model_dump(exclude={"runtime"}) for u in a.models_used]
                assert strip == [u.model_dump(exclude={"runtime"}) for u in b.models_used]
            # ... and the same results, to float tolerance.
            assert remote_out.keys() == local_out.keys()
            for component, arrays in local_out.items():
                assert remote_out[component].keys() == arrays.keys()
                for name, array in arrays.items():
                    other = remote_out[component][name]
                    if array.dtype.kind in "fc":
                        np.testing.assert_allclose(other, array, rtol=1e-4, atol=1e-6)
                    else:
                        np.testing.assert_array_equal(other, array)

        again = run_all(mapping, root, store, artifacts, videos)
        for video, components in statuses(again).items():
            assert [(s, hit) for _, s, hit in components] == [("cached", True)] * len(
                components_of(mapping, video)
            ), video


def test_changing_one_models_precision_reruns_only_its_component(
    real_models: tuple[Path, list[PreparedModel]],
    videos: dict[str, DecodedVideo],
    tmp_path: Path,
) -> None:
    root, prepared = real_models
    document = profile_document(prepared)
    artifacts = tmp_path / "artifacts"
    with RunStore.open(f"sqlite:///{tmp_path / 'index.sqlite3'}") as store:
        first = run_all(parse_mapping(document), root, store, artifacts, videos)
        half = next(m for m in prepared if m.precision == "fp16")
        document["components"]["audio_vad"]["vad"].update(
            model_name=half.name,
            weights_digest=half.weights_digest,
            precision="fp16",
            artifacts={"onnx_path": half.target},
        )
        second = run_all(parse_mapping(document), root, store, artifacts, videos)
    assert {v: [(c, s) for c, s, _ in entries] for v, entries in statuses(second).items()} == {
        "talk": [("audio_vad", "ok"), ("text_ocr", "cached"), ("frame_safety", "cached")],
        "street": [("audio_vad", "ok"), ("text_ocr", "cached"), ("frame_safety", "cached")],
        "silent": [("text_ocr", "cached"), ("frame_safety", "cached")],  # no audio_vad to rerun
    }
    for video in videos:
        before = {c.component: c.model_signature for c in first[video][0].manifest.components}
        after = {c.component: c.model_signature for c in second[video][0].manifest.components}
        if "audio_vad" in before:
            assert before["audio_vad"] != after["audio_vad"]
        assert (before["text_ocr"], before["frame_safety"]) == (
            after["text_ocr"],
            after["frame_safety"],
        )
        check_outputs(video, second[video][1], videos[video])  # fp16 VAD: the same speech


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
