"""A runtime that answers with a function: test components and pipelines without models.

Like httpx's ``MockTransport``, it plugs in where the real backend would, so the
code under test runs unchanged: the manager still resolves specs, verifies
weights, computes signatures and keys; only the model call is the handler's.

>>> from modelmanager import MockRuntime, ModelManager
>>> def handler(spec, inputs):
...     return {"features": inputs["pixels"].mean(axis=(2, 3))}
>>> mm = ModelManager(run_context, mapping, models_root=root,
...                   runtime_factory=MockRuntime.factory(handler))  # doctest: +SKIP

The handle checks what it can without a model: inputs and outputs against the
spec's declared ``inputs``/``outputs`` (or its ``triton`` ones): names, dtypes,
ranks and fixed dimensions, as a real backend would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelmanager.errors import ModelInferFailed
from modelmanager.mapping.spec import ResolvedModelSpec, TensorSpec
from modelmanager.runtimes.base import Health, RuntimeFactory, RuntimeMetadata, Tensors, check_io

__all__ = ["Handler", "MockRuntime"]

Handler = Callable[[ResolvedModelSpec, Tensors], Mapping[str, Any]]
"""``handler(spec, inputs) -> outputs``: what the mocked model computes."""


class MockRuntime:
    """One mocked model for one (component, role); records every call in :attr:`calls`.

    Args:
        spec: the resolved spec the handle serves.
        handler: computes the outputs from the spec and the inputs.
        local_path: the verified weights' path, kept for inspection (never read).
    """

    def __init__(
        self, spec: ResolvedModelSpec, handler: Handler, local_path: Path | None = None
    ) -> None:
        self.spec = spec
        self.local_path = local_path
        self.calls: list[dict[str, Any]] = []
        self.opened = False
        self.closed = False
        self._handler = handler
        triton = spec.triton
        self._inputs = spec.inputs or (triton.inputs if triton else None)
        self._outputs = spec.outputs or (triton.outputs if triton else None)

    @classmethod
    def factory(cls, handler: Handler) -> RuntimeFactory:
        """A ``runtime_factory`` for :class:`~modelmanager.ModelManager` that mocks every spec."""

        def make(spec: ResolvedModelSpec, local_path: Path | None) -> MockRuntime:
            return cls(spec, handler, local_path)

        return make

    def open(self) -> None:
        self.opened = True

    def infer(self, inputs: Tensors) -> dict[str, Any]:
        if not self.opened or self.closed:
            raise ModelInferFailed(
                f"{self.spec.component_name}/{self.spec.role}: the mock handle is not open",
                component=self.spec.component_name,
                role=self.spec.role,
            )
        arrays = {name: np.asarray(value) for name, value in inputs.items()}
        check_io(self.spec, "", self._inputs, _described(arrays), "inputs")
        self.calls.append(arrays)
        outputs = {
            name: np.asarray(value) for name, value in self._handler(self.spec, arrays).items()
        }
        check_io(self.spec, "", self._outputs, _described(outputs), "outputs")
        return outputs

    __call__ = infer

    def metadata(self) -> RuntimeMetadata:
        return RuntimeMetadata(
            runtime="mock",
            engine=self.spec.engine,
            device=self.spec.device,
            inputs=self._inputs or (),
            outputs=self._outputs or (),
        )

    def health(self) -> Health:
        return Health(self.opened and not self.closed, "mock handle")

    def close(self) -> None:
        self.closed = True


def _described(arrays: Mapping[str, np.ndarray[Any, Any]]) -> tuple[TensorSpec, ...]:
    """The arrays as specs use them: Triton dtype names (``float32`` is ``FP32``)."""
    return tuple(
        TensorSpec.model_construct(name=name, dtype=_triton_dtype(array), shape=tuple(array.shape))
        for name, array in arrays.items()
    )


def _triton_dtype(array: np.ndarray[Any, Any]) -> Any:  # checked by check_io's comparison
    if array.dtype.kind in "USO":
        return "BYTES"
    return array.dtype.name.replace("float", "FP").upper()
