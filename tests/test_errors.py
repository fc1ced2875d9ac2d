"""R-FAIL-2, D6: stable codes, one root, transient flags, exit codes, hints."""

from __future__ import annotations

import modelmanager
from modelmanager.errors import ERROR_CLASSES, ModelManagerError, hint_for

# The SPEC's codes, and those this project added (documented in README). Renaming one
# breaks every manifest and dashboard that reads error_code: never edit, only add.
STABLE_CODES = {
    "model_mapping_missing",
    "model_artifact_missing",
    "weights_digest_mismatch",
    "triton_unavailable",
    "triton_model_not_found",
    "triton_infer_failed",
    "onnxruntime_missing",
    "invalid_model_spec",
    "model_load_failed",
    "insufficient_gpu_memory",
    "profile_load_failed",
    "configuration_invalid",
    "invalid_run_context",
    "tritonclient_missing",
    "torch_missing",
    "device_unavailable",
    "model_infer_failed",
    "artifact_invalid",
    "lease_wait_timeout",
    "database_error",
    "component_failed",
    "run_not_found",
    "network_access_blocked",
    "lint_path_missing",
    "artifact_root_missing",
    "deletion_blocked",
    "canonical_json_invalid",
    "storage_unavailable",
    "run_interrupted",
    "lease_lost",
    "artifact_path_unsafe",
    "video_deleted",
    "internal_error",
    "video_invalid",
    "video_decoder_missing",
    "input_missing",
}
BAD_INPUT = {
    "invalid_model_spec",
    "profile_load_failed",
    "configuration_invalid",
    "invalid_run_context",
    "model_mapping_missing",
    "run_not_found",
    "lint_path_missing",
    "artifact_root_missing",
    "canonical_json_invalid",
    "video_invalid",
}


def test_codes_are_stable_and_complete() -> None:
    assert set(ERROR_CLASSES) == STABLE_CODES


def test_every_error_has_one_root_a_hint_and_an_exit_code() -> None:
    for code, cls in ERROR_CLASSES.items():
        err = cls("something failed", component="c", path=None)
        assert isinstance(err, ModelManagerError)
        assert err.code == code
        assert err.fields == {"component": "c"}
        assert str(err) == f"[{code}] something failed"
        assert hint_for(err)
        assert err.exit_code == (2 if code in BAD_INPUT else 1)
        assert err.to_dict()["error_code"] == code


def test_only_waiting_for_a_lease_is_transient_by_default() -> None:
    # ... or losing one (issue 12): the worker that took the key over publishes it.
    assert [c for c, cls in ERROR_CLASSES.items() if cls("x").transient] == [
        "lease_wait_timeout",
        "lease_lost",
    ]
    assert modelmanager.TritonInferFailed("503 from server", transient=True).transient


def test_not_found_is_a_file_not_found_error() -> None:
    err = modelmanager.ModelArtifactMissing("gone", path="/m/x.onnx")
    assert isinstance(err, FileNotFoundError)
    assert str(err) == "[model_artifact_missing] gone"
    assert err.fields == {"path": "/m/x.onnx"}
