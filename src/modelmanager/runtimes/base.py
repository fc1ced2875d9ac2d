"""The runtime protocol every backend implements, and what they share.

    Runtime (protocol)          open · infer / __call__ · metadata · health · close
    ├── OnnxRuntime             in-process onnxruntime session         (runtimes/onnx.py)
    ├── TritonRuntime           tritonclient, pinned model version     (runtimes/triton.py)
    └── TorchRuntime            torch weights, no pickled code         (runtimes/torch.py)

A handle is opened once per (component, role) by the manager and then called
on the hot path: ``handle({"x": array}) -> {"y": array}``. Everything that can
be checked once (names, dtypes, shapes, provider, server state) is checked in
``open``; ``infer`` adds only the translation of backend errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from modelmanager.errors import InvalidModelSpec
from modelmanager.mapping.spec import ResolvedModelSpec, TensorSpec

__all__ = [
    "Health",
    "Runtime",
    "RuntimeFactory",
    "RuntimeMetadata",
    "check_io",
]

MODEL_METADATA_PREFIX = "model_metadata."
"""A Triton config parameter named with this prefix carries one ``metadata_props`` entry
of the served ONNX file (written by :mod:`modelmanager.triton.repo`)."""

Tensors = Mapping[str, Any]
"""Named arrays (numpy) in and out of a model."""


@dataclass(frozen=True, slots=True)
class RuntimeMetadata:
    """What an opened handle runs: its I/O as the backend reports them, and where.

    ``model_metadata`` is the key/value metadata stored in the model file itself
    (ONNX ``metadata_props``), such as a recognizer's character set; a Triton
    handle reads the same pairs from the served model's config (the repository
    builder copies them there, see :mod:`modelmanager.triton.repo`).
    """

    runtime: str
    engine: str
    device: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    details: Mapping[str, Any] = field(default_factory=dict)
    model_metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Health:
    """Whether a handle can serve now, and why not."""

    ok: bool
    detail: str


@runtime_checkable
class Runtime(Protocol):
    """One model, opened for one (component, role)."""

    spec: ResolvedModelSpec

    def open(self) -> None:
        """Load or connect, and check the model against the spec. Idempotent."""

    def infer(self, inputs: Tensors) -> dict[str, Any]:
        """Run the model on named inputs; returns named outputs."""

    def __call__(self, inputs: Tensors) -> dict[str, Any]:
        """Same as :meth:`infer`."""

    def metadata(self) -> RuntimeMetadata:
        """The model's I/O and where it runs (after :meth:`open`)."""

    def health(self) -> Health:
        """A cheap check that the handle can serve now."""

    def close(self) -> None:
        """Release the session or connection. Idempotent."""


RuntimeFactory = Callable[[ResolvedModelSpec, Path | None], Runtime]
"""Makes an unopened handle for a spec and the local path of its weights (None for Triton)."""


def check_io(
    spec: ResolvedModelSpec,
    field_prefix: str,
    expected: Sequence[TensorSpec] | None,
    actual: Sequence[TensorSpec],
    kind: str,
) -> None:
    """Refuse a model whose ``kind`` ("inputs"/"outputs") differ from what the spec declares.

    Dimensions match when equal or when either side leaves them free (-1).

    Raises:
        InvalidModelSpec: naming the field, the tensor and what differs.
    """
    if expected is None:
        return
    by_name = {t.name: t for t in actual}
    problems = []
    for want in expected:
        have = by_name.get(want.name)
        if have is None:
            problems.append(f"{want.name!r} is not among the model's {kind} {sorted(by_name)}")
            continue
        if have.dtype != want.dtype:
            problems.append(f"{want.name!r} is {have.dtype} in the model, {want.dtype} in the spec")
        if len(have.shape) != len(want.shape) or any(
            -1 not in (w, h) and w != h for w, h in zip(want.shape, have.shape, strict=True)
        ):
            problems.append(
                f"{want.name!r} has shape {list(have.shape)} in the model, "
                f"{list(want.shape)} in the spec"
            )
    missing = sorted(set(by_name) - {t.name for t in expected})
    if kind == "inputs" and missing:
        problems.append(f"the model also needs inputs {missing}, which the spec does not declare")
    if problems:
        raise InvalidModelSpec(
            f"{spec.component_name}/{spec.role}: the model's {kind} do not match the spec: "
            + "; ".join(problems),
            component=spec.component_name,
            role=spec.role,
            field=f"{field_prefix}{kind}",
        )
