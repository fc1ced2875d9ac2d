"""modelmanager: the model system of the video-analytics pipeline.

>>> from modelmanager import ModelManager, resolve_mapping
>>> mapping, source = resolve_mapping(profile_path="examples/profile.yaml")  # doctest: +SKIP
>>> mm = ModelManager(run_context, mapping, models_root="examples/models")  # doctest: +SKIP
>>> mm.model_signature_for("text_ocr")  # doctest: +SKIP
"""

from __future__ import annotations

from .canonical import CanonicalJsonError, canonical_json
from .config import Settings
from .digest import Digest, DigestCache, Digester, hash_file
from .errors import (
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
from .manager import HealthReport, ModelManager
from .runtimes import Health, Runtime, RuntimeFactory, RuntimeMetadata, default_runtime
from .signature import (
    CacheKey,
    FieldDifference,
    cache_key,
    diff_documents,
    model_signature,
    models_used,
)
from .sources import MappingSource, ProfileStore, load_document, resolve_mapping
from .spec import (
    Artifacts,
    ModelUsed,
    ResolvedMapping,
    ResolvedModelSpec,
    RunContext,
    TensorSpec,
    TritonTarget,
    parse_mapping,
)

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
