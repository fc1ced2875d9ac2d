"""NPZ artifacts: atomic writes, recorded size and sha256, checked reads (R-ART-1, D5).

Where they live: :mod:`modelmanager.store.layout`.

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

Reading them back, checked: :mod:`modelmanager.store.check`.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Annotated, Any, ClassVar, Final, Literal

import numpy as np
from numpy.lib import format as npy_format
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from modelmanager.mapping.canonical import canonical_json, check_sha256_tagged
from modelmanager.mapping.spec import ModelUsed
from modelmanager.store.atomic import atomic_write
from modelmanager.store.fields import Sha256Tagged, UtcTimestamp
from modelmanager.store.layout import check_relpath, resolve_relpath
from modelmanager.weights.digest import DigestCache

__all__ = [
    "ARTIFACT_FORMAT",
    "META_KEY",
    "ArtifactMeta",
    "ArtifactRecord",
    "artifact_digest_key",
    "write_artifact",
]

ARTIFACT_FORMAT: Final = "modelmanager.npz/2"
"""The container format written into every meta. 2 added ``input_digest`` (issue 13); a
reader takes 1 (``input_digest`` null) and 2, and refuses any other."""

META_KEY = "__meta__"
"""The reserved array name holding the meta."""


# Zip entries get this fixed time instead of "now": same content, same bytes.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


# --- records ------------------------------------------------------------------


class ArtifactMeta(BaseModel):
    """What produced an artifact, stored inside it under ``__meta__`` (R-ART-1).

    It names the models through ``models_used``/``model_signature`` only; the
    resolved mapping lives in the run's manifest (R-MAP-3). ``device`` is the
    exact device used (``cuda:1``), while ``models_used[].device`` is its kind.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["modelmanager.npz/1", "modelmanager.npz/2"] = ARTIFACT_FORMAT
    component: Annotated[str, Field(strict=True, min_length=1)]
    run_id: Annotated[str, Field(strict=True, min_length=1)]
    cache_key: Sha256Tagged
    input_digest: Sha256Tagged | None = None
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
        check_relpath(self.relpath)
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


# --- writing ------------------------------------------------------------------


def write_artifact(
    root: str | os.PathLike[str],
    relpath: str,
    arrays: Mapping[str, NDArray[Any]],
    meta: ArtifactMeta,
    *,
    digest_cache: DigestCache | None = None,
) -> ArtifactRecord:
    """Write arrays and meta as one uncompressed npz at ``root/relpath``, atomically.

    Args:
        root: the artifact root.
        relpath: where under it, usually :func:`artifact_relpath`.
        arrays: name → array; any numeric, bool, string or bytes dtype (nothing
            that needs pickle to load).
        meta: stored under ``__meta__`` as canonical JSON.
        digest_cache: where to record the sha256 of the published file, so that a
            ``verify="stat"`` check of it needs no re-hash.

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
    if digest_cache is not None:
        digest_cache.store_written(str(path), sha256, size, key=artifact_digest_key(path))
    return ArtifactRecord(relpath=relpath, size=size, sha256=sha256)


def artifact_digest_key(path: str | os.PathLike[str]) -> str:
    """The digest-cache key of the artifact file at ``path``: ``artifact:<absolute path>``.

    Apart from the weights' rows (keyed by plain paths): a row here says the file
    checked out whole as an artifact, which a plain digest of the same file does not.
    """
    return "artifact:" + os.path.abspath(path)
