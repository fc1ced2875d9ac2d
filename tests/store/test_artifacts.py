"""R-ART-1, D5: NPZ artifacts written atomically, read only after their record checks out.

Golden file: ``tests/store/golden/artifact_meta.json`` holds the exact ``__meta__``
bytes of a fixed :class:`ArtifactMeta`. When a change of the meta is
deliberate, regenerate it with

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/store/test_artifacts.py -k golden

and read the diff: a changed line is a change of the NPZ contract.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pydantic import ValidationError

from modelmanager.errors import ArtifactInvalid
from modelmanager.mapping.spec import ModelUsed
from modelmanager.store.artifacts import (
    ARTIFACT_FORMAT,
    META_KEY,
    ArtifactMeta,
    ArtifactRecord,
    artifact_digest_key,
    write_artifact,
)
from modelmanager.store.atomic import atomic_write, is_temp_name
from modelmanager.store.check import ArtifactCheck, check_artifact, read_artifact
from modelmanager.store.fields import utc_timestamp
from modelmanager.store.layout import artifact_relpath, manifest_relpath
from modelmanager.weights.digest import DigestCache, Digester, HashTotals, hashing_totals

GOLDEN_META = Path(__file__).parent / "golden" / "artifact_meta.json"
REL = artifact_relpath("youtube", "vid-001", "text_ocr", "run-001")


def make_meta(**overrides: Any) -> ArtifactMeta:
    used = ModelUsed(
        role="detector",
        model_name="text-detector",
        model_version="2.1.0",
        weights_digest="sha256:" + "0" * 64,
        runtime="inprocess",
        engine="onnx",
        precision="fp32",
        device="cuda",
        preprocess_preset=None,
        preprocessing_version="ocr-det@1",
    )
    fields: dict[str, Any] = {
        "component": "text_ocr",
        "run_id": "run-001",
        "cache_key": "sha256:" + "c" * 64,
        "input_digest": "sha256:" + "e" * 64,
        "models_used": (used,),
        "model_signature": "sha256:" + "5" * 64,
        "producer_version": "1.4.0",
        "schema_version": "2",
        "batch_size": 16,
        "seed": 1234,
        "engine": "onnx",
        "precision": "fp32",
        "device": "cuda:1",
        "library_versions": {"numpy": "1.26.4", "onnxruntime": "1.20.1"},
        "cuda_version": "12.4",
        "cudnn_version": "9.1.0",
        "created_at": "2025-01-02T03:04:05.000006Z",
    }
    fields.update(overrides)
    return ArtifactMeta(**fields)


def sample_arrays() -> dict[str, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(7)
    return {
        "embeddings": rng.standard_normal((5, 8)).astype(np.float32),
        "frame_ids": np.arange(5, dtype=np.int64),
        "has_text": np.array([True, False, True, True, False]),
        "texts": np.array(["stop", "", "ВЫХОД", "42", "x"]),
        "raw": np.array([b"\x00\xff", b"ab"]),
        "scalar": np.array(3.5),
        "empty": np.zeros((0, 4), dtype=np.float16),
        "fortran": np.asfortranarray(np.arange(12, dtype=np.int16).reshape(3, 4)),
        # Names np.savez(**kwds) could not take: they collide with its own parameters.
        "file": np.ones(2),
        "allow_pickle": np.zeros(2),
    }


def sha256_of(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def written(root: Path) -> ArtifactRecord:
    return write_artifact(root, REL, sample_arrays(), make_meta())


# --- layout -------------------------------------------------------------------------


def test_layout() -> None:
    assert REL == "youtube/vid-001/text_ocr/run-001/text_ocr.npz"
    assert manifest_relpath("youtube", "vid-001", "run-001") == (
        "youtube/vid-001/runs/run-001/manifest.json"
    )


def test_temp_names() -> None:
    assert is_temp_name(".text_ocr.npz.0123456789abcdef.tmp")
    assert not is_temp_name("text_ocr.npz")
    assert not is_temp_name(".text_ocr.npz.tmp")
    assert not is_temp_name("manifest.json")


# --- round trip -----------------------------------------------------------------------


def test_round_trip(root: Path, written: ArtifactRecord) -> None:
    arrays, meta = read_artifact(root, written, schema_version="2")
    expected = sample_arrays()
    assert list(arrays) == list(expected)
    for name, array in expected.items():
        np.testing.assert_array_equal(arrays[name], array)
        assert arrays[name].dtype == array.dtype
        assert arrays[name].shape == array.shape
    assert meta == make_meta()
    assert meta.format == ARTIFACT_FORMAT


def test_file_is_a_plain_npz_that_loads_without_pickle(root: Path, written: ArtifactRecord) -> None:
    path = root / REL
    with np.load(path, allow_pickle=False) as npz:
        members = {name: npz[name] for name in npz.files}
    assert set(members) == {META_KEY, *sample_arrays()}
    assert members[META_KEY].dtype == np.uint8
    assert json.loads(members[META_KEY].tobytes()) == make_meta().model_dump(mode="json")
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}
        assert archive.namelist()[0] == META_KEY + ".npy"


def test_record_matches_the_file_on_disk(root: Path, written: ArtifactRecord) -> None:
    path = root / REL
    assert written.relpath == REL
    assert written.size == path.stat().st_size
    assert written.sha256 == sha256_of(path)
    assert os.listdir(path.parent) == ["text_ocr.npz"]


def test_same_content_gives_the_same_bytes(tmp_path: Path) -> None:
    a = write_artifact(tmp_path / "a", REL, sample_arrays(), make_meta())
    b = write_artifact(tmp_path / "b", REL, sample_arrays(), make_meta())
    assert a == b


def test_rewrite_replaces_the_file(root: Path, written: ArtifactRecord) -> None:
    again = write_artifact(root, REL, {"x": np.arange(3)}, make_meta(seed=1))
    assert again.sha256 != written.sha256
    arrays, meta = read_artifact(root, again, schema_version="2")
    assert list(arrays) == ["x"]
    assert meta.seed == 1
    assert check_artifact(root, written, schema_version="2").problem in {"size", "sha256"}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    array=hnp.arrays(
        dtype=st.one_of(hnp.integer_dtypes(), hnp.floating_dtypes(), hnp.boolean_dtypes()),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
    )
)
def test_any_numeric_array_round_trips(tmp_path: Path, array: np.ndarray[Any, Any]) -> None:
    record = write_artifact(tmp_path, "x/a.npz", {"a": array}, make_meta())
    arrays, _ = read_artifact(tmp_path, record, schema_version="2")
    np.testing.assert_array_equal(arrays["a"], array)
    assert arrays["a"].dtype == array.dtype


# --- what write refuses ----------------------------------------------------------------


def test_refuses_the_reserved_key(root: Path) -> None:
    with pytest.raises(ValueError, match="reserved"):
        write_artifact(root, REL, {META_KEY: np.zeros(1)}, make_meta())
    assert not root.exists()


def test_refuses_object_arrays(root: Path) -> None:
    with pytest.raises(ValueError, match="pickle"):
        write_artifact(root, REL, {"o": np.array([{"a": 1}], dtype=object)}, make_meta())
    mixed = np.zeros(1, dtype=[("a", "i4"), ("b", "O")])
    with pytest.raises(ValueError, match="pickle"):
        write_artifact(root, REL, {"m": mixed}, make_meta())
    assert not root.exists()


@pytest.mark.parametrize("relpath", ["../escape.npz", "/abs.npz", "a/../b.npz", "a\\b.npz", ""])
def test_refuses_paths_outside_the_root(root: Path, relpath: str) -> None:
    with pytest.raises(ValueError, match="relative"):
        write_artifact(root, relpath, {"x": np.zeros(1)}, make_meta())


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    def half_then_fail(stream: IO[bytes]) -> None:
        stream.write(b"partial")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(tmp_path / "d" / "file.bin", half_then_fail)
    assert os.listdir(tmp_path / "d") == []


# --- checks: one problem each ------------------------------------------------------------


def _problem(root: Path, record: ArtifactRecord, schema_version: str = "2") -> ArtifactCheck:
    check = check_artifact(root, record, schema_version=schema_version)
    assert not check.ok
    with pytest.raises(ArtifactInvalid) as info:
        read_artifact(root, record, schema_version=schema_version)
    assert info.value.code == "artifact_invalid"
    assert info.value.fields["problem"] == check.problem
    assert info.value.fields["path"] == str(root / record.relpath)
    return check


def test_valid_artifact_checks_ok(root: Path, written: ArtifactRecord) -> None:
    check = check_artifact(root, written, schema_version="2")
    assert check.ok
    assert check.problem is None
    assert check.meta == make_meta()
    assert check.to_json_dict()["ok"] is True


def test_missing(root: Path, written: ArtifactRecord) -> None:
    (root / REL).unlink()
    check = _problem(root, written)
    assert check.problem == "missing"


def test_truncated_is_a_size_problem(root: Path, written: ArtifactRecord) -> None:
    path = root / REL
    os.truncate(path, written.size - 100)
    check = _problem(root, written)
    assert (check.problem, check.expected, check.actual) == (
        "size",
        written.size,
        written.size - 100,
    )


def test_size_problem_is_found_without_hashing(tmp_path: Path) -> None:
    # A sparse 1 GiB file: hashing it would take about a second, a stat microseconds.
    path = tmp_path / "big.npz"
    with open(path, "wb") as f:
        f.truncate(1 << 30)
    record = ArtifactRecord(relpath="big.npz", size=(1 << 30) + 1, sha256="sha256:" + "0" * 64)
    started = time.perf_counter()
    check = check_artifact(tmp_path, record, schema_version="2")
    elapsed = time.perf_counter() - started
    assert check.problem == "size"
    assert elapsed < 0.1, f"{elapsed:.3f} s: the size check must not hash"


def test_same_size_bit_flip_is_a_sha256_problem(root: Path, written: ArtifactRecord) -> None:
    path = root / REL
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    check = _problem(root, written)
    assert check.problem == "sha256"
    assert check.expected == written.sha256
    assert check.actual == sha256_of(path)


def test_other_schema_version_is_a_schema_problem(root: Path) -> None:
    record = write_artifact(root, REL, {"x": np.zeros(2)}, make_meta(schema_version="1"))
    check = _problem(root, record, schema_version="2")
    assert (check.problem, check.expected, check.actual) == ("schema", "2", "1")
    assert check.meta is not None
    assert check.meta.schema_version == "1"


def _record_for(root: Path, relpath: str, data: bytes) -> ArtifactRecord:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return ArtifactRecord(relpath, len(data), sha256_of(path))


def test_garbage_with_right_size_and_hash_is_unreadable(root: Path) -> None:
    record = _record_for(root, REL, os.urandom(4096))
    assert _problem(root, record).problem == "unreadable"


def _npz_bytes(tmp_path: Path, **arrays: np.ndarray[Any, Any]) -> bytes:
    path = tmp_path / "plain.npz"
    np.savez(path, **arrays)
    return path.read_bytes()


def test_npz_without_meta_is_unreadable(root: Path, tmp_path: Path) -> None:
    record = _record_for(root, REL, _npz_bytes(tmp_path, x=np.zeros(3)))
    check = _problem(root, record)
    assert check.problem == "unreadable"
    assert META_KEY in check.detail


def test_npz_with_pickled_arrays_is_unreadable(root: Path, tmp_path: Path) -> None:
    meta = np.frombuffer(make_meta().to_json_bytes(), dtype=np.uint8)
    data = _npz_bytes(tmp_path, __meta__=meta, o=np.array([{"a": 1}], dtype=object))
    record = _record_for(root, REL, data)
    check = _problem(root, record)
    assert check.problem == "unreadable"
    assert "pickle" in check.detail


def test_npz_with_a_member_that_is_not_an_array_is_unreadable(root: Path, tmp_path: Path) -> None:
    path = tmp_path / "foreign.npz"
    np.savez(path, __meta__=np.frombuffer(make_meta().to_json_bytes(), dtype=np.uint8))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("notes.txt", "hello")
    record = _record_for(root, REL, path.read_bytes())
    check = _problem(root, record)
    assert check.problem == "unreadable"
    assert "notes.txt" in check.detail


def test_meta_of_another_format(root: Path, tmp_path: Path) -> None:
    doc = {**make_meta().model_dump(mode="json"), "format": "modelmanager.npz/3"}
    meta = np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8)
    record = _record_for(root, REL, _npz_bytes(tmp_path, __meta__=meta))
    check = _problem(root, record)
    assert (check.problem, check.actual) == ("format", "modelmanager.npz/3")


def test_a_format_1_meta_still_reads_without_an_input_digest() -> None:
    """Issue 13: format 2 added input_digest; an artifact written before still reads."""
    doc = make_meta().model_dump(mode="json")
    assert doc["format"] == "modelmanager.npz/2"
    del doc["input_digest"]
    old = ArtifactMeta.model_validate({**doc, "format": "modelmanager.npz/1"})
    assert old.input_digest is None


def test_meta_that_is_not_json_or_not_a_meta(root: Path, tmp_path: Path) -> None:
    not_json = np.frombuffer(b"\x00\x01 not json", dtype=np.uint8)
    record = _record_for(root, REL, _npz_bytes(tmp_path, __meta__=not_json))
    assert _problem(root, record).problem == "format"

    doc = make_meta().model_dump(mode="json")
    del doc["device"]
    incomplete = np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8)
    record = _record_for(root, REL, _npz_bytes(tmp_path, __meta__=incomplete))
    check = _problem(root, record)
    assert check.problem == "format"
    assert "device" in check.detail


def test_temp_files_are_not_artifacts(root: Path) -> None:
    directory = root / Path(REL).parent
    directory.mkdir(parents=True)
    tmp = directory / ".text_ocr.npz.0123456789abcdef.tmp"
    tmp.write_bytes(b"half an artifact")
    record = ArtifactRecord(REL, 16, sha256_of(tmp))
    assert check_artifact(root, record, schema_version="2").problem == "missing"


# --- the digest cache: a cache hit without a re-hash ------------------------------------------


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[DigestCache]:
    with DigestCache(tmp_path / "cache" / "digests.sqlite3") as opened:
        yield opened


def _hashed(check: Callable[[], ArtifactCheck]) -> tuple[ArtifactCheck, HashTotals]:
    before = hashing_totals()
    result = check()
    return result, hashing_totals() - before


def test_an_artifact_written_with_the_cache_checks_without_a_rehash(
    root: Path, cache: DigestCache
) -> None:
    record = write_artifact(root, REL, sample_arrays(), make_meta(), digest_cache=cache)
    check, hashed = _hashed(
        lambda: check_artifact(root, record, schema_version="2", digest_cache=cache)
    )
    assert check.ok
    assert check.meta == make_meta()
    assert hashed == HashTotals(files=0, bytes=0)
    full, hashed = _hashed(
        lambda: check_artifact(root, record, schema_version="2", digest_cache=cache, verify="full")
    )
    assert full == check
    assert hashed == HashTotals(files=1, bytes=record.size)


def test_without_the_cache_every_check_rehashes(root: Path, written: ArtifactRecord) -> None:
    _, hashed = _hashed(lambda: check_artifact(root, written, schema_version="2"))
    assert hashed == HashTotals(files=1, bytes=written.size)


@pytest.mark.parametrize("change", ["in_place_old_mtime", "replaced_old_mtime", "touched"])
def test_a_changed_file_is_rehashed_despite_the_cache(
    root: Path, cache: DigestCache, change: str
) -> None:
    record = write_artifact(root, REL, sample_arrays(), make_meta(), digest_cache=cache)
    path = root / REL
    st = os.stat(path)
    data = bytearray(path.read_bytes())
    if change != "touched":
        data[len(data) // 2] ^= 0x01
    if change == "replaced_old_mtime":
        other = path.with_name("other")
        other.write_bytes(bytes(data))
        os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
        other.replace(path)
    elif change == "in_place_old_mtime":
        path.write_bytes(bytes(data))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    else:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # the same bytes; ctime moves
    check, hashed = _hashed(
        lambda: check_artifact(root, record, schema_version="2", digest_cache=cache)
    )
    assert hashed == HashTotals(files=1, bytes=record.size)
    assert check.problem == (None if change == "touched" else "sha256")


def test_a_full_check_caches_a_settled_file(root: Path, cache: DigestCache) -> None:
    record = write_artifact(root, REL, sample_arrays(), make_meta())  # not recorded
    path = root / REL
    for _ in range(2):  # fresh: inside the racy window, hashed each time
        _, hashed = _hashed(
            lambda: check_artifact(root, record, schema_version="2", digest_cache=cache)
        )
        assert hashed.files == 1
    past = time.time_ns() - 60 * 10**9
    os.utime(path, ns=(past, past))
    _, hashed = _hashed(
        lambda: check_artifact(root, record, schema_version="2", digest_cache=cache)
    )
    assert hashed.files == 1  # hashed once more, and cached now
    check, hashed = _hashed(
        lambda: check_artifact(root, record, schema_version="2", digest_cache=cache)
    )
    assert (check.ok, hashed.files) == (True, 0)


def test_a_trusted_artifact_still_gets_its_meta_checked(root: Path, cache: DigestCache) -> None:
    record = write_artifact(
        root, REL, {"x": np.zeros(2)}, make_meta(schema_version="1"), digest_cache=cache
    )
    check, hashed = _hashed(
        lambda: check_artifact(root, record, schema_version="2", digest_cache=cache)
    )
    assert (check.problem, check.expected, check.actual, hashed.files) == ("schema", "2", "1", 0)


def test_a_trusted_file_without_meta_is_unreadable(
    root: Path, tmp_path: Path, cache: DigestCache
) -> None:
    record = _record_for(root, REL, _npz_bytes(tmp_path, x=np.zeros(3)))
    key = artifact_digest_key(root / REL)
    assert cache.store_written(str(root / REL), record.sha256, record.size, key=key)
    check, hashed = _hashed(
        lambda: check_artifact(root, record, schema_version="2", digest_cache=cache)
    )
    assert (check.problem, hashed.files) == ("unreadable", 0)
    assert META_KEY in check.detail


def test_only_a_whole_artifact_is_trusted_on_its_stat(
    root: Path, tmp_path: Path, cache: DigestCache
) -> None:
    meta = np.frombuffer(make_meta().to_json_bytes(), dtype=np.uint8)
    data = _npz_bytes(tmp_path, __meta__=meta, o=np.array([{"a": 1}], dtype=object))
    record = _record_for(root, REL, data)  # its sha256 is right, its pickled member is not
    past = time.time_ns() - 60 * 10**9
    os.utime(root / REL, ns=(past, past))  # settled: a hash of it could be cached
    Digester(cache).digest(root / REL)  # a plain digest of the file is cached...
    for _ in range(2):  # ...and so would be a full check's hash, were the file whole
        check, hashed = _hashed(
            lambda: check_artifact(root, record, schema_version="2", digest_cache=cache)
        )
        assert (check.problem, hashed.files) == ("unreadable", 1)
        assert "pickle" in check.detail


# --- crash while writing -------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    from modelmanager.store.artifacts import ArtifactMeta, write_artifact

    meta = ArtifactMeta.model_validate_json(sys.argv[3])
    big = np.ones(200 * 2**20 // 8)  # 200 MiB
    print("ready", flush=True)
    write_artifact(sys.argv[1], sys.argv[2], {"big": big}, meta)
    print("finished", flush=True)
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_sigkill_while_writing_leaves_no_artifact(root: Path) -> None:
    """A process killed mid-write leaves only a recognisable temp file, never the final name."""
    final = root / REL
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(root), REL, make_meta().model_dump_json()],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 20
        seen: list[int] = []
        while time.monotonic() < deadline and child.poll() is None:
            try:
                temps = [e for e in os.scandir(final.parent) if is_temp_name(e.name)]
            except FileNotFoundError:
                temps = []
            if temps:
                seen.append(temps[0].stat().st_size)
                if seen[-1] >= 2**20:  # it appeared and grew: well inside the write
                    child.send_signal(signal.SIGKILL)
                    break
            time.sleep(0.0005)
        child.wait(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        assert child.stdout is not None
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL, (
        f"the child was not killed mid-write (rc {child.returncode}, sizes seen {seen[-3:]})"
    )
    assert not final.exists()
    left = os.listdir(final.parent)
    assert len(left) == 1
    assert is_temp_name(left[0])
    assert left[0].startswith(".text_ocr.npz.")
    assert 2**20 <= (final.parent / left[0]).stat().st_size < 200 * 2**20
    record = ArtifactRecord(REL, 200 * 2**20, "sha256:" + "0" * 64)
    assert check_artifact(root, record, schema_version="2").problem == "missing"


# --- records ------------------------------------------------------------------------------


def test_record_json_round_trip(written: ArtifactRecord) -> None:
    data = written.to_json_dict()
    assert data == {"relpath": REL, "size": written.size, "sha256": written.sha256}
    assert ArtifactRecord.from_json_dict(data) == written
    with pytest.raises(ValueError, match="relpath, size, sha256"):
        ArtifactRecord.from_json_dict({**data, "extra": 1})


@pytest.mark.parametrize(
    "fields",
    [
        {"relpath": "../x.npz"},
        {"size": -1},
        {"size": True},
        {"sha256": "md5:abc"},
        {"sha256": "sha256:" + "A" * 64},
    ],
)
def test_record_refuses_bad_fields(fields: dict[str, Any]) -> None:
    base: dict[str, Any] = {"relpath": REL, "size": 1, "sha256": "sha256:" + "0" * 64}
    with pytest.raises(ValueError):  # noqa: PT011  # each case has its own message
        ArtifactRecord(**{**base, **fields})


def test_meta_is_frozen_and_strict() -> None:
    meta = make_meta()
    with pytest.raises(ValidationError):
        meta.seed = 2  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        make_meta(resolved_model_mapping={})  # R-MAP-3: the mapping is the manifest's
    with pytest.raises(ValidationError, match="UTC"):
        make_meta(created_at="2025-01-02T03:04:05+03:00")
    with pytest.raises(ValidationError, match="sha256"):
        make_meta(model_signature="abc")


def test_utc_timestamp() -> None:
    stamp = utc_timestamp()
    assert stamp.endswith("Z")
    make_meta(created_at=stamp)
    with pytest.raises(ValueError, match="naive"):
        utc_timestamp(datetime(2025, 1, 2))


def test_meta_bytes_match_golden_file() -> None:
    actual = make_meta().to_json_bytes() + b"\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN_META.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN_META.write_bytes(actual)
    assert GOLDEN_META.read_bytes() == actual, (
        "the meta's bytes changed; if deliberate, regenerate with UPDATE_GOLDEN=1"
    )
