"""R-SIG-1..3, R-SIG-5, R-SPEC-6, D1, D2: models_used, model_signature, cache key, key diff."""

from __future__ import annotations

import hashlib
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from modelmanager import RunContext
from modelmanager.mapping.signature import (
    cache_key,
    diff_documents,
    model_signature,
    models_used,
)
from modelmanager.mapping.spec import parse_mapping
from tests.conftest import RUN_CONTEXT, onnx_entry, triton_entry

USED_FIELDS = {
    "role": st.sampled_from(["detector", "recognizer", "encoder"]),
    "model_name": st.text(min_size=1, max_size=12),
    "model_version": st.text(min_size=1, max_size=8),
    "weights_digest": st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True),
    "runtime": st.sampled_from(["triton", "inprocess"]),
    "engine": st.sampled_from(["onnx", "torch", "tensorrt"]),
    "precision": st.sampled_from(["fp16", "fp32"]),
    "device": st.sampled_from(["cpu", "cuda"]),
    "preprocess_preset": st.none() | st.text(max_size=8),
    "preprocessing_version": st.none() | st.text(max_size=8),
}
entries = st.fixed_dictionaries(USED_FIELDS)
KEY_FIELDS = {
    "platform_id": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,10}", fullmatch=True),
    "video_id": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,10}", fullmatch=True),
    "config_hash": st.text(min_size=1, max_size=8).filter(str.strip),
    "sampling_policy_version": st.from_regex(r"[0-9]{1,3}", fullmatch=True),
}


def _shuffled_keys(d: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    keys = list(d)
    rng.shuffle(keys)
    return {k: d[k] for k in keys}


@given(st.lists(entries, min_size=1, max_size=4), st.randoms())
def test_signature_ignores_entry_order_and_dict_key_order(
    used: list[dict[str, Any]], rng: random.Random
) -> None:
    reordered = [_shuffled_keys(e, rng) for e in used]
    rng.shuffle(reordered)
    assert model_signature(reordered) == model_signature(used)


@settings(max_examples=200)
@given(st.lists(entries, min_size=1, max_size=3), st.data())
def test_signature_changes_when_any_single_field_changes(
    used: list[dict[str, Any]], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(used) - 1))
    field = data.draw(st.sampled_from(sorted(USED_FIELDS)))
    new_value = data.draw(USED_FIELDS[field].filter(lambda v: v != used[index][field]))
    changed = [dict(e) for e in used]
    changed[index][field] = new_value
    if changed.count(changed[index]) > 1 or sorted(map(str, changed)) == sorted(map(str, used)):
        return  # the change made it equal to another entry: the multiset is unchanged
    assert model_signature(changed) != model_signature(used)


def _key(used: list[dict[str, Any]], **fields: Any) -> str:
    ctx = {**RUN_CONTEXT, **{k: v for k, v in fields.items() if k in RUN_CONTEXT}}
    return cache_key(
        RunContext(**ctx),
        component=fields.get("component", "text_ocr"),
        producer_version=fields.get("producer_version", "1.0.0"),
        schema_version=fields.get("schema_version", "3"),
        used=_models(used),
    ).key


def _models(used: list[dict[str, Any]]) -> list[Any]:
    from modelmanager.mapping.spec import ModelUsed

    return [ModelUsed(**e) for e in used]


@given(st.lists(entries, min_size=0, max_size=3), st.randoms())
def test_key_ignores_models_used_order(used: list[dict[str, Any]], rng: random.Random) -> None:
    reordered = list(used)
    rng.shuffle(reordered)
    assert _key(reordered) == _key(used)


@settings(max_examples=200)
@given(
    st.lists(entries, min_size=1, max_size=2),
    st.sampled_from(
        [*KEY_FIELDS, "component", "producer_version", "schema_version", "models_used"]
    ),
    st.data(),
)
def test_key_changes_when_any_single_field_changes(
    used: list[dict[str, Any]], field: str, data: st.DataObject
) -> None:
    base = _key(used)
    if field == "models_used":
        changed = [dict(used[0], model_version=used[0]["model_version"] + "+1"), *used[1:]]
        assert _key(changed) != base
        return
    strategy = KEY_FIELDS.get(field, st.text(min_size=1, max_size=8).filter(str.strip))
    current = {
        **RUN_CONTEXT,
        "component": "text_ocr",
        "producer_version": "1.0.0",
        "schema_version": "3",
    }[field]
    value = data.draw(strategy.filter(lambda v: v != current))
    assert _key(used, **{field: value}) != base


def test_golden_signature_and_key() -> None:
    """Pins the format: if this fails, the rule changed; that is a new sig_v, not an edit here."""
    mapping = parse_mapping(
        {
            "components": {
                "text_ocr": {
                    "detector": onnx_entry(
                        weights_digest="sha256:" + "a" * 64,
                        artifacts={"onnx_path": "d.onnx", "preprocess_id": "det-norm@1"},
                    ),
                    "recognizer": triton_entry(
                        model_name="text-recognizer", weights_digest="sha256:" + "b" * 64
                    ),
                }
            }
        }
    )
    used = models_used(mapping.components["text_ocr"].values())
    assert [u.role for u in used] == ["detector", "recognizer"]
    # The exact bytes hashed: entries sorted by their own canonical JSON, keys sorted,
    # device as its kind (D2), nulls kept (D1).
    material = (
        b'{"kind":"model_signature","models_used":['
        b'{"device":"cpu","engine":"onnx","model_name":"text-detector","model_version":"2.1.0",'
        b'"precision":"fp32","preprocess_preset":null,"preprocessing_version":"det-norm@1",'
        b'"role":"detector","runtime":"inprocess","weights_digest":"sha256:' + b"a" * 64 + b'"},'
        b'{"device":"cuda","engine":"onnx","model_name":"text-recognizer","model_version":"3",'
        b'"precision":"fp16","preprocess_preset":"scene-224@1","preprocessing_version":null,'
        b'"role":"recognizer","runtime":"triton","weights_digest":"sha256:' + b"b" * 64 + b'"}'
        b'],"sig_v":1}'
    )
    assert model_signature(used) == "sha256:" + hashlib.sha256(material).hexdigest()
    assert (
        model_signature(used)
        == "sha256:144f72f9badeaee86b24c997cd8a3cdf1cfff87c2db6411ec07e241f805b8142"
    )
    key = cache_key(
        RunContext(**RUN_CONTEXT, input_digest="sha256:" + "d" * 64),
        component="text_ocr",
        producer_version="1.0.0",
        schema_version="3",
        used=used,
    )
    # Key format 2 (issue 13): "key_v" and the input video's digest; format 1 had
    # "sig_v":1 and no input_digest, and its keys are never hit again.
    key_material = (
        b'{"component":"text_ocr","config_hash":"cfg-abc",'
        b'"input_digest":"sha256:' + b"d" * 64 + b'","key_v":2,"kind":"cache_key",'
        b'"model_signature":"sha256:144f72f9badeaee86b24c997cd8a3cdf1cfff87c2db6411ec07e241f805b8142",'
        b'"platform_id":"youtube","producer_version":"1.0.0","sampling_policy_version":"2",'
        b'"schema_version":"3","video_id":"vid-001"}'
    )
    assert key.key == "sha256:" + hashlib.sha256(key_material).hexdigest()
    assert key.key == "sha256:4f6b1dae44fc6031788222c27e775d3192b1395f01799296736efe7387408368"
    assert key.material["key_v"] == 2
    assert key.material["kind"] == "cache_key"
    # Without an input video (an API caller's arrays), input_digest is null, still hashed.
    bare = cache_key(
        RunContext(**RUN_CONTEXT),
        component="text_ocr",
        producer_version="1.0.0",
        schema_version="3",
        used=used,
    )
    assert bare.material["input_digest"] is None
    assert bare.key == "sha256:ef68c945d4d46e7988788f42d92052e7c8e817f5261283719d506e6d49ba9c9c"


def test_empty_models_used_has_a_signature_distinct_from_any_model() -> None:
    assert model_signature([]).startswith("sha256:")
    one = models_used(
        parse_mapping({"components": {"c": {"r": onnx_entry()}}}).components["c"].values()
    )
    assert model_signature([]) != model_signature(one)


def _sig(**overrides: Any) -> str:
    mapping = parse_mapping({"components": {"c": {"r": onnx_entry(**overrides)}}})
    return model_signature(models_used(mapping.components["c"].values()))


def test_engine_precision_runtime_device_kind_change_the_signature() -> None:
    """R-SPEC-6, R-SIG-2, D2: engine/precision/device kind count; the GPU index does not."""
    base = _sig()
    assert _sig(engine="tensorrt", device_policy="cuda:0") != _sig(device_policy="cuda:0")
    assert _sig(precision="fp16") != base
    assert _sig(device_policy="cuda", device="cuda:0") != base
    assert _sig(device_policy="cuda", device="cuda:0") == _sig(
        device_policy="cuda", device="cuda:1"
    )
    assert _sig(artifacts={"onnx_path": "x.onnx", "preprocess_id": "norm@2"}) != base
    # The artifact's location is not identity: the digest is.
    assert _sig(artifacts={"onnx_path": "elsewhere/model.onnx"}) == base


def test_roles_that_swap_models_change_the_signature() -> None:
    a, b = onnx_entry(model_name="m-a"), onnx_entry(model_name="m-b")
    first = parse_mapping({"components": {"c": {"det": a, "rec": b}}})
    swapped = parse_mapping({"components": {"c": {"det": b, "rec": a}}})
    assert model_signature(models_used(first.components["c"].values())) != model_signature(
        models_used(swapped.components["c"].values())
    )


def _key_doc(**overrides: Any) -> dict[str, Any]:
    mapping = parse_mapping(
        {"components": {"c": {"det": onnx_entry(**overrides), "rec": onnx_entry(model_name="rec")}}}
    )
    ctx = RunContext(**RUN_CONTEXT)
    return cache_key(
        ctx, component="c", producer_version="1.0.0", schema_version="3",
        used=models_used(mapping.components["c"].values()),
    ).to_json_dict()  # fmt: skip


def test_diff_names_exactly_the_model_field_that_changed() -> None:
    a, b = _key_doc(), _key_doc(model_version="2.2.0")
    fields = [d.field for d in diff_documents(a, b)]
    assert fields == ["cache_key", "model_signature", "models_used[det].model_version"]


def test_diff_of_run_fields_and_identical_keys() -> None:
    a = _key_doc()
    b = {**a, "material": {**a["material"], "config_hash": "cfg-other"}}
    assert [d.field for d in diff_documents(a, b)] == ["config_hash"]
    assert diff_documents(a, a) == []


def test_diff_reports_added_and_removed_roles() -> None:
    a = _key_doc()
    b = {**a, "models_used": [u for u in a["models_used"] if u["role"] == "det"]}
    (only,) = diff_documents(a, b)
    assert (only.field, only.change, only.b) == ("models_used[rec]", "removed", None)
    assert "(absent)" in str(only)
