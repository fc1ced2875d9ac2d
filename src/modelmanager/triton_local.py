"""Serve a mapping's in-process ONNX models from a local Triton server, for the same run.

``modelmanager run --runtime triton`` runs the same components against Triton:
:func:`served_by_triton` turns every ``runtime: inprocess`` ONNX entry into a
``runtime: triton`` entry for the same file — model name ``<component>.<role>``,
version 1, the file's own inputs and outputs, ``preprocess_preset`` = the
entry's ``artifacts.preprocess_id`` — and :func:`local_triton` builds the
repository of those entries (:func:`~modelmanager.triton_repo.build_repository`,
which verifies every digest), starts a :class:`~modelmanager.triton_server.TritonServer`
on free loopback ports, and yields the mapping bound to it.

Everything else of an entry stays (name, version, digest, precision, device),
so a component's ``models_used`` differs only in ``runtime``: its signature and
cache keys are those of a Triton run, never confused with the in-process ones.
Entries of other engines (torch) and existing Triton entries are left as they are.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .locate import about, inside_root, real_path
from .runtimes.onnx import describe_onnx
from .spec import ResolvedMapping, parse_mapping
from .triton_repo import build_repository
from .triton_server import TritonServer

__all__ = ["local_triton", "served_by_triton"]


def served_by_triton(mapping: ResolvedMapping, models_root: Path, grpc_url: str) -> ResolvedMapping:
    """``mapping`` with every in-process ONNX entry served by the Triton at ``grpc_url``.

    Raises:
        ModelLoadFailed: an ONNX file cannot be opened to read its inputs and outputs.
        InvalidModelSpec: an entry's ``artifacts.onnx_path`` leaves ``models_root``.
    """
    document = mapping.to_json_dict()
    real_root = real_path(models_root)
    for spec in mapping.iter_specs():
        if spec.runtime != "inprocess" or spec.engine != "onnx" or spec.artifacts.onnx_path is None:
            continue
        with about(spec):
            path = inside_root(
                models_root / spec.artifacts.onnx_path,
                real_root,
                relpath=spec.artifacts.onnx_path,
                field="artifacts.onnx_path",
            )
            described = describe_onnx(path)
        entry = document["components"][spec.component_name][spec.role]
        entry["runtime"] = "triton"
        entry["triton"] = {
            "grpc_url": grpc_url,
            "model_name": f"{spec.component_name}.{spec.role}",
            "model_version": 1,
            "inputs": [t.model_dump(mode="json") for t in described.inputs],
            "outputs": [t.model_dump(mode="json") for t in described.outputs],
            "preprocess_preset": spec.artifacts.preprocess_id,
        }
    return parse_mapping(document, source=f"{mapping.profile or 'mapping'} served by Triton")


@contextmanager
def local_triton(
    mapping: ResolvedMapping, models_root: Path, *, work_dir: Path | None = None
) -> Iterator[ResolvedMapping]:
    """Build the repository of ``mapping``'s ONNX entries, serve it, yield the served mapping.

    The repository and the server's log go under ``work_dir`` (default: a
    temporary directory removed afterwards); the server stops on exit.

    Raises:
        ModelMappingMissing: the mapping has no in-process ONNX entry to serve.
        WeightsDigestMismatch, ModelArtifactMissing: a file is not the pinned one.
        TritonUnavailable: the server did not start (its log's errors are in the message).
    """
    models_root = Path(models_root).absolute()
    with tempfile.TemporaryDirectory(prefix="modelmanager-triton-") as scratch:
        base = Path(scratch) if work_dir is None else Path(work_dir)
        repository = base / "repository"
        # The repository does not depend on the endpoint: bind it once the server has ports.
        build_repository(
            served_by_triton(mapping, models_root, "127.0.0.1:8001"),
            models_root,
            repository,
            force=True,
        )
        with TritonServer(repository, work_dir=base / "server") as server:
            yield served_by_triton(mapping, models_root, server.grpc_url)
