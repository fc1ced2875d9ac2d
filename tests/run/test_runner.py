"""R-SIG-3/4, R-ART-1/2, R-FAIL-4, D4, D5: runs, the cache, leases, crashes — on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelmanager.index import RunStore
from modelmanager.mapping.signature import model_signature, models_used
from modelmanager.mapping.spec import ResolvedModelSpec
from modelmanager.runtimes import default_runtime
from modelmanager.store.check import read_artifact
from modelmanager.store.manifest import read_manifest
from modelmanager.weights.digest import HashTotals, hashing_totals
from tests.runner_components import (
    Broken,
    FrameFeatures,
    SceneStats,
    child_run,
    frames,
    make_runner,
    mapping,
)


class Opens:
    """A runtime factory that records every model the manager opens (then opens it for real)."""

    def __init__(self) -> None:
        self.opened: list[str] = []

    def __call__(self, spec: ResolvedModelSpec, path: Path | None) -> Any:
        self.opened.append(f"{spec.component_name}/{spec.role}")
        return default_runtime(spec, path)


def test_second_run_of_the_same_key_opens_no_model(store: RunStore, tmp_path: Path) -> None:
    first_opens, second_opens = Opens(), Opens()
    inputs = {"frames": frames()}
    first = make_runner(store, tmp_path, "run-1", runtime_factory=first_opens).run(
        [FrameFeatures(), SceneStats()], inputs
    )
    second = make_runner(store, tmp_path, "run-2", runtime_factory=second_opens).run(
        [FrameFeatures(), SceneStats()], inputs
    )
    assert first_opens.opened == ["frame_features/encoder"]
    assert second_opens.opened == []  # the model was never touched
    assert [(c.status, c.cache_hit) for c in first.manifest.components] == [
        ("ok", False),
        ("ok", False),
    ]
    assert [(c.status, c.cache_hit) for c in second.manifest.components] == [
        ("cached", True),
        ("cached", True),
    ]
    a, b = first.manifest.components[0], second.manifest.components[0]
    assert (a.cache_key, a.artifact) == (b.cache_key, b.artifact)
    assert [r.status for r in store.component_runs("run-2")] == ["cached", "cached"]


def test_artifact_holds_the_result_and_its_meta(store: RunStore, tmp_path: Path) -> None:
    result = make_runner(store, tmp_path, "run-1").run([FrameFeatures()], {"frames": frames()})
    entry = result.manifest.components[0]
    arrays, meta = read_artifact(tmp_path, entry.artifact, schema_version="1")  # type: ignore[arg-type]
    assert arrays["features"].shape == (4, 16)
    assert meta.model_signature == entry.model_signature
    assert [u.role for u in meta.models_used] == ["encoder"]
    assert (meta.batch_size, meta.seed, meta.engine, meta.precision, meta.device) == (
        4,
        0,
        "onnx",
        "fp32",
        "cpu",
    )
    assert meta.cache_key == entry.cache_key
    assert "onnxruntime" in meta.library_versions
    assert entry.artifact.relpath == "youtube/vid-001/frame_features/run-1/frame_features.npz"  # type: ignore[union-attr]


def test_changing_a_key_field_recomputes_only_that_component(
    store: RunStore, tmp_path: Path
) -> None:
    inputs = {"frames": frames()}
    make_runner(store, tmp_path, "run-1").run([FrameFeatures(), SceneStats()], inputs)
    changed = mapping()
    changed["components"]["frame_features"]["encoder"]["precision"] = "fp16"
    opens = Opens()
    result = make_runner(store, tmp_path, "run-2", mapping=changed, runtime_factory=opens).run(
        [FrameFeatures(), SceneStats()], inputs
    )
    assert [c.status for c in result.manifest.components] == ["ok", "cached"]
    assert opens.opened == ["frame_features/encoder"]


@pytest.mark.parametrize(
    "damage",
    ["truncate", "bitflip", "delete", "bitflip_old_mtime", "replaced_old_mtime", "full"],
)
def test_damaged_artifact_is_detected_and_recomputed(
    store: RunStore, tmp_path: Path, damage: str
) -> None:
    inputs = {"frames": frames()}
    first = make_runner(store, tmp_path, "run-1").run([FrameFeatures()], inputs)
    path = tmp_path / first.manifest.components[0].artifact.relpath  # type: ignore[union-attr]
    data = bytearray(path.read_bytes())
    st = os.stat(path)
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage in ("bitflip", "full"):
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    elif damage == "bitflip_old_mtime":  # in place: same inode, size and mtime; ctime moves
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    elif damage == "replaced_old_mtime":  # another inode with the same size and mtime
        data[len(data) // 2] ^= 0x01
        other = path.with_name("other.npz")
        other.write_bytes(bytes(data))
        os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
        other.replace(path)
    else:
        path.unlink()
    if damage not in ("delete", "truncate"):
        assert os.stat(path).st_size == st.st_size  # only the sha256 can tell
    opens = Opens()
    verify = "full" if damage == "full" else "stat"
    second = make_runner(
        store, tmp_path, "run-2", runtime_factory=opens, verify_artifacts=verify
    ).run([FrameFeatures()], inputs)
    entry = second.manifest.components[0]
    assert (entry.status, entry.cache_hit) == ("ok", False)
    assert opens.opened == ["frame_features/encoder"]
    assert any("is invalid" in w for w in entry.warnings)
    arrays, _ = read_artifact(tmp_path, entry.artifact, schema_version="1")  # type: ignore[arg-type]
    assert arrays["features"].shape == (4, 16)
    third = make_runner(store, tmp_path, "run-3").run([FrameFeatures()], inputs)
    assert third.manifest.components[0].status == "cached"  # the new artifact is served


def test_failures_are_recorded_and_the_run_goes_on(store: RunStore, tmp_path: Path) -> None:
    result = make_runner(store, tmp_path, "run-1").run(
        [Broken(), FrameFeatures()], {"frames": frames()}
    )
    broken, ok = result.manifest.components
    assert (broken.status, broken.error_code) == ("failed", "component_failed")
    assert "ZeroDivisionError" in (broken.error or "")
    assert ok.status == "ok"
    assert result.manifest.run.status == "failed"
    assert store.get_run("run-1").status == "failed"  # type: ignore[union-attr]
    rows = {r.component: r for r in store.component_runs("run-1")}
    assert rows["scene_stats"].error_code == "component_failed"


def test_model_errors_get_their_code_in_the_manifest(store: RunStore, tmp_path: Path) -> None:
    tampered = mapping()
    tampered["components"]["frame_features"]["encoder"]["weights_digest"] = "sha256:" + "0" * 64
    result = make_runner(store, tmp_path, "run-1", mapping=tampered).run(
        [FrameFeatures()], {"frames": frames()}
    )
    (entry,) = result.manifest.components
    assert (entry.status, entry.error_code) == ("failed", "weights_digest_mismatch")
    assert entry.error_fields["expected"] == "sha256:" + "0" * 64


def test_manifest_reads_back_typed_and_reproduces_the_signatures(
    store: RunStore, tmp_path: Path
) -> None:
    result = make_runner(store, tmp_path, "run-1").run(
        [FrameFeatures(), SceneStats()], {"frames": frames()}
    )
    manifest = read_manifest(result.manifest_path)
    assert manifest == result.manifest
    assert store.get_run("run-1").manifest_path == "youtube/vid-001/runs/run-1/manifest.json"  # type: ignore[union-attr]
    mapping_again = manifest.run.resolved_model_mapping
    for entry in manifest.components:
        specs = mapping_again.components[entry.component].values()
        assert model_signature(models_used(specs)) == entry.model_signature


def _spawn(target: Any, *args: Any) -> multiprocessing.process.BaseProcess:
    process = multiprocessing.get_context("spawn").Process(target=target, args=args)
    process.start()
    return process


def _child(url: str, root: str, run_id: str, inputs: dict[str, Any], ttl_s: float = 30.0) -> None:
    status = child_run(url, root, run_id, inputs, ttl_s)
    Path(root, f"{run_id}.status").write_text(status)


def test_three_processes_on_one_key_compute_once(store_url: str, tmp_path: Path) -> None:
    log = tmp_path / "computed.log"
    inputs = {"frames": frames(), "compute_log": str(log), "delay_s": 1.0}
    children = [_spawn(_child, store_url, str(tmp_path), f"run-{i}", inputs) for i in range(3)]
    for child in children:
        child.join(120)
        assert child.exitcode == 0
    assert len(log.read_text().splitlines()) == 1  # one computation
    statuses = sorted((tmp_path / f"run-{i}.status").read_text() for i in range(3))
    assert statuses == ["cached", "cached", "ok"]
    npz = list(tmp_path.rglob("*.npz"))
    assert len(npz) == 1  # one artifact


def test_worker_killed_mid_write_leaves_nothing_visible(store_url: str, tmp_path: Path) -> None:
    inputs = {"frames": frames(), "padding_mb": 400}
    child = _spawn(_child, store_url, str(tmp_path), "run-killed", inputs, 1.0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(tmp_path.rglob(".*.tmp")):
        time.sleep(0.005)
    assert list(tmp_path.rglob(".*.tmp")), "the worker never started writing"
    os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
    child.join(30)
    assert not list(tmp_path.rglob("*.npz"))  # no visible artifact
    # The next worker waits out the dead one's lease (ttl 1 s), then computes.
    with RunStore.open(store_url) as store:
        result = make_runner(store, tmp_path, "run-next", lease_ttl_s=1.0, poll_s=0.05).run(
            [FrameFeatures()], {"frames": frames(), "padding_mb": 1}
        )
    assert result.manifest.components[0].status == "ok"
    assert len(list(tmp_path.rglob("*.npz"))) == 1


def test_waiting_for_a_live_holder_is_bounded(store: RunStore, tmp_path: Path) -> None:
    runner = make_runner(store, tmp_path, "run-1", lease_wait_s=0.3, poll_s=0.05)
    key = runner.manager.cache_key_for(
        "frame_features", producer_version="1.0.0", schema_version="1"
    )
    assert store.try_acquire(key.key, "someone-else", 30.0) is not None
    result = runner.run([FrameFeatures()], {"frames": frames()})
    (entry,) = result.manifest.components
    assert (entry.status, entry.error_code) == ("failed", "lease_wait_timeout")
    assert entry.error_fields["transient"] is True
    assert np.isfinite(entry.duration_ms)


class CallOrder:
    """A RunStore that logs the order of the calls the runner makes on it."""

    def __init__(self, store: RunStore) -> None:
        self.store, self.calls = store, []  # type: ignore[var-annotated]

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if not callable(attr):
            return attr

        def logged(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return attr(*args, **kwargs)

        return logged


def test_lease_is_released_only_after_the_artifact_is_indexed(
    store: RunStore, tmp_path: Path
) -> None:
    """A waiter that takes the lease next must find the artifact, not compute it again."""
    logged = CallOrder(store)
    make_runner(logged, tmp_path, "run-1").run([FrameFeatures()], {"frames": frames()})  # type: ignore[arg-type]
    calls = [c for c in logged.calls if c in ("try_acquire", "record_component", "release")]
    assert calls == ["try_acquire", "record_component", "release"]


def test_verify_artifacts_is_stat_or_full(store: RunStore, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="verify_artifacts"):
        make_runner(store, tmp_path, "run-1", verify_artifacts="sha")
    assert make_runner(store, tmp_path, "run-1").verify_artifacts == "stat"


def test_cache_hit_trusts_an_unchanged_stat_and_full_rehashes(
    store: RunStore, tmp_path: Path
) -> None:
    inputs = {"frames": frames()}
    first = make_runner(store, tmp_path, "run-1").run([FrameFeatures(), SceneStats()], inputs)
    sizes = [c.artifact.size for c in first.manifest.components if c.artifact is not None]
    before = hashing_totals()
    stat_run = make_runner(store, tmp_path, "run-2").run([FrameFeatures(), SceneStats()], inputs)
    after_stat = hashing_totals()
    full_run = make_runner(store, tmp_path, "run-3", verify_artifacts="full").run(
        [FrameFeatures(), SceneStats()], inputs
    )
    after_full = hashing_totals()
    assert [c.status for c in stat_run.manifest.components] == ["cached", "cached"]
    assert [c.status for c in full_run.manifest.components] == ["cached", "cached"]
    assert after_stat - before == HashTotals(files=0, bytes=0)
    assert after_full - after_stat == HashTotals(files=2, bytes=sum(sizes))


def test_a_waiting_run_names_the_holder_and_records_its_wait(
    store: RunStore, tmp_path: Path
) -> None:
    """Issue 12: the wait for another worker says who holds the key (the progress line,
    the timeout's message and field), and a run that got the key after a wait says how long."""
    runner = make_runner(store, tmp_path, "run-1", lease_wait_s=0.3, poll_s=0.05)
    key = runner.manager.cache_key_for(
        "frame_features", producer_version="1.0.0", schema_version="1"
    )
    lease = store.try_acquire(key.key, "gpu-7:4242:abcd1234", 30.0)
    assert lease is not None
    waits: list[tuple[str, str]] = []
    result = runner.run(
        [FrameFeatures()],
        {"frames": frames()},
        on_wait=lambda component, owner: waits.append((component.name, owner)),
    )
    assert waits == [("frame_features", "gpu-7:4242:abcd1234")]
    (entry,) = result.manifest.components
    assert entry.error_fields["holder"] == "gpu-7:4242:abcd1234"
    assert "for gpu-7:4242:abcd1234 computing the same key" in str(entry.error)

    threading.Timer(0.2, store.release, [lease]).start()
    again = make_runner(store, tmp_path, "run-2", lease_wait_s=30, poll_s=0.05).run(
        [FrameFeatures()], {"frames": frames()}
    )
    (entry,) = again.manifest.components
    assert entry.status == "ok"
    assert any("for gpu-7:4242:abcd1234 computing the same key" in w for w in entry.warnings)


@pytest.mark.parametrize("collector", ["orphans --fix", "gc"])
def test_a_killed_workers_temp_file_is_collected(
    store_url: str, tmp_path: Path, collector: str
) -> None:
    """Issue 12: the temp file a SIGKILLed worker was writing does not stay forever: its run
    is marked abandoned (same host, pid gone) and ``orphans --fix`` or ``gc`` deletes it.
    Both backends; with SQLite the child's database file is beside the artifact root."""
    from modelmanager.retention import collect_garbage, find_orphans

    root = tmp_path / "artifacts"
    root.mkdir()
    child = _spawn(
        _child, store_url, str(root), "run-killed", {"frames": frames(), "padding_mb": 400}
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(root.rglob(".*.tmp")):
        time.sleep(0.005)
    (temp,) = root.rglob(".*.tmp")
    os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
    child.join(30)
    with RunStore.open(store_url) as store:
        assert store.get_run("run-killed").status == "running"  # type: ignore[union-attr]
        assert find_orphans(store, root).clean  # a read-only look changes nothing
        assert temp.exists()
        if collector == "gc":  # abandoned, then collected as a run that produced nothing
            collected = collect_garbage(store, root)
            assert [(r.run_id, r.status) for r in collected.runs] == [("run-killed", "abandoned")]
            assert store.get_run("run-killed") is None
        else:
            report = find_orphans(store, root, fix=True)
            assert temp.relative_to(root).as_posix() in report.unknown_files
            assert store.get_run("run-killed").status == "abandoned"  # type: ignore[union-attr]
    assert not temp.exists()
    assert not list(root.rglob("*.tmp"))


def test_other_bytes_under_the_same_ids_recompute_and_warn(store: RunStore, tmp_path: Path) -> None:
    """Issue 13: the input video's digest is in every key; the same video_id with other bytes
    recomputes, and each component's entry names both digests; the same bytes hit."""
    from modelmanager.mapping.signature import diff_documents

    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    inputs = {"frames": frames()}

    def run(run_id: str, digest: str) -> Any:
        runner = make_runner(store, tmp_path, run_id, context={"input_digest": digest})
        return runner.run([FrameFeatures(), SceneStats()], inputs).manifest

    first = run("run-a", a)
    assert [e.status for e in first.components] == ["ok", "ok"]
    assert first.run.input_digest == a
    assert store.get_run("run-a").input_digest == a  # type: ignore[union-attr]
    changed = run("run-b", b)
    assert [e.status for e in changed.components] == ["ok", "ok"]
    for entry in changed.components:
        (warning,) = entry.warnings
        assert f"an earlier run read {a}, this one {b}" in warning
    differences = diff_documents(
        first.components[0].cache_key_material, changed.components[0].cache_key_material
    )
    assert [d.field for d in differences if d.field != "cache_key"] == ["input_digest"]
    again = run("run-b-again", b)
    assert [e.status for e in again.components] == ["cached", "cached"]
    assert all(not e.warnings for e in again.components)
    entry = again.components[0]
    assert entry.artifact is not None
    _, meta = read_artifact(tmp_path, entry.artifact, schema_version=entry.schema_version)
    assert meta.input_digest == b
