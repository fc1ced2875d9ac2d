"""R-RT-1, R-DIG-2/3, R-FAIL-2: the ModelManager facade."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

import modelmanager.weights.digest as digest_mod
from modelmanager import (
    ConfigurationInvalid,
    InvalidModelSpec,
    InvalidRunContext,
    ModelArtifactMissing,
    ModelManager,
    ModelMappingMissing,
    StorageUnavailable,
    WeightsDigestMismatch,
)
from modelmanager.config import Settings
from modelmanager.weights.digest import DigestCache, Digester, hash_file

from .conftest import RUN_CONTEXT, onnx_entry
from .weights.onnx_models import flip_one_byte, save_with_external_data


@pytest.fixture
def mm(ocr_mapping: dict[str, Any], models_root: Path) -> ModelManager:
    return ModelManager(RUN_CONTEXT, ocr_mapping, models_root=models_root)


def test_resolve_returns_the_verified_spec(mm: ModelManager, models_root: Path) -> None:
    spec = mm.resolve("text_ocr", "detector")
    assert (spec.component_name, spec.role, spec.model_name) == (
        "text_ocr",
        "detector",
        "text-detector",
    )
    assert mm.artifact_path(spec) == models_root / "text-detector/2.1.0/model.onnx"


def test_resolve_verifies_once_per_manager(
    mm: ModelManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = mm.digester.digest_many

    def counting(paths: Any, **kw: Any) -> Any:
        calls.extend(map(str, paths))
        return real(paths, **kw)

    monkeypatch.setattr(mm.digester, "digest_many", counting)
    mm.resolve("text_ocr", "detector")
    mm.resolve("text_ocr", "detector")
    assert len(calls) == 1


def test_triton_entries_are_not_verified(mm: ModelManager, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(digest_mod.Digester, "digest_many", lambda *a, **k: pytest.fail("hashed"))
    assert mm.resolve("scene_score", "scorer").runtime == "triton"
    with pytest.raises(ModelMappingMissing, match="runs on Triton"):
        mm.artifact_path(mm.resolve("scene_score", "scorer"))


@pytest.mark.parametrize(("component", "role"), [("nope", "detector"), ("text_ocr", "nope")])
def test_unknown_component_or_role(mm: ModelManager, component: str, role: str) -> None:
    with pytest.raises(ModelMappingMissing) as info:
        mm.resolve(component, role)
    assert info.value.fields["component"] == component
    assert "text_ocr" in info.value.message or "detector" in info.value.message


def test_unknown_component_for_signature(mm: ModelManager) -> None:
    with pytest.raises(ModelMappingMissing):
        mm.model_signature_for("nope")


def test_missing_local_file(mm: ModelManager, models_root: Path) -> None:
    (models_root / "text-detector/2.1.0/model.onnx").unlink()
    with pytest.raises(ModelArtifactMissing) as info:
        mm.resolve("text_ocr", "detector")
    assert info.value.fields["component"] == "text_ocr"
    assert info.value.fields["role"] == "detector"
    assert "nothing is downloaded" in info.value.message


def test_changed_weights_fail_with_both_digests(mm: ModelManager, models_root: Path) -> None:
    path = models_root / "text-detector/2.1.0/model.onnx"
    path.write_bytes(b"other weights")
    with pytest.raises(WeightsDigestMismatch) as info:
        mm.resolve("text_ocr", "detector")
    fields = info.value.fields
    assert fields["actual"] == hash_file(path)
    assert fields["expected"] == mm.mapping.spec("text_ocr", "detector").weights_digest  # type: ignore[union-attr]
    assert (fields["component"], fields["role"], fields["path"]) == (
        "text_ocr",
        "detector",
        str(path),
    )


def test_symlink_out_of_models_root_is_refused(
    mm: ModelManager, models_root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.onnx"
    target = models_root / "text-detector/2.1.0/model.onnx"
    outside.write_bytes(target.read_bytes())
    target.unlink()
    target.symlink_to(outside)
    with pytest.raises(InvalidModelSpec) as info:
        mm.resolve("text_ocr", "detector")
    assert info.value.fields["field"] == "artifacts.onnx_path"
    assert "outside models_root" in info.value.message


def test_symlink_inside_models_root_is_fine(mm: ModelManager, models_root: Path) -> None:
    target = models_root / "text-detector/2.1.0/model.onnx"
    real = models_root / "store" / "det.onnx"
    real.parent.mkdir()
    target.rename(real)
    target.symlink_to(real)
    assert mm.resolve("text_ocr", "detector").role == "detector"


def test_models_root_from_settings(
    ocr_mapping: dict[str, Any], models_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigurationInvalid, match="MODELMANAGER_MODELS_ROOT"):
        ModelManager(RUN_CONTEXT, ocr_mapping).resolve("text_ocr", "detector")
    monkeypatch.setenv("MODELMANAGER_MODELS_ROOT", str(models_root))
    assert ModelManager(RUN_CONTEXT, ocr_mapping).resolve("text_ocr", "detector")


def test_default_digest_cache_lives_in_the_cache_dir(
    ocr_mapping: dict[str, Any], models_root: Path
) -> None:
    ModelManager(None, ocr_mapping, models_root=models_root).resolve("text_ocr", "detector")
    cache_files = list(
        (Path(os.environ["XDG_CACHE_HOME"]) / "modelmanager").glob("digests-*.sqlite3")
    )
    assert len(cache_files) == 1


def test_verify_all_checks_every_local_artifact(mm: ModelManager) -> None:
    verified = mm.verify_all()
    assert [(s.component_name, s.role) for s, _ in verified] == [
        ("text_ocr", "detector"),
        ("text_ocr", "recognizer"),
    ]


def test_models_used_and_signature(mm: ModelManager) -> None:
    used = mm.models_used_for("text_ocr")
    assert [u.role for u in used] == ["detector", "recognizer"]
    assert mm.models_used_for("scene_stats") == []
    assert mm.model_signature_for("text_ocr") != mm.model_signature_for("scene_stats")


def test_cache_key_for(mm: ModelManager) -> None:
    key = mm.cache_key_for("text_ocr", producer_version="1.0.0", schema_version="3")
    assert key.material["model_signature"] == mm.model_signature_for("text_ocr")
    assert key.material["video_id"] == "vid-001"
    assert key.key != mm.cache_key_for("text_ocr", producer_version="1.0.1", schema_version="3").key


def test_cache_key_needs_run_context(ocr_mapping: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationInvalid, match="run context"):
        ModelManager(None, ocr_mapping).cache_key_for(
            "text_ocr", producer_version="1", schema_version="1"
        )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"video_id": None}, "video_id"),
        ({"sampling_policy_version": 1.5}, "sampling_policy_version"),
    ],
)
def test_invalid_run_context(
    ocr_mapping: dict[str, Any], change: dict[str, Any], field: str
) -> None:
    ctx = {k: v for k, v in {**RUN_CONTEXT, **change}.items() if v is not None}
    with pytest.raises(InvalidRunContext) as info:
        ModelManager(ctx, ocr_mapping)
    assert info.value.fields["field"] == field


def test_injected_digester_is_used(
    ocr_mapping: dict[str, Any], models_root: Path, tmp_path: Path
) -> None:
    with DigestCache(tmp_path / "d.sqlite3") as cache:
        digester = Digester(cache)
        mm = ModelManager(RUN_CONTEXT, ocr_mapping, models_root=models_root, digester=digester)
        mm.resolve("text_ocr", "detector")
        again = ModelManager(RUN_CONTEXT, ocr_mapping, models_root=models_root, digester=digester)
        assert again.verify_all()[0][1].cached


def test_verify_all_for_some_components(mm: ModelManager, models_root: Path) -> None:
    (models_root / "text-detector/2.1.0/model.onnx").unlink()
    assert mm.verify_all(["scene_score"]) == []  # the broken text_ocr is not touched
    with pytest.raises(ModelMappingMissing):
        mm.verify_all(["nope"])
    with pytest.raises(ModelArtifactMissing):
        mm.verify_all(["text_ocr"])


def test_directory_model_error_names_its_component(tmp_path: Path) -> None:
    root = tmp_path / "models"
    (root / "repo").mkdir(parents=True)
    (root / "repo" / "w.bin").write_bytes(b"w")
    (root / "repo" / "link").symlink_to(root / "repo" / "w.bin")
    entry = {
        "model_name": "r",
        "model_version": "1",
        "weights_digest": "sha256:" + "0" * 64,
        "runtime": "inprocess",
        "engine": "torch",
        "precision": "fp32",
        "device_policy": "cpu",
        "artifacts": {"weights_path": "repo"},
    }
    mapping = {
        "components": {
            "a": {"x": {**entry, "artifacts": {"weights_path": "ok"}}},
            "b": {"y": entry},
        }
    }
    (root / "ok").write_bytes(b"fine")
    with pytest.raises(InvalidModelSpec) as info:
        ModelManager(None, mapping, models_root=root).verify_all()
    assert (info.value.fields["component"], info.value.fields["role"]) == ("b", "y")
    assert info.value.fields["field"] == "artifacts.weights_path"


def test_realpath_agrees_with_the_portable_one(tmp_path: Path) -> None:
    from modelmanager.weights.locate import real_path

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "a")
    for path in [tmp_path / "link" / "b" / "f", tmp_path / "link", tmp_path / "missing" / "f"]:
        assert real_path(path) == os.path.realpath(path)


def test_real_path_and_stat_agree_with_the_portable_ones(tmp_path: Path) -> None:
    from modelmanager.weights.locate import real_path_and_stat

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "a")
    found = real_path_and_stat(str(tmp_path / "link" / "f"))
    assert found is not None
    real, st = found
    assert real == os.path.realpath(tmp_path / "link" / "f")
    assert (st.st_ino, st.st_size) == (os.stat(real).st_ino, 1)
    assert real_path_and_stat(str(tmp_path / "missing")) is None


@pytest.fixture
def cached_manager(ocr_mapping: dict[str, Any], models_root: Path, tmp_path: Path) -> Any:
    """A maker of fresh managers sharing one digest cache that already holds the weights."""
    with DigestCache(tmp_path / "shared.sqlite3") as cache:
        digester = Digester(cache)

        def make() -> ModelManager:
            return ModelManager(
                RUN_CONTEXT, ocr_mapping, models_root=models_root, digester=digester
            )

        make().verify_all()
        yield make


def test_a_new_manager_resolves_unchanged_weights_without_hashing(cached_manager: Any) -> None:
    mm = cached_manager()
    before = digest_mod.hashing_totals()
    for role in ("detector", "recognizer"):
        mm.resolve("text_ocr", role)
    assert digest_mod.hashing_totals() - before == digest_mod.HashTotals(0, 0)
    assert all(digest.cached for _, digest in mm.verify_all())


def test_cached_weights_that_changed_since_still_fail(
    cached_manager: Any, models_root: Path
) -> None:
    path = models_root / "text-detector/2.1.0/model.onnx"
    path.write_bytes(b"other weights!!!")  # same size as before: the stat still differs
    with pytest.raises(WeightsDigestMismatch) as info:
        cached_manager().resolve("text_ocr", "detector")
    assert info.value.fields["actual"] == hash_file(path)


def test_cached_weights_behind_a_symlink_out_of_root_are_refused(
    cached_manager: Any, models_root: Path, tmp_path: Path
) -> None:
    target = models_root / "text-detector/2.1.0/model.onnx"
    outside = tmp_path / "outside.onnx"
    target.rename(outside)
    target.symlink_to(outside)
    mm = cached_manager()
    assert mm.digester.digest(target).digest == hash_file(outside)  # cached under target
    assert mm.digester.digest(target).cached  # so only the location check can refuse it
    with pytest.raises(InvalidModelSpec, match="outside models_root"):
        mm.resolve("text_ocr", "detector")


def test_signatures_and_keys_are_those_of_the_signature_module(mm: ModelManager) -> None:
    from modelmanager.mapping.signature import cache_key, model_signature, models_used

    for component in ("text_ocr", "scene_score", "scene_stats"):
        specs = mm.mapping.components[component].values()
        used = models_used(specs)
        assert mm.models_used_for(component) == used
        assert mm.model_signature_for(component) == model_signature(used)
        key = mm.cache_key_for(component, producer_version="1.0.0", schema_version="3")
        assert mm.run_context is not None
        expected = cache_key(
            mm.run_context,
            component=component,
            producer_version="1.0.0",
            schema_version="3",
            used=used,
        )
        assert key.to_json_dict() == expected.to_json_dict()
        assert key.models_used == [u.model_dump() for u in used]


# --- issue 12 ------------------------------------------------------------------------------


def _one_role_manager(root: Path, artifact: str, digest: str, **kw: Any) -> ModelManager:
    entry = onnx_entry(
        model_name="matmul", weights_digest=digest, artifacts={"onnx_path": artifact}
    )
    return ModelManager(
        RUN_CONTEXT, {"components": {"mm": {"model": entry}}}, models_root=root, **kw
    )


def test_an_onnx_file_model_with_external_data_is_refused(tmp_path: Path) -> None:
    """issue 12: pinned by the .onnx file's digest only, changed external weights went unseen
    ("verified (hashed)"); such a file model is now refused, naming its external files."""
    root = tmp_path / "models"
    model = save_with_external_data(root / "m")
    mm = _one_role_manager(root, "m/model.onnx", hash_file(model))
    with pytest.raises(InvalidModelSpec) as info:
        mm.resolve("mm", "model")
    fields = info.value.fields
    assert (fields["component"], fields["role"], fields["field"]) == (
        "mm",
        "model",
        "artifacts.onnx_path",
    )
    assert "weights.bin" in info.value.message
    assert fields["external_data"] == ["weights.bin"]


def test_an_onnx_path_is_read_as_onnx_whatever_its_name(tmp_path: Path) -> None:
    """issue 12: the rule holds for an ``onnx_path`` not named ``*.onnx`` too."""
    root = tmp_path / "models"
    model = save_with_external_data(root / "m")
    model.rename(root / "m" / "model.bin")
    mm = _one_role_manager(root, "m/model.bin", hash_file(root / "m" / "model.bin"))
    with pytest.raises(InvalidModelSpec, match=r"weights\.bin"):
        mm.resolve("mm", "model")


def test_an_onnx_directory_model_pins_its_external_data(tmp_path: Path) -> None:
    """issue 12: mapped as a directory model, one changed byte of weights.bin is a mismatch."""
    root = tmp_path / "models"
    save_with_external_data(root / "m")
    digest = Digester().digest(root / "m").digest
    assert _one_role_manager(root, "m", digest).resolve("mm", "model").model_name == "matmul"
    flip_one_byte(root / "m" / "weights.bin")
    with pytest.raises(WeightsDigestMismatch):
        _one_role_manager(root, "m", digest).resolve("mm", "model")


def _break(models_root: Path, how: str) -> Path:
    """Make the detector's path fail with a real OS error; returns the path that fails."""
    path = models_root / "text-detector/2.1.0/model.onnx"
    if how == "ENOTDIR":
        shutil.rmtree(models_root / "text-detector")
        (models_root / "text-detector").write_bytes(b"a file, not a directory")
    elif how == "ELOOP":
        path.unlink()
        path.symlink_to(path)
    return path


@pytest.mark.parametrize("how", ["ENOTDIR", "ELOOP"])
def test_os_errors_of_locating_name_component_role_and_path(
    ocr_mapping: dict[str, Any], models_root: Path, how: str
) -> None:
    """issue 12: ENOTDIR, ELOOP escaped resolve/verify_all as bare OSErrors (only
    FileNotFoundError was mapped): they are model_artifact_missing naming the role."""
    path = _break(models_root, how)
    for call in ("resolve", "verify_all"):
        mm = ModelManager(RUN_CONTEXT, ocr_mapping, models_root=models_root)
        with pytest.raises(ModelArtifactMissing) as info:
            mm.resolve("text_ocr", "detector") if call == "resolve" else mm.verify_all()
        fields = info.value.fields
        assert (fields["component"], fields["role"], fields["path"]) == (
            "text_ocr",
            "detector",
            str(path),
        )
    reports = ModelManager(RUN_CONTEXT, ocr_mapping, models_root=models_root).health(["text_ocr"])
    codes = {r.spec.role: r.error_code for r in reports}
    assert codes["detector"] == "model_artifact_missing"  # (the recognizer's bytes are no model)


def test_a_permission_error_while_hashing_is_storage_unavailable(
    ocr_mapping: dict[str, Any], models_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """issue 12: a PermissionError while hashing escaped resolve; it is storage_unavailable
    naming component, role and path (injected where the file is opened: root, which runs
    these tests, may read a file of any mode)."""

    def denied(path: str, **kw: object) -> str:
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(digest_mod, "hash_file", denied)
    mm = ModelManager(RUN_CONTEXT, ocr_mapping, models_root=models_root)
    with pytest.raises(StorageUnavailable) as info:
        mm.resolve("text_ocr", "recognizer")
    fields = info.value.fields
    assert (fields["component"], fields["role"], fields["path"], fields["errno"]) == (
        "text_ocr",
        "recognizer",
        str(models_root / "text-recognizer/2.1.0/model.onnx"),
        "EACCES",
    )


def test_an_unusable_digest_cache_does_not_fail_the_manager(
    ocr_mapping: dict[str, Any],
    models_root: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """issue 12: the digest cache is only a cache: a cache dir that cannot be made is
    bypassed with one warning."""
    (tmp_path / "not-a-dir").write_bytes(b"x")
    settings = Settings(cache_dir=tmp_path / "not-a-dir" / "cache")
    with caplog.at_level("WARNING"):
        mm = ModelManager(RUN_CONTEXT, ocr_mapping, models_root=models_root, settings=settings)
        assert [d.cached for _, d in mm.verify_all()] == [False, False]
        mm.cache_key_for("text_ocr", producer_version="1", schema_version="1")
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 1


def test_a_key_is_given_only_for_weights_that_check_now(
    mm: ModelManager, models_root: Path
) -> None:
    """issue 12 (R-FAIL-1): cache_key_for checks the component's weights each time, so a
    cached run cannot reuse results of weights that changed or went missing, even in a
    manager that verified them before."""
    key = mm.cache_key_for("text_ocr", producer_version="1.0.0", schema_version="3")
    path = models_root / "text-detector/2.1.0/model.onnx"
    original = path.read_bytes()
    flip_one_byte(path)
    with pytest.raises(WeightsDigestMismatch) as info:
        mm.cache_key_for("text_ocr", producer_version="1.0.0", schema_version="3")
    assert (info.value.fields["component"], info.value.fields["role"]) == ("text_ocr", "detector")
    with pytest.raises(WeightsDigestMismatch):
        mm.resolve("text_ocr", "detector")  # no longer trusted either
    path.write_bytes(original)
    assert mm.cache_key_for("text_ocr", producer_version="1.0.0", schema_version="3") == key
    shutil.rmtree(models_root)
    with pytest.raises(ModelArtifactMissing, match="models_root"):
        mm.cache_key_for("text_ocr", producer_version="1.0.0", schema_version="3")
    assert mm.cache_key_for("scene_stats", producer_version="1", schema_version="1").key


def test_checking_unchanged_weights_for_a_key_hashes_nothing(cached_manager: Any) -> None:
    """issue 12: the check behind cache_key_for is a stat and a cache lookup per file."""
    mm = cached_manager()
    before = digest_mod.hashing_totals()
    for _ in range(3):
        mm.verify_component("text_ocr")
        mm.cache_key_for("text_ocr", producer_version="1.0.0", schema_version="3")
    assert digest_mod.hashing_totals() - before == digest_mod.HashTotals(0, 0)


def test_a_manager_for_another_run_shares_the_open_runtimes(
    ocr_mapping: dict[str, Any], models_root: Path
) -> None:
    """Issue 13: runs over many videos open each model once; each run's keys are its own."""
    from modelmanager.runtimes.mock import MockRuntime

    opened: list[str] = []

    def factory(spec: Any, path: Any) -> Any:
        opened.append(spec.role)
        return MockRuntime.factory(lambda spec, inputs: {})(spec, path)

    first = ModelManager(RUN_CONTEXT, ocr_mapping, models_root=models_root, runtime_factory=factory)
    second = first.for_run({**RUN_CONTEXT, "video_id": "vid-002", "run_id": "run-2"})
    handle = first.get_runtime(first.resolve("text_ocr", "detector"))
    assert second.get_runtime(second.resolve("text_ocr", "detector")) is handle
    assert opened == ["detector"]
    key = {"producer_version": "1", "schema_version": "1"}
    assert first.cache_key_for("text_ocr", **key) != second.cache_key_for("text_ocr", **key)
    second.close()  # closes nothing of the first
    assert first.get_runtime(first.resolve("text_ocr", "detector")) is handle
    first.close()
    assert opened == ["detector"]
