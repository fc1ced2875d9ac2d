"""Is this exception an out-of-memory error? One table of signatures (R-RES-2).

On an out-of-memory error a component may retry with a smaller batch (never another
model); at batch 1 it fails with :class:`~modelmanager.errors.InsufficientGpuMemory`.
This module only answers the question: :func:`is_oom` checks an exception and the chain
of exceptions behind it against :data:`OOM_SIGNATURES` and returns the row that matched.

The table (:class:`OomSignature` rows; types before messages, then first match wins):

    library       kind     matches                                     produced by
    modelmanager  type     modelmanager.errors.InsufficientGpuMemory   our own code
    torch         type     torch.OutOfMemoryError                      torch's allocators
    torch         type     torch.cuda.OutOfMemoryError                 the same, older torch
    python        type     builtins.MemoryError                        a host allocation
    torch         message  CUDA out of memory                          CUDA caching allocator
    torch         message  CUDA error: out of memory                   C10_CUDA_CHECK
    onnxruntime   message  Failed to allocate memory for requested     BFCArena::Extend
                           buffer of size N
    onnxruntime   message  Available memory of N is smaller than       BFCArena::Extend
                           requested bytes of M                        (gpu_mem_limit)
    onnxruntime   message  CUDA failure N: out of memory               CudaCall (cudaMalloc)
    cuda          message  CUBLAS_STATUS_ALLOC_FAILED                  cuBLAS
    cuda          message  CUDNN_STATUS_ALLOC_FAILED                   cuDNN <= 8
    cuda          message  CUDNN_STATUS_INTERNAL_ERROR_DEVICE_         cuDNN 9
                           ALLOCATION_FAILED
    cuda          message  CUDA_ERROR_OUT_OF_MEMORY                    driver API name
    cuda          message  cudaErrorMemoryAllocation                   runtime API name
    triton        message  CNMEM_STATUS_OUT_OF_MEMORY                  Triton's CUDA pool
    tensorrt      message  Error Code N: OutOfMemory                   TensorRT
    cuda          message  out of memory  (not "DFA out of memory")    cudaGetErrorString

Each row's ``why`` says where its text was seen (a file in a wheel, a source file, the
library's documentation).

Rows match either by **type** — the qualified class name (``module.qualname``) anywhere
in the exception's MRO, so no library is imported to check it (torch, onnxruntime and
tritonclient are optional and heavy) — or by **message**, a case-insensitive regex
searched in ``str(exc)``. Types come first: a library that has an OOM class (torch) is
matched by it, and a message is only the way in where the type is generic
(onnxruntime's ``RuntimeException``/``Fail``, tritonclient's ``InferenceServerException``,
torch's ``AcceleratorError``). Triton's backends forward the library's own text
("onnx runtime error 6: ... Failed to allocate memory ...", "PyTorch execute failure:
CUDA out of memory ..."), so the library rows match a Triton response too. The catch-all
``out of memory`` row comes last, so that the record names the most precise row.

Left out on purpose (not an OOM a smaller batch fixes, or not sourced):
``CUDNN_STATUS_NOT_ENOUGH_WORKSPACE`` is no cuDNN status (it appears only in third-party
heuristics); a workspace too small for an algorithm is a caller's bad parameter, not a
failed allocation. ``CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED`` is cuDNN's own
host bookkeeping, which does not scale with the batch. TensorRT EP's "could not build
engine" / "failed to create engine" / "execution context enqueue failed" are generic
failures (unsupported ops, bad profiles) that an OOM is only one cause of; they stay errors.
Triton python backend's "Failed to allocate memory from CUDA memory pool" is a logged
warning (it falls back to CUDA IPC), never a response. A bare "failed to allocate" is
too broad: Triton's libraries say it of retry tokens and curl handles.

Adding a row: append an :class:`OomSignature` before the catch-all, with ``why`` naming
what produces the text and where it was seen (file in a wheel, source file, or the
library's documentation). Then add the real message (or the real type) to the cases of
``tests/resources/test_oom.py``, which asserts that every row is the match of at least one
case, and a near miss that must not match to its negatives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from modelmanager.errors import InsufficientGpuMemory

__all__ = ["MAX_CHAIN", "OOM_SIGNATURES", "OomMatch", "OomSignature", "is_oom"]

Library = Literal["modelmanager", "torch", "onnxruntime", "triton", "tensorrt", "cuda", "python"]
Kind = Literal["type", "message"]

MAX_CHAIN = 32
"""How many exceptions of a cause/context chain :func:`is_oom` looks at, at most."""


@dataclass(frozen=True, slots=True)
class OomSignature:
    """One way an out-of-memory error shows: a class name or a message pattern.

    Args:
        library: what raises it.
        kind: ``"type"``: ``pattern`` is a qualified class name looked up in the
            exception's MRO; ``"message"``: ``pattern`` is a regex searched, ignoring
            case, in ``str(exc)``.
        pattern: the qualified class name or the regex.
        why: what produces it and where the text was seen.

    Raises:
        ValueError: ``kind`` is neither ``"type"`` nor ``"message"``.
        re.error: a message pattern does not compile.
    """

    library: Library
    kind: Kind
    pattern: str
    why: str
    regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in ("type", "message"):
            raise ValueError(f"OomSignature kind must be 'type' or 'message', not {self.kind!r}")
        compiled = re.compile(self.pattern, re.IGNORECASE) if self.kind == "message" else None
        object.__setattr__(self, "regex", compiled)

    def matches(self, exc: BaseException, message: str | None = None) -> bool:
        """Whether ``exc`` shows this signature (``message``: its text, if already read)."""
        if self.kind == "type":
            return self.pattern in _type_names(exc)
        assert self.regex is not None
        return self.regex.search(_message(exc) if message is None else message) is not None


@dataclass(frozen=True, slots=True)
class OomMatch:
    """The row that matched, and the exception of the chain that showed it.

    ``depth`` is 0 for the exception given to :func:`is_oom`, 1 for its cause (or
    context), and so on.
    """

    signature: OomSignature
    exception: BaseException
    depth: int

    def to_record(self) -> dict[str, str | int]:
        """The match as a JSON-able record (for the run's manifest or log)."""
        cls = type(self.exception)
        return {
            "library": self.signature.library,
            "kind": self.signature.kind,
            "pattern": self.signature.pattern,
            "exception_type": f"{cls.__module__}.{cls.__qualname__}",
            "depth": self.depth,
        }


_INSUFFICIENT = f"{InsufficientGpuMemory.__module__}.{InsufficientGpuMemory.__qualname__}"

OOM_SIGNATURES: tuple[OomSignature, ...] = (
    OomSignature(
        "modelmanager",
        "type",
        _INSUFFICIENT,
        "our own code already classified it (the planner, or a retry that reached batch 1)",
    ),
    OomSignature(
        "torch",
        "type",
        "torch.OutOfMemoryError",
        "torch's device allocators (c10/cuda/CUDACachingAllocator.cpp "
        "TORCH_CHECK_WITH(OutOfMemoryError, ...)); torch/cuda/__init__.py aliases "
        "torch.cuda.OutOfMemoryError to it (torch 2.13 wheel)",
    ),
    OomSignature(
        "torch",
        "type",
        "torch.cuda.OutOfMemoryError",
        "the same class under its older name: earlier torch releases defined it in torch.cuda "
        "(tracebacks read 'torch.cuda.OutOfMemoryError: CUDA out of memory')",
    ),
    OomSignature(
        "python",
        "type",
        "builtins.MemoryError",
        "a host allocation failed: the batch's numpy arrays, or a C++ std::bad_alloc in a "
        "pybind11 extension such as onnxruntime's (pybind11 docs, 'Built-in C++ to Python "
        "exception translation': std::bad_alloc -> MemoryError); the batch's arrays are what "
        "failed to allocate, so a smaller batch is the remedy here too",
    ),
    OomSignature(
        "torch",
        "message",
        r"\bCUDA out of memory\b",
        "torch's CUDA caching allocator: 'CUDA out of memory. Tried to allocate 2.00 GiB. "
        "GPU 0 has a total capacity of ...' (c10/cuda/CUDACachingAllocator.cpp); Triton's "
        "PyTorch backend forwards it as 'PyTorch execute failure: CUDA out of memory ...'",
    ),
    OomSignature(
        "torch",
        "message",
        r"\bCUDA error: out of memory\b",
        "C10_CUDA_CHECK on cudaErrorMemoryAllocation: 'CUDA error: ' + cudaGetErrorString "
        "(c10/cuda/CUDAException.cpp), raised as torch.AcceleratorError (a RuntimeError)",
    ),
    OomSignature(
        "onnxruntime",
        "message",
        r"\bFailed to allocate memory for requested buffer of size \d+",
        "onnxruntime's BFCArena::Extend when the device allocator (cudaMalloc) fails "
        "(onnxruntime/core/framework/bfc_arena.cc; string in capi/libonnxruntime.so.1.32.0)",
    ),
    OomSignature(
        "onnxruntime",
        "message",
        r"\bAvailable memory of \d+ is smaller than requested bytes of \d+",
        "onnxruntime's BFCArena::Extend when the arena's limit (gpu_mem_limit) is reached "
        "(onnxruntime/core/framework/bfc_arena.cc; string in capi/libonnxruntime.so.1.32.0)",
    ),
    OomSignature(
        "onnxruntime",
        "message",
        r"\bCUDA failure \d+: out of memory\b",
        "onnxruntime's CudaCall: '%s failure %d: %s ; GPU=..' with cudaGetErrorString "
        "(onnxruntime/core/providers/cuda/cuda_call.cc); 2 is cudaErrorMemoryAllocation",
    ),
    OomSignature(
        "cuda",
        "message",
        r"\bCUBLAS_STATUS_ALLOC_FAILED\b",
        "cuBLAS: 'resource allocation failed inside the cuBLAS library, usually a cudaMalloc() "
        "failure' (cuBLAS docs); onnxruntime 'CUBLAS failure 3: CUBLAS_STATUS_ALLOC_FAILED' "
        "(cuda_call.cc), torch 'CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling ...' "
        "(ATen/cuda/Exceptions.h TORCH_CUDABLAS_CHECK)",
    ),
    OomSignature(
        "cuda",
        "message",
        r"\bCUDNN_STATUS_ALLOC_FAILED\b",
        "cuDNN ≤ 8: 'resource allocation failed inside the cuDNN library, usually an internal "
        "cudaMalloc() failure' (cudnn.h); onnxruntime 'CUDNN failure 2: ...' (cuda_call.cc), "
        "torch 'cuDNN error: ...' (ATen/cuda/Exceptions.h AT_CUDNN_CHECK)",
    ),
    OomSignature(
        "cuda",
        "message",
        r"\bCUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED\b",
        "cuDNN 9's sub-code for a failed device allocation inside cuDNN (cuDNN Backend API "
        "docs, cudnnStatus_t), through the same onnxruntime/torch checks",
    ),
    OomSignature(
        "cuda",
        "message",
        r"\bCUDA_ERROR_OUT_OF_MEMORY\b",
        "CUDA driver API CUresult 2 by name (cuda.h; listed in the torch wheel's "
        "torch/utils/hipify/cuda_to_hip_mappings.py), printed by libraries that call "
        "cuGetErrorName (cuda-python, numba, NVRTC users)",
    ),
    OomSignature(
        "cuda",
        "message",
        r"\bcudaErrorMemoryAllocation\b",
        "CUDA runtime API cudaError_t 2 by name (string in libcudart of the nvidia-pytriton "
        "wheel; torch/utils/hipify/cuda_to_hip_mappings.py), printed by libraries that call "
        "cudaGetErrorName (e.g. CuPy's 'cudaErrorMemoryAllocation: out of memory')",
    ),
    OomSignature(
        "triton",
        "message",
        r"\bCNMEM_STATUS_OUT_OF_MEMORY\b",
        "Triton's CUDA memory pool (--cuda-memory-pool-byte-size) is full: 'Failed to allocate "
        "CUDA memory with byte size N on GPU M: CNMEM_STATUS_OUT_OF_MEMORY' "
        "(triton-inference-server/core src/cuda_memory_manager.cc; strings in the "
        "nvidia-pytriton wheel's libtritonserver.so)",
    ),
    OomSignature(
        "tensorrt",
        "message",
        r"\bError Code \d+: OutOfMemory\b",
        "TensorRT's error reporter: '[executionContext.cpp::...] Error Code 2: OutOfMemory "
        "(Requested size was N bytes.)', as quoted from TensorRT logs in public issues; no "
        "wheel installed here carries TensorRT, so this text is not checked against a binary",
    ),
    OomSignature(
        "cuda",
        "message",
        r"(?<!DFA )\bout of memory\b",
        "cudaGetErrorString(cudaErrorMemoryAllocation) is 'out of memory' (libcudart in the "
        "nvidia-pytriton wheel): the tail of Triton's RETURN_IF_CUDA_ERR, TensorRT's 'Cuda "
        "Runtime (out of memory)' and other backends' messages. RE2's 'DFA out of memory' "
        "(in libonnxruntime and libtritonserver) is a regex budget, not device memory",
    ),
)

_TYPES_THEN_MESSAGES = tuple(sorted(OOM_SIGNATURES, key=lambda row: row.kind == "message"))


def is_oom(exc: BaseException) -> OomMatch | None:
    """The out-of-memory signature ``exc`` shows, or None when it is no OOM error.

    Looks at ``exc`` and the exceptions behind it, the chain Python's traceback prints
    (``__cause__``, else ``__context__`` unless ``raise ... from None`` suppressed it), at
    most :data:`MAX_CHAIN` of them and each once (a cycle ends the walk). The rows are
    tried in order, type rows before message rows, each against the deepest exception
    first: a runtime's wrapper (our ``ModelInferFailed``) repeats the library's message,
    and the library's own exception is the better record.

    Args:
        exc: the exception a runtime or component raised.

    Returns:
        The matching row, the exception of the chain that showed it and its depth; None
        when no row matches.

    Example:
        >>> from modelmanager.errors import ModelInferFailed
        >>> try:
        ...     try:
        ...         raise RuntimeError("CUDA failure 2: out of memory ; GPU=0")
        ...     except RuntimeError as inner:
        ...         raise ModelInferFailed(f"ocr/detector: {inner}") from inner
        ... except ModelInferFailed as outer:
        ...     match = is_oom(outer)
        >>> (match.signature.library, match.depth)
        ('onnxruntime', 1)
    """
    deepest_first = list(enumerate(_chain(exc)))[::-1]
    names = {depth: _type_names(link) for depth, link in deepest_first}
    messages: dict[int, str] = {}
    for signature in _TYPES_THEN_MESSAGES:
        for depth, link in deepest_first:
            if signature.kind == "type":
                if signature.pattern in names[depth]:
                    return OomMatch(signature, link, depth)
                continue
            if depth not in messages:
                messages[depth] = _message(link)
            if signature.matches(link, messages[depth]):
                return OomMatch(signature, link, depth)
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions behind it, as the traceback prints them; cycle-safe."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < MAX_CHAIN:
        seen.add(id(current))
        chain.append(current)
        if current.__cause__ is not None:
            current = current.__cause__
        elif current.__suppress_context__:
            current = None
        else:
            current = current.__context__
    return chain


def _type_names(exc: BaseException) -> frozenset[str]:
    """The qualified names (``module.qualname``) of the classes in ``exc``'s MRO."""
    return frozenset(f"{cls.__module__}.{cls.__qualname__}" for cls in type(exc).__mro__)


def _message(exc: BaseException) -> str:
    """``str(exc)``; empty when the exception's own ``__str__`` fails."""
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not hide the rest of the chain
        return ""
