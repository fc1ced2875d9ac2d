"""The public API of modelmanager; the package loads each name on first access."""

from .config import Settings as Settings
from .errors import (
    ArtifactInvalid as ArtifactInvalid,
)
from .errors import (
    ArtifactPathUnsafe as ArtifactPathUnsafe,
)
from .errors import (
    ArtifactRootMissing as ArtifactRootMissing,
)
from .errors import (
    CanonicalJsonError as CanonicalJsonError,
)
from .errors import (
    ComponentFailed as ComponentFailed,
)
from .errors import (
    ConfigurationInvalid as ConfigurationInvalid,
)
from .errors import (
    DatabaseError as DatabaseError,
)
from .errors import (
    DeletionBlocked as DeletionBlocked,
)
from .errors import (
    DeviceUnavailable as DeviceUnavailable,
)
from .errors import (
    InputMissing as InputMissing,
)
from .errors import (
    InsufficientGpuMemory as InsufficientGpuMemory,
)
from .errors import (
    InternalError as InternalError,
)
from .errors import (
    InvalidModelSpec as InvalidModelSpec,
)
from .errors import (
    InvalidRunContext as InvalidRunContext,
)
from .errors import (
    LeaseLost as LeaseLost,
)
from .errors import (
    LeaseWaitTimeout as LeaseWaitTimeout,
)
from .errors import (
    LintPathMissing as LintPathMissing,
)
from .errors import (
    ModelArtifactMissing as ModelArtifactMissing,
)
from .errors import (
    ModelInferFailed as ModelInferFailed,
)
from .errors import (
    ModelLoadFailed as ModelLoadFailed,
)
from .errors import (
    ModelManagerError as ModelManagerError,
)
from .errors import (
    ModelMappingMissing as ModelMappingMissing,
)
from .errors import (
    NetworkAccessBlocked as NetworkAccessBlocked,
)
from .errors import (
    OnnxRuntimeMissing as OnnxRuntimeMissing,
)
from .errors import (
    ProfileLoadFailed as ProfileLoadFailed,
)
from .errors import (
    RunInterrupted as RunInterrupted,
)
from .errors import (
    RunNotFound as RunNotFound,
)
from .errors import (
    StorageUnavailable as StorageUnavailable,
)
from .errors import (
    TorchMissing as TorchMissing,
)
from .errors import (
    TritonClientMissing as TritonClientMissing,
)
from .errors import (
    TritonInferFailed as TritonInferFailed,
)
from .errors import (
    TritonModelNotFound as TritonModelNotFound,
)
from .errors import (
    TritonUnavailable as TritonUnavailable,
)
from .errors import (
    VideoDecoderMissing as VideoDecoderMissing,
)
from .errors import (
    VideoDeleted as VideoDeleted,
)
from .errors import (
    VideoInvalid as VideoInvalid,
)
from .errors import (
    WeightsDigestMismatch as WeightsDigestMismatch,
)
from .index.store import RunStore as RunStore
from .manager import HealthReport as HealthReport
from .manager import ModelManager as ModelManager
from .mapping.sampling import SamplingPolicy as SamplingPolicy
from .mapping.signature import CacheKey as CacheKey
from .mapping.sources import MappingSource as MappingSource
from .mapping.sources import resolve_mapping as resolve_mapping
from .mapping.spec import ModelUsed as ModelUsed
from .mapping.spec import ResolvedMapping as ResolvedMapping
from .mapping.spec import ResolvedModelSpec as ResolvedModelSpec
from .mapping.spec import RunContext as RunContext
from .media import VideoInputs as VideoInputs
from .media import decode_video as decode_video
from .media import probe_video as probe_video
from .run.contract import Component as Component
from .run.contract import ComponentOutput as ComponentOutput
from .run.contract import ComponentRequest as ComponentRequest
from .run.runner import Runner as Runner
from .run.runner import RunResult as RunResult
from .runtimes.base import Runtime as Runtime
from .runtimes.base import RuntimeFactory as RuntimeFactory
from .runtimes.mock import MockRuntime as MockRuntime

__version__: str
