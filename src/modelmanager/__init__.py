"""modelmanager: the model system of the video-analytics pipeline.

>>> from modelmanager import ModelManager, resolve_mapping
>>> mapping, source = resolve_mapping(profile_path="examples/profile.yaml")  # doctest: +SKIP
>>> mm = ModelManager(run_context, mapping, models_root="examples/models")  # doctest: +SKIP
>>> mm.model_signature_for("text_ocr")  # doctest: +SKIP
"""

from __future__ import annotations

from modelmanager.config import Settings
from modelmanager.errors import (
    ArtifactInvalid,
    ComponentFailed,
    ConfigurationInvalid,
    DatabaseError,
    DeviceUnavailable,
    InsufficientGpuMemory,
    InvalidModelSpec,
    InvalidRunContext,
    LeaseWaitTimeout,
    ModelArtifactMissing,
    ModelInferFailed,
    ModelLoadFailed,
    ModelManagerError,
    ModelMappingMissing,
    NetworkAccessBlocked,
    OnnxRuntimeMissing,
    ProfileLoadFailed,
    RunNotFound,
    TorchMissing,
    TritonClientMissing,
    TritonInferFailed,
    TritonModelNotFound,
    TritonUnavailable,
    WeightsDigestMismatch,
)
from modelmanager.manager import HealthReport, ModelManager
from modelmanager.mapping.canonical import CanonicalJsonError, canonical_json
from modelmanager.mapping.signature import (
    CacheKey,
    FieldDifference,
    cache_key,
    diff_documents,
    model_signature,
    models_used,
)
from modelmanager.mapping.sources import MappingSource, ProfileStore, load_document, resolve_mapping
from modelmanager.mapping.spec import (
    Artifacts,
    ModelUsed,
    ResolvedMapping,
    ResolvedModelSpec,
    RunContext,
    TensorSpec,
    TritonTarget,
    parse_mapping,
)
from modelmanager.runtimes import Health, Runtime, RuntimeFactory, RuntimeMetadata, default_runtime
from modelmanager.weights.digest import Digest, DigestCache, Digester, hash_file

__version__ = "0.1.0"

__all__ = [
    "ArtifactInvalid",
    "Artifacts",
    "CacheKey",
    "CanonicalJsonError",
    "ComponentFailed",
    "ConfigurationInvalid",
    "DatabaseError",
    "DeviceUnavailable",
    "Digest",
    "DigestCache",
    "Digester",
    "FieldDifference",
    "Health",
    "HealthReport",
    "InsufficientGpuMemory",
    "InvalidModelSpec",
    "InvalidRunContext",
    "LeaseWaitTimeout",
    "MappingSource",
    "ModelArtifactMissing",
    "ModelInferFailed",
    "ModelLoadFailed",
    "ModelManager",
    "ModelManagerError",
    "ModelMappingMissing",
    "ModelUsed",
    "NetworkAccessBlocked",
    "OnnxRuntimeMissing",
    "ProfileLoadFailed",
    "ProfileStore",
    "ResolvedMapping",
    "ResolvedModelSpec",
    "RunContext",
    "RunNotFound",
    "Runtime",
    "RuntimeFactory",
    "RuntimeMetadata",
    "Settings",
    "TensorSpec",
    "TorchMissing",
    "TritonClientMissing",
    "TritonInferFailed",
    "TritonModelNotFound",
    "TritonTarget",
    "TritonUnavailable",
    "WeightsDigestMismatch",
    "__version__",
    "cache_key",
    "canonical_json",
    "default_runtime",
    "diff_documents",
    "hash_file",
    "load_document",
    "model_signature",
    "models_used",
    "parse_mapping",
    "resolve_mapping",
]
