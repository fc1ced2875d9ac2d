"""Where a spec's local weights are, and errors that name the spec they concern.

Shared by the manager (verifying weights) and the Triton repository builder
(copying them): both refuse a path whose real location leaves models_root
(R-SPEC-5), and both name component, role and field in what they raise.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modelmanager.errors import InvalidModelSpec, ModelArtifactMissing, ModelManagerError
from modelmanager.mapping.spec import ResolvedModelSpec

__all__ = [
    "about",
    "annotate",
    "artifact_field",
    "inside_root",
    "is_inside",
    "real_path",
    "real_path_and_stat",
]


def real_path(path: str | os.PathLike[str]) -> str:
    """``os.path.realpath``, in 3 syscalls on Linux instead of one lstat per path component.

    The kernel resolves the path when opening it with O_PATH; /proc names the result.
    Anywhere that fails (no /proc, a missing file), the portable function answers.
    """
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except (AttributeError, OSError):
        return os.path.realpath(path)
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(path)
    finally:
        os.close(fd)


def real_path_and_stat(path: str) -> tuple[str, os.stat_result] | None:
    """``(real_path(path), os.stat(path))`` of one existing path, resolved once (Linux).

    One ``O_PATH`` open serves both: the stat is of the very file the real path
    names. None where that is not possible (no ``O_PATH`` or /proc, a missing
    path): the caller then takes the portable way, which also reports the error.
    """
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except (AttributeError, OSError):
        return None
    try:
        return os.readlink(f"/proc/self/fd/{fd}"), os.fstat(fd)
    except OSError:
        return None
    finally:
        os.close(fd)


def is_inside(real: str, real_root: str) -> bool:
    """Whether the real path ``real`` is ``real_root`` or lies under it."""
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def inside_root(path: Path, real_root: str, *, relpath: str, field: str) -> Path:
    """``path``, refused if its real location (after symlinks) leaves ``real_root``.

    Raises:
        InvalidModelSpec: naming ``field`` and where the path really leads.
    """
    real = real_path(path)
    if not is_inside(real, real_root):
        raise InvalidModelSpec(
            f"{relpath} resolves to {real}, outside models_root {real_root}",
            path=str(path),
            field=field,
        )
    return path


def artifact_field(spec: ResolvedModelSpec) -> str:
    """The mapping field that names the spec's weights."""
    return "artifacts.weights_path" if spec.engine == "torch" else "artifacts.onnx_path"


@contextmanager
def about(spec: ResolvedModelSpec) -> Iterator[None]:
    """Name the spec's component, role and weights field in any error raised inside."""
    try:
        yield
    except ModelManagerError as exc:
        annotate(exc, spec)
        raise


def annotate(exc: ModelManagerError, spec: ResolvedModelSpec) -> None:
    """Add the spec's component, role and field to ``exc`` (idempotent)."""
    exc.fields = {
        "component": spec.component_name,
        "role": spec.role,
        "field": artifact_field(spec),
        **exc.fields,
    }
    prefix = f"{spec.component_name}/{spec.role}: "
    if not exc.message.startswith(prefix):
        exc.message = prefix + exc.message
    if isinstance(exc, ModelArtifactMissing) and "nothing is downloaded" not in exc.message:
        exc.message += " (weights are prepared beforehand; nothing is downloaded)"
    exc.args = (exc.message,)
