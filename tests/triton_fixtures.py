"""A real Triton server for tests: two versions of a small ONNX MLP, built and served once.

The fixtures themselves live in ``conftest.py`` (one server for the whole
session, started only if a test asks for it): ``triton_server`` yields a :class:`TritonFixture`: the running
:class:`~modelmanager.triton.server.TritonServer`, the raw mapping (with the
server's ``http_url`` and ``grpc_url``), its ``models_root`` and the built
``repository``. ``triton_mapping`` is a fresh deep copy of that mapping per test.

What is served (Triton model ``mlp``, ``x`` [-1, 8] FP32 → ``y`` [-1, 4] FP32)::

    models_root/mlp/1/model.onnx    seed 1   ← scorer/v1  (triton version 1)
    models_root/mlp/2/model.onnx    seed 2   ← scorer/v2  (triton version 2)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from modelmanager.mapping.spec import parse_mapping
from modelmanager.triton.repo import build_repository
from modelmanager.triton.server import TritonServer
from modelmanager.weights.digest import hash_file

__all__ = [
    "MLP_INPUT_DIM",
    "MLP_OUTPUT_DIM",
    "PREPROCESS_PRESET",
    "TRITON_MODEL",
    "TritonFixture",
    "mlp_mapping",
    "onnx_mlp",
    "start_fixture",
    "write_mlp_models",
]

TRITON_MODEL = "mlp"
PREPROCESS_PRESET = "mlp-pre@1"
MLP_INPUT_DIM = 8
MLP_OUTPUT_DIM = 4
_HIDDEN = 16


def onnx_mlp(path: Path, seed: int) -> Path:
    """Write a small MLP ``x`` [N, 8] FP32 → ``y`` [N, 4] FP32 with weights from ``seed``.

    ``y = tanh(relu(x @ w1 + b1) @ w2 + b2)``; the file is deterministic for a seed.
    """
    rng = np.random.default_rng(seed)

    def weights(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.5, name)

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h0"]),
            helper.make_node("Add", ["h0", "b1"], ["h1"]),
            helper.make_node("Relu", ["h1"], ["h2"]),
            helper.make_node("MatMul", ["h2", "w2"], ["o0"]),
            helper.make_node("Add", ["o0", "b2"], ["o1"]),
            helper.make_node("Tanh", ["o1"], ["y"]),
        ],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", MLP_INPUT_DIM])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", MLP_OUTPUT_DIM])],
        initializer=[
            weights("w1", MLP_INPUT_DIM, _HIDDEN),
            weights("b1", _HIDDEN),
            weights("w2", _HIDDEN, MLP_OUTPUT_DIM),
            weights("b2", MLP_OUTPUT_DIM),
        ],
    )
    model = helper.make_model(
        graph,
        producer_name="modelmanager-tests",
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString(deterministic=True))
    return path


def mlp_entry(
    models_root: Path,
    version: int,
    *,
    http_url: str | None,
    grpc_url: str | None,
    **triton_overrides: Any,
) -> dict[str, Any]:
    """The mapping entry of version ``version`` of the MLP under ``models_root``."""
    onnx_path = f"{TRITON_MODEL}/{version}/model.onnx"
    triton: dict[str, Any] = {
        "model_name": TRITON_MODEL,
        "model_version": version,
        "preprocess_preset": PREPROCESS_PRESET,
        "inputs": [{"name": "x", "dtype": "FP32", "shape": [-1, MLP_INPUT_DIM]}],
        "outputs": [{"name": "y", "dtype": "FP32", "shape": [-1, MLP_OUTPUT_DIM]}],
    }
    if http_url is not None:
        triton["http_url"] = http_url
    if grpc_url is not None:
        triton["grpc_url"] = grpc_url
    triton.update(triton_overrides)
    return {
        "model_name": "mlp-scorer",
        "model_version": str(version),
        "weights_digest": hash_file(models_root / onnx_path),
        "runtime": "triton",
        "engine": "onnx",
        "precision": "fp32",
        "device_policy": "cpu",
        "artifacts": {"onnx_path": onnx_path},
        "triton": triton,
    }


def mlp_mapping(
    models_root: Path,
    *,
    http_url: str | None = "http://127.0.0.1:8000",
    grpc_url: str | None = "127.0.0.1:8001",
) -> dict[str, Any]:
    """The raw mapping: component ``scorer``, role ``v1`` → version 1, role ``v2`` → version 2.

    The ONNX files must already be under ``models_root`` (see :func:`write_mlp_models`).
    The URLs do not enter the repository: one built from the default ones serves any port.
    """
    return {
        "format_version": 1,
        "profile": "triton-test",
        "components": {
            "scorer": {
                f"v{version}": mlp_entry(models_root, version, http_url=http_url, grpc_url=grpc_url)
                for version in (1, 2)
            },
        },
    }


def write_mlp_models(models_root: Path) -> None:
    """Both versions of the MLP under ``models_root`` (seed = version)."""
    for version in (1, 2):
        onnx_mlp(models_root / TRITON_MODEL / str(version) / "model.onnx", seed=version)


@dataclass(frozen=True)
class TritonFixture:
    """A running server and what it serves."""

    server: TritonServer
    mapping: dict[str, Any]
    models_root: Path
    repository: Path


def start_fixture(base: Path) -> TritonFixture:
    """Write both MLP versions under ``base``, build their repository and serve it."""
    models_root = base / "models"
    write_mlp_models(models_root)
    repository = base / "repository"
    build_repository(parse_mapping(mlp_mapping(models_root)), models_root, repository)
    server = TritonServer(repository, work_dir=base / "server", startup_timeout_s=120)
    server.start()
    mapping = mlp_mapping(models_root, http_url=server.http_url, grpc_url=server.grpc_url)
    return TritonFixture(server, mapping, models_root, repository)
