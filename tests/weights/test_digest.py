"""R-DIG-1, R-DIG-3, D3: file and directory digests, the per-host stat-keyed cache."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

import modelmanager.weights.digest as digest_mod
from modelmanager import InvalidModelSpec, ModelArtifactMissing, WeightsDigestMismatch
from modelmanager.weights.digest import DigestCache, Digester, hash_file
from tests.conftest import age


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
