"""The external data files an ONNX model names (R-DIG, issue 12).

An ONNX file saved with ``save_as_external_data=True`` keeps its tensors in other
files, named by each tensor's ``external_data`` entry ``location``, relative to
the model file's directory; onnxruntime reads them when it opens the model. A
digest of the ``.onnx`` file alone would not cover them, so the digester asks
this module which files a model names, once, when it hashes the model file (a
cache miss), and keeps the answer in the digest cache beside the digest.

Only the ONNX protobuf can answer (onnxruntime cannot list them), through the
``onnx`` package of the ``onnx`` extra. It is needed only for a file that holds
the bytes ``location`` at all: every external-data entry must have that key
(ONNX IR, ``TensorProto.external_data``), and a protobuf string is stored as its
bytes, so a file without them names no external data and is not parsed.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from typing import Any

from modelmanager.errors import OnnxRuntimeMissing

__all__ = ["external_locations", "is_onnx_name"]

_INSTALL_HINT = "pip install 'modelmanager[onnx]'"
_KEY = b"location"
_CHUNK = 1 << 20


def is_onnx_name(path: str) -> bool:
    """Whether ``path`` is named like an ONNX model (``*.onnx``, any case)."""
    return path[-5:].lower() == ".onnx"


def external_locations(path: str) -> list[str]:
    """The ``location`` of every external data file the ONNX model at ``path`` names, each
    once, in the order the model first names it; ``[]`` for a model with none.

    A file that is not an ONNX protobuf names none (onnxruntime cannot open it either).

    Raises:
        OnnxRuntimeMissing: the file may name external data and ``onnx`` is not installed
            (code ``onnxruntime_missing``: the ``onnx`` extra installs both).
        OSError: the file cannot be read.
    """
    if not _holds_key(path):
        return []
    try:
        import onnx
    except ImportError as exc:
        raise OnnxRuntimeMissing(
            f"reading which external data files {path} names needs the onnx package: "
            f"{_INSTALL_HINT}",
            path=path,
            hint=_INSTALL_HINT,
        ) from exc
    try:
        model = onnx.load_model(path, load_external_data=False)
    except Exception:  # not an ONNX protobuf (DecodeError and kin): nothing to load from it
        return []
    found: dict[str, None] = {}
    for tensor in _tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            for entry in tensor.external_data:
                if entry.key == "location":
                    found[entry.value] = None
    return list(found)


def _holds_key(path: str) -> bool:
    """Whether the file holds the bytes ``location`` anywhere (mapped, else read in chunks)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return False
        try:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
                return view.find(_KEY) != -1
        except (OSError, ValueError):  # a file system that cannot map files
            pass
        tail = b""
        while chunk := f.read(_CHUNK):
            if _KEY in tail + chunk[: len(_KEY) - 1] or _KEY in chunk:
                return True
            tail = chunk[-(len(_KEY) - 1) :]
        return False


def _tensors(model: Any) -> Iterator[Any]:
    """Every TensorProto of the model: initializers, sparse ones, node attributes, in every
    subgraph and local function (what onnxruntime may load external data for)."""
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        for node in function.node:
            yield from _node_tensors(node)


def _graph_tensors(graph: Any) -> Iterator[Any]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        yield from _node_tensors(node)


def _node_tensors(node: Any) -> Iterator[Any]:
    for attribute in node.attribute:
        if attribute.HasField("t"):
            yield attribute.t
        yield from attribute.tensors
        if attribute.HasField("sparse_tensor"):
            yield attribute.sparse_tensor.values
            yield attribute.sparse_tensor.indices
        for sparse in attribute.sparse_tensors:
            yield sparse.values
            yield sparse.indices
        if attribute.HasField("g"):
            yield from _graph_tensors(attribute.g)
        for graph in attribute.graphs:
            yield from _graph_tensors(graph)
