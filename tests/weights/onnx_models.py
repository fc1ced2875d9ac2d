"""Small ONNX models for the digest tests of issue 12: one whose weights live in an external
data file beside it (``onnx.save_model(..., save_as_external_data=True)``), and ones whose
external-data locations leave their directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

WEIGHTS = np.arange(16, dtype=np.float32).reshape(4, 4) / 10


def matmul_model() -> onnx.ModelProto:
    """``y = x @ W`` with ``x: [N, 4]`` and a 4x4 initializer ``W`` (:data:`WEIGHTS`)."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
        [numpy_helper.from_array(WEIGHTS, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def save_with_external_data(directory: Path, location: str = "weights.bin") -> Path:
    """``directory/model.onnx`` with its initializer in ``directory/<location>``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.onnx"
    onnx.save_model(
        matmul_model(),
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=location,
        size_threshold=0,
    )
    return path


def save_pointing_at(path: Path, location: str) -> Path:
    """An ONNX file at ``path`` whose initializer names ``location`` as its external data,
    written as is (onnx's own saver would write the data there); the bytes are written
    where ``location`` leads from ``path``'s directory when that is a relative path."""
    model = matmul_model()
    tensor = model.graph.initializer[0]
    data = tensor.raw_data
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(len(data)))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    target = Path(location) if Path(location).is_absolute() else path.parent / location
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return path


def flip_one_byte(path: Path) -> None:
    """Change one byte of ``path`` in place: same size, same mtime (ctime changes)."""
    import os

    st = os.stat(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
