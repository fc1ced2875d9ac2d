"""Run two example components over the example profile, twice: the second run is all cache hits.

    python examples/run_example.py [--run-id ID]

Uses the embedded defaults: the SQLite run index and artifacts under
MODELMANAGER_DATA_DIR (default ~/.local/share/modelmanager), in-process ONNX.
The input is deterministic synthetic frames; the demo of issue 6 replaces it
with a real video and real models.
"""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path

import numpy as np
from rich.console import Console

from modelmanager import ModelManager, Settings, resolve_mapping
from modelmanager.cli_run import run_table
from modelmanager.db import RunStore
from modelmanager.runner import ComponentOutput, ComponentRequest, Runner

HERE = Path(__file__).parent


class FrameFeatures:
    """Per-frame features from the frame encoder (an ONNX model in the profile)."""

    name = "frame_features"
    producer_version = "1.0.0"
    schema_version = "1"
    roles = ("encoder",)

    def process(self, request: ComponentRequest) -> ComponentOutput:
        frames = request.inputs["frames"]
        features = request.runtimes["encoder"]({"pixels": frames})["features"]
        return ComponentOutput({"features": features}, batch_size=len(frames), seed=0)


class SceneStats:
    """Calls no model: brightness per frame."""

    name = "scene_stats"
    producer_version = "1.0.0"
    schema_version = "1"
    roles = ()

    def process(self, request: ComponentRequest) -> ComponentOutput:
        frames = request.inputs["frames"]
        return ComponentOutput({"brightness": frames.mean(axis=(1, 2, 3))})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-id", default=None)
    args = parser.parse_args()
    settings = Settings()
    mapping, source = resolve_mapping(profile_path=HERE / "profile.yaml")
    frames = np.random.default_rng(0).standard_normal((32, 3, 8, 8)).astype(np.float32)
    console = Console()
    if not console.is_terminal:  # piped output: no wrapping at 80 columns, as the CLI does
        console.width = 200
    with RunStore.open(settings.resolved_database_url) as store:
        for attempt in ("first", "second"):
            run_id = args.run_id or f"demo-{uuid.uuid4().hex[:8]}"
            context = {
                "platform_id": "demo",
                "video_id": "synthetic-001",
                "run_id": f"{run_id}-{attempt}",
                "config_hash": "demo-config-1",
                "sampling_policy_version": "1",
                "dataprocessor_version": "0.1.0",
            }
            with ModelManager(context, mapping, models_root=HERE / "models") as mm:
                result = Runner(
                    mm, store, settings.resolved_artifact_root, mapping_source=str(source)
                ).run([FrameFeatures(), SceneStats()], {"frames": frames})
            console.print(run_table(result, title=f"{attempt} run {context['run_id']}"))
            console.print(f"manifest: {result.manifest_path}", soft_wrap=True)
    console.print(f"artifacts: {settings.resolved_artifact_root}", soft_wrap=True)


if __name__ == "__main__":
    main()
