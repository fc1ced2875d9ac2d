"""R-ART-2, R-MAP-3, R-FAIL-4, R-SIG-5: manifest.json, its schema and its golden file.

Golden files: ``tests/store/golden/manifest.json`` and the committed schema
``src/modelmanager/store/schemas/manifest.schema.json`` are compared byte for byte.
When a change of the manifest format is deliberate, regenerate both with

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/store/test_manifest.py

then read the diff in git: every changed line is a change of the on-disk
contract (bump ``manifest_version`` if old readers would misread it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from modelmanager.errors import ArtifactInvalid
from modelmanager.mapping.signature import cache_key, diff_documents, model_signature, models_used
from modelmanager.mapping.spec import ModelUsed, ResolvedMapping, RunContext, parse_mapping
from modelmanager.store.artifacts import ArtifactRecord
from modelmanager.store.atomic import is_temp_name
from modelmanager.store.layout import artifact_relpath, manifest_relpath
from modelmanager.store.manifest import (
    MANIFEST_SCHEMA_PATH,
    ComponentEntry,
    Manifest,
    RunSection,
    manifest_json_schema,
    read_manifest,
    render_json,
    write_manifest,
)

GOLDEN = Path(__file__).parent / "golden" / "manifest.json"

# Written out here, not taken from conftest, so that the golden file changes
# only when the manifest format does.
CONTEXT = RunContext(
    platform_id="youtube",
    video_id="vid-001",
    run_id="run-20250102-0001",
    config_hash="cfg-abc",
    sampling_policy_version="2",
    dataprocessor_version="0.9.0",
    user_id="user-7",
    input_digest="sha256:" + "e" * 64,
)
MAPPING: dict[str, Any] = {
    "profile": "default",
    "components": {
        "text_ocr": {
            "detector": {
                "model_name": "text-detector",
                "model_version": "2.1.0",
                "weights_digest": "sha256:" + "0" * 64,
                "runtime": "inprocess",
                "engine": "onnx",
                "precision": "fp32",
                "device_policy": "cpu",
                "artifacts": {
                    "onnx_path": "text-detector/2.1.0/model.onnx",
                    "preprocess_id": "ocr-det@1",
                },
            },
        },
        "scene_score": {
            "scorer": {
                "model_name": "scene-scorer",
                "model_version": "3",
                "weights_digest": "sha256:" + "1" * 64,
                "runtime": "triton",
                "engine": "onnx",
                "precision": "fp16",
                "device_policy": "cuda",
                "device": "cuda:1",
                "triton": {
                    "grpc_url": "127.0.0.1:8001",
                    "model_name": "scene_scorer",
                    "model_version": 3,
                    "preprocess_preset": "scene-224@1",
                    "inputs": [{"name": "pixels", "dtype": "FP32", "shape": [-1, 3, 224, 224]}],
                    "outputs": [{"name": "score", "dtype": "FP32", "shape": [-1, 1]}],
                },
            },
        },
    },
}


def _entry(
    mapping: ResolvedMapping,
    component: str,
    *,
    producer_version: str = "1.4.0",
    schema_version: str = "2",
    **fields: Any,
) -> ComponentEntry:
    used = models_used(mapping.components[component].values())
    key = cache_key(
        CONTEXT,
        component=component,
        producer_version=producer_version,
        schema_version=schema_version,
        used=used,
    )
    base: dict[str, Any] = {
        "component": component,
        "status": "ok",
        "started_at": "2025-01-02T03:04:05.000000Z",
        "finished_at": "2025-01-02T03:04:06.500000Z",
        "duration_ms": 1500.0,
        "producer_version": producer_version,
        "schema_version": schema_version,
        "device_used": "cpu",
        "batch_size": 8,
        "models_used": tuple(used),
        "model_signature": model_signature(used),
        "cache_key": key.key,
        "cache_key_material": key.to_json_dict(),
        "cache_hit": False,
        "artifact": None,
        "error": None,
        "error_code": None,
    }
    base.update(fields)
    return ComponentEntry(**base)


def build_manifest(**entry_overrides: Any) -> Manifest:
    """The fixed manifest of the golden file: text_ocr ok with an artifact, scene_score failed."""
    mapping = parse_mapping(MAPPING, source="payload")
    ocr = _entry(
        mapping,
        "text_ocr",
        artifact=ArtifactRecord(
            relpath=artifact_relpath("youtube", "vid-001", "text_ocr", "run-20250102-0001"),
            size=123456,
            sha256="sha256:" + "ab" * 32,
        ),
        warnings=("2 frames had no text",),
        **entry_overrides,
    )
    scene = _entry(
        mapping,
        "scene_score",
        status="failed",
        started_at="2025-01-02T03:04:06.500000Z",
        finished_at="2025-01-02T03:04:06.750000Z",
        duration_ms=250.0,
        device_used="cuda:1",
        batch_size=None,
        error="Triton at 127.0.0.1:8001 does not answer",
        error_code="triton_unavailable",
        error_fields={"url": "127.0.0.1:8001", "component": "scene_score", "role": "scorer"},
    )
    run = RunSection.from_context(
        CONTEXT,
        resolved_model_mapping=mapping,
        mapping_source="payload",
        status="failed",
        started_at="2025-01-02T03:04:05.000000Z",
        finished_at="2025-01-02T03:04:06.750000Z",
    )
    return Manifest(run=run, components=(ocr, scene))


def _compare_golden(golden: Path, actual: bytes) -> None:
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(actual)
    assert golden.read_bytes() == actual, (
        f"{golden} differs from what the code writes now; if the change is deliberate, "
        "regenerate with UPDATE_GOLDEN=1 (see this module's docstring)"
    )


def _write(tmp_path: Path, manifest: Manifest) -> Path:
    return write_manifest(
        tmp_path, manifest_relpath("youtube", "vid-001", "run-20250102-0001"), manifest
    )


# --- golden file and schema -----------------------------------------------------


def test_written_manifest_matches_golden_file_byte_for_byte(tmp_path: Path) -> None:
    path = _write(tmp_path, build_manifest())
    assert path == tmp_path / "youtube/vid-001/runs/run-20250102-0001/manifest.json"
    _compare_golden(GOLDEN, path.read_bytes())


def test_manifest_text_is_pretty_sorted_json_with_final_newline(tmp_path: Path) -> None:
    text = _write(tmp_path, build_manifest()).read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_committed_schema_file_equals_the_generated_schema() -> None:
    _compare_golden(MANIFEST_SCHEMA_PATH, render_json(manifest_json_schema()).encode("utf-8"))


def test_written_manifest_validates_against_committed_schema(tmp_path: Path) -> None:
    schema = json.loads(MANIFEST_SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    document = json.loads(_write(tmp_path, build_manifest()).read_text(encoding="utf-8"))
    validator.validate(document)

    extra = json.loads(json.dumps(document))
    extra["components"][0]["surprise"] = 1
    assert not validator.is_valid(extra)
    no_mapping = json.loads(json.dumps(document))
    del no_mapping["run"]["resolved_model_mapping"]
    assert not validator.is_valid(no_mapping)
    bad_digest = json.loads(json.dumps(document))
    bad_digest["components"][0]["artifact"]["sha256"] = "md5:0"
    assert not validator.is_valid(bad_digest)


# --- round trip: typed objects, R-MAP-3, R-SIG-5 ------------------------------------


def test_read_back_is_typed_and_equal(tmp_path: Path) -> None:
    manifest = build_manifest()
    loaded = read_manifest(_write(tmp_path, manifest))
    assert loaded == manifest
    assert isinstance(loaded.run.resolved_model_mapping, ResolvedMapping)
    ocr = loaded.component("text_ocr")
    assert ocr is not None
    assert isinstance(ocr.artifact, ArtifactRecord)
    assert all(isinstance(u, ModelUsed) for u in ocr.models_used)
    assert loaded.component("nope") is None
    assert loaded.run.run_context == CONTEXT


def test_resolved_mapping_read_back_reproduces_every_signature(tmp_path: Path) -> None:
    """R-MAP-3: reproducing a run needs the manifest only, not the current profile."""
    loaded = read_manifest(_write(tmp_path, build_manifest()))
    mapping = loaded.run.resolved_model_mapping
    assert [e.component for e in loaded.components] == ["text_ocr", "scene_score"]
    for entry in loaded.components:
        used = models_used(mapping.components[entry.component].values())
        assert tuple(used) == entry.models_used
        assert model_signature(used) == entry.model_signature
        key = cache_key(
            loaded.run.run_context,
            component=entry.component,
            producer_version=entry.producer_version,
            schema_version=entry.schema_version,
            used=used,
        )
        assert key.key == entry.cache_key
        assert key.to_json_dict() == entry.cache_key_material


def test_failed_component_records_error_code_and_details(tmp_path: Path) -> None:
    """R-FAIL-4."""
    scene = read_manifest(_write(tmp_path, build_manifest())).component("scene_score")
    assert scene is not None
    assert scene.status == "failed"
    assert scene.error_code == "triton_unavailable"
    assert scene.error_fields["url"] == "127.0.0.1:8001"
    assert scene.artifact is None


def test_cache_key_materials_of_two_runs_say_which_field_differed(tmp_path: Path) -> None:
    """R-SIG-5: `explain` diffs the recorded key materials of two manifests."""
    a = read_manifest(_write(tmp_path / "a", build_manifest()))
    b = read_manifest(_write(tmp_path / "b", build_manifest(producer_version="1.5.0")))
    entry_a, entry_b = a.component("text_ocr"), b.component("text_ocr")
    assert entry_a is not None
    assert entry_b is not None
    fields = {
        d.field for d in diff_documents(entry_a.cache_key_material, entry_b.cache_key_material)
    }
    assert fields == {"cache_key", "producer_version"}


# --- validation rules -------------------------------------------------------------


def _mapping() -> ResolvedMapping:
    return parse_mapping(MAPPING)


def test_failed_entry_needs_an_error_code() -> None:
    with pytest.raises(ValidationError, match="error_code"):
        _entry(_mapping(), "text_ocr", status="failed", error="boom")


def test_ok_entry_has_no_error_and_has_its_key() -> None:
    with pytest.raises(ValidationError, match="has no error"):
        _entry(_mapping(), "text_ocr", error_code="model_load_failed")
    with pytest.raises(ValidationError, match="cache_key"):
        _entry(_mapping(), "text_ocr", cache_key="", cache_key_material={})


def test_status_cached_is_exactly_a_cache_hit() -> None:
    _entry(_mapping(), "text_ocr", status="cached", cache_hit=True)
    with pytest.raises(ValidationError, match="cache_hit"):
        _entry(_mapping(), "text_ocr", status="cached", cache_hit=False)
    with pytest.raises(ValidationError, match="cache_hit"):
        _entry(_mapping(), "text_ocr", status="ok", cache_hit=True)


def test_failed_entry_before_resolution_may_lack_signature_and_key() -> None:
    entry = _entry(
        _mapping(),
        "text_ocr",
        status="failed",
        models_used=(),
        model_signature="",
        cache_key="",
        cache_key_material={},
        error="no mapping for text_ocr/detector",
        error_code="model_mapping_missing",
    )
    assert entry.cache_key == ""
    with pytest.raises(ValidationError, match="cache_key_material"):
        _entry(_mapping(), "text_ocr", status="failed", error_code="x", cache_key_material={})


def test_cache_key_must_match_its_material() -> None:
    with pytest.raises(ValidationError, match="cache_key_material"):
        _entry(_mapping(), "text_ocr", cache_key="sha256:" + "f" * 64)


@pytest.mark.parametrize(
    "stamp", ["2025-01-02T03:04:05", "2025-01-02T03:04:05+02:00", "yesterday", ""]
)
def test_timestamps_are_iso_utc(stamp: str) -> None:
    with pytest.raises(ValidationError, match="started_at"):
        _entry(_mapping(), "text_ocr", started_at=stamp)


def test_run_finished_at_is_null_exactly_while_running() -> None:
    run = build_manifest().run
    data = run.model_dump()
    RunSection(**{**data, "status": "running", "finished_at": None})
    with pytest.raises(ValidationError, match="finished_at"):
        RunSection(**{**data, "status": "running"})
    with pytest.raises(ValidationError, match="finished_at"):
        RunSection(**{**data, "status": "ok", "finished_at": None})


def test_component_names_are_unique() -> None:
    manifest = build_manifest()
    with pytest.raises(ValidationError, match="twice"):
        Manifest(run=manifest.run, components=(*manifest.components, manifest.components[0]))


def test_records_are_frozen_and_refuse_unknown_fields() -> None:
    manifest = build_manifest()
    with pytest.raises(ValidationError):
        manifest.run.status = "ok"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        Manifest.model_validate({**manifest.model_dump(), "surprise": 1})


# --- reading and writing -------------------------------------------------------------


def test_read_manifest_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ArtifactInvalid) as info:
        read_manifest(tmp_path / "manifest.json")
    assert info.value.fields["problem"] == "missing"
    assert info.value.fields["path"] == str(tmp_path / "manifest.json")


def test_read_manifest_not_json(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_bytes(b"\xff{not json")
    with pytest.raises(ArtifactInvalid) as info:
        read_manifest(path)
    assert info.value.fields["problem"] == "unreadable"


def test_read_manifest_invalid_names_path_and_first_error(tmp_path: Path) -> None:
    path = _write(tmp_path, build_manifest())
    document = json.loads(path.read_text(encoding="utf-8"))
    document["components"][1]["error_code"] = None
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ArtifactInvalid) as info:
        read_manifest(path)
    error = info.value
    assert error.code == "artifact_invalid"
    assert error.fields["problem"] == "format"
    assert error.fields["path"] == str(path)
    assert error.fields["field"] == "components.1"
    assert "error_code" in error.fields["reason"]
    assert str(path) in str(error)


def test_read_manifest_of_another_version(tmp_path: Path) -> None:
    path = _write(tmp_path, build_manifest())
    document = json.loads(path.read_text(encoding="utf-8"))
    document["manifest_version"] = 3
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ArtifactInvalid) as info:
        read_manifest(path)
    assert info.value.fields["field"] == "manifest_version"


def test_a_version_1_manifest_still_reads_without_an_input_digest(tmp_path: Path) -> None:
    """Issue 13: version 2 added run.input_digest; a manifest written before still reads."""
    path = _write(tmp_path, build_manifest())
    document = json.loads(path.read_text(encoding="utf-8"))
    assert (document["manifest_version"], document["run"]["input_digest"]) == (
        2,
        "sha256:" + "e" * 64,
    )
    document["manifest_version"] = 1
    del document["run"]["input_digest"]
    path.write_text(json.dumps(document), encoding="utf-8")
    manifest = read_manifest(path)
    assert manifest.manifest_version == 1
    assert manifest.run.input_digest is None
    assert manifest.run.run_context.input_digest is None


def test_rewriting_a_manifest_replaces_it_and_leaves_no_temp_file(tmp_path: Path) -> None:
    manifest = build_manifest()
    running = manifest.model_copy(
        update={
            "run": manifest.run.model_copy(update={"status": "running", "finished_at": None}),
            "components": (),
        }
    )
    path = _write(tmp_path, running)
    assert read_manifest(path).run.status == "running"
    _write(tmp_path, manifest)
    assert read_manifest(path) == manifest
    assert os.listdir(path.parent) == ["manifest.json"]
    assert not any(is_temp_name(n) for n in os.listdir(path.parent))


@pytest.mark.parametrize("relpath", ["../manifest.json", "/abs/manifest.json", "a/./b", ""])
def test_write_manifest_refuses_paths_outside_root(tmp_path: Path, relpath: str) -> None:
    with pytest.raises(ValueError, match="relative"):
        write_manifest(tmp_path, relpath, build_manifest())
