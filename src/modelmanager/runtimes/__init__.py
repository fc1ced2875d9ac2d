"""Runtime handles for resolved specs; see :mod:`modelmanager.runtimes.base`."""

from __future__ import annotations

from pathlib import Path

from modelmanager.mapping.spec import ResolvedModelSpec
from modelmanager.runtimes.base import Health, Runtime, RuntimeFactory, RuntimeMetadata

__all__ = ["Health", "Runtime", "RuntimeFactory", "RuntimeMetadata", "default_runtime"]


def default_runtime(spec: ResolvedModelSpec, local_path: Path | None) -> Runtime:
    """The backend a spec names: Triton, in-process torch, or in-process ONNX/TensorRT.

    Backends import their libraries when opened, so an unused one need not be installed.
    """
    if spec.runtime == "triton":
        from modelmanager.runtimes.triton import TritonRuntime

        return TritonRuntime(spec, local_path)
    if spec.engine == "torch":
        from modelmanager.runtimes.torch import TorchRuntime

        return TorchRuntime(spec, local_path)
    from modelmanager.runtimes.onnx import OnnxRuntime

    return OnnxRuntime(spec, local_path)
