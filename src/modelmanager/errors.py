"""Errors of the model system: one root, stable string codes.

Every failure the manager reports is a :class:`ModelManagerError` whose class
carries a stable ``code`` (the ``error_code`` written into manifests, R-FAIL-2),
whether it is ``transient`` (the only ones a caller may retry, R-FAIL-3), and
whether it is the caller's bad input (CLI exit 2) or a failed operation
(CLI exit 1). Structured fields (component, role, field, path, expected and
actual digest, ...) travel in ``error.fields``.

    ModelManagerError
    ├── InvalidModelSpec            invalid_model_spec        (bad input, also ValueError)
    ├── ProfileLoadFailed           profile_load_failed       (bad input)
    ├── ConfigurationInvalid        configuration_invalid     (bad input)
    ├── InvalidRunContext           invalid_run_context       (bad input)
    ├── CanonicalJsonError          canonical_json_invalid    (bad input, also TypeError)
    ├── ModelMappingMissing         model_mapping_missing     (bad input, also LookupError)
    ├── RunNotFound                 run_not_found             (bad input, also LookupError)
    ├── ModelArtifactMissing        model_artifact_missing    (also FileNotFoundError)
    ├── WeightsDigestMismatch       weights_digest_mismatch
    ├── OnnxRuntimeMissing          onnxruntime_missing       (also ImportError)
    ├── TritonClientMissing         tritonclient_missing      (also ImportError)
    ├── TorchMissing                torch_missing             (also ImportError)
    ├── DeviceUnavailable           device_unavailable
    ├── ModelLoadFailed             model_load_failed
    ├── ModelInferFailed            model_infer_failed
    ├── InsufficientGpuMemory       insufficient_gpu_memory
    ├── TritonUnavailable           triton_unavailable
    ├── TritonModelNotFound         triton_model_not_found
    ├── TritonInferFailed           triton_infer_failed
    ├── ArtifactInvalid             artifact_invalid
    ├── LeaseWaitTimeout            lease_wait_timeout        (transient)
    ├── LeaseLost                   lease_lost                (transient: another worker took the key over)
    ├── DatabaseError               database_error
    ├── StorageUnavailable          storage_unavailable       (also OSError: no space, read-only, permission)
    ├── ArtifactPathUnsafe          artifact_path_unsafe      (a link inside the artifact root: never followed)
    ├── RunInterrupted              run_interrupted           (SIGINT/SIGTERM; the run is recorded so)
    ├── ComponentFailed             component_failed
    ├── NetworkAccessBlocked        network_access_blocked    (never an OSError: not retried)
    ├── LintPathMissing             lint_path_missing         (bad input)
    ├── ArtifactRootMissing         artifact_root_missing     (bad input)
    ├── DeletionBlocked             deletion_blocked
    ├── VideoDeleted                video_deleted             (a delete-video won the race: nothing published)
    ├── VideoInvalid                video_invalid             (bad input: not a video, truncated, no video stream)
    ├── VideoDecoderMissing         video_decoder_missing     (also ImportError: PyAV is not installed)
    ├── InputMissing                input_missing             (the input lacks what a component reads)
    └── InternalError               internal_error            (a bug: an exception of no other code reached the CLI)

``ModelArtifactMissing`` is also a ``FileNotFoundError`` so that ``except
OSError`` callers see it; nothing that a library might retry on (a connection
error) is modelled as an ``OSError`` (D6).
"""

from __future__ import annotations

import errno
import os
from typing import Any, ClassVar

__all__ = [
    "ERROR_CLASSES",
    "ArtifactInvalid",
    "ArtifactPathUnsafe",
    "ArtifactRootMissing",
    "CanonicalJsonError",
    "ComponentFailed",
    "ConfigurationInvalid",
    "DatabaseError",
    "DeletionBlocked",
    "DeviceUnavailable",
    "InputMissing",
    "InsufficientGpuMemory",
    "InternalError",
    "InvalidModelSpec",
    "InvalidRunContext",
    "LeaseLost",
    "LeaseWaitTimeout",
    "LintPathMissing",
    "ModelArtifactMissing",
    "ModelInferFailed",
    "ModelLoadFailed",
    "ModelManagerError",
    "ModelMappingMissing",
    "NetworkAccessBlocked",
    "OnnxRuntimeMissing",
    "ProfileLoadFailed",
    "RunInterrupted",
    "RunNotFound",
    "StorageUnavailable",
    "TorchMissing",
    "TritonClientMissing",
    "TritonInferFailed",
    "TritonModelNotFound",
    "TritonUnavailable",
    "VideoDecoderMissing",
    "VideoDeleted",
    "VideoInvalid",
    "WeightsDigestMismatch",
    "hint_for",
]


class ModelManagerError(Exception):
    """Root of every error the model system raises.

    Args:
        message: what failed and why, for a human.
        transient: overrides the class default where one instance is retryable.
        **fields: structured facts (component, role, field, path, ...); ``None``
            values are dropped.
    """

    code: ClassVar[str] = "model_manager_error"
    transient_default: ClassVar[bool] = False
    bad_input: ClassVar[bool] = False

    def __init__(self, message: str, *, transient: bool | None = None, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.transient = self.transient_default if transient is None else transient
        self.fields: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}

    @property
    def exit_code(self) -> int:
        """The CLI exit code: 2 for bad input, 1 for a failed operation (D10)."""
        return 2 if self.bad_input else 1

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """The error as written into manifests and ``--json`` output."""
        return {
            "error_code": self.code,
            "error": self.message,
            "transient": self.transient,
            **{k: _jsonable(v) for k, v in self.fields.items()},
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


class InvalidModelSpec(ModelManagerError, ValueError):
    """A mapping entry is missing a field or holds a value the rules reject."""

    code = "invalid_model_spec"
    bad_input = True


class ProfileLoadFailed(ModelManagerError):
    """A profile or payload file cannot be read or parsed."""

    code = "profile_load_failed"
    bad_input = True


class ConfigurationInvalid(ModelManagerError):
    """A setting (models_root, cache dir, ...) is missing or unusable."""

    code = "configuration_invalid"
    bad_input = True


class InvalidRunContext(ModelManagerError, ValueError):
    """The run context lacks a field or holds a value the rules reject."""

    code = "invalid_run_context"
    bad_input = True


class CanonicalJsonError(ModelManagerError, TypeError):
    """A value cannot be hashed: canonical JSON refuses floats, big integers, non-ASCII keys (D1)."""

    code = "canonical_json_invalid"
    bad_input = True


class ModelMappingMissing(ModelManagerError, LookupError):
    """No mapping at all, or none for the asked component/role."""

    code = "model_mapping_missing"
    bad_input = True


class RunNotFound(ModelManagerError, LookupError):
    """No run with that id in the run index (or its manifest is gone)."""

    code = "run_not_found"
    bad_input = True


class ModelArtifactMissing(ModelManagerError, FileNotFoundError):
    """A local weights file named by the mapping does not exist."""

    code = "model_artifact_missing"


class WeightsDigestMismatch(ModelManagerError):
    """The local weights do not hash to the mapping's ``weights_digest``."""

    code = "weights_digest_mismatch"


class OnnxRuntimeMissing(ModelManagerError, ImportError):
    """onnxruntime is not installed."""

    code = "onnxruntime_missing"


class TritonClientMissing(ModelManagerError, ImportError):
    """tritonclient is not installed."""

    code = "tritonclient_missing"


class TorchMissing(ModelManagerError, ImportError):
    """torch is not installed (it is an optional extra)."""

    code = "torch_missing"


class DeviceUnavailable(ModelManagerError):
    """The spec's device or engine cannot run here; nothing falls back to another one."""

    code = "device_unavailable"


class ModelLoadFailed(ModelManagerError):
    """The runtime could not load the model."""

    code = "model_load_failed"


class ModelInferFailed(ModelManagerError):
    """An in-process inference failed (wrong input name, dtype or shape, or a runtime error)."""

    code = "model_infer_failed"


class InsufficientGpuMemory(ModelManagerError):
    """The device has too little free memory for the model."""

    code = "insufficient_gpu_memory"


class TritonUnavailable(ModelManagerError):
    """The Triton server does not answer (a local server: an error, not a wait)."""

    code = "triton_unavailable"


class TritonModelNotFound(ModelManagerError):
    """The pinned model or version is not on the Triton server. Never retried."""

    code = "triton_model_not_found"


class TritonInferFailed(ModelManagerError):
    """Triton accepted the request but the inference failed."""

    code = "triton_infer_failed"


class ArtifactInvalid(ModelManagerError):
    """An artifact is missing, truncated, altered or of another schema: never served."""

    code = "artifact_invalid"


class LeaseWaitTimeout(ModelManagerError):
    """Another worker holds the key's lease longer than this worker may wait."""

    code = "lease_wait_timeout"
    transient_default = True


class LeaseLost(ModelManagerError):
    """This worker's lease on the key was taken over (it paused past its TTL): another
    worker computes the key, so this worker's result is not published (fencing, D4)."""

    code = "lease_lost"
    transient_default = True


class DatabaseError(ModelManagerError):
    """The run index database failed (connection, migration, constraint)."""

    code = "database_error"


class StorageUnavailable(ModelManagerError, OSError):
    """A file could not be written or read for a reason of the disk, not of the data: no space
    left, a read-only file system, no permission, a path component that is not a directory."""

    code = "storage_unavailable"

    @classmethod
    def from_os_error(cls, exc: OSError, action: str, path: object) -> StorageUnavailable:
        """The error for ``exc``, raised while ``action`` (e.g. "writing the artifact") on
        ``path``: the message names both and the OS's reason; ``errno`` is its symbol."""
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return cls(
            f"{action} {path}: {reason}",
            path=str(path),
            errno=errno.errorcode.get(exc.errno) if exc.errno else None,
        )


class ArtifactPathUnsafe(ModelManagerError):
    """A folder or file under the artifact root is a symbolic link: reading, writing or
    deleting through it could reach outside the root, so nothing goes through it."""

    code = "artifact_path_unsafe"


class RunInterrupted(ModelManagerError):
    """The run was stopped by SIGINT or SIGTERM; it is recorded ``interrupted`` with its manifest."""

    code = "run_interrupted"


class ComponentFailed(ModelManagerError):
    """A component's own code raised something that is not a ModelManagerError."""

    code = "component_failed"


class NetworkAccessBlocked(ModelManagerError):
    """Code tried to reach a host that is not allowed: the model system is offline (R-NET).

    Deliberately not an OSError, so that no library's retry-on-connection-error
    loop catches it.
    """

    code = "network_access_blocked"


class LintPathMissing(ModelManagerError):
    """``lint-offline`` was given a path that does not exist."""

    code = "lint_path_missing"
    bad_input = True


class ArtifactRootMissing(ModelManagerError):
    """The artifact root is not a directory while the run index has runs (a wrong setting?)."""

    code = "artifact_root_missing"
    bad_input = True


class DeletionBlocked(ModelManagerError):
    """A run of the video to delete is in progress; deleting under it would break it."""

    code = "deletion_blocked"


class VideoDeleted(ModelManagerError):
    """The video was deleted (``delete-video``) while this run computed it: a deletion wins,
    so nothing of the video is published after its audit row (the artifact is removed)."""

    code = "video_deleted"


class VideoInvalid(ModelManagerError):
    """An input video that cannot be decoded: not a video, truncated, no video stream."""

    code = "video_invalid"
    bad_input = True


class VideoDecoderMissing(ModelManagerError, ImportError):
    """PyAV (the video decoder, with its own FFmpeg) is not installed."""

    code = "video_decoder_missing"


class InputMissing(ModelManagerError):
    """The input lacks what a component reads (a video without an audio track for an audio
    component); the component fails under this code, the others run."""

    code = "input_missing"


class InternalError(ModelManagerError):
    """An exception that is no ModelManagerError reached the command line: a bug in
    modelmanager. The command reports it under this code (``-v`` shows the traceback)."""

    code = "internal_error"


ERROR_CLASSES: dict[str, type[ModelManagerError]] = {
    cls.code: cls
    for cls in (
        InvalidModelSpec,
        ProfileLoadFailed,
        ConfigurationInvalid,
        InvalidRunContext,
        CanonicalJsonError,
        ModelMappingMissing,
        RunNotFound,
        ModelArtifactMissing,
        WeightsDigestMismatch,
        OnnxRuntimeMissing,
        TritonClientMissing,
        TorchMissing,
        DeviceUnavailable,
        ModelLoadFailed,
        ModelInferFailed,
        InsufficientGpuMemory,
        TritonUnavailable,
        TritonModelNotFound,
        TritonInferFailed,
        ArtifactInvalid,
        LeaseWaitTimeout,
        LeaseLost,
        DatabaseError,
        StorageUnavailable,
        ArtifactPathUnsafe,
        RunInterrupted,
        ComponentFailed,
        NetworkAccessBlocked,
        LintPathMissing,
        ArtifactRootMissing,
        DeletionBlocked,
        VideoDeleted,
        VideoInvalid,
        VideoDecoderMissing,
        InputMissing,
        InternalError,
    )
}

# What to do about each code: the one table the CLI and the admin page use.
_HINTS: dict[str, str] = {
    "invalid_model_spec": "Fix the named field of the mapping entry (profile YAML, payload or DB profile).",
    "profile_load_failed": "Check the file's path and its YAML/JSON syntax.",
    "invalid_run_context": "Fix the named field of the run context in the payload.",
    "configuration_invalid": "Set the named setting (flag or MODELMANAGER_* environment variable).",
    "canonical_json_invalid": "Hashed material holds only strings, ASCII keys, integers within ±(2**53-1), booleans and null; write the value as a string.",
    "model_mapping_missing": "Add the component/role to the profile, or ask for one that is there.",
    "run_not_found": "List the runs with `modelmanager runs list`; check MODELMANAGER_DATABASE_URL.",
    "model_artifact_missing": "Prepare the weights under models_root first; nothing is downloaded at run time.",
    "weights_digest_mismatch": "The file on disk is not the one the mapping pins: restore it or update the mapping's weights_digest.",
    "onnxruntime_missing": "pip install 'modelmanager[onnx]'",
    "tritonclient_missing": "pip install 'modelmanager[triton]'",
    "torch_missing": "pip install 'modelmanager[torch]'",
    "device_unavailable": "Run on a machine with the device and its runtime provider, or change the entry's device_policy/engine; nothing falls back to CPU.",
    "model_load_failed": "The runtime rejected the model file; see the cause below.",
    "model_infer_failed": "Check the inputs' names, dtypes and shapes against the model.",
    "insufficient_gpu_memory": "Lower batch_size or move the component to a device with more free memory.",
    "triton_unavailable": "Start the Triton server (modelmanager triton serve) and check its URL.",
    "triton_model_not_found": "Load the pinned model version into the Triton repository; no other version is used.",
    "triton_infer_failed": "See the server's message; check inputs against the spec.",
    "artifact_invalid": "The artifact will be recomputed; if it keeps failing, check the disk under the artifact root.",
    "lease_wait_timeout": "Another worker is computing the same key; retry later, or raise the wait (MODELMANAGER_LEASE_WAIT_S).",
    "storage_unavailable": "Free space or fix the permissions of the named path (MODELMANAGER_ARTIFACT_ROOT, MODELMANAGER_DATA_DIR, models_root); nothing half-written was kept.",
    "artifact_path_unsafe": "Replace the named link under MODELMANAGER_ARTIFACT_ROOT by a real folder (or point the root itself elsewhere); nothing was read, written or deleted through it.",
    "run_interrupted": "Run it again: what finished is cached, the rest is computed; the interrupted run's manifest says how far it got.",
    "lease_lost": "Another worker took the key over while this one was paused past MODELMANAGER_LEASE_TTL_S; its result is the one published. Raise the TTL if workers pause that long.",
    "database_error": "Check MODELMANAGER_DATABASE_URL and that the database is reachable and migrated.",
    "network_access_blocked": "Weights are prepared on local disk beforehand (modelmanager models prepare); load them by local path, never by hub id or URL.",
    "lint_path_missing": "Check the paths; directories are walked for *.py.",
    "artifact_root_missing": "Point MODELMANAGER_ARTIFACT_ROOT at the directory the runs wrote to; nothing was deleted.",
    "deletion_blocked": "Retry when the video's runs have finished, or pass --force if they are dead workers' runs.",
    "video_deleted": "The video was deleted while this run computed it; nothing of it was published. Run it again only if the video is to be processed anew.",
    "component_failed": "A bug or bad input in the component itself; see the cause below.",
    "video_invalid": "Check that the file is a complete video (ffprobe/any player opens it); nothing of it was run.",
    "video_decoder_missing": "pip install 'modelmanager[video]'",
    "input_missing": "The input has no such track (e.g. a video without audio): nothing to compute; leave the component out with -c, or give it an input that has one.",
    "internal_error": "A bug in modelmanager: rerun with -v for the traceback and report it.",
}


# Hints for an error that carries a certain field: more precise than its code's. The
# first (code, field) the error has wins.
_FIELD_HINTS: dict[tuple[str, str], str] = {
    ("configuration_invalid", "usage"): "Check the command line: `{command} --help` lists the "
    "arguments and options.",
    (
        "configuration_invalid",
        "path",
    ): "Check the paths: each must be an existing file or directory.",
}
_DUPLICATE_RUN_ID_HINT = (
    "Run {run_id!r} is already in the run index: choose another --run-id, or leave it out "
    "for a new random one."
)


def hint_for(error: ModelManagerError) -> str | None:
    """What a user can do about ``error``: its own ``hint`` field, else one built from its
    fields (a missing sample, a usage error, a duplicate run id), else its code's; or None."""
    fields = error.fields
    hint = fields.get("hint")
    if hint:
        return str(hint)
    if _is_duplicate_run_id(error):
        return _DUPLICATE_RUN_ID_HINT.format(run_id=fields["run_id"])
    for (code, field), text in _FIELD_HINTS.items():
        if error.code == code and field in fields:
            return text.format(command=fields.get("command", "modelmanager"))
    return _HINTS.get(error.code)


def _is_duplicate_run_id(error: ModelManagerError) -> bool:
    """A run index that refused a run because its ``run_id`` is taken: a DatabaseError
    naming the ``run_id``, caused by the database's integrity check (not a lost connection)."""
    return (
        error.code == DatabaseError.code
        and "run_id" in error.fields
        and not error.transient
        and type(error.__cause__).__name__ == "IntegrityError"
    )
