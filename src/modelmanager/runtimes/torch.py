"""torch weights, loaded without executing pickled code (R-RT-4).

``.safetensors`` files load with safetensors; anything else with
``torch.load(weights_only=True)``, which refuses a pickle that would run code
or build objects other than tensors and plain containers. A directory model
loads every ``*.safetensors`` file in it. torch is an optional extra.

The handle holds the state dict; :meth:`TorchRuntime.bind` loads it into the
component's module (strict: every key must match), after which the handle is
callable like the others.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from modelmanager.errors import DeviceUnavailable, ModelInferFailed, ModelLoadFailed, TorchMissing
from modelmanager.mapping.spec import ResolvedModelSpec
from modelmanager.runtimes.base import Health, RuntimeMetadata, Tensors

__all__ = ["TorchRuntime"]


class TorchRuntime:
    """Weights of one torch spec; callable once a module is bound.

    Args:
        spec: a resolved in-process spec with engine torch.
        weights_path: the verified local file or directory model.
    """

    def __init__(self, spec: ResolvedModelSpec, weights_path: Path | None) -> None:
        if weights_path is None:
            raise ModelLoadFailed(
                f"{spec.component_name}/{spec.role}: a torch runtime needs local weights",
                component=spec.component_name,
                role=spec.role,
            )
        self.spec = spec
        self.weights_path = weights_path
        self._state: dict[str, Any] | None = None
        self._module: Any = None
        self._torch: Any = None

    def _fields(self) -> dict[str, Any]:
        return {"component": self.spec.component_name, "role": self.spec.role}

    def open(self) -> None:
        if self._state is not None:
            return
        torch = _import_torch()
        device = self.spec.device
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise DeviceUnavailable(
                f"{self.spec.component_name}/{self.spec.role}: device {device!r} asked for, "
                "but torch sees no CUDA device here",
                device=device,
                **self._fields(),
            )
        files = self._files()
        state: dict[str, Any] = {}
        for file in files:
            try:
                state.update(self._load(torch, file, device))
            except pickle.UnpicklingError as exc:
                raise ModelLoadFailed(
                    f"{self.spec.component_name}/{self.spec.role}: refused {file}: it holds "
                    f"pickled objects beyond tensors, which would run code on load ({exc}); "
                    "save the weights as safetensors or a plain state dict",
                    path=str(file),
                    **self._fields(),
                ) from exc
            except Exception as exc:
                raise ModelLoadFailed(
                    f"{self.spec.component_name}/{self.spec.role}: cannot load {file}: {exc}",
                    path=str(file),
                    **self._fields(),
                ) from exc
        self._torch, self._state = torch, state

    def _files(self) -> list[Path]:
        if not self.weights_path.is_dir():
            return [self.weights_path]
        files = sorted(self.weights_path.rglob("*.safetensors"))
        if not files:
            raise ModelLoadFailed(
                f"{self.spec.component_name}/{self.spec.role}: directory model "
                f"{self.weights_path} has no *.safetensors file",
                path=str(self.weights_path),
                **self._fields(),
            )
        return files

    @staticmethod
    def _load(torch: Any, file: Path, device: str) -> dict[str, Any]:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(file), device=device))
        loaded = torch.load(file, map_location=device, weights_only=True)
        if not isinstance(loaded, dict):
            raise ValueError(f"expected a state dict, found {type(loaded).__name__}")
        return loaded

    def state_dict(self) -> dict[str, Any]:
        """The loaded tensors by name."""
        self.open()
        assert self._state is not None
        return self._state

    def bind(self, module: Any) -> Any:
        """Load the weights into ``module`` (strict), move it to the device, eval mode.

        Raises:
            ModelLoadFailed: the module's parameters do not match the weights.
        """
        state = self.state_dict()
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelLoadFailed(
                f"{self.spec.component_name}/{self.spec.role}: weights do not fit the module: {exc}",
                path=str(self.weights_path),
                **self._fields(),
            ) from exc
        module = module.to(self.spec.device)
        if self.spec.precision == "fp16":
            module = module.half()
        self._module = module.eval()
        return self._module

    def infer(self, inputs: Tensors) -> dict[str, Any]:
        if self._module is None:
            raise ModelInferFailed(
                f"{self.spec.component_name}/{self.spec.role}: bind a module to the torch "
                "runtime before calling it",
                **self._fields(),
            )
        torch = self._torch
        try:
            with torch.inference_mode():
                tensors = {
                    k: torch.as_tensor(v, device=self.spec.device) for k, v in inputs.items()
                }
                result = self._module(**tensors)
        except Exception as exc:
            raise ModelInferFailed(
                f"{self.spec.component_name}/{self.spec.role}: {exc}", **self._fields()
            ) from exc
        if isinstance(result, dict):
            return {k: v.cpu().numpy() for k, v in result.items()}
        if isinstance(result, tuple | list):
            return {f"output_{i}": v.cpu().numpy() for i, v in enumerate(result)}
        return {"output": result.cpu().numpy()}

    __call__ = infer

    def metadata(self) -> RuntimeMetadata:
        state = self.state_dict()
        return RuntimeMetadata(
            runtime="inprocess",
            engine="torch",
            device=self.spec.device,
            inputs=(),
            outputs=(),
            details={"torch": self._torch.__version__, "tensors": len(state)},
        )

    def health(self) -> Health:
        if self._state is None:
            return Health(False, "not open")
        return Health(True, f"{len(self._state)} tensors loaded")

    def close(self) -> None:
        self._state = None
        self._module = None


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise TorchMissing("torch is not installed: pip install 'modelmanager[torch]'") from exc
    return torch
