"""Serve a mapping's in-process ONNX models from a local Triton server, for the same run.

``modelmanager run --runtime triton`` runs the same components against Triton:
:func:`served_by_triton` turns every ``runtime: inprocess`` ONNX entry into a
``runtime: triton`` entry for the same file — model name ``<component>.<role>``,
version 1, the file's own inputs and outputs, ``preprocess_preset`` = the
entry's ``artifacts.preprocess_id`` — and :func:`local_triton` builds the
repository of those entries (:func:`~modelmanager.triton.repo.build_repository`,
which verifies every digest), starts a :class:`~modelmanager.triton.server.TritonServer`
on free loopback ports, and yields the mapping bound to it.

Everything else of an entry stays (name, version, digest, precision, device),
so a component's ``models_used`` differs only in ``runtime``: its signature and
cache keys are those of a Triton run, never confused with the in-process ones.
Entries of other engines (torch) and the mapping's own Triton entries are left
as they are, and stay out of the local repository. Each ONNX file is opened
once, to read its inputs and outputs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from modelmanager.mapping.spec import ResolvedMapping, parse_mapping
from modelmanager.runtimes.onnx import describe_onnx
from modelmanager.triton.repo import build_repository
from modelmanager.triton.server import TritonServer
from modelmanager.weights.locate import about, inside_root, real_path

__all__ = ["local_triton", "served_by_triton"]


def served_by_triton(mapping: ResolvedMapping, models_root: Path, grpc_url: str) -> ResolvedMapping:
    """``mapping`` with every in-process ONNX entry served by the Triton at ``grpc_url``.

    Raises:
        ModelLoadFailed: an ONNX file cannot be opened to read its inputs and outputs.
        InvalidModelSpec: an entry's ``artifacts.onnx_path`` leaves ``models_root``.
    """
    document, _ = _served_document(mapping, models_root, grpc_url)
    return parse_mapping(document, source=_source(mapping))


@contextmanager
def local_triton(
    mapping: ResolvedMapping, models_root: Path, *, work_dir: Path | None = None
) -> Iterator[ResolvedMapping]:
    """Build the repository of ``mapping``'s ONNX entries, serve it, yield the served mapping.

    Only the entries turned into Triton entries go into the repository; the
    mapping's own Triton entries keep their servers. The repository and the
    server's log go under ``work_dir`` (default: a temporary directory removed
    afterwards); the server stops on exit.

    Raises:
        ModelMappingMissing: the mapping has no in-process ONNX entry to serve.
        WeightsDigestMismatch, ModelArtifactMissing: a file is not the pinned one.
        TritonUnavailable: the server did not start (its log's errors are in the message).
    """
    models_root = Path(models_root).absolute()
    # The repository does not depend on the endpoint: bind it once the server has its ports.
    document, served = _served_document(mapping, models_root, grpc_url="127.0.0.1:1")
    ours = {
        "format_version": document["format_version"],
        "profile": document["profile"],
        "components": {
            c: {r: e for r, e in roles.items() if (c, r) in served}
            for c, roles in document["components"].items()
        },
    }
    with tempfile.TemporaryDirectory(prefix="modelmanager-triton-") as scratch:
        base = Path(scratch) if work_dir is None else Path(work_dir)
        repository = base / "repository"
        build_repository(parse_mapping(ours), models_root, repository, force=True)
        with TritonServer(repository, work_dir=base / "server") as server:
            for component, role in served:
                document["components"][component][role]["triton"]["grpc_url"] = server.grpc_url
            yield parse_mapping(document, source=_source(mapping))


def _served_document(
    mapping: ResolvedMapping, models_root: Path, grpc_url: str
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The mapping's document with its in-process ONNX entries made Triton entries, and
    which (component, role) entries those are."""
    document = mapping.to_json_dict()
    served = []
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
        served.append((spec.component_name, spec.role))
    return document, served


def _source(mapping: ResolvedMapping) -> str:
    return f"{mapping.profile or 'mapping'} served by Triton"
