"""R-SPEC-1..5: what a mapping entry must hold, and each rejection naming component/role/field."""

from __future__ import annotations

from typing import Any

import pytest

from modelmanager import InvalidModelSpec, ResolvedMapping
from modelmanager.mapping.spec import ModelUsed, parse_mapping
from tests.conftest import onnx_entry, triton_entry


def _without(entry: dict[str, Any], field: str) -> dict[str, Any]:
    entry = dict(entry)
    del entry[field]
    return entry


def _triton_with(**triton: Any) -> dict[str, Any]:
    entry = triton_entry()
    entry["triton"].update(triton)
    return entry


def _triton_without(field: str) -> dict[str, Any]:
    entry = triton_entry()
    del entry["triton"][field]
    return entry


# (case id, entry, field named in the error). R-SPEC-3: each mandatory field; R-SPEC-4:
# digest format; R-SPEC-5: paths; R-SPEC-2: enums and triton block.
REJECTIONS = [
    ("model_version missing", _without(onnx_entry(), "model_version"), "model_version"),
    ("model_version latest", onnx_entry(model_version="latest"), "model_version"),
    ("model_version LATEST", onnx_entry(model_version="LATEST"), "model_version"),
    ("model_version empty", onnx_entry(model_version=""), "model_version"),
    ("model_version blank", onnx_entry(model_version="  "), "model_version"),
    ("model_version range", onnx_entry(model_version=">=2.0"), "model_version"),
    ("model_version caret", onnx_entry(model_version="^2.1"), "model_version"),
    ("model_version wildcard", onnx_entry(model_version="2.x"), "model_version"),
    ("model_version star", onnx_entry(model_version="*"), "model_version"),
    ("model_version float", onnx_entry(model_version=2.1), "model_version"),
    ("model_version null", onnx_entry(model_version=None), "model_version"),
    ("weights_digest missing", _without(onnx_entry(), "weights_digest"), "weights_digest"),
    ("weights_digest bare hex", onnx_entry(weights_digest="0" * 64), "weights_digest"),
    ("weights_digest uppercase", onnx_entry(weights_digest="sha256:" + "A" * 64), "weights_digest"),
    ("weights_digest short", onnx_entry(weights_digest="sha256:" + "0" * 63), "weights_digest"),
    ("weights_digest md5", onnx_entry(weights_digest="md5:" + "0" * 32), "weights_digest"),
    ("weights_digest unknown", onnx_entry(weights_digest="unknown"), "weights_digest"),
    ("engine missing", _without(onnx_entry(), "engine"), "engine"),
    ("engine unknown", onnx_entry(engine="jax"), "engine"),
    ("runtime missing", _without(onnx_entry(), "runtime"), "runtime"),
    ("runtime unknown", onnx_entry(runtime="remote"), "runtime"),
    ("precision missing", _without(onnx_entry(), "precision"), "precision"),
    ("precision unknown", onnx_entry(precision="int8"), "precision"),
    ("device_policy missing", _without(onnx_entry(), "device_policy"), "device_policy"),
    ("device_policy unknown", onnx_entry(device_policy="gpu"), "device_policy"),
    ("device malformed", onnx_entry(device="cuda:x"), "device"),
    ("device cuda unassigned", onnx_entry(device_policy="cuda"), "device"),
    ("device against cpu policy", onnx_entry(device="cuda:0"), "device"),
    ("device against pinned", onnx_entry(device_policy="cuda:1", device="cuda:0"), "device"),
    ("device cpu on cuda policy", onnx_entry(device_policy="cuda", device="cpu"), "device"),
    ("model_name missing", _without(onnx_entry(), "model_name"), "model_name"),
    ("unknown field", onnx_entry(weight_digest="sha256:" + "0" * 64), "weight_digest"),
    ("onnx without onnx_path", onnx_entry(artifacts={}), "artifacts.onnx_path"),
    (
        "tensorrt without onnx_path",
        onnx_entry(engine="tensorrt", device_policy="cuda:0", artifacts={}),
        "artifacts.onnx_path",
    ),
    ("torch without weights_path", onnx_entry(engine="torch"), "artifacts.weights_path"),
    ("absolute path", onnx_entry(artifacts={"onnx_path": "/models/x.onnx"}), "artifacts.onnx_path"),
    (
        "windows drive path",
        onnx_entry(artifacts={"onnx_path": "C:/m/x.onnx"}),
        "artifacts.onnx_path",
    ),
    ("backslash path", onnx_entry(artifacts={"onnx_path": "a\\x.onnx"}), "artifacts.onnx_path"),
    ("escaping path", onnx_entry(artifacts={"onnx_path": "../x.onnx"}), "artifacts.onnx_path"),
    (
        "inner escaping path",
        onnx_entry(artifacts={"onnx_path": "a/../../x.onnx"}),
        "artifacts.onnx_path",
    ),
    ("empty path", onnx_entry(artifacts={"onnx_path": ""}), "artifacts.onnx_path"),
    (
        "escaping tokenizer",
        onnx_entry(artifacts={"onnx_path": "a.onnx", "tokenizer_path": "../t"}),
        "artifacts.tokenizer_path",
    ),
    ("inprocess with triton block", onnx_entry(triton=triton_entry()["triton"]), "triton"),
    ("triton without block", _without(triton_entry(), "triton"), "triton"),
    ("triton without endpoint", _triton_with(grpc_url=None), "triton.http_url"),
    ("triton bad http url", _triton_with(http_url="localhost:8000"), "triton.http_url"),
    ("triton bad grpc url", _triton_with(grpc_url="http://x"), "triton.grpc_url"),
    ("triton without inputs", _triton_with(inputs=[]), "triton.inputs"),
    ("triton inputs missing", _triton_without("inputs"), "triton.inputs"),
    ("triton without outputs", _triton_with(outputs=[]), "triton.outputs"),
    ("triton floating version", _triton_with(model_version="latest"), "triton.model_version"),
    ("triton version zero", _triton_with(model_version=0), "triton.model_version"),
    ("triton model_name missing", _triton_without("model_name"), "triton.model_name"),
    (
        "triton bad dtype",
        _triton_with(inputs=[{"name": "x", "dtype": "float32", "shape": [1]}]),
        "triton.inputs.0.dtype",
    ),
    (
        "triton bad shape",
        _triton_with(outputs=[{"name": "y", "dtype": "FP32", "shape": [0]}]),
        "triton.outputs.0.shape",
    ),
    (
        "triton io without name",
        _triton_with(outputs=[{"dtype": "FP32", "shape": [1]}]),
        "triton.outputs.0.name",
    ),
    ("role contradicted", onnx_entry(role="recognizer"), "role"),
    ("tensorrt on cpu", onnx_entry(engine="tensorrt"), "engine"),
    (
        "triton io outside its block",
        triton_entry(inputs=[{"name": "x", "dtype": "FP32", "shape": [1]}]),
        "inputs",
    ),
    (
        "inprocess io bad dtype",
        onnx_entry(outputs=[{"name": "y", "dtype": "float", "shape": [1]}]),
        "outputs.0.dtype",
    ),
]


@pytest.mark.parametrize(
    ("entry", "field"), [c[1:] for c in REJECTIONS], ids=[c[0] for c in REJECTIONS]
)
def test_rejection_names_component_role_and_field(entry: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidModelSpec) as info:
        parse_mapping({"components": {"text_ocr": {"detector": entry}}}, source="p.yaml")
    err = info.value
    assert err.code == "invalid_model_spec"
    assert (err.fields["component"], err.fields["role"], err.fields["field"]) == (
        "text_ocr",
        "detector",
        field,
    )
    assert "p.yaml" in err.message
    assert "text_ocr" in err.message
    assert field in err.message


@pytest.mark.parametrize(
    ("components", "component"),
    [
        ({"text ocr": {}}, "text ocr"),
        ({"-ocr": {}}, "-ocr"),
        ({"text_ocr": "detector"}, "text_ocr"),
    ],
)
def test_bad_component_is_named(components: dict[str, Any], component: str) -> None:
    with pytest.raises(InvalidModelSpec) as info:
        parse_mapping({"components": components})
    assert info.value.fields["component"] == component


def test_bad_role_name_is_named() -> None:
    with pytest.raises(InvalidModelSpec) as info:
        parse_mapping({"components": {"ocr": {"de tector": onnx_entry()}}})
    assert (info.value.fields["component"], info.value.fields["role"]) == ("ocr", "de tector")


def test_every_problem_is_listed() -> None:
    entry = onnx_entry(model_version="latest", weights_digest="nope")
    with pytest.raises(InvalidModelSpec) as info:
        parse_mapping({"components": {"ocr": {"det": entry}}})
    fields = {p["field"] for p in info.value.fields["problems"]}
    assert fields == {"model_version", "weights_digest"}


def test_missing_components_is_rejected() -> None:
    with pytest.raises(InvalidModelSpec) as info:
        parse_mapping({"profile": "x"})
    assert info.value.fields["field"] == "components"


def test_valid_entries_resolve_with_device_from_policy() -> None:
    mapping = parse_mapping(
        {
            "components": {
                "ocr": {
                    "det": onnx_entry(model_version=3),
                    "pinned": onnx_entry(device_policy="cuda:1", precision="fp16"),
                    "torch": onnx_entry(
                        engine="torch", artifacts={"weights_path": "t/w.safetensors"}
                    ),
                },
                "score": {"scorer": triton_entry()},
                "stats": {},
            }
        }
    )
    det = mapping.spec("ocr", "det")
    assert det is not None
    assert (det.component_name, det.role, det.device, det.model_version) == (
        "ocr",
        "det",
        "cpu",
        "3",
    )
    pinned = mapping.spec("ocr", "pinned")
    assert pinned is not None
    assert pinned.device == "cuda:1"
    assert pinned.device_kind == "cuda"
    assert mapping.spec("ocr", "torch").local_artifact == "t/w.safetensors"  # type: ignore[union-attr]
    scorer = mapping.spec("score", "scorer")
    assert scorer is not None
    assert scorer.local_artifact is None
    assert scorer.device == "cuda:1"
    assert mapping.components["stats"] == {}


def test_mapping_round_trips_through_json() -> None:
    mapping = parse_mapping(
        {"components": {"ocr": {"det": onnx_entry()}, "s": {"x": triton_entry()}}}
    )
    again = ResolvedMapping.model_validate(mapping.to_json_dict())
    assert again == mapping


def test_specs_are_frozen() -> None:
    spec = parse_mapping({"components": {"ocr": {"det": onnx_entry()}}}).spec("ocr", "det")
    with pytest.raises(ValueError, match="frozen"):
        spec.model_version = "9"  # type: ignore[union-attr,misc]


def test_model_used_takes_preprocessing_by_runtime() -> None:
    mapping = parse_mapping(
        {
            "components": {
                "ocr": {
                    "det": onnx_entry(artifacts={"onnx_path": "a.onnx", "preprocess_id": "norm@2"})
                },
                "s": {"x": triton_entry()},
            }
        }
    )
    local = ModelUsed.from_spec(mapping.spec("ocr", "det"))  # type: ignore[arg-type]
    remote = ModelUsed.from_spec(mapping.spec("s", "x"))  # type: ignore[arg-type]
    assert (local.preprocessing_version, local.preprocess_preset) == ("norm@2", None)
    assert (remote.preprocess_preset, remote.preprocessing_version) == ("scene-224@1", None)
    assert remote.device == "cuda"  # D2: the kind, not cuda:1
