"""Checked reads of NPZ artifacts (R-ART-1, D5): nothing is trusted before it is checked.

A reader trusts nothing it has not checked: :func:`check_artifact` compares
size (a stat, no hashing when it differs), then sha256, then the meta's
format and ``schema_version`` against an :class:`ArtifactRecord` kept elsewhere
(the manifest, the run index), and returns an :class:`ArtifactCheck`;
:func:`read_artifact` raises :class:`~modelmanager.errors.ArtifactInvalid`.

The sha256 step can be answered by the per-host digest cache
(:class:`~modelmanager.weights.digest.DigestCache`), as weights are. Its rows
under :func:`artifact_digest_key` (``artifact:<absolute path>``) mean "this file,
in this stat state, is a whole artifact with this sha256", and only two things
write them: :func:`write_artifact`, for the bytes it has just published
(:meth:`~modelmanager.weights.digest.DigestCache.store_written` says why that is
safe), and a check that hashed the file and found it whole (a valid npz without
pickle). A ``verify="stat"`` check whose ``fstat`` fingerprint (device, inode,
size, mtime, ctime) matches such a row with the recorded sha256 skips the re-hash
and the per-member checks, and reads only the ``__meta__`` member (for format and
schema). Any rewrite, truncation or replacement of the file changes that
fingerprint and brings the full check back; ``verify="full"`` always runs it.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import time
import zipfile
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.lib import format as npy_format
from numpy.typing import NDArray
from pydantic import ValidationError

from modelmanager.errors import ArtifactInvalid
from modelmanager.store.artifacts import (
    ARTIFACT_FORMAT,
    META_KEY,
    ArtifactMeta,
    ArtifactRecord,
    artifact_digest_key,
)
from modelmanager.store.layout import resolve_relpath
from modelmanager.weights.digest import DigestCache, hash_open_file

__all__ = [
    "ArtifactCheck",
    "ArtifactProblem",
    "ArtifactVerify",
    "check_artifact",
    "read_artifact",
]

ArtifactProblem = Literal["missing", "size", "sha256", "unreadable", "format", "schema"]

ArtifactVerify = Literal["stat", "full"]
"""How a check establishes the sha256: ``stat`` trusts the digest cache for a file
whose stat fingerprint is unchanged since it was written or hashed; ``full`` re-hashes."""


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


def check_artifact(
    root: str | os.PathLike[str],
    record: ArtifactRecord,
    *,
    schema_version: str,
    digest_cache: DigestCache | None = None,
    verify: ArtifactVerify = "stat",
) -> ArtifactCheck:
    """Check an artifact against its record without trusting anything in it.

    In order: the file exists, its size equals the record's (a stat: no
    hashing when it differs), its sha256 equals the record's, it opens as an
    npz with ``__meta__`` and no pickle, the meta is this format's, and its
    ``schema_version`` is the one asked for. The arrays themselves are covered
    by the sha256 and not loaded; only their headers are read, so that an
    artifact that checks ok also loads without pickle.

    With a ``digest_cache`` and ``verify="stat"``, a file whose stat fingerprint
    is the one cached with the record's sha256 (written by :func:`write_artifact`
    with that cache, or hashed by an earlier check) is not re-hashed, and only its
    ``__meta__`` member is read. A full re-hash that matches is cached in turn
    (unless the file is too fresh, see the cache's racy-window rule).

    Args:
        root: the artifact root.
        record: what the file must be (from the manifest or the run index).
        schema_version: the NPZ contract version the reader understands.
        digest_cache: the per-host digest cache; None hashes every time.
        verify: ``stat`` (trust an unchanged fingerprint) or ``full`` (always re-hash).

    Returns:
        An :class:`ArtifactCheck`; ``meta`` is set when it could be read.
    """
    check, _ = _inspect(
        root,
        record,
        schema_version=schema_version,
        load_arrays=False,
        digest_cache=digest_cache,
        verify=verify,
    )
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
    root: str | os.PathLike[str],
    record: ArtifactRecord,
    *,
    schema_version: str,
    load_arrays: bool,
    digest_cache: DigestCache | None = None,
    verify: ArtifactVerify = "full",
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
        cache_key = artifact_digest_key(where) if digest_cache is not None else ""
        # The fingerprint is of the open file (fstat): the bytes read below are its bytes.
        trusted = (
            digest_cache is not None
            and verify == "stat"
            and digest_cache.lookup(cache_key, st) == record.sha256
        )
        if not trusted:
            started_ns = time.time_ns()
            actual_sha = hash_open_file(file)
            hashed_st = os.fstat(file.fileno())
            if actual_sha != record.sha256:
                return bad(
                    "sha256",
                    "content hashes to another sha256 than recorded (altered on disk)",
                    record.sha256,
                    actual_sha,
                )
        file.seek(0)
        if trusted and not load_arrays:
            # The bytes are those that were written (or fully checked) before: only
            # the meta is needed, for its format and schema_version.
            try:
                with zipfile.ZipFile(file) as archive:
                    raw_meta = _meta_array(archive.read(META_KEY + ".npy"))
            except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
                return bad("unreadable", f"no loadable {META_KEY!r} member: {exc}")
            arrays = None
        else:
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
            if digest_cache is not None and not trusted:  # hashed and whole: remember it
                digest_cache.store_hashed(cache_key, st, record.sha256, started_ns, after=hashed_st)
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


# The header numpy writes for a 1-d uint8 array (the meta), padded to 64 bytes.
_META_HEADER = re.compile(
    rb"\{'descr': '\|u1', 'fortran_order': False, 'shape': \((\d+),\), \} *\n"
)


def _meta_array(member: bytes) -> NDArray[Any]:
    """The array of a ``__meta__.npy`` member's bytes (no pickle).

    The header a uint8[n] gets from ``write_array`` is matched directly (a fifth of
    the cost of numpy's general header parser); anything else goes to that parser.
    """
    if member[:6] == b"\x93NUMPY" and member[6:7] in (b"\x01", b"\x02", b"\x03"):
        width = 2 if member[6] == 1 else 4
        start = 8 + width
        end = start + int.from_bytes(member[8:start], "little")
        found = _META_HEADER.fullmatch(member, start, end)
        if found is not None and len(member) - end == int(found[1]):
            return np.frombuffer(member, dtype=np.uint8, offset=end)
    return npy_format.read_array(io.BytesIO(member), allow_pickle=False)  # type: ignore[no-any-return,no-untyped-call]


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
