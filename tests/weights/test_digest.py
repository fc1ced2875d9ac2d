"""R-DIG-1, R-DIG-3, D3: file and directory digests, the per-host stat-keyed cache."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
import sys
import time
from pathlib import Path

import onnx
import pytest

import modelmanager.weights.digest as digest_mod
from modelmanager import (
    InvalidModelSpec,
    ModelArtifactMissing,
    ModelManagerError,
    WeightsDigestMismatch,
)
from modelmanager.weights.digest import DigestCache, Digester, hash_file
from tests.conftest import age
from tests.weights.onnx_models import (
    flip_one_byte,
    matmul_model,
    save_pointing_at,
    save_with_external_data,
)


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def cache(tmp_path: Path) -> DigestCache:
    with DigestCache(tmp_path / "cache" / "digests.sqlite3") as c:
        yield c  # type: ignore[misc]


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    path = tmp_path / "w.bin"
    path.write_bytes(os.urandom(3 * digest_mod.CHUNK_SIZE + 17))
    age(path)
    return path


@pytest.fixture
def count_hashing(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every file actually read and hashed."""
    calls: list[str] = []
    real = digest_mod.hash_file

    def counting(path: str, **kw: object) -> str:
        calls.append(str(path))
        return real(path, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(digest_mod, "hash_file", counting)
    return calls


def test_file_digest_is_sha256_of_its_bytes(weights: Path) -> None:
    assert hash_file(weights) == _sha(weights.read_bytes())
    with weights.open("rb") as f:
        assert hash_file(weights) == "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e").write_bytes(b"")
    assert Digester().digest(tmp_path / "e").digest == _sha(b"")


def test_directory_digest_covers_relative_paths_and_contents(tmp_path: Path) -> None:
    model = tmp_path / "repo"
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_bytes(b"{}")
    (model / "sub" / "weights.bin").write_bytes(b"w" * 10)
    result = Digester().digest(model)
    files = [["config.json", _sha(b"{}")], ["sub/weights.bin", _sha(b"w" * 10)]]
    material = {"dig_v": 1, "files": files, "kind": "weights_directory"}
    expected = _sha(json.dumps(material, separators=(",", ":"), sort_keys=True).encode())
    assert (result.digest, result.files, result.size) == (expected, 2, 12)

    (model / "sub" / "weights.bin").rename(model / "weights.bin")  # same bytes, other path
    assert Digester().digest(model).digest != expected


def test_directory_model_refuses_symlinks(tmp_path: Path) -> None:
    model = tmp_path / "repo"
    model.mkdir()
    (tmp_path / "outside.bin").write_bytes(b"x")
    (model / "link.bin").symlink_to(tmp_path / "outside.bin")
    with pytest.raises(InvalidModelSpec, match="symlink"):
        Digester().digest(model)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ModelArtifactMissing) as info:
        Digester().digest(tmp_path / "nope.onnx")
    assert info.value.fields["path"].endswith("nope.onnx")
    assert isinstance(info.value, FileNotFoundError)


def test_reverify_unchanged_file_reads_nothing(
    weights: Path, cache: DigestCache, count_hashing: list[str]
) -> None:
    digester = Digester(cache)
    first = digester.digest(weights)
    second = digester.digest(weights)
    assert (first.cached, second.cached) == (False, True)
    assert first.digest == second.digest
    assert count_hashing == [str(weights)]


def test_cache_persists_across_processes_on_disk(
    weights: Path, tmp_path: Path, count_hashing: list[str]
) -> None:
    with DigestCache.in_dir(tmp_path / "c") as c:
        Digester(c).digest(weights)
    with DigestCache.in_dir(tmp_path / "c") as c:
        assert Digester(c).digest(weights).cached
    assert len(count_hashing) == 1


def test_any_change_rehashes(weights: Path, cache: DigestCache, count_hashing: list[str]) -> None:
    digester = Digester(cache)
    original = digester.digest(weights).digest
    st = os.stat(weights)
    data = bytearray(weights.read_bytes())
    data[0] ^= 1  # same size, one bit
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with the old mtime
    changed = digester.digest(weights)
    assert not changed.cached
    assert changed.digest == _sha(bytes(data)) != original


def test_replaced_file_with_same_stat_times_is_rehashed(
    weights: Path, cache: DigestCache, tmp_path: Path
) -> None:
    digester = Digester(cache)
    digester.digest(weights)
    other = tmp_path / "other.bin"
    other.write_bytes(b"x" * os.stat(weights).st_size)
    st = os.stat(weights)
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    other.replace(weights)  # new inode at the same path
    assert digester.digest(weights).digest == _sha(b"x" * st.st_size)


def test_freshly_written_file_is_not_cached(tmp_path: Path, cache: DigestCache) -> None:
    fresh = tmp_path / "fresh.bin"
    fresh.write_bytes(b"new")
    digester = Digester(cache)
    digester.digest(fresh)
    assert not digester.digest(fresh).cached  # inside the racy window: hashed again
    age(fresh)
    digester.digest(fresh)
    assert digester.digest(fresh).cached


def test_corrupt_cache_file_is_replaced(tmp_path: Path, weights: Path) -> None:
    path = tmp_path / "c" / "digests.sqlite3"
    path.parent.mkdir()
    path.write_bytes(b"this is not a database" * 100)
    with DigestCache(path) as c:
        assert Digester(c).digest(weights).digest == _sha(weights.read_bytes())


def test_older_cache_format_is_dropped(tmp_path: Path, weights: Path) -> None:
    path = tmp_path / "digests.sqlite3"
    with DigestCache(path) as c:
        Digester(c).digest(weights)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 0")
    conn.close()
    with DigestCache(path) as c:
        assert not Digester(c).digest(weights).cached


def test_many_files_are_hashed_in_parallel_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    threads: set[int] = set()
    real = digest_mod.hash_file
    barrier = threading.Barrier(2, timeout=10)

    def in_thread(path: str, **kw: object) -> str:
        threads.add(threading.get_ident())
        barrier.wait()  # both files must be in flight at once
        return real(path, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(digest_mod, "hash_file", in_thread)
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"a" * 1000)
    b.write_bytes(b"b" * 1000)
    results = Digester(workers=2).digest_many([a, b])
    assert [r.digest for r in results] == [_sha(b"a" * 1000), _sha(b"b" * 1000)]
    assert len(threads) == 2


def test_progress_accounts_for_every_byte(
    weights: Path, tmp_path: Path, cache: DigestCache
) -> None:
    small = tmp_path / "small"
    small.write_bytes(b"s" * 10)
    age(small)
    digester = Digester(cache)
    digester.digest(small)  # cached from now on
    seen: list[tuple[int, int]] = []
    digester.digest_many([weights, small], progress=lambda n, total: seen.append((n, total)))
    total = os.stat(weights).st_size + 10
    assert sum(n for n, _ in seen) == total
    assert {t for _, t in seen} == {total}


def test_verify_mismatch_names_path_expected_and_actual(weights: Path) -> None:
    expected = "sha256:" + "0" * 64
    with pytest.raises(WeightsDigestMismatch) as info:
        Digester().verify(weights, expected)
    err = info.value
    assert err.fields == {"path": str(weights), "expected": expected, "actual": hash_file(weights)}
    assert not err.transient


def test_a_path_given_twice_is_hashed_once(weights: Path, count_hashing: list[str]) -> None:
    a, b = Digester().digest_many([weights, weights.parent / "." / weights.name])
    assert a.digest == b.digest
    assert len(count_hashing) == 1


def test_hashing_totals_count_every_byte_read(weights: Path, cache: DigestCache) -> None:
    before = digest_mod.hashing_totals()
    hash_file(weights)
    size = weights.stat().st_size
    assert digest_mod.hashing_totals() - before == digest_mod.HashTotals(files=1, bytes=size)
    digester = Digester(cache)
    digester.digest(weights)  # hashed and cached
    middle = digest_mod.hashing_totals()
    assert digester.digest(weights).cached
    assert digest_mod.hashing_totals() - middle == digest_mod.HashTotals(files=0, bytes=0)


def test_a_file_we_wrote_is_cached_at_once_until_it_changes(
    tmp_path: Path, cache: DigestCache
) -> None:
    from modelmanager.store.atomic import write_bytes

    path = tmp_path / "artifact.npz"
    size, sha = write_bytes(path, b"published bytes")
    assert cache.store_written(str(path), sha, size)  # fresh, and still cached
    assert cache.lookup(str(path), os.stat(path)) == sha
    st = os.stat(path)
    path.write_bytes(b"published bytez")  # in place, same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with the old mtime
    assert cache.lookup(str(path), os.stat(path)) is None


def test_store_written_refuses_a_file_of_another_size(tmp_path: Path, cache: DigestCache) -> None:
    path = tmp_path / "artifact.npz"
    path.write_bytes(b"12345")
    assert not cache.store_written(str(path), _sha(b"1234"), 4)
    assert not cache.store_written(str(tmp_path / "missing"), _sha(b""), 0)
    assert cache.lookup(str(path), os.stat(path)) is None


def test_store_hashed_keeps_the_racy_window(tmp_path: Path, cache: DigestCache) -> None:
    fresh = tmp_path / "fresh.bin"
    fresh.write_bytes(b"new")
    st = os.stat(fresh)
    assert not cache.store_hashed(str(fresh), st, _sha(b"new"), time.time_ns())
    age(fresh)
    st = os.stat(fresh)
    assert cache.store_hashed(str(fresh), st, _sha(b"new"), time.time_ns())
    assert cache.lookup(str(fresh), st) == _sha(b"new")


def test_lookup_many_reads_rows_ahead(tmp_path: Path, cache: DigestCache) -> None:
    paths = []
    for i in range(3):
        path = tmp_path / f"w{i}.bin"
        path.write_bytes(bytes([i]) * 10)
        age(path)
        paths.append(path)
    digester = Digester(cache)
    digester.digest_many(paths)
    missing = [str(tmp_path / f"missing-{i}") for i in range(1200)]  # more than one query
    rows = cache.lookup_many([*missing, *map(str, paths), str(paths[0])])
    assert sorted(rows) == sorted(map(str, paths))
    for path in paths:
        st = os.stat(path)
        assert rows[str(path)].digest_for(st) == cache.lookup(str(path), st)
        found = digester.cached(str(path), st, rows)
        assert found is not None
        assert (found.digest, found.cached, found.size) == (hash_file(path), True, 10)
    paths[1].write_bytes(b"x" * 10)
    assert rows[str(paths[1])].digest_for(os.stat(paths[1])) is None
    assert digester.cached(str(paths[1]), os.stat(paths[1]), rows) is None
    assert digester.cached(str(tmp_path), os.stat(tmp_path)) is None  # a directory: walk it


# --- issue 12: ONNX external data, OS errors, a corrupted cache --------------------------


def test_an_onnx_file_with_external_data_has_no_file_digest(tmp_path: Path) -> None:
    """issue 12: the file digest of an .onnx whose weights live in external data files would
    not cover them (changing weights.bin went unseen); it is refused, naming the files."""
    model = save_with_external_data(tmp_path / "m")
    with pytest.raises(InvalidModelSpec) as info:
        Digester().digest(model)
    assert "weights.bin" in info.value.message
    assert "directory model" in info.value.message
    assert info.value.fields["path"] == str(model)
    assert info.value.fields["external_data"] == ["weights.bin"]


def test_the_refusal_holds_on_a_cache_hit_too(tmp_path: Path, cache: DigestCache) -> None:
    """issue 12: a cache row made while hashing the directory model does not let the same
    .onnx pass as a file model later."""
    model = save_with_external_data(tmp_path / "m")
    for path in (model, tmp_path / "m" / "weights.bin"):
        age(path)
    digester = Digester(cache)
    digester.digest(tmp_path / "m")
    assert digester.digest(tmp_path / "m").cached
    with pytest.raises(InvalidModelSpec, match=r"weights\.bin"):
        digester.digest(model)
    st = os.stat(model)
    assert digester.cached(str(model), st) is None  # the fast path does not pass it either


def test_a_directory_model_covers_its_onnx_external_data(tmp_path: Path) -> None:
    """issue 12: mapped as a directory model, the digest covers model.onnx and weights.bin."""
    model = save_with_external_data(tmp_path / "m")
    before = Digester().digest(tmp_path / "m")
    assert before.files == 2
    flip_one_byte(tmp_path / "m" / "weights.bin")
    assert Digester().digest(tmp_path / "m").digest != before.digest
    assert model.exists()


@pytest.mark.parametrize(
    "location",
    ["../outside.bin", "sub/../../outside.bin", "ABSOLUTE"],
    ids=["dotdot", "deep", "absolute"],
)
def test_external_data_outside_the_directory_model_is_refused(
    tmp_path: Path, location: str
) -> None:
    """issue 12: external data outside the directory model (an absolute or `..` location)
    is refused, even where the file it names exists."""
    if location == "ABSOLUTE":
        location = str(tmp_path / "elsewhere" / "outside.bin")
    save_pointing_at(tmp_path / "m" / "model.onnx", location)
    with pytest.raises(InvalidModelSpec) as info:
        Digester().digest(tmp_path / "m")
    assert location in info.value.message
    assert "outside" in info.value.message


def test_external_data_missing_from_the_directory_model(tmp_path: Path) -> None:
    """issue 12: a location that names no file of the directory model is refused."""
    save_with_external_data(tmp_path / "m")
    (tmp_path / "m" / "weights.bin").unlink()
    with pytest.raises(ModelArtifactMissing, match=r"weights\.bin"):
        Digester().digest(tmp_path / "m")


def test_onnx_files_are_read_only_when_hashed(
    tmp_path: Path, cache: DigestCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """issue 12: the ONNX protobuf is read on a cache miss only, never on a stat-cache hit."""
    from modelmanager.weights import onnx_data

    save_with_external_data(tmp_path / "m")
    plain = tmp_path / "plain.onnx"
    onnx.save_model(matmul_model(), str(plain))
    for path in (tmp_path / "m" / "model.onnx", tmp_path / "m" / "weights.bin", plain):
        age(path)
    calls: list[str] = []
    real = onnx_data.external_locations

    def counting(path: str) -> list[str]:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(onnx_data, "external_locations", counting)
    digester = Digester(cache)
    first = digester.digest_many([tmp_path / "m", plain])
    assert sorted(calls) == sorted([str(tmp_path / "m" / "model.onnx"), str(plain)])
    calls.clear()
    again = digester.digest_many([tmp_path / "m", plain])
    assert calls == []
    assert [d.digest for d in again] == [d.digest for d in first]
    assert all(d.cached for d in again)


def test_onnx_without_external_data_keeps_its_digest(tmp_path: Path) -> None:
    """issue 12: a model with no external data keeps its digest byte for byte."""
    plain = tmp_path / "plain.onnx"
    onnx.save_model(matmul_model(), str(plain))
    assert Digester().digest(plain).digest == _sha(plain.read_bytes())


def test_reading_external_data_needs_onnx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """issue 12: without the onnx package, the error says so with the install line."""
    model = save_with_external_data(tmp_path / "m")
    monkeypatch.setitem(sys.modules, "onnx", None)  # import raises ImportError
    with pytest.raises(ModelManagerError, match=r"pip install 'modelmanager\[onnx\]'") as info:
        Digester().digest(model)
    assert info.value.fields["path"] == str(model)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (PermissionError(errno.EACCES, "Permission denied"), "storage_unavailable"),
        (OSError(errno.EIO, "Input/output error"), "storage_unavailable"),
        (IsADirectoryError(errno.EISDIR, "Is a directory"), "model_artifact_missing"),
    ],
    ids=["EACCES", "EIO", "EISDIR"],
)
def test_os_errors_while_hashing_are_model_manager_errors(
    weights: Path, monkeypatch: pytest.MonkeyPatch, error: OSError, code: str
) -> None:
    """issue 12: what open/read raise while hashing (a file root may read, but these tests
    run as root, so the failure is injected where the file is opened) names the path."""

    def failing(path: str, **kw: object) -> str:
        error.filename = path
        raise error

    monkeypatch.setattr(digest_mod, "hash_file", failing)
    with pytest.raises(ModelManagerError) as info:
        Digester().digest(weights)
    assert info.value.code == code
    assert info.value.fields["path"] == str(weights)
    assert error.strerror in info.value.message


def test_a_path_through_a_file_or_a_symlink_loop_is_missing(tmp_path: Path) -> None:
    """issue 12: ENOTDIR and ELOOP, real ones, are model_artifact_missing naming the path."""
    (tmp_path / "file").write_bytes(b"x")
    (tmp_path / "loop_a").symlink_to(tmp_path / "loop_b")
    (tmp_path / "loop_b").symlink_to(tmp_path / "loop_a")
    for path in (tmp_path / "file" / "model.onnx", tmp_path / "loop_a"):
        with pytest.raises(ModelArtifactMissing) as info:
            Digester().digest(path)
        assert info.value.fields["path"] == str(path)


def test_a_non_utf8_name_in_a_directory_model_is_refused(tmp_path: Path) -> None:
    """issue 12: a file name that is not UTF-8 has no canonical form in the digest: refused."""
    model = tmp_path / "repo"
    model.mkdir()
    (model / "ok.bin").write_bytes(b"x")
    (model / os.fsdecode(b"w\xff.bin")).write_bytes(b"y")
    for cache_dir in (None, tmp_path / "c"):
        cache = None if cache_dir is None else DigestCache.in_dir(cache_dir)
        with pytest.raises(InvalidModelSpec, match="UTF-8") as info:
            Digester(cache).digest(model)
        assert "w\\xff.bin" in info.value.message
        if cache is not None:
            cache.close()


def _table(path: Path, sql: str, version: int | None = None) -> None:
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE IF EXISTS file_digests")
    conn.execute(sql)
    if version is not None:
        conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    "damage",
    ["missing column", "table of another shape", "no table", "garbage bytes", "empty file"],
)
def test_a_damaged_cache_is_rebuilt(
    tmp_path: Path, weights: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    """issue 12: the digest cache is only a cache: a damaged one is rebuilt, never a traceback."""
    path = tmp_path / "c" / "digests.sqlite3"
    with DigestCache(path) as c:
        Digester(c).digest(weights)
        version = digest_mod.CACHE_FORMAT
    if damage == "missing column":
        _table(
            path,
            "CREATE TABLE file_digests (path TEXT PRIMARY KEY, dev INTEGER,"
            " ino INTEGER, size INTEGER, mtime_ns INTEGER, digest TEXT,"
            " hashed_at_ns INTEGER)",
            version,
        )
    elif damage == "table of another shape":
        _table(path, "CREATE TABLE file_digests (a, b)", version)
    elif damage == "no table":
        _table(path, "CREATE TABLE other (a)", version)
    elif damage == "garbage bytes":
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        path.write_bytes(os.urandom(8192))
    else:
        path.write_bytes(b"")
    with DigestCache(path) as c:
        digester = Digester(c)
        assert digester.digest(weights).digest == _sha(weights.read_bytes())
        assert digester.digest(weights).cached  # rebuilt: caching again


@pytest.mark.parametrize("place", ["directory in its place", "cache dir under a file"])
def test_an_unusable_cache_is_bypassed_with_one_warning(
    tmp_path: Path, weights: Path, place: str, caplog: pytest.LogCaptureFixture
) -> None:
    """issue 12: where no cache can be kept, weights are hashed without one (one warning)."""
    if place == "directory in its place":
        path = tmp_path / "c" / "digests.sqlite3"
        path.mkdir(parents=True)
        (path / "keep").write_bytes(b"not ours to delete")
    else:
        (tmp_path / "c").write_bytes(b"a file where the cache dir should be")
        path = tmp_path / "c" / "digests.sqlite3"
    with caplog.at_level("WARNING", logger="modelmanager.weights.digest"), DigestCache(path) as c:
        digester = Digester(c)
        for _ in range(3):
            result = digester.digest(weights)
            assert (result.digest, result.cached) == (_sha(weights.read_bytes()), False)
        assert c.lookup_many([str(weights)]) == {}
        assert not c.usable
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings
    assert str(path) in warnings[0].getMessage()
    if place == "directory in its place":
        assert (path / "keep").read_bytes() == b"not ours to delete"


def test_an_unwritable_cache_dir_is_bypassed(
    tmp_path: Path, weights: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """issue 12: a cache dir the process may not write (a read-only mode; root, which runs
    these tests, writes anyway, so the check is only meaningful for other users) never fails
    a digest."""
    cache_dir = tmp_path / "ro"
    cache_dir.mkdir()
    cache_dir.chmod(0o500)
    try:
        with DigestCache.in_dir(cache_dir) as c:
            assert Digester(c).digest(weights).digest == _sha(weights.read_bytes())
    finally:
        cache_dir.chmod(0o700)


def test_a_cache_damaged_while_open_is_bypassed(
    tmp_path: Path, weights: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """issue 12: a cache whose table another process replaced while it was open: hashing goes
    on without it, with one warning."""
    path = tmp_path / "digests.sqlite3"
    with caplog.at_level("WARNING", logger="modelmanager.weights.digest"), DigestCache(path) as c:
        digester = Digester(c)
        digester.digest(weights)
        _table(path, "CREATE TABLE file_digests (a, b)")
        for _ in range(2):
            assert digester.digest(weights).digest == _sha(weights.read_bytes())
        assert c.lookup(str(weights), os.stat(weights)) is None
        assert c.lookup_many([str(weights)]) == {}
        assert not c.store_hashed(str(weights), os.stat(weights), _sha(b""), time.time_ns())
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings
