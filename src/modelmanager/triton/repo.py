"""Build a Triton model repository from the ``runtime: triton`` entries of a mapping.

Every Triton entry names a model (``triton.model_name``) and pins one integer
version (``triton.model_version``); its weights are the ONNX file at
``artifacts.onnx_path`` (relative to ``models_root``), verified against the
entry's ``weights_digest`` before it is copied. Entries naming the same model
become the versions of one Triton model, which must agree on inputs, outputs and
``preprocess_preset``. The ONNX file is run by onnxruntime (CPU) inside Triton's
Python backend, so the repository works on a server without the ONNX Runtime
backend, such as the CPU ``tritonserver`` of the nvidia-pytriton wheel::

    <out>/
      <model>/                     one per distinct triton.model_name
        config.pbtxt               backend "python"; input/output; max_batch_size
                                   (64 + dynamic_batching when every tensor is
                                   batched [-1, ...], else 0 and full dims);
                                   instance_group KIND_CPU x1;
                                   version_policy { specific { versions: [...] } }
                                   listing exactly the pinned versions;
                                   parameters { key: "preprocess_preset" ... } (R-RT-6)
                                   parameters { key: "model_metadata.<k>" ... } one per
                                   metadata_props entry of the ONNX file (a
                                   recognizer's character set, say), which
                                   the Triton handle reads back
        <version>/                 one per pinned triton.model_version (1, 2, ...)
          model.onnx               copy of the verified artifacts.onnx_path
          model.py                 TritonPythonModel running model.onnx with onnxruntime

The generated ``model.py`` begins by putting the building interpreter's
site-packages on ``sys.path``: the backend stub does not inherit ``PYTHONPATH``,
and needs numpy and onnxruntime from there. A repository is therefore tied to
the environment that built it (rebuild it after moving the virtualenv).

The repository is written atomically: it is built in a temporary directory next
to ``out`` and renamed into place, so a reader (or a server) never sees half of
it. An existing non-empty ``out`` is replaced only with ``force=True``, and only
once the new repository is complete; a failed build leaves it untouched.

>>> from modelmanager.mapping.sources import resolve_mapping  # doctest: +SKIP
>>> mapping, _ = resolve_mapping(profile_path="profile.yaml")  # doctest: +SKIP
>>> build_repository(mapping, Path("models"), Path("/srv/triton-repo"))  # doctest: +SKIP
[RepositoryModel(name='scene_scorer', versions=(3,), path=PosixPath('/srv/triton-repo/scene_scorer'))]
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from modelmanager.errors import (
    ConfigurationInvalid,
    InvalidModelSpec,
    ModelArtifactMissing,
    ModelMappingMissing,
    WeightsDigestMismatch,
)
from modelmanager.mapping.spec import NAME, ResolvedMapping, ResolvedModelSpec, TensorSpec
from modelmanager.runtimes.base import MODEL_METADATA_PREFIX
from modelmanager.runtimes.onnx import describe_onnx
from modelmanager.store.atomic import atomic_write, fsync_dir, write_bytes
from modelmanager.triton.model_py import render_model_py
from modelmanager.weights.digest import CHUNK_SIZE, Digester
from modelmanager.weights.locate import about, inside_root, real_path

__all__ = [
    "BATCH_MAX_SIZE",
    "RepositoryModel",
    "build_repository",
    "render_config",
]

logger = logging.getLogger(__name__)

BATCH_MAX_SIZE = 64
"""``max_batch_size`` of a model whose every input and output is batched (``[-1, ...]``)."""

SCALAR_DIMS = "    dims: [ 1 ]\n"
"""Triton has no rank-0 tensors: a scalar is declared [1]; the generated model.py hands it
to onnxruntime as the scalar the ONNX file declares."""

_TYPE_NAMES = {
    "BOOL": "TYPE_BOOL",
    "UINT8": "TYPE_UINT8",
    "UINT16": "TYPE_UINT16",
    "UINT32": "TYPE_UINT32",
    "UINT64": "TYPE_UINT64",
    "INT8": "TYPE_INT8",
    "INT16": "TYPE_INT16",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "FP16": "TYPE_FP16",
    "FP32": "TYPE_FP32",
    "FP64": "TYPE_FP64",
    "BF16": "TYPE_BF16",
    "BYTES": "TYPE_STRING",
}


@dataclass(frozen=True, slots=True)
class RepositoryModel:
    """One model written into a repository.

    Attributes:
        name: the Triton model name (its directory under the repository).
        versions: the pinned versions written, ascending.
        path: the model's directory in the final repository.
    """

    name: str
    versions: tuple[int, ...]
    path: Path


@dataclass(frozen=True, slots=True)
class _Version:
    number: int
    source: Path
    spec: ResolvedModelSpec


@dataclass(frozen=True, slots=True)
class _Model:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    preprocess_preset: str | None
    versions: tuple[_Version, ...]


def build_repository(
    mapping: ResolvedMapping,
    models_root: Path,
    out: Path,
    *,
    force: bool = False,
    digester: Digester | None = None,
) -> list[RepositoryModel]:
    """Write the Triton model repository of every ``runtime: triton`` entry of ``mapping``.

    Args:
        mapping: the resolved mapping; entries of other runtimes are ignored.
        models_root: root of the entries' ``artifacts.onnx_path``.
        out: the repository directory to write (created; its parent too).
        force: replace an existing non-empty ``out`` (once the new one is complete).
        digester: verifies the ONNX files; default one without a digest cache.

    Returns:
        The models written, sorted by name.

    Raises:
        ModelMappingMissing: the mapping has no ``runtime: triton`` entry.
        InvalidModelSpec: an entry has no ``artifacts.onnx_path``, its path leaves
            ``models_root``, its ``triton.model_name`` cannot be a directory name, or
            entries of one model disagree (digest of one version, inputs, outputs,
            ``preprocess_preset``); names the component, role and field.
        ModelArtifactMissing: an ONNX file is not there.
        WeightsDigestMismatch: an ONNX file is not the one the entry pins.
        ConfigurationInvalid: ``out`` is a file, or a non-empty directory and
            ``force`` is not set.
    """
    out = Path(out).absolute()
    models_root = Path(models_root).absolute()
    _check_target(out, force=force)
    models = _plan(mapping, models_root)
    digester = digester if digester is not None else Digester()
    for model in models:
        for version in model.versions:
            with about(version.spec):
                digester.verify(version.source, version.spec.weights_digest)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".building", dir=out.parent))
    try:
        os.chmod(staging, 0o755)  # mkdtemp's 0700 would hide it from a server run as another user
        for model in models:
            _write_model(staging / model.name, model)
        fsync_dir(staging)
        _check_target(out, force=force)  # it may have appeared while building
        _move_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    written = [
        RepositoryModel(m.name, tuple(v.number for v in m.versions), out / m.name) for m in models
    ]
    for entry in written:
        logger.info(
            "wrote Triton model %s versions %s to %s",
            entry.name,
            ", ".join(map(str, entry.versions)),
            entry.path,
        )
    return written


def render_config(
    name: str,
    *,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    versions: Sequence[int],
    preprocess_preset: str | None = None,
    model_metadata: Mapping[str, str] | None = None,
) -> str:
    """The ``config.pbtxt`` of one model of the repository (see the module docstring).

    Args:
        name: the Triton model name.
        inputs: the model's inputs as the mapping declares them (``-1`` = free dim).
        outputs: its outputs.
        versions: the versions the server loads (``version_policy.specific``).
        preprocess_preset: carried as the string parameter ``preprocess_preset``.
        model_metadata: the ONNX file's metadata, carried as string parameters
            ``model_metadata.<key>`` (:data:`MODEL_METADATA_PREFIX`).
    """
    # Batching needs a batch dim on every tensor and at least one dim besides it.
    tensors = [*inputs, *outputs]
    batched = all(len(t.shape) >= 2 and t.shape[0] == -1 for t in tensors)
    lines = [
        f"name: {_quote(name)}",
        'backend: "python"',
        f"max_batch_size: {BATCH_MAX_SIZE if batched else 0}",
    ]
    for kind, group in (("input", inputs), ("output", outputs)):
        lines.append(f"{kind} [")
        blocks = []
        for tensor in group:
            dims = tensor.shape[1:] if batched else tensor.shape
            shape = f"    dims: [ {', '.join(map(str, dims))} ]\n" if dims else SCALAR_DIMS
            blocks.append(
                "  {\n"
                f"    name: {_quote(tensor.name)}\n"
                f"    data_type: {_TYPE_NAMES[tensor.dtype]}\n"
                f"{shape}"
                "  }"
            )
        lines.append(",\n".join(blocks))
        lines.append("]")
    lines.append("instance_group [ { kind: KIND_CPU, count: 1 } ]")
    if batched:
        lines.append("dynamic_batching { }")
    numbers = ", ".join(str(v) for v in sorted(versions))
    lines.append(f"version_policy: {{ specific: {{ versions: [ {numbers} ] }} }}")
    parameters = {} if preprocess_preset is None else {"preprocess_preset": preprocess_preset}
    for key, value in sorted((model_metadata or {}).items()):
        parameters[MODEL_METADATA_PREFIX + key] = value
    for key, value in parameters.items():
        lines.append(
            f"parameters {{\n  key: {_quote(key)}\n  value {{ string_value: {_quote(value)} }}\n}}"
        )
    return "\n".join(lines) + "\n"


def _plan(mapping: ResolvedMapping, models_root: Path) -> list[_Model]:
    """Group the Triton entries by model and check that they agree."""
    by_model: dict[str, list[tuple[ResolvedModelSpec, Path]]] = {}
    real_root = real_path(models_root)
    for spec in mapping.iter_specs():
        if spec.runtime != "triton" or spec.triton is None:
            continue
        with about(spec):
            if spec.artifacts.onnx_path is None:
                raise InvalidModelSpec(
                    "no artifacts.onnx_path: a Triton repository is built from the ONNX file "
                    "of each triton entry",
                    field="artifacts.onnx_path",
                )
            # A Triton model name is also a directory name in the repository.
            if not NAME.fullmatch(spec.triton.model_name):
                raise InvalidModelSpec(
                    f"triton.model_name {spec.triton.model_name!r} cannot name a directory of "
                    "the repository (letters, digits, '_', '.', '-')",
                    field="triton.model_name",
                )
            relpath = spec.artifacts.onnx_path
            source = inside_root(
                models_root / relpath, real_root, relpath=relpath, field="artifacts.onnx_path"
            )
        by_model.setdefault(spec.triton.model_name, []).append((spec, source))
    if not by_model:
        raise ModelMappingMissing(
            "the mapping has no runtime: triton entry; there is no repository to build",
            profile=mapping.profile,
        )
    return [_plan_model(name, entries) for name, entries in sorted(by_model.items())]


def _plan_model(name: str, entries: list[tuple[ResolvedModelSpec, Path]]) -> _Model:
    first, _ = entries[0]
    assert first.triton is not None
    versions: dict[int, _Version] = {}
    for spec, source in entries:
        triton = spec.triton
        assert triton is not None
        for field, value, expected in (
            ("triton.inputs", triton.inputs, first.triton.inputs),
            ("triton.outputs", triton.outputs, first.triton.outputs),
            ("triton.preprocess_preset", triton.preprocess_preset, first.triton.preprocess_preset),
        ):
            if value != expected:
                raise _conflict(
                    spec,
                    field,
                    f"Triton model {name!r}: {field} differs from that of "
                    f"{first.component_name}/{first.role}; the versions of one model share "
                    "their inputs, outputs and preprocess_preset",
                )
        seen = versions.get(triton.model_version)
        if seen is None:
            versions[triton.model_version] = _Version(triton.model_version, source, spec)
        elif seen.spec.weights_digest != spec.weights_digest:
            raise _conflict(
                spec,
                "weights_digest",
                f"Triton model {name!r} version {triton.model_version} is pinned with "
                f"{spec.weights_digest} here and with {seen.spec.weights_digest} by "
                f"{seen.spec.component_name}/{seen.spec.role}",
            )
    return _Model(
        name=name,
        inputs=first.triton.inputs,
        outputs=first.triton.outputs,
        preprocess_preset=first.triton.preprocess_preset,
        versions=tuple(versions[v] for v in sorted(versions)),
    )


def _conflict(spec: ResolvedModelSpec, field: str, reason: str) -> InvalidModelSpec:
    return InvalidModelSpec(
        f"{spec.component_name}/{spec.role}: {reason}",
        component=spec.component_name,
        role=spec.role,
        field=field,
    )


def _check_target(out: Path, *, force: bool) -> None:
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ConfigurationInvalid(
            f"{out} exists and is not a directory; cannot write a repository there",
            path=str(out),
        )
    if not force and out.is_dir() and any(out.iterdir()):
        raise ConfigurationInvalid(
            f"{out} exists and is not empty; pass force=True (--force) to replace it",
            path=str(out),
        )


def _write_model(directory: Path, model: _Model) -> None:
    directory.mkdir()
    model_py = render_model_py().encode("utf-8")
    for version in model.versions:
        version_dir = directory / str(version.number)
        version_dir.mkdir()
        with about(version.spec):
            _copy_verified(version.source, version_dir / "model.onnx", version.spec.weights_digest)
        write_bytes(version_dir / "model.py", model_py)
    config = render_config(
        model.name,
        inputs=model.inputs,
        outputs=model.outputs,
        versions=[v.number for v in model.versions],
        preprocess_preset=model.preprocess_preset,
        model_metadata=_shared_metadata(directory, model),
    )
    write_bytes(directory / "config.pbtxt", config.encode("utf-8"))


def _shared_metadata(directory: Path, model: _Model) -> dict[str, str]:
    """The ONNX metadata of the model's versions (copied under ``directory``), which must agree."""
    first: dict[str, str] | None = None
    for version in model.versions:
        metadata = describe_onnx(directory / str(version.number) / "model.onnx").metadata
        if first is None:
            first = metadata
        elif metadata != first:
            raise _conflict(
                version.spec,
                "artifacts.onnx_path",
                f"Triton model {model.name!r}: the ONNX metadata of version {version.number} "
                f"differs from that of version {model.versions[0].number}; the versions of one "
                "model share their config, and with it the metadata",
            )
    return first or {}


def _copy_verified(source: Path, target: Path, expected: str) -> None:
    """Copy ``source``, hashing the bytes copied: the repository holds exactly what was pinned."""
    try:
        src = open(source, "rb")  # noqa: SIM115 - closed below, once copied
    except FileNotFoundError:
        raise ModelArtifactMissing(f"{source} does not exist", path=str(source)) from None
    with src:
        _, actual = atomic_write(target, lambda dst: shutil.copyfileobj(src, dst, CHUNK_SIZE))
    if actual != expected:
        raise WeightsDigestMismatch(
            f"{source} changed while being copied: it now hashes to {actual}, "
            f"but the mapping pins {expected}",
            path=str(source),
            expected=expected,
            actual=actual,
        )


def _move_into_place(staging: Path, out: Path) -> None:
    """Rename the finished ``staging`` to ``out``, replacing whatever ``out`` holds."""
    if not out.exists():
        os.rename(staging, out)
    elif not any(out.iterdir()):
        out.rmdir()
        os.rename(staging, out)
    else:
        # Two renames: ``out`` is missing for an instant, never half-written.
        retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        retired.rmdir()
        os.rename(out, retired)
        try:
            os.rename(staging, out)
        except BaseException:
            os.rename(retired, out)
            raise
        shutil.rmtree(retired, ignore_errors=True)
        logger.info("replaced the repository %s", out)
    fsync_dir(out.parent)


def _quote(text: str) -> str:
    """A protobuf text-format string literal (UTF-8; quotes, backslashes, controls escaped)."""
    parts = []
    for byte in text.encode("utf-8"):
        if byte in (0x22, 0x5C):
            parts.append("\\" + chr(byte))
        elif byte < 0x20 or byte == 0x7F:
            parts.append(f"\\{byte:03o}")
        else:
            parts.append(chr(byte) if byte < 0x80 else f"\\{byte:03o}")
    return '"' + "".join(parts) + '"'
