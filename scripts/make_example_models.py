"""Write the small real ONNX models the example profile points at.

The files are committed (so a fresh clone resolves and verifies real digests
with nothing installed but the package); this script is how they were made.
Its output is byte-for-byte deterministic for a given onnx version, which a
test checks against the committed files.

    python scripts/make_example_models.py [OUT_DIR]   # default examples/models
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8


def _weights(seed: int, shape: tuple[int, ...], name: str) -> onnx.TensorProto:
    rng = np.random.default_rng(seed)
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.1, name)


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(
        graph,
        producer_name="modelmanager-examples",
        producer_version="1",
        opset_imports=[helper.make_opsetid("", OPSET)],
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def frame_encoder() -> onnx.ModelProto:
    """pixels [N,3,8,8] → features [N,16]: flatten, linear, relu."""
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["pixels"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "w"], ["lin"]),
            helper.make_node("Relu", ["lin"], ["features"]),
        ],
        "frame_encoder",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 16])],
        initializer=[_weights(1, (192, 16), "w")],
    )
    return _model(graph)


def text_detector() -> onnx.ModelProto:
    """x [N,3,H,W] → prob [N,1,H,W]: one 3x3 convolution and a sigmoid."""
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "k"], ["logits"], pads=[1, 1, 1, 1]),
            helper.make_node("Sigmoid", ["logits"], ["prob"]),
        ],
        "text_detector",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        initializer=[_weights(2, (1, 3, 3, 3), "k")],
    )
    return _model(graph)


def text_recognizer() -> onnx.ModelProto:
    """crop [N,256] → logits [N,10]: a linear classifier over a flattened 8x32 crop."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["crop", "w"], ["logits"])],
        "text_recognizer",
        [helper.make_tensor_value_info("crop", TensorProto.FLOAT, ["N", 256])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        initializer=[_weights(3, (256, 10), "w")],
    )
    return _model(graph)


def scene_scorer() -> onnx.ModelProto:
    """pixels [N,3,8,8] → score [N,1]: flatten, linear, sigmoid (served by Triton)."""
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["pixels"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "w"], ["logit"]),
            helper.make_node("Sigmoid", ["logit"], ["score"]),
        ],
        "scene_scorer",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1])],
        initializer=[_weights(4, (192, 1), "w")],
    )
    return _model(graph)


MODELS = {
    "frame-encoder/1.0.0/model.onnx": frame_encoder,
    "text-detector/2.1.0/model.onnx": text_detector,
    "text-recognizer/2.1.0/model.onnx": text_recognizer,
    "scene-scorer/3/model.onnx": scene_scorer,
}


def write_all(out: Path) -> list[Path]:
    written = []
    for relpath, build in MODELS.items():
        path = out / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(build().SerializeToString(deterministic=True))
        written.append(path)
    return written


if __name__ == "__main__":
    target = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent.parent / "examples/models"
    )
    for p in write_all(target):
        print(p)
