"""The resolved model spec and the mapping it comes in (R-SPEC-1..6).

A mapping is ``component → role → entry``. Each entry becomes one frozen
:class:`ResolvedModelSpec`; the whole is a :class:`ResolvedMapping`. Parsing is
the only validation: a mapping that parses is one every other part may trust.
Whatever the rules refuse raises :class:`~modelmanager.errors.InvalidModelSpec`
naming the source, component, role and field (see :func:`parse_mapping`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath, PureWindowsPath
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from modelmanager.mapping.canonical import check_sha256_tagged
from modelmanager.mapping.problems import invalid_spec_from
from modelmanager.mapping.sampling import SamplingPolicy
from modelmanager.mapping.versions import PinnedVersion

__all__ = [
    "Artifacts",
    "Engine",
    "ModelUsed",
    "Precision",
    "ResolvedMapping",
    "ResolvedModelSpec",
    "RunContext",
    "RuntimeKind",
    "TensorSpec",
    "TritonTarget",
    "device_kind",
    "parse_mapping",
]

RuntimeKind = Literal["triton", "inprocess"]
Engine = Literal["onnx", "torch", "tensorrt"]
Precision = Literal["fp16", "fp32"]
TritonDtype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BF16", "BYTES",
]  # fmt: skip

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
"""A path-safe name: components, roles, models, ids (they become paths under the roots)."""
_DEVICE = re.compile(r"cpu|cuda|cuda:(0|[1-9][0-9]*)")
_FLOATING_WORDS = frozenset(
    {"latest", "stable", "current", "newest", "head", "main", "master", "default", "any",
     "dev", "nightly", "next"}
)  # fmt: skip
_RANGE_CHARS = frozenset("*^~<>=|, \t\n")
_HTTP_URL = re.compile(r"https?://[^\s/:]+(:[0-9]{1,5})?/?")
_GRPC_URL = re.compile(r"(grpc://)?[^\s/:]+:[0-9]{1,5}")


def _name(value: str) -> str:
    if not NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid name (letters, digits, '_', '.', '-'; "
            "starting with a letter or digit; at most 128 characters)"
        )
    return value


def pinned_version(value: str) -> str:
    text = value.strip()
    if not text:
        raise ValueError("is empty; pin an exact version")
    if text.lower() in _FLOATING_WORDS:
        raise ValueError(f"{value!r} is a floating version; pin an exact version")
    if any(c in _RANGE_CHARS for c in value) or any(
        part in {"x", "X"} for part in re.split(r"[.\-+]", text)
    ):
        raise ValueError(f"{value!r} is a version range; pin an exact version")
    return value


def _device(value: str) -> str:
    if not _DEVICE.fullmatch(value):
        raise ValueError(f"{value!r} is not one of cpu, cuda, cuda:N")
    return value


def relative_path(value: str) -> str:
    if not value:
        raise ValueError("is empty")
    if "\\" in value:
        raise ValueError(f"{value!r} uses '\\'; write POSIX paths relative to models_root")
    if PurePosixPath(value).is_absolute() or PureWindowsPath(value).drive:
        raise ValueError(f"{value!r} is absolute; paths are relative to models_root")
    if ".." in PurePosixPath(value).parts:
        raise ValueError(f"{value!r} has '..'; paths must stay inside models_root")
    return value


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty")
    return value


Name = Annotated[str, Field(strict=True), AfterValidator(_name)]
Text = Annotated[str, Field(strict=True)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Frozen):
    """One Triton input or output: name, Triton datatype, shape (-1 = any)."""

    name: Text
    dtype: TritonDtype
    shape: tuple[int, ...]

    @field_validator("name")
    @classmethod
    def _check_name(cls, v: str) -> str:
        return _text(v)

    @field_validator("shape")
    @classmethod
    def _check_shape(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(d == 0 or d < -1 for d in v):
            raise ValueError(f"{list(v)} has a dimension that is neither positive nor -1")
        return v


class TritonTarget(_Frozen):
    """Where and what to call on a Triton server, pinned to one model version."""

    http_url: str | None = None
    grpc_url: str | None = None
    model_name: Text
    model_version: Annotated[int, Field(ge=1, strict=False)]
    inputs: tuple[TensorSpec, ...] = Field(min_length=1)
    outputs: tuple[TensorSpec, ...] = Field(min_length=1)
    preprocess_preset: str | None = None

    @field_validator("model_version", mode="before")
    @classmethod
    def _check_version(cls, v: Any) -> Any:
        if isinstance(v, str) and not v.isdigit():
            raise ValueError(f"{v!r} is not a pinned Triton version (a positive integer)")
        if isinstance(v, bool | float):
            raise ValueError(f"{v!r} is not a pinned Triton version (a positive integer)")
        return v

    @field_validator("http_url")
    @classmethod
    def _check_http(cls, v: str | None) -> str | None:
        if v is not None and not _HTTP_URL.fullmatch(v):
            raise ValueError(f"{v!r} is not an http(s)://host[:port] URL")
        return v

    @field_validator("grpc_url")
    @classmethod
    def _check_grpc(cls, v: str | None) -> str | None:
        if v is not None and not _GRPC_URL.fullmatch(v):
            raise ValueError(f"{v!r} is not a host:port gRPC address")
        return v

    @field_validator("model_name", "preprocess_preset")
    @classmethod
    def _check_text(cls, v: str | None) -> str | None:
        return None if v is None else _text(v)

    @model_validator(mode="after")
    def _needs_endpoint(self) -> TritonTarget:
        if self.http_url is None and self.grpc_url is None:
            raise _field_error("http_url", "a triton entry needs http_url or grpc_url")
        return self


class MemoryChecklist(_Frozen):
    """A model's memory on its device (seed §8, the checklist): ``fixed_mib`` once loaded,
    plus ``per_item_mib`` per item of a batch, at most ``max_batch`` items. It decides the
    batch size and the GPU (R-RES-1, R-SCHED-2); it changes no output, so it is not in
    the signature. Whole MiB (round per-item memory up)."""

    fixed_mib: int = Field(ge=0, le=1 << 24)
    per_item_mib: int = Field(ge=0, le=1 << 24)
    max_batch: int | None = Field(default=None, ge=1, le=1 << 20)

    def need_mib(self, batch: int) -> int:
        """MiB the model needs for a batch of ``batch`` items."""
        return self.fixed_mib + self.per_item_mib * batch


class Artifacts(_Frozen):
    """Local files of a model, relative to ``models_root`` (R-SPEC-5)."""

    onnx_path: str | None = None
    weights_path: str | None = None
    tokenizer_path: str | None = None
    preprocess_id: str | None = None

    @field_validator("onnx_path", "weights_path", "tokenizer_path")
    @classmethod
    def _check_path(cls, v: str | None) -> str | None:
        return None if v is None else relative_path(v)

    @field_validator("preprocess_id")
    @classmethod
    def _check_text(cls, v: str | None) -> str | None:
        return None if v is None else _text(v)


class ResolvedModelSpec(_Frozen):
    """Everything needed to run one (component, role) and to account for it.

    ``device`` is the actual device chosen for this run (R-MAP-4); where the
    mapping gives none, ``device_policy`` decides it when that names one device
    (``cpu``, ``cuda:N``). A ``cuda`` policy needs the scheduler to set it.
    ``inputs``/``outputs`` (optional, in-process entries) are checked against
    the model when its runtime opens; Triton entries give them in ``triton``.
    """

    component_name: Name
    role: Name
    model_name: Text
    model_version: PinnedVersion
    weights_digest: Text
    runtime: RuntimeKind
    engine: Engine
    precision: Precision
    device_policy: Text
    device: Text
    artifacts: Artifacts = Artifacts()
    triton: TritonTarget | None = None
    inputs: tuple[TensorSpec, ...] | None = None
    outputs: tuple[TensorSpec, ...] | None = None
    memory: MemoryChecklist | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_device(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("device") is None:
            policy = data.get("device_policy")
            if isinstance(policy, str) and _DEVICE.fullmatch(policy):
                if policy == "cuda":
                    raise _field_error(
                        "device",
                        "not assigned: device_policy 'cuda' needs the scheduler to set "
                        "the actual device (cuda or cuda:N)",
                    )
                return {**data, "device": policy}
        return data

    @field_validator("model_name")
    @classmethod
    def _check_model_name(cls, v: str) -> str:
        return _text(v)

    @field_validator("model_version")
    @classmethod
    def _check_version(cls, v: str) -> str:
        return pinned_version(v)

    @field_validator("weights_digest")
    @classmethod
    def _check_digest(cls, v: str) -> str:
        return check_sha256_tagged(v)

    @field_validator("device_policy", "device")
    @classmethod
    def _check_device(cls, v: str) -> str:
        return _device(v)

    @model_validator(mode="after")
    def _check_consistency(self) -> ResolvedModelSpec:
        policy, device = self.device_policy, self.device
        if policy == "cpu" and device != "cpu":
            raise _field_error("device", f"{device!r} does not fit device_policy 'cpu'")
        if policy.startswith("cuda") and not device.startswith("cuda"):
            raise _field_error("device", f"{device!r} does not fit device_policy {policy!r}")
        if policy.startswith("cuda:") and device != policy:
            raise _field_error("device", f"{device!r} does not fit the pinned device {policy!r}")
        if self.engine == "tensorrt" and not device.startswith("cuda"):
            raise _field_error("engine", f"tensorrt runs on a cuda device, not {device!r}")
        if self.runtime == "triton":
            if self.triton is None:
                raise _field_error("triton", "a triton entry needs a triton block (endpoint, I/O)")
            for io in ("inputs", "outputs"):
                if getattr(self, io) is not None:
                    raise _field_error(io, f"a triton entry declares its {io} in the triton block")
        else:
            if self.triton is not None:
                raise _field_error("triton", "only runtime 'triton' takes a triton block")
            needed = "weights_path" if self.engine == "torch" else "onnx_path"
            if getattr(self.artifacts, needed) is None:
                raise _field_error(
                    f"artifacts.{needed}",
                    f"an inprocess {self.engine} entry needs artifacts.{needed}",
                )
        return self

    @property
    def device_kind(self) -> str:
        """``cpu`` or ``cuda``: the device as it enters the signature (D2)."""
        return device_kind(self.device)

    @property
    def local_artifact(self) -> str | None:
        """The file or directory ``weights_digest`` covers, or None for Triton (R-DIG-2)."""
        if self.runtime == "triton":
            return None
        return self.artifacts.weights_path if self.engine == "torch" else self.artifacts.onnx_path


def device_kind(device: str) -> str:
    """``cuda:1`` → ``cuda``; ``cpu`` → ``cpu`` (D2)."""
    return device.split(":", 1)[0]


class ModelUsed(_Frozen):
    """One canonical ``models_used[]`` entry (R-SIG-1), as written into NPZ meta.

    ``role`` is added to the SPEC's fields: without it, two roles that swap
    their models would give the same signature for different results.
    Exactly one of ``preprocess_preset`` (Triton) and ``preprocessing_version``
    (local preprocessing) may be set; both are always present, as null if unset.
    """

    role: str
    model_name: str
    model_version: str
    weights_digest: str
    runtime: RuntimeKind
    engine: Engine
    precision: Precision
    device: str
    preprocess_preset: str | None
    preprocessing_version: str | None

    @classmethod
    def from_spec(cls, spec: ResolvedModelSpec) -> ModelUsed:
        """The entry of a (validated) spec; its fields need no second validation."""
        return cls.model_construct(**cls.fields_of(spec))

    @staticmethod
    def fields_of(spec: ResolvedModelSpec) -> dict[str, Any]:
        """``ModelUsed.from_spec(spec).model_dump()``, built without a model (the hot path
        of signatures and keys), in field order."""
        triton = spec.triton
        return {
            "role": spec.role,
            "model_name": spec.model_name,
            "model_version": spec.model_version,
            "weights_digest": spec.weights_digest,
            "runtime": spec.runtime,
            "engine": spec.engine,
            "precision": spec.precision,
            "device": spec.device_kind,
            "preprocess_preset": triton.preprocess_preset if triton is not None else None,
            "preprocessing_version": spec.artifacts.preprocess_id if triton is None else None,
        }


class ResolvedMapping(_Frozen):
    """``component → role → ResolvedModelSpec`` for one run.

    A component with no roles (``{}``) is one that calls no model; its
    ``models_used`` is empty and it still has a signature.
    """

    format_version: Literal[1] = 1
    profile: str | None = None
    components: dict[Name, dict[Name, ResolvedModelSpec]]
    sampling: SamplingPolicy | None = None
    """Which frames of an input video the components see (None: the default policy)."""

    @model_validator(mode="before")
    @classmethod
    def _name_entries(cls, data: Any) -> Any:
        # component_name and role are the mapping's keys; an entry may repeat
        # them (a dumped mapping does) but may not contradict them.
        if not isinstance(data, Mapping) or not isinstance(data.get("components"), Mapping):
            return data
        components: dict[Any, Any] = {}
        for component, roles in data["components"].items():
            if not isinstance(roles, Mapping):
                components[component] = roles
                continue
            named: dict[Any, Any] = {}
            for role, entry in roles.items():
                if isinstance(entry, Mapping):
                    for key, expected in (("component_name", component), ("role", role)):
                        if entry.get(key, expected) != expected:
                            raise PydanticCustomError(
                                "model_spec",
                                "{reason}",
                                {
                                    "loc": ("components", component, role, key),
                                    "reason": f"{entry[key]!r} contradicts the mapping key "
                                    f"{expected!r}",
                                },
                            )
                    entry = {**entry, "component_name": component, "role": role}
                named[role] = entry
            components[component] = named
        return {**data, "components": components}

    def spec(self, component: str, role: str) -> ResolvedModelSpec | None:
        """The spec of (component, role), or None."""
        return self.components.get(component, {}).get(role)

    def iter_specs(self) -> list[ResolvedModelSpec]:
        """Every spec, in component then role order."""
        return [
            spec
            for component in sorted(self.components)
            for _, spec in sorted(self.components[component].items())
        ]

    def to_json_dict(self) -> dict[str, Any]:
        """The mapping as JSON-ready data (nulls kept), e.g. for manifest.json (R-MAP-3)."""
        return self.model_dump(mode="json")


class RunContext(_Frozen):
    """Who and what a run is for (R-SIG-3 inputs besides the component's own).

    ``platform_id``, ``video_id`` and ``run_id`` name directories of the
    artifact store (D5), so they are names: letters, digits, ``_ . -``.
    """

    platform_id: Name
    video_id: Name
    run_id: Name
    config_hash: Text
    sampling_policy_version: PinnedVersion
    dataprocessor_version: PinnedVersion
    user_id: str | None = None
    input_digest: str | None = None
    """``sha256:`` of the input video's bytes; in the key of every component that reads
    the video, so another file under the same ``video_id`` is never served (issue 13)."""

    @field_validator("config_hash", "sampling_policy_version", "dataprocessor_version")
    @classmethod
    def _check_text(cls, v: str) -> str:
        return _text(v)

    @field_validator("input_digest")
    @classmethod
    def _check_input_digest(cls, v: str | None) -> str | None:
        return None if v is None else check_sha256_tagged(v)


def _field_error(field: str, reason: str) -> PydanticCustomError:
    return PydanticCustomError("model_spec", "{reason}", {"field": field, "reason": reason})


def parse_mapping(data: Any, *, source: str = "mapping") -> ResolvedMapping:
    """Validate raw mapping data (from a payload, YAML or the DB).

    Args:
        data: ``{"components": {component: {role: entry}}, "profile": ...}``.
        source: where it came from, named in errors ("payload", a file path, ...).

    Raises:
        InvalidModelSpec: every problem found, the first one in ``fields``
            (``component``, ``role``, ``field``) and all of them in ``problems``.
    """
    try:
        return ResolvedMapping.model_validate(data)
    except ValidationError as exc:
        raise invalid_spec_from(exc, source) from None
