"""NPZ artifacts: atomic writes, recorded size and sha256, checked reads (R-ART-1, D5).

Layout under the artifact root (every id is a path-safe name, see
:class:`~modelmanager.mapping.spec.RunContext`)::

    <root>/
    └── <platform_id>/
        └── <video_id>/                         delete-by-video = this subtree (R-GC-4)
            ├── <component>/
            │   └── <run_id>/
            │       ├── <component>.npz         artifact_relpath(...)
            │       └── .<component>.npz.<16 hex>.tmp   a write in progress or a crashed one
            ├── runs/
            │   └── <run_id>/
            │       └── manifest.json           manifest_relpath(...), see modelmanager.store.manifest
            └── _tmp/
                └── <run_id>/
                    └── <name>/                 temp_relpath(...), temp_dir(...): frames_dir and
                                                other scratch data, expired by GC (R-GC-3)

``_tmp`` cannot be a component's name (a name starts with a letter or digit).

An artifact is a standard, uncompressed ``.npz`` (a zip of ``.npy`` members,
LIMITS.md: compression costs 40x). Besides the caller's arrays it holds one
reserved member::

    <component>.npz
    ├── __meta__.npy      uint8[n]: canonical UTF-8 JSON of ArtifactMeta
    ├── <array>.npy       the caller's arrays, in the order given
    └── ...

so a reader never needs pickle (``np.load(..., allow_pickle=False)``). The zip
entries carry a fixed timestamp, so the bytes depend only on the arrays and meta.

A write goes to a uniquely named temp file in the target directory, hashed as
it is written, then fsync, ``os.replace`` onto the final name, fsync of the
directory. A crash at any point leaves the final name absent (or the previous
complete file) and at most a ``.<name>.<16 hex>.tmp`` file, which readers never
open and garbage collection may delete (:func:`is_temp_name`).

A reader trusts nothing it has not checked: :func:`check_artifact` compares
size (a stat, no hashing when it differs), then sha256, then the meta's
format and ``schema_version`` against an :class:`ArtifactRecord` kept elsewhere
(the manifest, the run index), and returns an :class:`ArtifactCheck`;
:func:`read_artifact` raises :class:`~modelmanager.errors.ArtifactInvalid`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import stat
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Annotated, Any, BinaryIO, ClassVar, Final, Literal

import numpy as np
from numpy.lib import format as npy_format
from numpy.typing import NDArray
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from modelmanager.errors import ArtifactInvalid
from modelmanager.mapping.canonical import canonical_json, check_sha256_tagged
from modelmanager.mapping.spec import ModelUsed, RunContext

__all__ = [
    "ARTIFACT_FORMAT",
    "META_KEY",
    "TEMP_DIR_NAME",
    "ArtifactCheck",
    "ArtifactMeta",
    "ArtifactProblem",
    "ArtifactRecord",
    "Sha256Tagged",
    "UtcTimestamp",
    "artifact_relpath",
    "atomic_write",
    "check_artifact",
    "is_temp_name",
    "manifest_relpath",
    "read_artifact",
    "resolve_relpath",
    "temp_dir",
    "temp_relpath",
    "utc_timestamp",
    "write_artifact",
]

TEMP_DIR_NAME: Final = "_tmp"
"""The per-video directory of runs' temporary data (never a component name)."""

ARTIFACT_FORMAT: Final = "modelmanager.npz/1"
"""The container format written into every meta; a reader refuses any other."""

META_KEY = "__meta__"
"""The reserved array name holding the meta."""

ArtifactProblem = Literal["missing", "size", "sha256", "unreadable", "format", "schema"]

_CHUNK = 1 << 20
_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{16}\.tmp")
_TEMP_AREA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# Zip entries get this fixed time instead of "now": same content, same bytes.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


# --- shared field rules (also used by modelmanager.store.manifest) -----------------


def _utc_iso(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO-8601 timestamp") from None
    offset = parsed.utcoffset()
    if offset is None or offset.total_seconds() != 0:
        raise ValueError(f"{value!r} is not in UTC (end it with 'Z' or '+00:00')")
    return value


def _relpath(value: str) -> str:
    path = PurePosixPath(value)
    if (
        not value
        or "\\" in value
        or path.is_absolute()
        or any(part in {"..", "."} for part in value.split("/"))
        or value.endswith("/")
    ):
        raise ValueError(f"{value!r} is not a normalized POSIX path relative to the artifact root")
    return value


UtcTimestamp = Annotated[str, Field(strict=True), AfterValidator(_utc_iso)]
"""An ISO-8601 timestamp in UTC, as :func:`utc_timestamp` writes it."""

Sha256Tagged = Annotated[
    str, Field(strict=True, pattern=r"^sha256:[0-9a-f]{64}$"), AfterValidator(check_sha256_tagged)
]
"""``sha256:<64 lowercase hex>``."""


def utc_timestamp(when: datetime | None = None) -> str:
    """``when`` (default: now) as ISO-8601 UTC with microseconds, e.g. ``2025-01-02T03:04:05.000006Z``.

    Args:
        when: an aware datetime; naive ones are refused (their zone is unknown).

    Raises:
        ValueError: ``when`` is naive.
    """
    if when is None:
        when = datetime.now(UTC)
    elif when.tzinfo is None:
        raise ValueError("a naive datetime has no time zone; pass an aware one")
    return when.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


# --- layout -------------------------------------------------------------------


def artifact_relpath(platform_id: str, video_id: str, component: str, run_id: str) -> str:
    """``<platform_id>/<video_id>/<component>/<run_id>/<component>.npz``.

    Args:
        platform_id, video_id, run_id: from the (validated) run context.
        component: the component's name, as in the mapping.
    """
    return f"{platform_id}/{video_id}/{component}/{run_id}/{component}.npz"


def manifest_relpath(platform_id: str, video_id: str, run_id: str) -> str:
    """``<platform_id>/<video_id>/runs/<run_id>/manifest.json``.

    A component named ``runs`` would share this directory level, but its files
    are ``runs/<run_id>/runs.npz``, so no name clashes with ``manifest.json``.

    Args:
        platform_id, video_id, run_id: from the (validated) run context.
    """
    return f"{platform_id}/{video_id}/runs/{run_id}/manifest.json"


def temp_relpath(platform_id: str, video_id: str, run_id: str, name: str) -> str:
    """``<platform_id>/<video_id>/_tmp/<run_id>/<name>``: a run's temporary data (R-GC-3).

    Garbage collection removes ``_tmp/<run_id>/`` once the run started more than
    ``gc_temp_ttl_days`` ago (and with the run, or the video, when they go).

    Raises:
        ValueError: ``name`` is not a path-safe name.
    """
    if not _TEMP_AREA_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid temp directory name (letters, digits, _ . -)")
    return f"{platform_id}/{video_id}/{TEMP_DIR_NAME}/{run_id}/{name}"


def temp_dir(root: str | os.PathLike[str], run_context: RunContext, name: str) -> Path:
    """A run's temporary directory ``name`` under the artifact root, created if missing.

    >>> frames = temp_dir(artifact_root, run_context, "frames_dir")  # doctest: +SKIP

    Raises:
        ValueError: ``name`` is not a path-safe name.
    """
    path = resolve_relpath(
        root, temp_relpath(run_context.platform_id, run_context.video_id, run_context.run_id, name)
    )
    _make_dirs(path)
    return path


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of :func:`atomic_write`'s temp files (never read; GC may delete).

    >>> is_temp_name(".text_ocr.npz.0123456789abcdef.tmp")
    True
    """
    return _TEMP_NAME.fullmatch(name) is not None


# --- records ------------------------------------------------------------------


class ArtifactMeta(BaseModel):
    """What produced an artifact, stored inside it under ``__meta__`` (R-ART-1).

    It names the models through ``models_used``/``model_signature`` only; the
    resolved mapping lives in the run's manifest (R-MAP-3). ``device`` is the
    exact device used (``cuda:1``), while ``models_used[].device`` is its kind.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["modelmanager.npz/1"] = ARTIFACT_FORMAT
    component: Annotated[str, Field(strict=True, min_length=1)]
    run_id: Annotated[str, Field(strict=True, min_length=1)]
    cache_key: Sha256Tagged
    models_used: tuple[ModelUsed, ...]
    model_signature: Sha256Tagged
    producer_version: Annotated[str, Field(strict=True, min_length=1)]
    schema_version: Annotated[str, Field(strict=True, min_length=1)]
    batch_size: Annotated[int, Field(ge=1)] | None
    seed: int | None
    engine: str | None
    precision: str | None
    device: str | None
    library_versions: dict[str, str]
    cuda_version: str | None
    cudnn_version: str | None
    created_at: UtcTimestamp

    def to_json_bytes(self) -> bytes:
        """The canonical UTF-8 JSON stored as ``__meta__``."""
        return canonical_json(self.model_dump(mode="json"))


@dataclass(frozen=True)
class ArtifactRecord:
    """Where an artifact is and what it must be: kept in the manifest and the run index.

    Args:
        relpath: POSIX path relative to the artifact root.
        size: bytes.
        sha256: ``sha256:<hex>`` of the whole file.

    Raises:
        ValueError: a field breaks its rule.
    """

    # Lets pydantic models hold a record (the manifest does) with the same strictness.
    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")

    relpath: Annotated[str, Field(strict=True)]
    size: Annotated[int, Field(strict=True, ge=0)]
    sha256: Sha256Tagged

    def __post_init__(self) -> None:
        _relpath(self.relpath)
        check_sha256_tagged(self.sha256)
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise ValueError(f"size {self.size!r} is not a non-negative integer")

    def to_json_dict(self) -> dict[str, Any]:
        """``{"relpath", "size", "sha256"}``."""
        return {"relpath": self.relpath, "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> ArtifactRecord:
        """The record of :meth:`to_json_dict`'s output.

        Raises:
            ValueError: a key is missing or extra, or a value breaks its rule.
        """
        keys = set(data)
        if keys != {"relpath", "size", "sha256"}:
            raise ValueError(f"an artifact record has relpath, size, sha256; got {sorted(keys)}")
        return cls(relpath=data["relpath"], size=data["size"], sha256=data["sha256"])


@dataclass(frozen=True)
class ArtifactCheck:
    """The outcome of :func:`check_artifact`: ok, or the first problem found.

    ``problem`` is, in checking order: ``missing`` (no file), ``size``,
    ``sha256``, ``unreadable`` (not an npz, no ``__meta__``, an array that
    does not load without pickle), ``format`` (meta is not this format's JSON),
    ``schema`` (another ``schema_version``). ``expected``/``actual`` hold the
    compared values where there are two.
    """

    ok: bool
    problem: ArtifactProblem | None
    detail: str
    path: str
    expected: str | int | None = None
    actual: str | int | None = None
    meta: ArtifactMeta | None = None

    def to_json_dict(self) -> dict[str, Any]:
        """The check as ``--json`` output (meta included when it was read)."""
        return {
            "ok": self.ok,
            "problem": self.problem,
            "detail": self.detail,
            "path": self.path,
            "expected": self.expected,
            "actual": self.actual,
            "meta": None if self.meta is None else self.meta.model_dump(mode="json"),
        }

    def raise_for_problem(self) -> None:
        """Raise :class:`ArtifactInvalid` unless ok.

        Raises:
            ArtifactInvalid: with ``problem``, ``path``, ``expected``, ``actual``.
        """
        if not self.ok:
            raise ArtifactInvalid(
                f"{self.path}: {self.detail}",
                problem=self.problem,
                path=self.path,
                expected=self.expected,
                actual=self.actual,
            )


# --- writing ------------------------------------------------------------------


class _HashingWriter:
    """A write-only, non-seekable stream that hashes and counts what passes through.

    Having no ``tell``/``seek`` makes :mod:`zipfile` stream (data descriptors
    after each member) instead of seeking back to patch headers, so every byte
    is hashed exactly once, in file order, as it is written.
    """

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        self._hash.update(view)
        self._file.write(view)  # a buffered file writes everything or raises
        self.size += view.nbytes
        return view.nbytes

    def flush(self) -> None:
        self._file.flush()

    @property
    def sha256(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]
) -> tuple[int, str]:
    """Write a file atomically: temp file in the same directory, fsync, rename, fsync dir.

    ``write`` receives a non-seekable binary stream; what it writes is hashed on
    the way. Missing directories are created (and their parents fsynced). On
    any exception the temp file is removed; after a crash (SIGKILL, power
    loss) the final path is untouched and a temp file (:func:`is_temp_name`)
    may remain.

    Args:
        path: the final path.
        write: writes the content to the stream it is given.

    Returns:
        ``(size, "sha256:<hex>")`` of the bytes written.

    Raises:
        OSError: the directory cannot be created or the file cannot be written.
    """
    final = Path(path)
    directory = final.parent
    _make_dirs(directory)
    tmp = directory / f".{final.name}.{secrets.token_hex(8)}.tmp"
    # O_EXCL: the name is ours alone; 0o666 & ~umask like any other new file.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        with open(fd, "wb") as file:
            writer = _HashingWriter(file)
            write(writer)  # type: ignore[arg-type]  # the writer is the IO[bytes] subset zipfile uses
            writer.flush()
            os.fsync(file.fileno())
            if os.fstat(file.fileno()).st_size != writer.size:
                raise OSError(f"{tmp}: wrote {writer.size} bytes but the file has another size")
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)
    return writer.size, writer.sha256


def write_artifact(
    root: str | os.PathLike[str],
    relpath: str,
    arrays: Mapping[str, NDArray[Any]],
    meta: ArtifactMeta,
) -> ArtifactRecord:
    """Write arrays and meta as one uncompressed npz at ``root/relpath``, atomically.

    Args:
        root: the artifact root.
        relpath: where under it, usually :func:`artifact_relpath`.
        arrays: name → array; any numeric, bool, string or bytes dtype (nothing
            that needs pickle to load).
        meta: stored under ``__meta__`` as canonical JSON.

    Returns:
        The record (relpath, size, sha256 of the bytes written) to keep in the
        manifest and the run index.

    Raises:
        ValueError: ``relpath`` is not a relative POSIX path inside ``root``,
            an array is named ``__meta__`` or has no name, or an array has an
            object dtype (it would need pickle to load).
        OSError: the file cannot be written.

    >>> record = write_artifact(root, artifact_relpath("yt", "v1", "text_ocr", "r1"),
    ...                         {"boxes": boxes}, meta)  # doctest: +SKIP
    """
    path = resolve_relpath(root, relpath)
    prepared: list[tuple[str, NDArray[Any]]] = []
    for name, value in arrays.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"array names are non-empty strings, not {name!r}")
        if name == META_KEY:
            raise ValueError(f"{META_KEY!r} is reserved for the artifact's meta")
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise ValueError(
                f"array {name!r} has dtype {array.dtype}, which needs pickle to load; "
                "store numbers, bools, fixed-width strings or bytes"
            )
        prepared.append((name, array))
    meta_array = np.frombuffer(meta.to_json_bytes(), dtype=np.uint8)

    def write(stream: IO[bytes]) -> None:
        with zipfile.ZipFile(stream, mode="w", compression=zipfile.ZIP_STORED) as archive:
            for name, array in [(META_KEY, meta_array), *prepared]:
                info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_EPOCH)
                info.compress_type = zipfile.ZIP_STORED
                info.external_attr = 0o644 << 16
                with archive.open(info, mode="w", force_zip64=True) as member:
                    npy_format.write_array(member, array, allow_pickle=False)  # type: ignore[no-untyped-call]

    size, sha256 = atomic_write(path, write)
    return ArtifactRecord(relpath=relpath, size=size, sha256=sha256)


# --- reading ------------------------------------------------------------------


def check_artifact(
    root: str | os.PathLike[str], record: ArtifactRecord, *, schema_version: str
) -> ArtifactCheck:
    """Check an artifact against its record without trusting anything in it.

    In order: the file exists, its size equals the record's (a stat: no
    hashing when it differs), its sha256 equals the record's, it opens as an
    npz with ``__meta__`` and no pickle, the meta is this format's, and its
    ``schema_version`` is the one asked for. The arrays themselves are covered
    by the sha256 and not loaded; only their headers are read, so that an
    artifact that checks ok also loads without pickle.

    Args:
        root: the artifact root.
        record: what the file must be (from the manifest or the run index).
        schema_version: the NPZ contract version the reader understands.

    Returns:
        An :class:`ArtifactCheck`; ``meta`` is set when it could be read.
    """
    check, _ = _inspect(root, record, schema_version=schema_version, load_arrays=False)
    return check


def read_artifact(
    root: str | os.PathLike[str], record: ArtifactRecord, *, schema_version: str
) -> tuple[dict[str, NDArray[Any]], ArtifactMeta]:
    """The arrays and meta of a checked artifact (the file is hashed once, then loaded).

    Args:
        root: the artifact root.
        record: what the file must be.
        schema_version: the NPZ contract version the reader understands.

    Returns:
        ``(arrays without __meta__, meta)``.

    Raises:
        ArtifactInvalid: the check failed; ``fields`` has ``problem``, ``path``
            and, where they apply, ``expected`` and ``actual``.
    """
    check, arrays = _inspect(root, record, schema_version=schema_version, load_arrays=True)
    check.raise_for_problem()
    assert arrays is not None
    assert check.meta is not None
    return arrays, check.meta


def _inspect(
    root: str | os.PathLike[str], record: ArtifactRecord, *, schema_version: str, load_arrays: bool
) -> tuple[ArtifactCheck, dict[str, NDArray[Any]] | None]:
    path = resolve_relpath(root, record.relpath)
    where = str(path)

    def bad(
        problem: ArtifactProblem,
        detail: str,
        expected: str | int | None = None,
        actual: str | int | None = None,
    ) -> tuple[ArtifactCheck, None]:
        return ArtifactCheck(False, problem, detail, where, expected, actual), None

    # One open file for every step: a rename over the path midway cannot mix two files.
    try:
        file = open(path, "rb", buffering=0)  # noqa: SIM115  # closed in the finally below
    except FileNotFoundError:
        return bad("missing", "the artifact file does not exist")
    except OSError as exc:
        return bad("unreadable", f"cannot open the artifact file: {exc}")
    try:
        st = os.fstat(file.fileno())
        if not stat.S_ISREG(st.st_mode):
            return bad("unreadable", "not a regular file")
        if st.st_size != record.size:
            return bad(
                "size",
                f"size {st.st_size} bytes, recorded {record.size} (truncated or rewritten)",
                record.size,
                st.st_size,
            )
        actual_sha = _hash_open_file(file)
        if actual_sha != record.sha256:
            return bad(
                "sha256",
                "content hashes to another sha256 than recorded (altered on disk)",
                record.sha256,
                actual_sha,
            )
        file.seek(0)
        try:
            with np.load(file, allow_pickle=False) as npz:
                if not isinstance(npz, np.lib.npyio.NpzFile):
                    return bad("unreadable", "a single .npy, not an npz archive")
                if META_KEY not in npz.files:
                    return bad("unreadable", f"the npz has no {META_KEY!r} member")
                others = [n for n in npz.zip.namelist() if not n.endswith(".npy")]
                if others:
                    return bad("unreadable", f"members that are not .npy arrays: {others}")
                raw_meta = npz[META_KEY]
                names = [name for name in npz.files if name != META_KEY]
                if load_arrays:
                    arrays = {name: npz[name] for name in names}
                else:
                    arrays = None
                    for name in names:
                        _check_member_header(npz, name)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            return bad("unreadable", f"not a loadable npz without pickle: {exc}")
    finally:
        file.close()

    if raw_meta.dtype != np.uint8 or raw_meta.ndim != 1:
        return bad(
            "unreadable", f"{META_KEY!r} is {raw_meta.dtype}{list(raw_meta.shape)}, not uint8[n]"
        )
    try:
        meta_doc = json.loads(raw_meta.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return bad("format", f"{META_KEY!r} is not UTF-8 JSON: {exc}")
    found_format = meta_doc.get("format") if isinstance(meta_doc, dict) else None
    if found_format != ARTIFACT_FORMAT:
        return bad(
            "format",
            f"meta format {found_format!r}, this reader knows {ARTIFACT_FORMAT!r}",
            ARTIFACT_FORMAT,
            found_format if isinstance(found_format, str) else None,
        )
    try:
        meta = ArtifactMeta.model_validate(meta_doc)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "meta"
        return bad("format", f"meta field {field!r}: {first['msg']}")
    if meta.schema_version != schema_version:
        return (
            ArtifactCheck(
                False,
                "schema",
                f"schema_version {meta.schema_version!r}, the reader expects {schema_version!r}",
                where,
                schema_version,
                meta.schema_version,
                meta,
            ),
            None,
        )
    return ArtifactCheck(True, None, "ok", where, meta=meta), arrays


# --- helpers ------------------------------------------------------------------


def resolve_relpath(root: str | os.PathLike[str], relpath: str) -> Path:
    """``root/relpath`` for a normalized relative POSIX ``relpath`` that stays inside ``root``.

    Raises:
        ValueError: ``relpath`` is empty, absolute, has ``..``/``.`` parts or backslashes.
    """
    return Path(root).joinpath(*_relpath(relpath).split("/"))


def _check_member_header(npz: np.lib.npyio.NpzFile, name: str) -> None:
    """Raise ValueError if member ``name`` would need pickle; reads its header only."""
    with npz.zip.open(name + ".npy") as member:
        version = npy_format.read_magic(member)  # type: ignore[no-untyped-call]
        if version == (1, 0):
            _, _, dtype = npy_format.read_array_header_1_0(member)  # type: ignore[no-untyped-call]
        elif version == (2, 0):
            _, _, dtype = npy_format.read_array_header_2_0(member)  # type: ignore[no-untyped-call]
        else:  # numpy has no public header reader for newer versions: load this one
            dtype = npz[name].dtype
    if dtype.hasobject:
        raise ValueError(f"member {name!r} has dtype {dtype}, which needs pickle to load")


def _hash_open_file(file: io.FileIO) -> str:
    digest = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    while n := file.readinto(buf):
        digest.update(view[:n])
    return "sha256:" + digest.hexdigest()


def _make_dirs(directory: Path) -> None:
    """``mkdir -p`` that fsyncs the parent of every directory it creates."""
    missing: list[Path] = []
    current = directory
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:
            if not path.is_dir():
                raise
            continue  # another writer made it; it syncs its own parent
        _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename (or mkdir) itself durable; Windows cannot open directories.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
