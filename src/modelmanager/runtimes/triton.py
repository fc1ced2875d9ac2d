"""A Triton model, pinned to one version, through tritonclient (R-RT-2, R-FAIL-1/3).

``open`` checks, once: the server is live (else ``triton_unavailable`` at
once: a local Triton that does not answer is an error, not a wait); the pinned
version is READY (else ``triton_model_not_found``; no other version is ever
used); the served inputs/outputs and ``preprocess_preset`` match the spec
(else ``invalid_model_spec``). gRPC is used when the spec gives a gRPC URL
(faster per call, LIMITS.md), HTTP otherwise.

Only an error the server marks as momentary (its queue is full) is transient;
``infer`` retries those twice, and nothing else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from modelmanager.errors import (
    InvalidModelSpec,
    ModelManagerError,
    TritonClientMissing,
    TritonInferFailed,
    TritonModelNotFound,
    TritonUnavailable,
)
from modelmanager.mapping.spec import ResolvedModelSpec, TensorSpec, TritonTarget
from modelmanager.runtimes.base import (
    MODEL_METADATA_PREFIX,
    Health,
    RuntimeMetadata,
    Tensors,
    check_io,
)

__all__ = ["TritonRuntime"]

logger = logging.getLogger(__name__)

RETRY_DELAYS_S = (0.005, 0.02)
_CONNECT_TIMEOUT_S = 1.0
_UNREACHABLE = ("failed to connect", "connection refused", "socket closed", "connect failed")
_QUEUE_FULL = "exceeds maximum queue size"


class TritonRuntime:
    """A tritonclient handle bound to ``spec.triton``'s model and pinned version.

    Args:
        spec: a resolved spec with runtime ``triton``.
        model_path: unused (Triton entries have no local weights here); None.
    """

    def __init__(self, spec: ResolvedModelSpec, model_path: object = None) -> None:
        if spec.triton is None:
            raise InvalidModelSpec(
                f"{spec.component_name}/{spec.role}: not a triton entry",
                component=spec.component_name,
                role=spec.role,
                field="triton",
            )
        self.spec = spec
        self.target: TritonTarget = spec.triton
        self.protocol = "grpc" if self.target.grpc_url else "http"
        self.url = self.target.grpc_url or self.target.http_url or ""
        self._version = str(self.target.model_version)
        self._client: Any = None
        self._module: Any = None
        self._requested: list[Any] = []
        self._output_names = [t.name for t in self.target.outputs]
        self._input_types = {t.name: t.dtype for t in self.target.inputs}
        # Triton has no rank-0 tensors: a scalar input travels as [1] (the repository's
        # model.py hands it to the model as a scalar; see triton_repo.SCALAR_DIMS).
        self._scalars = {t.name for t in self.target.inputs if t.shape == ()}
        self._metadata: RuntimeMetadata | None = None

    @property
    def _where(self) -> str:
        return (
            f"{self.spec.component_name}/{self.spec.role}: Triton model "
            f"{self.target.model_name!r} version {self._version} at {self.url}"
        )

    def _fields(self) -> dict[str, Any]:
        return {
            "component": self.spec.component_name,
            "role": self.spec.role,
            "url": self.url,
            "model_name": self.target.model_name,
            "model_version": self.target.model_version,
        }

    def open(self) -> None:
        if self._client is not None:
            return
        module = _import_client(self.protocol)
        url = self.url.removeprefix("grpc://").removeprefix("http://").removeprefix("https://")
        if self.protocol == "grpc":
            client = module.InferenceServerClient(url)
        else:
            client = module.InferenceServerClient(
                url,
                ssl=self.url.startswith("https://"),
                connection_timeout=_CONNECT_TIMEOUT_S,
            )
        try:
            self._check_server(client)
        except BaseException:
            client.close()
            raise
        self._client, self._module = client, module
        self._requested = [module.InferRequestedOutput(name) for name in self._output_names]

    def _check_server(self, client: Any) -> None:
        name, version = self.target.model_name, self._version
        with self._translated():
            live = client.is_server_live()
        if not live:
            raise TritonUnavailable(f"{self._where}: the server is not live", **self._fields())
        with self._translated():
            ready = client.is_model_ready(name, version)
        if not ready:
            raise TritonModelNotFound(
                f"{self._where}: not ready on the server ({self._state(client)}); "
                "no other version is used",
                **self._fields(),
            )
        with self._translated():
            metadata = client.get_model_metadata(name, version, **self._as_json())
            config = client.get_model_config(name, version, **self._as_json())
        config = config.get("config", config)
        inputs = tuple(
            t.model_copy(update={"shape": ()}) if t.name in self._scalars and t.shape == (1,) else t
            for t in (_tensor(t) for t in metadata.get("inputs", []))
        )
        outputs = tuple(_tensor(t) for t in metadata.get("outputs", []))
        check_io(self.spec, "triton.", self.target.inputs, inputs, "inputs")
        check_io(self.spec, "triton.", self.target.outputs, outputs, "outputs")
        parameters = config.get("parameters", {})
        served_preset = parameters.get("preprocess_preset", {}).get("string_value")
        if served_preset != self.target.preprocess_preset:
            raise InvalidModelSpec(
                f"{self._where}: the server's preprocess_preset is {served_preset!r}, "
                f"the spec's {self.target.preprocess_preset!r}",
                **{**self._fields(), "field": "triton.preprocess_preset"},
            )
        self._metadata = RuntimeMetadata(
            runtime="triton",
            engine=self.spec.engine,
            device=self.spec.device,
            inputs=inputs,
            outputs=outputs,
            details={
                "protocol": self.protocol,
                "url": self.url,
                "platform": metadata.get("platform") or config.get("backend"),
                "served_versions": metadata.get("versions", []),
                "preprocess_preset": served_preset,
            },
            model_metadata={
                key.removeprefix(MODEL_METADATA_PREFIX): value.get("string_value", "")
                for key, value in parameters.items()
                if key.startswith(MODEL_METADATA_PREFIX)
            },
        )

    def _state(self, client: Any) -> str:
        try:
            index = client.get_model_repository_index(**self._as_json())
        except Exception:
            return "state unknown"
        entries = index.get("models", index) if isinstance(index, dict) else index
        for entry in entries:
            if (
                entry.get("name") == self.target.model_name
                and str(entry.get("version")) == self._version
            ):
                reason = entry.get("reason") or ""
                return f"state {entry.get('state', '?')}{': ' + reason if reason else ''}"
        listed = sorted(
            str(e.get("version")) for e in entries if e.get("name") == self.target.model_name
        )
        if listed:
            return f"the repository has versions {', '.join(listed)} of it"
        return "the model is not in the repository"

    def _as_json(self) -> dict[str, Any]:
        return {"as_json": True} if self.protocol == "grpc" else {}

    def infer(self, inputs: Tensors) -> dict[str, Any]:
        client, module = self._client, self._module
        if client is None:
            raise TritonInferFailed(f"{self._where}: the runtime is not open", **self._fields())
        try:
            request = []
            for name, value in inputs.items():
                array = value.reshape(1) if name in self._scalars and value.ndim == 0 else value
                tensor = module.InferInput(name, array.shape, self._input_types.get(name, "FP32"))
                tensor.set_data_from_numpy(array)  # refuses a dtype other than the declared one
                request.append(tensor)
        except Exception as exc:
            raise TritonInferFailed(
                f"{self._where}: cannot send the inputs: {_message(exc)}", **self._fields()
            ) from exc
        for delay in (*RETRY_DELAYS_S, None):
            try:
                result = client.infer(
                    self.target.model_name,
                    request,
                    model_version=self._version,
                    outputs=self._requested,
                )
                break
            except Exception as exc:
                error = self._translate(exc)
                if error is None:
                    raise
                if not error.transient or delay is None:
                    raise error from exc
                logger.info("%s: %s; retrying in %.0f ms", self._where, error.message, delay * 1000)
                time.sleep(delay)
        return {name: result.as_numpy(name) for name in self._output_names}

    __call__ = infer

    def metadata(self) -> RuntimeMetadata:
        self.open()
        assert self._metadata is not None
        return self._metadata

    def health(self) -> Health:
        if self._client is None:
            return Health(False, "not open")
        try:
            with self._translated():
                ready = self._client.is_model_ready(self.target.model_name, self._version)
        except ModelManagerError as exc:
            return Health(False, str(exc))
        return Health(ready, "ready" if ready else "not ready")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            error = self._translate(exc)
            if error is None:
                raise
            raise error from exc

    def _translate(self, exc: Exception) -> ModelManagerError | None:
        """Our error for a tritonclient or connection error; None for anything else (D6)."""
        if isinstance(exc, ModelManagerError):
            return None
        text = _message(exc)
        lowered = text.lower()
        fields = self._fields()
        if isinstance(exc, OSError) or any(s in lowered for s in _UNREACHABLE):
            return TritonUnavailable(f"{self._where}: the server does not answer: {text}", **fields)
        if "not found" in lowered or "unknown model" in lowered or "NOT_FOUND" in _status(exc):
            return TritonModelNotFound(f"{self._where}: {text}", **fields)
        if _QUEUE_FULL in lowered:
            return TritonInferFailed(f"{self._where}: {text}", transient=True, **fields)
        if type(exc).__name__ == "InferenceServerException":
            return TritonInferFailed(f"{self._where}: {text}", status=_status(exc), **fields)
        return None


def _message(exc: BaseException) -> str:
    message = getattr(exc, "message", None)
    text = message() if callable(message) else None
    return str(text or exc or type(exc).__name__)


def _status(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    value = status() if callable(status) else None
    return str(value or "")


def _import_client(protocol: str) -> Any:
    try:
        if protocol == "grpc":
            import tritonclient.grpc as module
        else:
            import tritonclient.http as module
    except ImportError as exc:
        raise TritonClientMissing(
            f"tritonclient[{protocol}] is not installed: pip install 'modelmanager[triton]'"
        ) from exc
    return module


def _tensor(entry: dict[str, Any]) -> TensorSpec:
    return TensorSpec.model_construct(
        name=entry["name"],
        dtype=entry["datatype"],
        shape=tuple(int(d) for d in entry.get("shape", [])),
    )
