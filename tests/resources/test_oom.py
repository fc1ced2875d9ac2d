"""Issue 14, R-RES-2: which exceptions are out-of-memory errors (resources/oom.py's table).

Every row of :data:`OOM_SIGNATURES` is the match of at least one real exception below:
torch (CPU build, installed) constructs its own classes, onnxruntime's pybind classes and
tritonclient's ``InferenceServerException`` carry the texts their libraries produce, each
bare and wrapped the way our runtimes wrap them (``raise ModelInferFailed(...) from exc``).
Two stand-ins are marked as such: the class name torch used before ``torch.OutOfMemoryError``
(it cannot exist next to torch 2.13), and texts of libraries that are not installed here
(the CUDA driver/runtime names, TensorRT), carried by a plain ``RuntimeError``.
"""

from __future__ import annotations

import doctest
import json
import re
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest

from modelmanager.errors import (
    ComponentFailed,
    InsufficientGpuMemory,
    ModelInferFailed,
    ModelManagerError,
    TritonInferFailed,
)
from modelmanager.resources import oom
from modelmanager.resources.oom import MAX_CHAIN, OOM_SIGNATURES, OomMatch, OomSignature, is_oom

Factory = Callable[[], BaseException]


def _ort(kind: str, message: str) -> BaseException:
    """onnxruntime's own exception class ``kind`` (RuntimeException, Fail, ...) with ``message``."""
    state = pytest.importorskip("onnxruntime.capi.onnxruntime_pybind11_state")
    exc: BaseException = getattr(state, kind)(message)
    return exc


def _triton(message: str, status: str = "StatusCode.INTERNAL") -> BaseException:
    """tritonclient's exception for a server response ``message``."""
    utils = pytest.importorskip("tritonclient.utils")
    exc: BaseException = utils.InferenceServerException(msg=message, status=status)
    return exc


def _torch_oom() -> BaseException:
    torch = pytest.importorskip("torch")
    exc: BaseException = torch.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.10 GiB "
        "of which 1.06 GiB is free. Of the allocated memory 76.50 GiB is allocated by PyTorch, "
        "and 1.02 GiB is reserved by PyTorch but unallocated."
    )
    return exc


def _torch_cuda_oom_of_older_torch() -> BaseException:
    """A stand-in: torch before ``torch.OutOfMemoryError`` named the class
    ``torch.cuda.OutOfMemoryError``; the installed torch 2.13 cannot produce that name."""
    legacy: type[RuntimeError] = type(
        "OutOfMemoryError", (RuntimeError,), {"__module__": "torch.cuda"}
    )
    return legacy("CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 15.75 GiB total)")


def _torch_accelerator_error() -> BaseException:
    torch = pytest.importorskip("torch")
    exc: BaseException = torch.AcceleratorError(
        "CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported at some "
        "other API call, so the stacktrace below might be incorrect."
    )
    return exc


def _numpy_memory_error() -> BaseException:
    """numpy's real ``_ArrayMemoryError`` (a MemoryError subclass) for an impossible batch."""
    try:
        np.empty(2**62, dtype=np.uint8)
    except MemoryError as exc:
        return exc
    pytest.fail("numpy allocated 4 EiB")


_BFC = (
    "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running "
    "Conv node. Name:'/backbone/conv1/Conv' Status Message: /onnxruntime_src/onnxruntime/core/"
    "framework/bfc_arena.cc:376 void* onnxruntime::BFCArena::AllocateRawInternal(size_t, bool, "
    "onnxruntime::Stream*, bool, onnxruntime::WaitNotificationFn) Failed to allocate memory for "
    "requested buffer of size 4294967296\n"
)

# (factory, the pattern of the row it must match). Each is also tested wrapped.
CASES: list[tuple[str, Factory, str]] = [
    (
        "ours-insufficient-gpu-memory",
        lambda: InsufficientGpuMemory("ocr: a batch of 1 needs 9000 MiB, cuda:0 has 4000 MiB free"),
        f"{InsufficientGpuMemory.__module__}.{InsufficientGpuMemory.__qualname__}",
    ),
    ("torch-OutOfMemoryError", _torch_oom, "torch.OutOfMemoryError"),
    (
        "torch-cuda-OutOfMemoryError-older-torch",
        _torch_cuda_oom_of_older_torch,
        "torch.cuda.OutOfMemoryError",
    ),
    ("python-MemoryError", MemoryError, "builtins.MemoryError"),
    ("numpy-ArrayMemoryError", _numpy_memory_error, "builtins.MemoryError"),
    (
        "triton-pytorch-backend-cuda-oom",
        lambda: _triton(
            "PyTorch execute failure: CUDA out of memory. Tried to allocate 1.50 GiB (GPU 0; "
            "23.69 GiB total capacity; 21.12 GiB already allocated; 1.02 GiB free)"
        ),
        r"\bCUDA out of memory\b",
    ),
    (
        "torch-AcceleratorError-cuda-check",
        _torch_accelerator_error,
        r"\bCUDA error: out of memory\b",
    ),
    (
        "ort-bfc-arena-allocation",
        lambda: _ort("RuntimeException", _BFC),
        r"\bFailed to allocate memory for requested buffer of size \d+",
    ),
    (
        "triton-onnxruntime-backend-bfc-arena",
        lambda: _triton("onnx runtime error 6: " + _BFC.split("RUNTIME_EXCEPTION : ", 1)[1]),
        r"\bFailed to allocate memory for requested buffer of size \d+",
    ),
    (
        "ort-bfc-arena-limit",
        lambda: _ort(
            "Fail",
            "[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running MatMul "
            "node. Name:'/head/MatMul' Status Message: Available memory of 1073741824 is smaller "
            "than requested bytes of 2147483648",
        ),
        r"\bAvailable memory of \d+ is smaller than requested bytes of \d+",
    ),
    (
        "ort-cuda-call-cudamalloc",
        lambda: _ort(
            "RuntimeException",
            "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : CUDA failure 2: out of memory ; GPU=0 "
            "; hostname=gpu-node ; file=/onnxruntime_src/onnxruntime/core/providers/cuda/"
            "cuda_allocator.cc ; line=48 ; expr=cudaMalloc((void**)&p, size);",
        ),
        r"\bCUDA failure \d+: out of memory\b",
    ),
    (
        "ort-cublas-alloc-failed",
        lambda: _ort(
            "RuntimeException",
            "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : CUBLAS failure 3: "
            "CUBLAS_STATUS_ALLOC_FAILED ; GPU=0 ; hostname=gpu-node ; "
            "expr=cublasCreate(&cublas_handle_);",
        ),
        r"\bCUBLAS_STATUS_ALLOC_FAILED\b",
    ),
    (
        "torch-cublas-alloc-failed",
        lambda: RuntimeError(
            "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"
        ),
        r"\bCUBLAS_STATUS_ALLOC_FAILED\b",
    ),
    (
        "ort-cudnn-alloc-failed",
        lambda: _ort(
            "RuntimeException",
            "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : CUDNN failure 2: "
            "CUDNN_STATUS_ALLOC_FAILED ; GPU=0 ; hostname=gpu-node ; expr=cudnnCreate(&handle);",
        ),
        r"\bCUDNN_STATUS_ALLOC_FAILED\b",
    ),
    (
        "torch-cudnn9-device-allocation-failed",
        lambda: RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED"),
        r"\bCUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED\b",
    ),
    (
        # a stand-in carrier: the CUDA driver API's name, as cuGetErrorName users print it
        "cuda-driver-out-of-memory",
        lambda: RuntimeError("[2] Call to cuMemAlloc results in CUDA_ERROR_OUT_OF_MEMORY"),
        r"\bCUDA_ERROR_OUT_OF_MEMORY\b",
    ),
    (
        # a stand-in carrier: the CUDA runtime API's name, as cudaGetErrorName users print it
        "cuda-runtime-memory-allocation",
        lambda: RuntimeError("cudaErrorMemoryAllocation: out of memory"),
        r"\bcudaErrorMemoryAllocation\b",
    ),
    (
        "triton-cuda-memory-pool",
        lambda: _triton(
            "Failed to allocate CUDA memory with byte size 78643200 on GPU 0: "
            "CNMEM_STATUS_OUT_OF_MEMORY"
        ),
        r"\bCNMEM_STATUS_OUT_OF_MEMORY\b",
    ),
    (
        "tensorrt-out-of-memory",
        lambda: _triton(
            "[executionContext.cpp::ExecutionContext::609] Error Code 2: OutOfMemory "
            "(Requested size was 150732800 bytes.)"
        ),
        r"\bError Code \d+: OutOfMemory\b",
    ),
    (
        "tensorrt-cuda-runtime-out-of-memory",
        lambda: _triton(
            "[defaultAllocator.cpp::allocate::20] Error Code 1: Cuda Runtime (out of memory)"
        ),
        r"(?<!DFA )\bout of memory\b",
    ),
    (
        "generic-out-of-memory-any-case",
        lambda: RuntimeError("Failed to set device: Out of memory"),
        r"(?<!DFA )\bout of memory\b",
    ),
]

NEGATIVES: list[tuple[str, Factory]] = [
    ("out-of-range", lambda: IndexError("index 5 is out of range for dimension 0 with size 3")),
    ("memory-leak-warning", lambda: RuntimeError("memory leak warning: 3 tensors were not freed")),
    ("memory-usage-high", lambda: RuntimeError("GPU memory usage is high (92%)")),
    # RE2's per-regex DFA budget (string in libonnxruntime and libtritonserver)
    ("re2-dfa-out-of-memory", lambda: RuntimeError("DFA out of memory: pattern too large")),
    (
        "ort-invalid-dimensions",
        lambda: _ort(
            "InvalidArgument",
            "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions for input: images "
            "for the following indices\n index: 0 Got: 8 Expected: 1\n Please fix either the "
            "inputs/outputs or the model.",
        ),
    ),
    (
        # a bug, not a full device (string in libonnxruntime.so)
        "ort-tried-to-allocate-without-type",
        lambda: _ort(
            "RuntimeException",
            "Tried to allocate without valid type information, ort_value index=3",
        ),
    ),
    (
        "ort-illegal-memory-access",
        lambda: _ort(
            "RuntimeException",
            "CUDA failure 700: an illegal memory access was encountered ; GPU=0 ; "
            "hostname=gpu-node ; expr=cudaStreamSynchronize(stream);",
        ),
    ),
    (
        "ort-tensorrt-build-failed",
        lambda: _ort(
            "EPFail",
            "TensorRT EP could not build engine for fused node: "
            "TensorrtExecutionProvider_TRTKernel_graph_main_0",
        ),
    ),
    (
        "ort-tensorrt-create-engine",
        lambda: _ort("Fail", "TensorRT EP failed to create engine from network."),
    ),
    ("torch-device-assert", lambda: RuntimeError("CUDA error: device-side assert triggered")),
    (
        "torch-cublas-execution-failed",
        lambda: RuntimeError(
            "CUDA error: CUBLAS_STATUS_EXECUTION_FAILED when calling `cublasSgemm( handle, opa, "
            "opb, m, n, k, &alpha, a, lda, b, ldb, &beta, c, ldc)`"
        ),
    ),
    (
        "torch-cudnn-not-supported",
        lambda: RuntimeError(
            "cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if you passed in a "
            "non-contiguous input."
        ),
    ),
    (
        "tensorrt-api-usage",
        lambda: RuntimeError("Error Code 3: API Usage Error (Parameter check failed)"),
    ),
    (
        "triton-cnmem-deallocate",
        lambda: _triton(
            "Failed to deallocate CUDA memory at address 0x7f3a00000000 on GPU 0: "
            "CNMEM_STATUS_INVALID_ARGUMENT"
        ),
    ),
    (
        "triton-cnmem-not-initialized",
        lambda: _triton(
            "Failed to allocate CUDA memory with byte size 1024 on GPU 0: "
            "CNMEM_STATUS_NOT_INITIALIZED"
        ),
    ),
    ("triton-no-pool", lambda: _triton("CudaMemoryManager has no preallocated CUDA memory")),
    # "failed to allocate" of a resource that is no memory (strings in libtritonserver)
    ("curl-handle", lambda: _triton("curl_easy_init failed to allocate.")),
    (
        "retry-token",
        lambda: RuntimeError(
            "IMDS client failed to allocate retry token for requester 0x1 to send resource request."
        ),
    ),
    (
        "triton-unknown-model",
        lambda: _triton("Request for unknown model: 'ocr' is not found", "StatusCode.NOT_FOUND"),
    ),
    ("ours-infer-failed", lambda: ModelInferFailed("ocr/detector: no input named 'images'")),
    ("value-error", lambda: ValueError("expected a state dict, found list")),
]


def _raised_from(cause: BaseException, wrap: Callable[[str], BaseException]) -> BaseException:
    """``wrap(text)`` raised ``from cause``, as our runtimes translate a library's error."""
    try:
        try:
            raise cause
        except BaseException as inner:
            raise wrap(f"ocr/detector: {inner}") from inner
    except BaseException as outer:
        return outer


def _wrapper_for(case_id: str) -> Callable[[str], BaseException]:
    """The error our runtime raises over that library's: Triton's for a Triton response,
    ComponentFailed over our own error, ModelInferFailed for in-process runtimes."""
    if case_id.startswith(("triton", "tensorrt")):
        return lambda text: TritonInferFailed(text, status="StatusCode.INTERNAL")
    if case_id.startswith("ours"):
        return lambda text: ComponentFailed(text, component="ocr")
    return lambda text: ModelInferFailed(text, component="ocr", role="detector")


@pytest.mark.parametrize(
    ("factory", "pattern"), [(f, p) for _, f, p in CASES], ids=[c[0] for c in CASES]
)
def test_the_bare_exception_matches_its_row(factory: Factory, pattern: str) -> None:
    exc = factory()
    match = is_oom(exc)
    assert match is not None, f"no row matched {exc!r}"
    assert match.signature.pattern == pattern
    assert match.exception is exc
    assert match.depth == 0


@pytest.mark.parametrize(("case_id", "factory", "pattern"), CASES, ids=[c[0] for c in CASES])
def test_the_exception_wrapped_by_our_runtime_matches_the_same_row(
    case_id: str, factory: Factory, pattern: str
) -> None:
    cause = factory()
    wrapped = _raised_from(cause, _wrapper_for(case_id))
    assert isinstance(wrapped, ModelManagerError)
    assert wrapped.__cause__ is cause
    match = is_oom(wrapped)
    assert match is not None
    assert match.signature.pattern == pattern
    # the wrapper repeats the library's message; the library's own exception is the record
    assert match.exception is cause
    assert match.depth == 1


@pytest.mark.parametrize("factory", [f for _, f in NEGATIVES], ids=[n[0] for n in NEGATIVES])
def test_other_errors_are_no_oom(factory: Factory) -> None:
    exc = factory()
    assert is_oom(exc) is None, f"{exc!r} matched {is_oom(exc)}"
    assert is_oom(_raised_from(exc, lambda text: ModelInferFailed(text))) is None


def test_every_row_of_the_table_is_the_match_of_a_case() -> None:
    matched = set()
    for _, factory, _ in CASES:
        match = is_oom(factory())
        assert match is not None
        matched.add(match.signature)
    missing = [row.pattern for row in OOM_SIGNATURES if row not in matched]
    assert not missing, f"rows no test exercises: {missing}"


def test_the_rows_are_well_formed() -> None:
    patterns = [row.pattern for row in OOM_SIGNATURES]
    assert len(set(patterns)) == len(patterns)
    for row in OOM_SIGNATURES:
        assert row.library in {
            "modelmanager",
            "torch",
            "onnxruntime",
            "triton",
            "tensorrt",
            "cuda",
            "python",
        }
        assert row.why.strip()
        if row.kind == "type":
            assert re.fullmatch(r"[A-Za-z_][\w.]*\.[A-Za-z_]\w*", row.pattern), row.pattern
            assert row.regex is None
        else:
            assert row.regex is not None
            assert row.regex.flags & re.IGNORECASE
    # the catch-all is last, so that a more precise row names the match
    assert OOM_SIGNATURES[-1].pattern == r"(?<!DFA )\bout of memory\b"


def test_a_row_of_another_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        OomSignature("cuda", "name", "x", "no such kind")  # type: ignore[arg-type]


def test_the_type_wins_over_a_message_of_the_same_chain() -> None:
    """torch's class is the record, although its text also matches the message row."""
    match = is_oom(_raised_from(_torch_oom(), ModelInferFailed))
    assert match is not None
    assert match.signature.kind == "type"
    assert match.to_record() == {
        "library": "torch",
        "kind": "type",
        "pattern": "torch.OutOfMemoryError",
        "exception_type": "torch.OutOfMemoryError",
        "depth": 1,
    }


def test_an_oom_raised_while_handling_another_error_is_found_in_the_context() -> None:
    try:
        try:
            raise _ort("RuntimeException", _BFC)
        except Exception:
            raise KeyError("output")  # noqa: B904  (an error while handling: a context, no cause)
    except KeyError as exc:
        caught: BaseException = exc
    match = is_oom(caught)
    assert match is not None
    assert match.depth == 1


def test_a_context_suppressed_by_from_none_is_not_looked_at() -> None:
    """``raise ... from None`` says the context is not the cause: what the traceback hides,
    the check ignores too."""
    try:
        try:
            raise MemoryError
        except MemoryError:
            raise ModelInferFailed("ocr/detector: the runtime is not open") from None
    except ModelInferFailed as exc:
        caught = exc
    assert caught.__context__ is not None
    assert is_oom(caught) is None


def test_a_cycle_in_the_chain_ends_the_walk() -> None:
    first, second = RuntimeError("first"), RuntimeError("second")
    first.__context__, second.__context__ = second, first
    assert is_oom(first) is None

    looped = RuntimeError("looped")
    looped.__cause__ = looped
    assert is_oom(looped) is None

    oom_error = _ort("RuntimeException", _BFC)
    wrapper = ModelInferFailed("ocr/detector: inference failed")
    wrapper.__cause__, oom_error.__context__ = oom_error, wrapper
    match = is_oom(wrapper)
    assert match is not None
    assert match.exception is oom_error


def _chain_of(length: int, root: BaseException) -> BaseException:
    """``root`` behind ``length - 1`` wrappers."""
    current = root
    for i in range(length - 1):
        outer = RuntimeError(f"wrapper {i}")
        outer.__cause__ = current
        current = outer
    return current


def test_the_walk_is_bounded() -> None:
    assert is_oom(_chain_of(MAX_CHAIN, MemoryError())) is not None
    assert is_oom(_chain_of(MAX_CHAIN + 1, MemoryError())) is None


def test_a_broken_str_does_not_hide_the_rest_of_the_chain() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text")

    outer = Unprintable()
    outer.__cause__ = RuntimeError("CUDA error: out of memory")
    match = is_oom(outer)
    assert isinstance(match, OomMatch)
    assert match.depth == 1
    assert is_oom(Unprintable()) is None


def test_the_docstring_example_runs() -> None:
    result = doctest.testmod(oom, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def test_importing_it_imports_no_backend() -> None:
    heavy = ("torch", "onnxruntime", "tritonclient")
    code = (
        "import json, sys, modelmanager.resources.oom;"
        f"print(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []
