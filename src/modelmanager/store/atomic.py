"""Atomic files: a unique temp file in the target directory, fsync, rename, fsync of the directory.

A crash at any point leaves the final name absent (or the previous complete
file) and at most a ``.<name>.<16 hex>.tmp`` file (:func:`is_temp_name`),
which readers never open and garbage collection may delete. Every writer of
the package (artifacts, manifests, prepared models, Triton repositories,
digest-cache-free files) goes through :func:`atomic_write`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, BinaryIO

from modelmanager.errors import ModelManagerError, StorageUnavailable

__all__ = ["atomic_write", "fsync_dir", "is_temp_name", "make_dirs", "write_bytes"]

_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{16}\.tmp")


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of :func:`atomic_write`'s temp files (never read; GC may delete).

    >>> is_temp_name(".text_ocr.npz.0123456789abcdef.tmp")
    True
    """
    return _TEMP_NAME.fullmatch(name) is not None


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
        StorageUnavailable: the directory cannot be created or the file cannot be
            written (no space, read-only, permission), naming the path; also an OSError.
    """
    final = Path(path)
    try:
        return _write_atomically(final, write)
    except ModelManagerError:
        raise  # the callback's own, already named (a missing source file, say)
    except OSError as exc:  # no space, read-only, permission: the disk's fault, not the data's
        raise StorageUnavailable.from_os_error(exc, "writing", final) from exc


def _write_atomically(final: Path, write: Callable[[IO[bytes]], None]) -> tuple[int, str]:
    directory = final.parent
    make_dirs(directory)
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
    fsync_dir(directory)
    return writer.size, writer.sha256


def write_bytes(path: str | os.PathLike[str], data: bytes) -> tuple[int, str]:
    """:func:`atomic_write` of ``data``; returns ``(size, "sha256:<hex>")``."""

    def write(stream: IO[bytes]) -> None:
        stream.write(data)

    return atomic_write(path, write)


def make_dirs(directory: Path) -> None:
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
        fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    # Makes the rename (or mkdir) itself durable; Windows cannot open directories.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
