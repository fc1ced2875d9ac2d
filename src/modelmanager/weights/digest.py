"""weights_digest of local model files and directories, with a per-host cache (R-DIG-1, D3).

* A file's digest is ``sha256:<hex>`` of its bytes.
* A directory model's digest is ``sha256:<hex>`` of the canonical JSON
  ``{"kind": "weights_directory", "dig_v": 1, "files": [[relpath, file digest], ...]}``,
  files sorted by their POSIX relative path. Only regular files and
  directories may be in it; a symlink or special file is refused, so that the
  digest always covers exactly the bytes a runtime would read. A file name that
  is not UTF-8 has no canonical form in that JSON: it is refused too.
* An ONNX model (a ``*.onnx`` file, or a path the caller names as one) that keeps
  tensors in external data files (:mod:`modelmanager.weights.onnx_data`) has no
  file digest: the bytes of ``weights.bin`` would be loaded unpinned. It is a
  directory model, whose digest covers those files, and each location must name a
  file of that directory model (no absolute or ``..`` location).
* An OS error while locating or hashing is a :class:`ModelManagerError` naming the
  path: ``model_artifact_missing`` where the path cannot be opened as the model
  (ENOENT, ENOTDIR, ELOOP, EISDIR, ENAMETOOLONG), else ``storage_unavailable``
  (EACCES, EIO, ...).

The cache is one SQLite file per host under the cache directory::

    <cache_dir>/digests-<hostname>.sqlite3
        file_digests(path PK, dev, ino, size, mtime_ns, ctime_ns, digest, hashed_at_ns,
                     onnx_external)
        PRAGMA user_version = CACHE_FORMAT

``onnx_external`` is what an ONNX model's file names as external data, read as it
was hashed (a JSON list, ``[]`` for none; NULL for a file not read as ONNX), so a
cache hit answers that too without parsing the model again.

A lookup is a hit only when the path's current ``(dev, ino, size, mtime_ns,
ctime_ns)`` equal the stored ones, so re-verifying an unchanged file costs one
``os.stat`` and one indexed lookup on a long-lived connection. A file modified
within :data:`RACY_WINDOW_NS` of its hashing is not cached (its mtime could
repeat after a same-size rewrite), nor is one whose stat changed while it was
being hashed. A file this process has just published itself (an artifact,
through :func:`~modelmanager.store.atomic.atomic_write`) is recorded with the
digest of the bytes it wrote (:meth:`DigestCache.store_written`, which says why
that is safe).

The cache is only a cache: a file of an older format, of another table shape or
that is no database at all is replaced by a new one; where none can be kept (a
directory in its place, a cache directory that cannot be made or written, a
failure while in use) digests are computed without it, after one warning.

Every byte read for hashing is counted (:func:`hashing_totals`), so a test or a
benchmark can tell how much a step hashed without patching anything.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import posixpath
import socket
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import NamedTuple

from modelmanager.errors import (
    InvalidModelSpec,
    ModelArtifactMissing,
    ModelManagerError,
    StorageUnavailable,
    WeightsDigestMismatch,
)
from modelmanager.mapping.canonical import canonical_json, sha256_tagged
from modelmanager.weights import onnx_data

__all__ = [
    "CACHE_FORMAT",
    "DIG_V",
    "CachedRow",
    "Digest",
    "DigestCache",
    "Digester",
    "HashProgress",
    "HashTotals",
    "fingerprint",
    "hash_file",
    "hash_open_file",
    "hashing_totals",
]

logger = logging.getLogger(__name__)

DIG_V = 1
"""Version of the digest material (in every directory digest): never changes for a model."""
CACHE_FORMAT = 2
"""``PRAGMA user_version`` of the cache file; a file of another one is replaced
(1: before ``onnx_external``)."""
RACY_WINDOW_NS = 2_000_000_000
CHUNK_SIZE = 1 << 20

HashProgress = Callable[[int, int], None]
"""``progress(advance_bytes, total_bytes)``: called as bytes are hashed (or found cached),
from the hashing threads: it must be thread-safe (rich's ``Progress.update`` is)."""


def hash_file(
    path: str | os.PathLike[str], *, on_chunk: Callable[[int], None] | None = None
) -> str:
    """``sha256:<hex>`` of one file, read in 1 MiB chunks (hashlib releases the GIL)."""
    with open(path, "rb", buffering=0) as f:
        return hash_open_file(f, on_chunk=on_chunk)


def hash_open_file(file: io.FileIO, *, on_chunk: Callable[[int], None] | None = None) -> str:
    """``sha256:<hex>`` of what is left to read in an open binary file (unbuffered is fastest).

    The bytes read are added to :func:`hashing_totals`.
    """
    h = hashlib.sha256()
    buf = bytearray(CHUNK_SIZE)
    view = memoryview(buf)
    read = 0
    try:
        while n := file.readinto(buf):
            h.update(view[:n])
            read += n
            if on_chunk is not None:
                on_chunk(n)
    finally:
        _count_hashed(read)
    return "sha256:" + h.hexdigest()


class HashTotals(NamedTuple):
    """Files hashed and bytes read for hashing, by :func:`hash_open_file`, in this process."""

    files: int
    bytes: int

    def __sub__(self, other: tuple[int, ...]) -> HashTotals:
        return HashTotals(self.files - other[0], self.bytes - other[1])


_totals_lock = threading.Lock()
_totals = [0, 0]  # files, bytes


def _count_hashed(nbytes: int) -> None:
    with _totals_lock:  # one acquisition per file: nothing next to reading it
        _totals[0] += 1
        _totals[1] += nbytes


def hashing_totals() -> HashTotals:
    """How many files and bytes this process has hashed so far (every thread, weights and
    artifacts alike): take it before and after a step and subtract.

    >>> before = hashing_totals()
    >>> _ = hash_file(__file__)
    >>> (hashing_totals() - before).files
    1
    """
    with _totals_lock:
        return HashTotals(*_totals)


@dataclass(frozen=True, slots=True)
class Digest:
    """The digest of one path, and how it was obtained."""

    path: str
    digest: str
    size: int
    files: int
    cached: bool

    def check(self, expected: str) -> None:
        """Raise WeightsDigestMismatch unless this is the ``expected`` digest (R-DIG-3)."""
        if self.digest != expected:
            raise WeightsDigestMismatch(
                f"{self.path} hashes to {self.digest}, but the mapping pins {expected}",
                path=self.path,
                expected=expected,
                actual=self.digest,
            )

    def to_json_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "digest": self.digest,
            "size": self.size,
            "files": self.files,
            "cached": self.cached,
        }


_Fingerprint = tuple[int, int, int, int, int]


def fingerprint(st: os.stat_result) -> _Fingerprint:
    """``(dev, ino, size, mtime_ns, ctime_ns)``: what the cache compares; any change of the
    file's bytes in place sets a new ctime, any replacement gives another inode."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


NO_EXTERNAL = "[]"
"""``onnx_external`` of an ONNX model file that names no external data."""


class CachedRow(NamedTuple):
    """One row of the cache: the fingerprint a file had when it hashed to ``digest``, and
    what it names as ONNX external data (see the module docstring; None: not read as ONNX)."""

    fingerprint: tuple[int, int, int, int, int]
    digest: str
    onnx_external: str | None = None

    def digest_for(self, st: os.stat_result) -> str | None:
        """``digest`` if ``st`` (taken now) has the recorded fingerprint, else None."""
        return self.digest if self.fingerprint == fingerprint(st) else None


_COLUMNS = (
    "path",
    "dev",
    "ino",
    "size",
    "mtime_ns",
    "ctime_ns",
    "digest",
    "hashed_at_ns",
    "onnx_external",
)
_CREATE = (
    "CREATE TABLE file_digests (path TEXT PRIMARY KEY, dev INTEGER NOT NULL,"
    " ino INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
    " ctime_ns INTEGER NOT NULL, digest TEXT NOT NULL, hashed_at_ns INTEGER NOT NULL,"
    " onnx_external TEXT) WITHOUT ROWID"
)
_ROW = "dev, ino, size, mtime_ns, ctime_ns, digest, onnx_external"
_INSERT = (
    f"INSERT OR REPLACE INTO file_digests ({', '.join(_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(_COLUMNS))})"
)
_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class DigestCache:
    """Persistent ``path + stat fingerprint → digest`` store on one SQLite connection.

    Safe to share between threads of one process, and between processes (WAL). Never
    fails its caller: a damaged file is replaced; where no cache can be kept, lookups
    find nothing and stores keep nothing (:attr:`usable` is False), after one warning.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = self._open()

    @classmethod
    def in_dir(cls, cache_dir: str | os.PathLike[str]) -> DigestCache:
        """The cache of this host under ``cache_dir``."""
        return cls(Path(cache_dir) / f"digests-{socket.gethostname()}.sqlite3")

    @property
    def usable(self) -> bool:
        """Whether digests are kept (False once the cache was given up)."""
        return self._conn is not None

    def _open(self) -> sqlite3.Connection | None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                return self._connect()
            except sqlite3.DatabaseError as exc:
                if not self._replaceable():
                    raise
                damage = exc
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            conn = self._connect()
        except (sqlite3.Error, OSError) as exc:
            self._give_up(f"it cannot be opened: {exc}")
            return None
        logger.warning("digest cache %s was unusable (%s); started a new one", self.path, damage)
        return conn

    def _replaceable(self) -> bool:
        """Whether the cache's path is ours to delete: absent or a regular file (never a
        directory or anything else someone put there)."""
        try:
            return stat.S_ISREG(os.lstat(self.path).st_mode)
        except FileNotFoundError:
            return True

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            columns = tuple(r[1] for r in conn.execute("PRAGMA table_info(file_digests)"))
            if version != CACHE_FORMAT or columns != _COLUMNS:  # older, or another shape
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("DROP TABLE IF EXISTS file_digests")
                conn.execute(_CREATE)
                conn.execute(f"PRAGMA user_version = {CACHE_FORMAT}")
                conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        return conn

    def _give_up(self, reason: str) -> None:
        logger.warning(
            "digest cache %s cannot be used (%s); digests are computed without caching",
            self.path,
            reason,
        )

    def _failed(self, exc: sqlite3.Error) -> None:
        """A statement failed (the lock held): a busy database skips this one statement;
        anything else gives the cache up for this process."""
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _BUSY:
            logger.debug("digest cache %s is busy (%s); not cached this time", self.path, exc)
            return
        self._give_up(f"it failed in use: {exc}")
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def row(self, path: str) -> CachedRow | None:
        """The stored row of ``path``, whatever the file's stat is now (see :meth:`lookup`)."""
        with self._lock:
            if self._conn is None:
                return None
            try:
                found = self._conn.execute(
                    f"SELECT {_ROW} FROM file_digests WHERE path = ?", (path,)
                ).fetchone()
            except sqlite3.Error as exc:
                self._failed(exc)
                return None
            except UnicodeEncodeError:  # a path that is not UTF-8 is never stored
                return None
        return None if found is None else _row(found)

    def lookup(self, path: str, st: os.stat_result) -> str | None:
        """The cached digest of ``path`` if its stat fingerprint is unchanged."""
        row = self.row(path)
        return None if row is None else row.digest_for(st)

    def lookup_many(self, paths: Sequence[str]) -> dict[str, CachedRow]:
        """The stored rows of ``paths`` (those it has), in one query per 500 paths.

        A row stays a true statement ("a file with this fingerprint has this digest"),
        so rows read ahead answer later checks exactly as :meth:`lookup` would:
        :meth:`CachedRow.digest_for` compares the fingerprint of a stat taken then.
        """
        rows: dict[str, CachedRow] = {}
        unique = [p for p in dict.fromkeys(paths) if _utf8(p)]
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            with self._lock:
                if self._conn is None:
                    return {}
                try:
                    found = self._conn.execute(
                        f"SELECT path, {_ROW} FROM file_digests WHERE path IN ({marks})",
                        chunk,
                    ).fetchall()
                except sqlite3.Error as exc:
                    self._failed(exc)
                    return {}
            for path, *values in found:
                row = _row(values)
                if row is not None:
                    rows[path] = row
        return rows

    def store(
        self,
        path: str,
        st: os.stat_result,
        digest: str,
        hashed_at_ns: int,
        *,
        onnx_external: str | None = None,
    ) -> bool:
        """Remember ``digest`` for ``path`` as it was when ``st`` was taken; returns whether
        it was stored."""
        with self._lock:
            if self._conn is None:
                return False
            try:
                self._conn.execute(
                    _INSERT, (path, *fingerprint(st), digest, hashed_at_ns, onnx_external)
                )
            except sqlite3.Error as exc:
                self._failed(exc)
                return False
            except UnicodeEncodeError:
                return False
        return True

    def store_hashed(
        self,
        path: str,
        st: os.stat_result,
        digest: str,
        started_ns: int,
        *,
        after: os.stat_result | None = None,
        onnx_external: str | None = None,
    ) -> bool:
        """Remember ``digest``, read from ``path`` by a hash that started at ``started_ns``
        with the file's stat ``st``, unless that is unsafe: returns whether it was stored.

        Not stored when the file was modified within :data:`RACY_WINDOW_NS` before the
        hash started (a same-size rewrite within the timestamp tick would keep the
        fingerprint), or when its stat once hashed, ``after`` (default: ``os.stat(path)``
        now), is no longer ``st`` (it changed while being read).
        """
        if st.st_mtime_ns > started_ns - RACY_WINDOW_NS:
            return False
        try:
            now = os.stat(path) if after is None else after
        except OSError:
            return False
        if fingerprint(now) != fingerprint(st):
            return False
        return self.store(path, st, digest, started_ns, onnx_external=onnx_external)

    def store_written(self, path: str, digest: str, size: int, *, key: str | None = None) -> bool:
        """Remember the digest of a file this process has just published under ``path``
        through :func:`~modelmanager.store.atomic.atomic_write`, as the row ``key``
        (default: ``path``); returns whether it was stored.

        Why the racy-window rule of :meth:`store_hashed` does not apply: that rule
        protects a digest *read* from a file that someone may still be writing, e.g. a
        model being copied in. Here the digest is of the bytes we wrote into a temp file
        that only we could open (``O_EXCL``, a random name), fsynced and closed, then
        renamed over ``path`` (a new inode). After that, any change of the file, by us or
        anyone, sets its ctime anew (a write or truncate in place, ``utime``, ``chmod``)
        or gives ``path`` another inode (a rename over it, an unlink and re-create),
        and every lookup compares ``(dev, ino, size, mtime_ns, ctime_ns)``.

        What is left: a change that lands within the same timestamp tick as the stat
        taken here keeps ctime. Where timestamps have whole-second granularity (ctime
        with no sub-second part: FAT, HFS+, old ext3) that tick is long, and nothing is
        stored (the file is hashed when next checked). On filesystems with sub-second
        timestamps the tick is one kernel clock tick (1-10 ms), and on Linux ≥ 6.13
        (multigrain timestamps) none: once a ctime has been read by a stat, the next
        change gets a finer, newer one. Nothing of ours ever writes into a published
        file in place, so that needs a foreign writer racing the publication within
        a tick; the "full" artifact check (a re-hash) is there for those who want none.
        """
        try:
            st = os.stat(path)
        except OSError:
            return False
        if st.st_size != size or st.st_ctime_ns % 1_000_000_000 == 0:
            return False
        return self.store(path if key is None else key, st, digest, time.time_ns())

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    def __enter__(self) -> DigestCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(slots=True)
class _File:
    path: str  # absolute
    relpath: str  # within its directory model; "" for a plain file
    st: os.stat_result
    onnx: bool = False  # read as an ONNX model: its external data count
    digest: str | None = None
    external: tuple[str, ...] = ()  # the ONNX external data it names


class Digester:
    """Computes and verifies weights digests, through a :class:`DigestCache`.

    Args:
        cache: where digests persist; None hashes every time.
        workers: threads hashing files in parallel (default: CPU count).
    """

    def __init__(self, cache: DigestCache | None = None, *, workers: int | None = None) -> None:
        self.cache = cache
        self.workers = workers or os.cpu_count() or 1

    def digest(self, path: str | os.PathLike[str]) -> Digest:
        """The digest of one file or directory model."""
        return self.digest_many([path])[0]

    def digest_many(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        progress: HashProgress | None = None,
        onnx_models: Collection[str | os.PathLike[str]] = (),
    ) -> list[Digest]:
        """Digests of several paths; files not in the cache are hashed in parallel.

        Args:
            paths: files and directory models.
            progress: told of the bytes hashed or found cached.
            onnx_models: those of ``paths`` that are ONNX model files whatever their
                name (``*.onnx`` files are read as ONNX anyway).

        Raises:
            ModelArtifactMissing: a path does not exist or cannot be opened as the model
                (a path component that is a file, a symlink loop), or an ONNX model's
                external data file is not in its directory model.
            StorageUnavailable: the disk refused a read (permission, I/O error).
            InvalidModelSpec: a directory model holds a symlink, a special file or a name
                that is not UTF-8; an ONNX model file keeps external data (it must be a
                directory model), or names external data outside its directory model.
            OnnxRuntimeMissing: an ONNX model must be read and ``onnx`` is not installed.
        """
        roots = [os.path.abspath(p) for p in paths]
        onnx_roots = {os.path.abspath(p) for p in onnx_models}
        trees = {root: self._collect(root, root in onnx_roots) for root in dict.fromkeys(roots)}
        files = [f for tree in trees.values() for f in tree[1]]
        total = sum(f.st.st_size for f in files)
        misses = []
        for f in files:
            if not self._from_cache(f):
                misses.append(f)
            elif progress is not None:
                progress(f.st.st_size, total)
        self._hash(misses, progress, total)
        missed = {id(f) for f in misses}
        assembled = {}
        for root, tree in trees.items():
            _check_external(*tree)
            assembled[root] = _assemble(*tree, missed)
        return [assembled[root] for root in roots]

    def _from_cache(self, f: _File) -> bool:
        """Fill in ``f`` from its cache row, if that row holds what ``f`` needs."""
        row = None if self.cache is None else self.cache.row(f.path)
        if row is None or row.fingerprint != fingerprint(f.st):
            return False
        if f.onnx:
            external = _decode_external(row.onnx_external)
            if external is None:  # not read as ONNX when it was hashed: hash it now
                return False
            f.external = external
        f.digest = row.digest
        return True

    def cached(
        self,
        path: str,
        st: os.stat_result,
        rows: Mapping[str, CachedRow] | None = None,
        *,
        onnx: bool = False,
    ) -> Digest | None:
        """The digest of the regular file at ``path`` (absolute, normalized) if the cache
        holds it for the stat ``st`` just taken; None otherwise. Reads no file bytes.

        The fast path of a re-verification: one indexed lookup (or none, given the
        ``rows`` that :meth:`DigestCache.lookup_many` read ahead), no directory walk.
        An ONNX model file (``onnx``, or named ``*.onnx``) passes only if it was read
        as one when hashed and names no external data; :meth:`digest_many` says why not.
        """
        if self.cache is None or not stat.S_ISREG(st.st_mode):
            return None
        row = self.cache.row(path) if rows is None else rows.get(path)
        if row is None or row.fingerprint != fingerprint(st):
            return None
        if (onnx or onnx_data.is_onnx_name(path)) and row.onnx_external != NO_EXTERNAL:
            return None
        return Digest(path, row.digest, st.st_size, 1, True)

    def verify(self, path: str | os.PathLike[str], expected: str) -> Digest:
        """The digest of ``path``, checked against ``expected``.

        Raises:
            WeightsDigestMismatch: the bytes hash to something else (R-DIG-3).
        """
        result = self.digest(path)
        result.check(expected)
        return result

    def _collect(self, root: str, onnx: bool = False) -> tuple[str, list[_File], bool]:
        try:
            st = os.stat(root)
        except OSError as exc:
            raise _os_error(exc, root) from None
        if stat.S_ISREG(st.st_mode):
            return root, [_File(root, "", st, onnx or onnx_data.is_onnx_name(root))], False
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidModelSpec(f"{root} is neither a file nor a directory", path=root)
        files = []
        try:
            for dirpath, dirnames, filenames in os.walk(root, onerror=_raise):
                for name in [*dirnames, *filenames]:
                    full = os.path.join(dirpath, name)
                    lst = os.lstat(full)
                    if stat.S_ISDIR(lst.st_mode):
                        continue
                    if not stat.S_ISREG(lst.st_mode):
                        raise InvalidModelSpec(
                            f"{full} in directory model {root} is a symlink or special file; "
                            "a directory model must hold regular files only",
                            path=full,
                        )
                    rel = Path(os.path.relpath(full, root)).as_posix()
                    if not _utf8(rel):
                        raise InvalidModelSpec(
                            f"{_printable(full)} in directory model {_printable(root)} has a "
                            "name that is not UTF-8, which the digest cannot name "
                            "canonically; rename it",
                            path=_printable(full),
                        )
                    files.append(_File(full, rel, lst, onnx_data.is_onnx_name(name)))
        except ModelManagerError:
            raise
        except OSError as exc:
            raise _os_error(exc, exc.filename or root) from None
        return root, files, True

    def _hash(self, misses: list[_File], progress: HashProgress | None, total: int) -> None:
        if not misses:
            return
        on_chunk = None if progress is None else (lambda n: progress(n, total))
        started_ns = time.time_ns()

        def work(f: _File) -> tuple[str, tuple[str, ...]]:
            try:
                digest = hash_file(f.path, on_chunk=on_chunk)
                # Read once hashed, from the same file: a change in between changes its
                # stat, and then nothing is stored below.
                external = tuple(onnx_data.external_locations(f.path)) if f.onnx else ()
            except ModelManagerError:
                raise
            except OSError as exc:
                raise _os_error(exc, f.path) from None
            return digest, external

        if len(misses) == 1 or self.workers == 1:
            results = [work(f) for f in misses]
        else:
            from concurrent.futures import ThreadPoolExecutor  # only when there is a pool to run

            with ThreadPoolExecutor(max_workers=min(self.workers, len(misses))) as pool:
                results = list(pool.map(work, misses))
        for f, (digest, external) in zip(misses, results, strict=True):
            f.digest, f.external = digest, external
            if self.cache is not None:
                self.cache.store_hashed(
                    f.path,
                    f.st,
                    digest,
                    started_ns,
                    onnx_external=json.dumps(list(external)) if f.onnx else None,
                )


def _assemble(root: str, files: list[_File], is_dir: bool, missed: set[int]) -> Digest:
    cached = not any(id(f) in missed for f in files)
    size = sum(f.st.st_size for f in files)
    if not is_dir:
        assert files[0].digest is not None
        return Digest(root, files[0].digest, size, 1, cached)
    entries = sorted([f.relpath, f.digest] for f in files)
    material = {"kind": "weights_directory", "dig_v": DIG_V, "files": entries}
    return Digest(root, sha256_tagged(canonical_json(material)), size, len(files), cached)


def _check_external(root: str, files: list[_File], is_dir: bool) -> None:
    """Refuse ONNX external data that the digest of ``root`` would not cover."""
    if not is_dir:
        if files[0].external:
            names = ", ".join(files[0].external)
            raise InvalidModelSpec(
                f"{root} is an ONNX model that keeps tensors in external data files "
                f"({names}), which a file digest does not cover; map the directory holding "
                "the model and its data as a directory model (onnx_path: the directory, "
                "weights_digest: its directory digest)",
                path=root,
                external_data=list(files[0].external),
            )
        return
    present = {f.relpath for f in files}
    for f in files:
        for location in f.external:
            target = _external_target(f.relpath, location)
            if target is None:
                raise InvalidModelSpec(
                    f"{f.path} names external data {location!r}, outside its directory model "
                    f"{root} (an absolute or '..' location); keep the data in the model's "
                    "directory",
                    path=f.path,
                    external_data=[location],
                )
            if target not in present:
                raise ModelArtifactMissing(
                    f"{f.path} names external data {location!r}, which is not a file of its "
                    f"directory model {root}",
                    path=os.path.join(root, target),
                    external_data=[location],
                )


def _external_target(relpath: str, location: str) -> str | None:
    """Where ``location`` (named by the ONNX file at ``relpath``) is in its directory model,
    as a relative POSIX path; None if it is absolute or goes through ``..``."""
    if (
        not location
        or PurePosixPath(location).is_absolute()
        or PureWindowsPath(location).anchor
        or ".." in PurePosixPath(location).parts
        or ".." in PureWindowsPath(location).parts
    ):
        return None
    return posixpath.normpath(posixpath.join(posixpath.dirname(relpath), location))


def _decode_external(text: str | None) -> tuple[str, ...] | None:
    """The ``onnx_external`` column as a tuple; None if the row was not read as ONNX (or
    holds something else than a list of strings)."""
    if text == NO_EXTERNAL:
        return ()
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return tuple(value)


def _row(values: Sequence[object]) -> CachedRow | None:
    """A row read from the cache, or None where its values have the wrong types."""
    dev, ino, size, mtime_ns, ctime_ns, digest, external = values
    if not (
        type(dev) is int
        and type(ino) is int
        and type(size) is int
        and type(mtime_ns) is int
        and type(ctime_ns) is int
        and isinstance(digest, str)
        and (external is None or isinstance(external, str))
    ):
        return None
    return CachedRow((dev, ino, size, mtime_ns, ctime_ns), digest, external)


# Errors that say the path cannot be opened as the model, rather than that the disk failed.
_NOT_THE_MODEL = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EISDIR, errno.ENAMETOOLONG}
)


def _os_error(exc: OSError, path: str) -> ModelManagerError:
    """The error for an OSError met while locating or reading the weights at ``path``."""
    if exc.errno == errno.ENOENT:
        return ModelArtifactMissing(f"{path} does not exist", path=path)
    if exc.errno in _NOT_THE_MODEL:
        return ModelArtifactMissing(
            f"{path} cannot be opened as the model: {os.strerror(exc.errno)}",
            path=path,
            errno=errno.errorcode[exc.errno],
        )
    return StorageUnavailable.from_os_error(exc, "reading the weights", path)


def _utf8(text: str) -> bool:
    """Whether ``text`` encodes to UTF-8 (a name read from a non-UTF-8 one has surrogates)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(path: str) -> str:
    """``path`` with any byte that is not UTF-8 written as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _raise(exc: OSError) -> None:
    raise exc
