"""Components for runner tests, importable by child processes (spawn)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from modelmanager import ModelManager
from modelmanager.index import RunStore
from modelmanager.mapping.sources import load_document
from modelmanager.run.contract import ComponentOutput, ComponentRequest
from modelmanager.run.runner import Runner

from .conftest import EXAMPLES

PROFILE = EXAMPLES / "profile.yaml"


def frames(n: int = 4) -> np.ndarray:
    return np.random.default_rng(3).standard_normal((n, 3, 8, 8)).astype(np.float32)


class FrameFeatures:
    """Per-frame features from the example encoder (a real ONNX model)."""

    name = "frame_features"
    producer_version = "1.0.0"
    schema_version = "1"
    roles = ("encoder",)

    def process(self, request: ComponentRequest) -> ComponentOutput:
        pixels = np.asarray(request.inputs["frames"], np.float32)
        features = request.runtimes["encoder"]({"pixels": pixels})["features"]
        log = request.inputs.get("compute_log")
        if log:  # one line per real computation, across processes
            with open(log, "a") as f:
                f.write(f"{os.getpid()}\n")
        delay = float(request.inputs.get("delay_s", 0))
        if delay:
            time.sleep(delay)
        size = int(request.inputs.get("padding_mb", 0))
        arrays: dict[str, Any] = {"features": features}
        if size:
            arrays["padding"] = np.ones(size << 18, np.float32)  # size MiB
        return ComponentOutput(arrays, batch_size=len(pixels), seed=0)


class SceneStats:
    """Calls no model: statistics of the frames."""

    name = "scene_stats"
    producer_version = "2.0.0"
    schema_version = "1"
    roles = ()

    def process(self, request: ComponentRequest) -> ComponentOutput:
        pixels = np.asarray(request.inputs["frames"], np.float32)
        return ComponentOutput({"mean": pixels.mean(axis=(1, 2, 3))})


class Broken:
    """A component whose own code fails."""

    name = "scene_stats"
    producer_version = "9.9.9"
    schema_version = "1"
    roles = ()

    def process(self, request: ComponentRequest) -> ComponentOutput:
        raise ZeroDivisionError("division by zero in the component")


def mapping() -> dict[str, Any]:
    document = load_document(PROFILE)
    document["components"] = {
        k: v for k, v in document["components"].items() if k in ("frame_features", "scene_stats")
    }
    return document


def run_context(run_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "platform_id": "youtube",
        "video_id": "vid-001",
        "run_id": run_id,
        "config_hash": "cfg-1",
        "sampling_policy_version": "1",
        "dataprocessor_version": "0.9.0",
        **overrides,
    }


def make_runner(store: RunStore, root: Path, run_id: str, **kw: Any) -> Runner:
    factory = kw.pop("runtime_factory", None)
    ctx = run_context(run_id, **kw.pop("context", {}))
    mm = ModelManager(
        ctx,
        kw.pop("mapping", None) or mapping(),
        models_root=EXAMPLES / "models",
        runtime_factory=factory,
    )
    return Runner(mm, store, root, mapping_source="profile:examples/profile.yaml", **kw)


def child_run(url: str, root: str, run_id: str, inputs: dict[str, Any], ttl_s: float = 30.0) -> str:
    """Run FrameFeatures in a fresh process; returns the component's status."""
    with RunStore.open(url) as store:
        result = make_runner(store, Path(root), run_id, lease_ttl_s=ttl_s, poll_s=0.02).run(
            [FrameFeatures()], inputs
        )
    return result.manifest.components[0].status
