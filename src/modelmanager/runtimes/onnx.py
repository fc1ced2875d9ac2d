"""In-process ONNX through onnxruntime (R-RT-3).

Providers follow the spec, never the machine: ``cpu`` → CPU; ``cuda[:N]`` →
CUDA on device N; engine ``tensorrt`` → TensorRT (then CUDA for the nodes
TensorRT does not take). A provider that is not installed, or that the
session did not take, is ``device_unavailable``: onnxruntime itself would
only warn and run on the CPU.

A model that keeps tensors in external data files is a directory model (R-DIG):
``onnx_path`` names its directory, whose digest covers the data, and the session
opens the one ``*.onnx`` file at the directory's top level; onnxruntime reads the
external data from beside it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelmanager.errors import (
    DeviceUnavailable,
    InvalidModelSpec,
    ModelInferFailed,
    ModelLoadFailed,
    OnnxRuntimeMissing,
    StorageUnavailable,
)
from modelmanager.mapping.spec import ResolvedModelSpec, TensorSpec
from modelmanager.runtimes.base import Health, RuntimeMetadata, Tensors, check_io

__all__ = ["OnnxDescription", "OnnxRuntime", "describe_onnx", "model_file", "providers_for"]

logger = logging.getLogger(__name__)

# onnxruntime's element types → Triton datatype names, the one vocabulary of specs.
_DTYPES = {
    "tensor(float)": "FP32",
    "tensor(float16)": "FP16",
    "tensor(double)": "FP64",
    "tensor(bfloat16)": "BF16",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(bool)": "BOOL",
    "tensor(string)": "BYTES",
}


def providers_for(spec: ResolvedModelSpec) -> list[tuple[str, dict[str, Any]]]:
    """The execution providers the spec asks for, first one primary."""
    if not spec.device.startswith("cuda"):
        return [("CPUExecutionProvider", {})]
    device_id = int(spec.device.partition(":")[2] or 0)
    cuda = ("CUDAExecutionProvider", {"device_id": device_id})
    if spec.engine == "tensorrt":
        trt_options = {"device_id": device_id, "trt_fp16_enable": spec.precision == "fp16"}
        return [("TensorrtExecutionProvider", trt_options), cuda]
    return [cuda]


def model_file(spec: ResolvedModelSpec, model_path: Path) -> Path:
    """The ONNX file to open for ``model_path``: itself, or for a directory model the one
    ``*.onnx`` file at its top level.

    Raises:
        InvalidModelSpec: a directory model holds no or several top-level ``*.onnx`` files.
        StorageUnavailable: the directory cannot be listed.
    """
    if not model_path.is_dir():
        return model_path
    try:
        found = sorted(
            p.name for p in model_path.iterdir() if p.name.lower().endswith(".onnx") and p.is_file()
        )
    except OSError as exc:
        raise StorageUnavailable.from_os_error(
            exc, "listing the directory model", model_path
        ) from exc
    if len(found) != 1:
        listed = f" ({', '.join(found)})" if found else ""
        raise InvalidModelSpec(
            f"{spec.component_name}/{spec.role}: directory model {model_path} must hold exactly "
            f"one .onnx file at its top level, the model to open; it holds {len(found)}{listed}",
            component=spec.component_name,
            role=spec.role,
            field="artifacts.onnx_path",
            path=str(model_path),
        )
    return model_path / found[0]


class OnnxRuntime:
    """An onnxruntime session for one spec.

    Args:
        spec: a resolved in-process spec with engine onnx or tensorrt.
        model_path: the verified local ONNX file, or the directory model holding it
            and its external data.
        intra_op_threads: onnxruntime's intra-op thread count (0 = its default).
    """

    def __init__(
        self, spec: ResolvedModelSpec, model_path: Path | None, *, intra_op_threads: int = 0
    ) -> None:
        if model_path is None:
            raise ModelLoadFailed(
                f"{spec.component_name}/{spec.role}: an ONNX runtime needs a local file",
                component=spec.component_name,
                role=spec.role,
            )
        self.spec = spec
        self.model_path = model_path
        self.intra_op_threads = intra_op_threads
        self._session: Any = None
        self._output_names: list[str] = []
        self._metadata: RuntimeMetadata | None = None

    def open(self) -> None:
        if self._session is not None:
            return
        spec = self.spec
        ort = _import_onnxruntime()
        providers = providers_for(spec)
        wanted = providers[0][0]
        available = ort.get_available_providers()
        if wanted not in available:
            raise DeviceUnavailable(
                f"{spec.component_name}/{spec.role}: device {spec.device!r} with engine "
                f"{spec.engine!r} needs {wanted}, which this onnxruntime does not have "
                f"(available: {', '.join(available)})",
                component=spec.component_name,
                role=spec.role,
                device=spec.device,
                provider=wanted,
            )
        path = model_file(spec, self.model_path)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = self.intra_op_threads
        started = time.perf_counter()
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own pybind classes
            raise ModelLoadFailed(
                f"{spec.component_name}/{spec.role}: onnxruntime cannot load {path}: {exc}",
                component=spec.component_name,
                role=spec.role,
                path=str(path),
            ) from exc
        if session.get_providers()[0] != wanted:
            raise DeviceUnavailable(
                f"{spec.component_name}/{spec.role}: onnxruntime did not take {wanted} "
                f"(session providers: {session.get_providers()})",
                component=spec.component_name,
                role=spec.role,
                device=spec.device,
                provider=wanted,
            )
        described = _description(session)
        check_io(spec, "", spec.inputs, described.inputs, "inputs")
        check_io(spec, "", spec.outputs, described.outputs, "outputs")
        self._output_names = [t.name for t in described.outputs]
        self._metadata = RuntimeMetadata(
            runtime="inprocess",
            engine=spec.engine,
            device=spec.device,
            inputs=described.inputs,
            outputs=described.outputs,
            details={
                "provider": wanted,
                "onnxruntime": ort.__version__,
                "load_ms": round((time.perf_counter() - started) * 1000, 3),
            },
            model_metadata=described.metadata,
        )
        self._session = session
        logger.debug("opened %s on %s", self.model_path, wanted)

    def infer(self, inputs: Tensors) -> dict[str, Any]:
        try:
            outputs = self._session.run(self._output_names, inputs)
        except AttributeError:
            if self._session is None:
                raise ModelInferFailed(
                    f"{self.spec.component_name}/{self.spec.role}: the runtime is not open",
                    component=self.spec.component_name,
                    role=self.spec.role,
                ) from None
            raise
        except Exception as exc:  # ValueError (missing input) or onnxruntime's own classes
            raise ModelInferFailed(
                f"{self.spec.component_name}/{self.spec.role}: {exc}",
                component=self.spec.component_name,
                role=self.spec.role,
            ) from exc
        # onnxruntime returns one array per requested name; strict=True would cost ~1 µs a call.
        return dict(zip(self._output_names, outputs, strict=False))

    __call__ = infer

    def metadata(self) -> RuntimeMetadata:
        self.open()
        assert self._metadata is not None
        return self._metadata

    def health(self) -> Health:
        if self._session is None:
            return Health(False, "not open")
        return Health(
            True, f"session on {self._metadata.details['provider'] if self._metadata else '?'}"
        )

    def close(self) -> None:
        self._session = None


@dataclass(frozen=True, slots=True)
class OnnxDescription:
    """An ONNX file's I/O as onnxruntime reports them, and its ``metadata_props``."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    metadata: dict[str, str]


def describe_onnx(path: Path) -> OnnxDescription:
    """Open ``path`` in a CPU session once to read its I/O and metadata (a free dim is -1).

    Raises:
        OnnxRuntimeMissing: onnxruntime is not installed.
        ModelLoadFailed: onnxruntime cannot load the file.
    """
    ort = _import_onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own pybind classes
        raise ModelLoadFailed(f"onnxruntime cannot load {path}: {exc}", path=str(path)) from exc
    return _description(session)


def _description(session: Any) -> OnnxDescription:
    return OnnxDescription(
        inputs=tuple(_tensor(t) for t in session.get_inputs()),
        outputs=tuple(_tensor(t) for t in session.get_outputs()),
        metadata=dict(session.get_modelmeta().custom_metadata_map),
    )


def _import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        interrupt = _interrupt_behind(exc)
        if interrupt is not None:
            # Ctrl-C or SIGTERM while the import ran: pybind11 reports an exception raised
            # in a module's initialisation as an ImportError from it; this is no missing package.
            raise interrupt from None
        raise OnnxRuntimeMissing(
            "onnxruntime is not installed: pip install 'modelmanager[onnx]'"
        ) from exc
    return onnxruntime


def _interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt that ``exc`` was raised from (its cause or context), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _tensor(node: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in node.shape)
    return TensorSpec.model_construct(
        name=node.name, dtype=_DTYPES.get(node.type, node.type), shape=shape
    )
