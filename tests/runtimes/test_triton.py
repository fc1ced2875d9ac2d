"""R-RT-2, R-FAIL-1/3: the Triton handle against a real tritonserver (tests/triton_fixtures.py).

Tolerance of Triton vs in-process outputs: rtol 1e-5, atol 1e-6 (same onnxruntime
on both sides; only float32 transport and batching could differ).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from modelmanager import (
    InvalidModelSpec,
    ModelManager,
    TritonClientMissing,
    TritonInferFailed,
    TritonModelNotFound,
    TritonUnavailable,
)
from modelmanager.runtimes import triton as triton_runtime
from modelmanager.triton.server import TritonServer
from tests.triton_fixtures import TritonFixture

PROTOCOLS = ("grpc", "http")


def _only(mapping: dict[str, Any], protocol: str) -> dict[str, Any]:
    """The mapping with one protocol's URL, so the handle uses that protocol."""
    for entry in mapping["components"]["scorer"].values():
        entry["triton"].pop("http_url" if protocol == "grpc" else "grpc_url")
    return mapping


def _handle(mapping: dict[str, Any], role: str = "v1") -> Any:
    mm = ModelManager(None, mapping)
    return mm.get_runtime(mm.resolve("scorer", role))


def _x(rows: int = 3) -> np.ndarray:
    return np.random.default_rng(7).standard_normal((rows, 8)).astype(np.float32)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pinned_versions_serve_the_same_outputs_as_in_process(
    triton_server: TritonFixture, triton_mapping: dict[str, Any], protocol: str
) -> None:
    mapping = _only(triton_mapping, protocol)
    outputs = {}
    for role in ("v1", "v2"):
        handle = _handle(mapping, role)
        assert handle.protocol == protocol
        (served,) = handle({"x": _x()}).values()
        onnx_path = (
            triton_server.models_root
            / mapping["components"]["scorer"][role]["artifacts"]["onnx_path"]
        )
        (local,) = ort.InferenceSession(onnx_path).run(None, {"x": _x()})
        np.testing.assert_allclose(served, local, rtol=1e-5, atol=1e-6)
        outputs[role] = served
    assert not np.allclose(outputs["v1"], outputs["v2"])  # each role got its own version


def test_metadata_and_health(triton_mapping: dict[str, Any]) -> None:
    handle = _handle(triton_mapping)
    meta = handle.metadata()
    assert [(t.name, t.dtype, t.shape) for t in meta.inputs] == [("x", "FP32", (-1, 8))]
    assert meta.details["preprocess_preset"] == "mlp-pre@1"
    assert handle.health().ok


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unknown_version_is_not_found_never_another(
    triton_mapping: dict[str, Any], protocol: str
) -> None:
    mapping = _only(triton_mapping, protocol)
    mapping["components"]["scorer"]["v1"]["triton"]["model_version"] = 7
    with pytest.raises(TritonModelNotFound, match="version 7") as info:
        _handle(mapping)
    assert "versions 1, 2" in info.value.message
    assert (info.value.fields["component"], info.value.fields["model_version"]) == ("scorer", 7)
    assert not info.value.transient


def test_unknown_model_is_not_found(triton_mapping: dict[str, Any]) -> None:
    triton_mapping["components"]["scorer"]["v1"]["triton"]["model_name"] = "nope"
    with pytest.raises(TritonModelNotFound, match="the model is not in the repository"):
        _handle(triton_mapping)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (
            {"inputs": [{"name": "z", "dtype": "FP32", "shape": [-1, 8]}]},
            "triton.inputs",
            "'z' is not among",
        ),
        (
            {"inputs": [{"name": "x", "dtype": "FP16", "shape": [-1, 8]}]},
            "triton.inputs",
            "FP32 in the model",
        ),
        (
            {"outputs": [{"name": "y", "dtype": "FP32", "shape": [-1, 5]}]},
            "triton.outputs",
            "shape",
        ),
        ({"preprocess_preset": "other@2"}, "triton.preprocess_preset", "'mlp-pre@1'"),
        ({"preprocess_preset": None}, "triton.preprocess_preset", "'mlp-pre@1'"),
    ],
)
def test_served_model_that_differs_from_the_spec(
    triton_mapping: dict[str, Any], change: dict[str, Any], field: str, message: str
) -> None:
    triton_mapping["components"]["scorer"]["v1"]["triton"].update(change)
    with pytest.raises(InvalidModelSpec, match=message) as info:
        _handle(triton_mapping)
    assert info.value.fields["field"] == field


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"x": np.ones((2, 8), np.float64)}, "cannot send the inputs"),
        ({"z": np.ones((2, 8), np.float32)}, "z"),
        ({"x": np.ones((2, 9), np.float32)}, r"shape|dims|9"),
    ],
    ids=["wrong dtype", "wrong name", "wrong shape"],
)
def test_bad_inputs_are_triton_infer_failed(
    triton_mapping: dict[str, Any], protocol: str, inputs: dict[str, Any], message: str
) -> None:
    handle = _handle(_only(triton_mapping, protocol))
    with pytest.raises(TritonInferFailed, match=message) as info:
        handle(inputs)
    assert not info.value.transient


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_stopped_server_is_unavailable_at_once_without_retry(
    triton_server: TritonFixture,
    triton_mapping: dict[str, Any],
    protocol: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=triton_runtime.__name__)
    with TritonServer(triton_server.repository, startup_timeout_s=120) as own:
        mapping = _only(triton_mapping, protocol)
        for entry in mapping["components"]["scorer"].values():
            entry["triton"]["grpc_url" if protocol == "grpc" else "http_url"] = (
                own.grpc_url if protocol == "grpc" else own.http_url
            )
        handle = _handle(mapping)
        handle({"x": _x()})  # served while it runs
    started = time.monotonic()
    with pytest.raises(TritonUnavailable, match="does not answer"):
        handle({"x": _x()})
    assert time.monotonic() - started < 1.0
    assert "retrying" not in caplog.text  # not transient: no retry
    with pytest.raises(TritonUnavailable):
        _handle(mapping)  # and opening fails the same way


SLOW_CONFIG = """name: "slow"
backend: "python"
max_batch_size: 1
input [ { name: "x" data_type: TYPE_FP32 dims: [ 8 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 8 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
dynamic_batching { default_queue_policy { max_queue_size: 1 } }
"""

SLOW_MODEL = """import sys
sys.path[:0] = {site_packages!r}
import time
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        time.sleep(2.5)
        return [
            pb_utils.InferenceResponse(
                [pb_utils.Tensor("y", pb_utils.get_input_tensor_by_name(r, "x").as_numpy())]
            )
            for r in requests
        ]
"""


def test_full_queue_is_the_one_transient_error_and_is_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A server whose queue is full answers "Exceeds maximum queue size": retried, then raised."""
    import sysconfig
    from concurrent.futures import ThreadPoolExecutor

    repo = tmp_path / "repo"
    (repo / "slow" / "1").mkdir(parents=True)
    (repo / "slow" / "config.pbtxt").write_text(SLOW_CONFIG)
    site = [sysconfig.get_paths()["purelib"]]
    (repo / "slow" / "1" / "model.py").write_text(SLOW_MODEL.format(site_packages=site))
    caplog.set_level(logging.INFO, logger=triton_runtime.__name__)
    with TritonServer(repo, work_dir=tmp_path / "server", startup_timeout_s=120) as server:
        entry = {
            "model_name": "slow",
            "model_version": "1",
            "weights_digest": "sha256:" + "5" * 64,
            "runtime": "triton",
            "engine": "onnx",
            "precision": "fp32",
            "device_policy": "cpu",
            "triton": {
                "grpc_url": server.grpc_url,
                "model_name": "slow",
                "model_version": 1,
                "inputs": [{"name": "x", "dtype": "FP32", "shape": [-1, 8]}],
                "outputs": [{"name": "y", "dtype": "FP32", "shape": [-1, 8]}],
            },
        }
        handles = [_handle({"components": {"scorer": {"v1": entry}}}) for _ in range(5)]

        def call(handle: Any) -> Any:
            try:
                return handle({"x": _x(1)})
            except TritonInferFailed as exc:
                return exc

        with ThreadPoolExecutor(len(handles)) as pool:
            results = list(pool.map(call, handles))
    refused = [r for r in results if isinstance(r, TritonInferFailed)]
    served = [r for r in results if isinstance(r, dict)]
    assert served, "the executing and the queued request are served"
    assert refused, "the others find the queue full"
    assert all(r.transient and "queue" in r.message for r in refused)
    # Each refused call was retried twice before it was raised (a retry may also succeed,
    # when the queue frees up in between: that call is then among the served ones).
    assert caplog.text.count("retrying") >= 2 * len(refused)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_missing_tritonclient(
    triton_mapping: dict[str, Any], protocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, f"tritonclient.{protocol}", None)  # import raises ImportError
    with pytest.raises(TritonClientMissing, match=r"pip install 'modelmanager\[triton\]'"):
        _handle(_only(triton_mapping, protocol))
