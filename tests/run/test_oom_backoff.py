"""Issue 14 (R-RES-2): a component whose batch runs out of memory is retried with half the
batch in fresh sessions, down to one; every retry is recorded; at a batch of one it fails
``insufficient_gpu_memory`` (never another model). The out-of-memory errors here are the
real exception types with the texts the libraries raise (no GPU on this machine)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelmanager.errors import ModelInferFailed
from modelmanager.index import RunStore
from modelmanager.run.contract import ComponentOutput, ComponentRequest
from modelmanager.runtimes import default_runtime
from tests.runner_components import make_runner


def onnxruntime_oom(batch: int) -> Exception:
    """What our ONNX handle raises when onnxruntime's CUDA arena cannot allocate."""
    from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException

    cause = RuntimeException(
        "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while "
        "running Conv node. Name:'/conv' Status Message: /onnxruntime/core/framework/"
        f"bfc_arena.cc:376 void* onnxruntime::BFCArena::AllocateRawInternal(size_t, bool, "
        f"onnxruntime::Stream*, bool, onnxruntime::WaitNotificationFn) Failed to allocate "
        f"memory for requested buffer of size {batch * 268435456}"
    )
    error = ModelInferFailed(f"frame_features/encoder: inference failed: {cause}")
    error.__cause__ = cause
    return error


class Hungry:
    """Fits a batch of at most ``fits`` (None: none fits); records the batches it was given."""

    name = "frame_features"
    producer_version = "1.0.0"
    schema_version = "1"
    roles = ("encoder",)
    max_batch = 8

    def __init__(self, fits: int | None, error: Any = onnxruntime_oom) -> None:
        self.fits, self.error, self.asked = fits, error, []  # type: ignore[var-annotated]

    def process(self, request: ComponentRequest) -> ComponentOutput:
        batch = request.batch_size or 1
        self.asked.append((batch, id(request.runtimes["encoder"])))
        if self.fits is None or batch > self.fits:
            raise self.error(batch)
        return ComponentOutput({"x": np.zeros(3, np.float32)}, batch_size=batch)


@pytest.fixture
def opened() -> list[str]:
    return []


def runner(
    store: RunStore, tmp_path: Path, opened: list[str], run_id: str = "run-oom", **kw: Any
) -> Any:
    def factory(spec: Any, path: Any) -> Any:
        opened.append(spec.role)
        return default_runtime(spec, path)

    return make_runner(store, tmp_path, run_id, runtime_factory=factory, **kw)


def test_an_oom_halves_the_batch_in_fresh_sessions_until_it_fits(
    store: RunStore, tmp_path: Path, opened: list[str]
) -> None:
    hungry = Hungry(fits=2)
    result = runner(store, tmp_path, opened).run([hungry], {})
    (entry,) = result.manifest.components
    assert (entry.status, entry.batch_size, entry.oom_retries) == ("ok", 2, 2)
    assert [batch for batch, _ in hungry.asked] == [8, 4, 2]
    assert len({handle for _, handle in hungry.asked}) == 3  # a fresh session each time
    assert opened == ["encoder"] * 3
    first, second = entry.warnings
    assert first.startswith("out of memory at batch 8 (onnxruntime: [ONNXRuntimeError] : 6 :")
    assert second.startswith("out of memory at batch 4 (onnxruntime: ")
    assert entry.warnings[0].endswith("retried at 4 in fresh sessions")


def test_the_planned_batch_is_where_it_starts(
    store: RunStore, tmp_path: Path, opened: list[str]
) -> None:
    hungry = Hungry(fits=8)
    from modelmanager.resources.planner import Placement

    planned = {"frame_features": Placement("frame_features", "cuda:1", 3, "fits 3 on cuda:1")}
    result = runner(store, tmp_path, opened, placements=planned).run([hungry], {})
    assert [batch for batch, _ in hungry.asked] == [3]
    entry = result.manifest.components[0]
    assert (entry.batch_size, entry.batch_reason) == (3, "fits 3 on cuda:1")


def test_out_of_memory_at_a_batch_of_one_is_insufficient_gpu_memory(
    store: RunStore, tmp_path: Path, opened: list[str]
) -> None:
    hungry = Hungry(fits=None)
    result = runner(store, tmp_path, opened).run([hungry], {})
    (entry,) = result.manifest.components
    assert (entry.status, entry.error_code) == ("failed", "insufficient_gpu_memory")
    assert [batch for batch, _ in hungry.asked] == [8, 4, 2, 1]
    assert entry.oom_retries == 3
    assert entry.error_fields["batch_size"] == 1
    assert "out of memory at a batch of 1 (onnxruntime:" in str(entry.error)
    assert not list(tmp_path.rglob("*.npz"))


def test_an_error_that_is_no_oom_is_not_retried(
    store: RunStore, tmp_path: Path, opened: list[str]
) -> None:
    def shape_error(batch: int) -> Exception:
        return ModelInferFailed("frame_features/encoder: Got invalid dimensions for input: x")

    hungry = Hungry(fits=None, error=shape_error)
    result = runner(store, tmp_path, opened).run([hungry], {})
    (entry,) = result.manifest.components
    assert (entry.error_code, entry.oom_retries) == ("model_infer_failed", 0)
    assert [batch for batch, _ in hungry.asked] == [8]


def test_a_torch_oom_and_a_host_memory_error_back_off_too(
    store: RunStore, tmp_path: Path, opened: list[str]
) -> None:
    import torch

    for error in (
        lambda b: torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {b} GiB"),
        lambda b: MemoryError(f"Unable to allocate {b} GiB for an array"),
    ):
        hungry = Hungry(fits=1, error=error)
        n = len(opened)  # another video each time: no cache hit
        run = runner(store, tmp_path, opened, run_id=f"run-{n}", context={"video_id": f"v{n}"})
        entry = run.run([hungry], {}).manifest.components[0]
        assert (entry.status, entry.batch_size, entry.oom_retries) == ("ok", 1, 3)
