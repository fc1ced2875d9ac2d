"""weights_digest of local model files and directories, with a per-host cache (R-DIG-1, D3).

* A file's digest is ``sha256:<hex>`` of its bytes.
* A directory model's digest is ``sha256:<hex>`` of the canonical JSON
  ``{"kind": "weights_directory", "dig_v": 1, "files": [[relpath, file digest], ...]}``,
  files sorted by their POSIX relative path. Only regular files and
  directories may be in it; a symlink or special file is refused, so that the
  digest always covers exactly the bytes a runtime would read.

The cache is one SQLite file per host under the cache directory::

    <cache_dir>/digests-<hostname>.sqlite3
        file_digests(path PK, dev, ino, size, mtime_ns, ctime_ns, digest, hashed_at_ns)
        PRAGMA user_version = DIG_V

A lookup is a hit only when the path's current ``(dev, ino, size, mtime_ns,
ctime_ns)`` equal the stored ones, so re-verifying an unchanged file costs one
``os.stat`` and one indexed lookup on a long-lived connection. A file modified
within :data:`RACY_WINDOW_NS` of its hashing is not cached (its mtime could
repeat after a same-size rewrite), nor is one whose stat changed while it was
being hashed. A file this process has just published itself (an artifact,
through :func:`~modelmanager.store.atomic.atomic_write`) is recorded with the
digest of the bytes it wrote (:meth:`DigestCache.store_written`, which says why
that is safe). The cache is disposable: an unreadable or older-format file is
replaced.

Every byte read for hashing is counted (:func:`hashing_totals`), so a test or a
benchmark can tell how much a step hashed without patching anything.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import socket
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from modelmanager.errors import InvalidModelSpec, ModelArtifactMissing, WeightsDigestMismatch
from modelmanager.mapping.canonical import canonical_json, sha256_tagged

__all__ = [
    "DIG_V",
    "CachedRow",
    "Digest",
    "DigestCache",
    "Digester",
    "HashProgress",
    "HashTotals",
    "hash_file",
    "hash_open_file",
    "hashing_totals",
]

logger = logging.getLogger(__name__)

DIG_V = 1
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


def _fingerprint(st: os.stat_result) -> _Fingerprint:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class CachedRow(NamedTuple):
    """One row of the cache: the fingerprint a file had when it hashed to ``digest``."""

    fingerprint: tuple[int, int, int, int, int]
    digest: str

    def digest_for(self, st: os.stat_result) -> str | None:
        """``digest`` if ``st`` (taken now) has the recorded fingerprint, else None."""
        return self.digest if self.fingerprint == _fingerprint(st) else None


class DigestCache:
    """Persistent ``path + stat fingerprint → digest`` store on one SQLite connection.

    Safe to share between threads of one process, and between processes (WAL).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = self._open()

    @classmethod
    def in_dir(cls, cache_dir: str | os.PathLike[str]) -> DigestCache:
        """The cache of this host under ``cache_dir``."""
        return cls(Path(cache_dir) / f"digests-{socket.gethostname()}.sqlite3")

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            logger.warning("digest cache %s is unusable (%s); starting a new one", self.path, exc)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            if conn.execute("PRAGMA user_version").fetchone()[0] != DIG_V:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("DROP TABLE IF EXISTS file_digests")
                conn.execute(
                    "CREATE TABLE file_digests (path TEXT PRIMARY KEY, dev INTEGER NOT NULL,"
                    " ino INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
                    " ctime_ns INTEGER NOT NULL, digest TEXT NOT NULL,"
                    " hashed_at_ns INTEGER NOT NULL) WITHOUT ROWID"
                )
                conn.execute(f"PRAGMA user_version = {DIG_V}")
                conn.execute("COMMIT")
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def lookup(self, path: str, st: os.stat_result) -> str | None:
        """The cached digest of ``path`` if its stat fingerprint is unchanged."""
        with self._lock:
            row = self._conn.execute(
                "SELECT dev, ino, size, mtime_ns, ctime_ns, digest FROM file_digests"
                " WHERE path = ?",
                (path,),
            ).fetchone()
        if row is None or tuple(row[:5]) != _fingerprint(st):
            return None
        digest: str = row[5]
        return digest

    def lookup_many(self, paths: Sequence[str]) -> dict[str, CachedRow]:
        """The stored rows of ``paths`` (those it has), in one query per 500 paths.

        A row stays a true statement ("a file with this fingerprint has this digest"),
        so rows read ahead answer later checks exactly as :meth:`lookup` would:
        :meth:`CachedRow.digest_for` compares the fingerprint of a stat taken then.
        """
        rows: dict[str, CachedRow] = {}
        unique = list(dict.fromkeys(paths))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            with self._lock:
                found = self._conn.execute(
                    "SELECT path, dev, ino, size, mtime_ns, ctime_ns, digest FROM file_digests"
                    f" WHERE path IN ({marks})",
                    chunk,
                ).fetchall()
            for path, dev, ino, size, mtime_ns, ctime_ns, digest in found:
                rows[path] = CachedRow((dev, ino, size, mtime_ns, ctime_ns), digest)
        return rows

    def store(self, path: str, st: os.stat_result, digest: str, hashed_at_ns: int) -> None:
        """Remember ``digest`` for ``path`` as it was when ``st`` was taken."""
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO file_digests VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (path, *_fingerprint(st), digest, hashed_at_ns),
            )

    def store_hashed(
        self,
        path: str,
        st: os.stat_result,
        digest: str,
        started_ns: int,
        *,
        after: os.stat_result | None = None,
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
        if _fingerprint(now) != _fingerprint(st):
            return False
        self.store(path, st, digest, started_ns)
        return True

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
        self.store(path if key is None else key, st, digest, time.time_ns())
        return True

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> DigestCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(slots=True)
class _File:
    path: str  # absolute
    relpath: str  # within its directory model; "" for a plain file
    st: os.stat_result
    digest: str | None = None


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
        self, paths: Sequence[str | os.PathLike[str]], *, progress: HashProgress | None = None
    ) -> list[Digest]:
        """Digests of several paths; files not in the cache are hashed in parallel.

        Raises:
            ModelArtifactMissing: a path does not exist.
            InvalidModelSpec: a directory model holds a symlink or special file.
        """
        roots = [os.path.abspath(p) for p in paths]
        trees = {root: self._collect(root) for root in dict.fromkeys(roots)}  # each once
        files = [f for tree in trees.values() for f in tree[1]]
        total = sum(f.st.st_size for f in files)
        misses = []
        for f in files:
            f.digest = self.cache.lookup(f.path, f.st) if self.cache is not None else None
            if f.digest is None:
                misses.append(f)
            elif progress is not None:
                progress(f.st.st_size, total)
        self._hash(misses, progress, total)
        missed = {id(f) for f in misses}
        assembled = {root: _assemble(*tree, missed) for root, tree in trees.items()}
        return [assembled[root] for root in roots]

    def cached(
        self, path: str, st: os.stat_result, rows: Mapping[str, CachedRow] | None = None
    ) -> Digest | None:
        """The digest of the regular file at ``path`` (absolute, normalized) if the cache
        holds it for the stat ``st`` just taken; None otherwise. Reads no file bytes.

        The fast path of a re-verification: one indexed lookup (or none, given the
        ``rows`` that :meth:`DigestCache.lookup_many` read ahead), no directory walk.
        """
        if self.cache is None or not stat.S_ISREG(st.st_mode):
            return None
        if rows is None:
            digest = self.cache.lookup(path, st)
        else:
            row = rows.get(path)
            digest = None if row is None else row.digest_for(st)
        return None if digest is None else Digest(path, digest, st.st_size, 1, True)

    def verify(self, path: str | os.PathLike[str], expected: str) -> Digest:
        """The digest of ``path``, checked against ``expected``.

        Raises:
            WeightsDigestMismatch: the bytes hash to something else (R-DIG-3).
        """
        result = self.digest(path)
        result.check(expected)
        return result

    def _collect(self, root: str) -> tuple[str, list[_File], bool]:
        try:
            st = os.stat(root)
        except FileNotFoundError:
            raise ModelArtifactMissing(f"{root} does not exist", path=root) from None
        if stat.S_ISREG(st.st_mode):
            return root, [_File(root, "", st)], False
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidModelSpec(f"{root} is neither a file nor a directory", path=root)
        files = []
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
                files.append(_File(full, rel, lst))
        return root, files, True

    def _hash(self, misses: list[_File], progress: HashProgress | None, total: int) -> None:
        if not misses:
            return
        on_chunk = None if progress is None else (lambda n: progress(n, total))
        started_ns = time.time_ns()

        def work(f: _File) -> str:
            return hash_file(f.path, on_chunk=on_chunk)

        if len(misses) == 1 or self.workers == 1:
            digests = [work(f) for f in misses]
        else:
            from concurrent.futures import ThreadPoolExecutor  # only when there is a pool to run

            with ThreadPoolExecutor(max_workers=min(self.workers, len(misses))) as pool:
                digests = list(pool.map(work, misses))
        for f, digest in zip(misses, digests, strict=True):
            f.digest = digest
            if self.cache is not None:
                self.cache.store_hashed(f.path, f.st, digest, started_ns)


def _assemble(root: str, files: list[_File], is_dir: bool, missed: set[int]) -> Digest:
    cached = not any(id(f) in missed for f in files)
    size = sum(f.st.st_size for f in files)
    if not is_dir:
        assert files[0].digest is not None
        return Digest(root, files[0].digest, size, 1, cached)
    entries = sorted([f.relpath, f.digest] for f in files)
    material = {"kind": "weights_directory", "dig_v": DIG_V, "files": entries}
    return Digest(root, sha256_tagged(canonical_json(material)), size, len(files), cached)


def _raise(exc: OSError) -> None:
    raise exc
