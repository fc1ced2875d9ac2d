"""R-RT-3, R-FAIL-2: in-process ONNX handles, each translated onnxruntime failure produced for real."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from modelmanager import (
    DeviceUnavailable,
    InvalidModelSpec,
    ModelInferFailed,
    ModelLoadFailed,
    ModelManager,
    OnnxRuntimeMissing,
)
from modelmanager.runtimes.onnx import OnnxRuntime
from modelmanager.weights.digest import hash_file
from tests.conftest import EXAMPLES, age, onnx_entry

ENCODER = "frame-encoder/1.0.0/model.onnx"


def _manager(models_root: Path = EXAMPLES / "models", **overrides: Any) -> ModelManager:
    path = models_root / overrides.get("artifacts", {}).get("onnx_path", ENCODER)
    entry = onnx_entry(
        model_name="frame-encoder",
        weights_digest=hash_file(path),
        artifacts={"onnx_path": ENCODER},
    )
    entry.update(overrides)
    return ModelManager(
        None, {"components": {"frames": {"encoder": entry}}}, models_root=models_root
    )


def _open(**overrides: Any) -> Any:
    mm = _manager(**overrides)
    return mm.get_runtime(mm.resolve("frames", "encoder"))


def test_infer_computes_the_model() -> None:
    handle = _open()
    pixels = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    (features,) = handle({"pixels": pixels}).values()
    model = onnx.load(EXAMPLES / "models" / ENCODER)
    w = numpy_helper.to_array(model.graph.initializer[0])
    np.testing.assert_allclose(
        features, np.maximum(pixels.reshape(2, -1) @ w, 0), rtol=1e-5, atol=1e-6
    )


def test_metadata_reports_io_and_provider() -> None:
    meta = _open().metadata()
    assert [(t.name, t.dtype, t.shape) for t in meta.inputs] == [("pixels", "FP32", (-1, 3, 8, 8))]
    assert [(t.name, t.dtype, t.shape) for t in meta.outputs] == [("features", "FP32", (-1, 16))]
    assert meta.details["provider"] == "CPUExecutionProvider"


def test_spec_io_that_matches_is_accepted() -> None:
    handle = _open(
        inputs=[{"name": "pixels", "dtype": "FP32", "shape": [-1, 3, 8, 8]}],
        outputs=[{"name": "features", "dtype": "FP32", "shape": [4, 16]}],  # a fixed batch fits -1
    )
    assert handle.health().ok


@pytest.mark.parametrize(
    ("io", "field", "message"),
    [
        (
            {"inputs": [{"name": "image", "dtype": "FP32", "shape": [-1, 3, 8, 8]}]},
            "inputs",
            "'image' is not among",
        ),
        (
            {"inputs": [{"name": "pixels", "dtype": "FP16", "shape": [-1, 3, 8, 8]}]},
            "inputs",
            "FP32 in the model, FP16",
        ),
        (
            {"inputs": [{"name": "pixels", "dtype": "FP32", "shape": [-1, 3, 16, 16]}]},
            "inputs",
            "shape",
        ),
        (
            {"outputs": [{"name": "features", "dtype": "FP32", "shape": [-1, 32]}]},
            "outputs",
            "shape",
        ),
    ],
)
def test_spec_io_mismatch_is_invalid_model_spec(
    io: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(InvalidModelSpec, match=message) as info:
        _open(**io)
    assert (info.value.fields["component"], info.value.fields["field"]) == ("frames", field)


def test_bad_onnx_file_is_model_load_failed(tmp_path: Path) -> None:
    root = tmp_path / "models"
    path = root / ENCODER
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a protobuf")
    age(path)
    mm = _manager(root)
    with pytest.raises(ModelLoadFailed, match="onnxruntime cannot load") as info:
        mm.get_runtime(mm.resolve("frames", "encoder"))
    assert (info.value.fields["component"], info.value.fields["role"]) == ("frames", "encoder")
    assert "INVALID_PROTOBUF" in info.value.message


@pytest.mark.parametrize(
    ("feed", "message"),
    [
        ({"image": np.ones((1, 3, 8, 8), np.float32)}, "missing from input feed"),
        ({"pixels": np.ones((1, 3, 8, 8), np.float64)}, "Unexpected input data type"),
        ({"pixels": np.ones((1, 3, 9, 8), np.float32)}, "invalid dimensions"),
        ({"pixels": np.ones((3, 8, 8), np.float32)}, "Invalid rank"),
    ],
    ids=["wrong name", "wrong dtype", "wrong shape", "wrong rank"],
)
def test_bad_inputs_are_model_infer_failed(feed: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelInferFailed, match=message) as info:
        _open()(feed)
    assert info.value.fields["role"] == "encoder"
    assert not info.value.transient


def test_cuda_is_refused_not_silently_run_on_cpu() -> None:
    """This machine's onnxruntime has no CUDA provider: asking for one is an error, no fallback."""
    with pytest.raises(DeviceUnavailable, match="CUDAExecutionProvider") as info:
        _open(device_policy="cuda:0")
    assert info.value.fields["device"] == "cuda:0"


def test_tensorrt_is_refused_without_its_provider() -> None:
    with pytest.raises(DeviceUnavailable, match="TensorrtExecutionProvider"):
        _open(engine="tensorrt", device_policy="cuda:1", precision="fp16")


def test_providers_follow_the_spec() -> None:
    from modelmanager.runtimes.onnx import providers_for

    spec = _manager(engine="tensorrt", device_policy="cuda:1", precision="fp16").mapping.spec(
        "frames", "encoder"
    )
    assert providers_for(spec) == [  # type: ignore[arg-type]
        ("TensorrtExecutionProvider", {"device_id": 1, "trt_fp16_enable": True}),
        ("CUDAExecutionProvider", {"device_id": 1}),
    ]


def test_missing_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import raises ImportError
    with pytest.raises(OnnxRuntimeMissing, match=r"pip install 'modelmanager\[onnx\]'"):
        _open()


def test_an_import_interrupted_by_a_signal_is_no_missing_onnxruntime(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """issue 12: Ctrl-C or SIGTERM while onnxruntime's extension initialises surfaces as an
    ImportError raised from the KeyboardInterrupt (pybind11); it stays an interrupt, never
    ``onnxruntime_missing`` (a run would record a failed component, not its interruption)."""

    class Interrupted:
        def find_spec(self, name: str, *args: object) -> None:
            if name == "onnxruntime":
                raise ImportError("initialization failed") from KeyboardInterrupt()

    monkeypatch.delitem(sys.modules, "onnxruntime")
    monkeypatch.setattr(sys, "meta_path", [Interrupted(), *sys.meta_path])
    with pytest.raises(KeyboardInterrupt):
        _open()


def test_closed_handle_refuses_to_infer() -> None:
    mm = _manager()
    spec = mm.resolve("frames", "encoder")
    handle = OnnxRuntime(spec, mm.artifact_path(spec))
    with pytest.raises(ModelInferFailed, match="not open"):
        handle({"pixels": np.ones((1, 3, 8, 8), np.float32)})
    assert not handle.health().ok


# --- issue 12: an ONNX model with external data, mapped as a directory model ---------------


def _directory_manager(root: Path, artifact: str = "m") -> ModelManager:
    from modelmanager.weights.digest import Digester

    entry = onnx_entry(
        model_name="matmul",
        weights_digest=Digester().digest(root / artifact).digest,
        artifacts={"onnx_path": artifact},
    )
    return ModelManager(None, {"components": {"mm": {"model": entry}}}, models_root=root)


def test_a_directory_model_runs_its_onnx_file_with_its_external_data(tmp_path: Path) -> None:
    """issue 12: ``onnx_path`` naming a directory loads the one .onnx file at its top level,
    whose external data the directory digest covers."""
    from tests.weights.onnx_models import WEIGHTS, save_with_external_data

    save_with_external_data(tmp_path / "models" / "m")
    mm = _directory_manager(tmp_path / "models")
    handle = mm.get_runtime(mm.resolve("mm", "model"))
    x = np.eye(4, dtype=np.float32)
    np.testing.assert_allclose(handle({"x": x})["y"], WEIGHTS)
    assert handle.metadata().inputs[0].name == "x"


@pytest.mark.parametrize("onnx_files", [0, 2])
def test_a_directory_model_needs_exactly_one_top_level_onnx_file(
    tmp_path: Path, onnx_files: int
) -> None:
    """issue 12: which file to load is never guessed."""
    from tests.weights.onnx_models import matmul_model

    model = tmp_path / "models" / "m"
    model.mkdir(parents=True)
    (model / "README").write_bytes(b"x")
    for i in range(onnx_files):
        onnx.save_model(matmul_model(), str(model / f"model{i}.onnx"))
    mm = _directory_manager(tmp_path / "models")
    with pytest.raises(InvalidModelSpec, match="exactly one") as info:
        mm.get_runtime(mm.resolve("mm", "model"))
    assert (info.value.fields["component"], info.value.fields["field"]) == (
        "mm",
        "artifacts.onnx_path",
    )
