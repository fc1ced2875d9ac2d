"""R-GC-1..4: the retention policy, interrupt safety, orphans and delete-by-video — on SQLite and PostgreSQL.

Histories are built with a controlled clock: runs start ``days_ago`` before
``NOW`` (``started_at``/``finished_at`` given to the store), and every
collection gets ``now=NOW``.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select, text

from modelmanager.errors import ArtifactRootMissing, DeletionBlocked, InvalidRunContext
from modelmanager.index import RunStore
from modelmanager.index.migrations import HEAD
from modelmanager.index.models import COMPONENTS, metadata
from modelmanager.retention import (
    RetentionPolicy,
    collect_garbage,
    delete_video,
    find_orphans,
    signature_set,
    subject_sha256,
)
from modelmanager.store.layout import artifact_relpath, manifest_relpath, temp_dir, temp_relpath
from tests.db_fixtures import component_row, run_context

NOW = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)
PLATFORM = "youtube"
VIDEO = "vid-gc"


def key_of(component: str, config: str, signature: str, video: str = VIDEO) -> str:
    material = f"{PLATFORM}/{video}/{component}/{config}/{signature}"
    return "sha256:" + hashlib.sha256(material.encode()).hexdigest()


class History:
    """Builds runs with files on disk, as the runner lays them out."""

    def __init__(self, store: RunStore, root: Path) -> None:
        self.store, self.root = store, root

    def run(
        self,
        run_id: str,
        days_ago: float,
        *,
        status: str = "ok",
        video: str = VIDEO,
        config: str = "cfg-1",
        signature: str = "sha256:" + "1" * 64,
        components: tuple[str, ...] = ("frames", "audio"),
        cached_from: str | None = None,
        temp: bool = False,
    ) -> None:
        """One run; ``cached_from``: its components reuse that run's artifacts (cache hits)."""
        started = NOW - timedelta(days=days_ago)
        ctx = run_context(run_id, video_id=video, config_hash=config)
        self.store.start_run(ctx, mapping_source="test", started_at=started)
        for i, component in enumerate(components):
            failed = status == "failed" and i == len(components) - 1
            producer = cached_from or run_id
            path = artifact_relpath(PLATFORM, video, component, producer)
            if not failed and cached_from is None:
                self.write(path, f"artifact {component} {run_id}".encode() * 10)
            self.store.record_component(
                component_row(
                    run_id,
                    component,
                    video_id=video,
                    cache_key=key_of(component, config, signature, video),
                    model_signature=signature,
                    status="failed" if failed else ("cached" if cached_from else "ok"),
                    cache_hit=cached_from is not None and not failed,
                    error_code="component_failed" if failed else None,
                    artifact_path=None if failed else path,
                    artifact_size=None if failed else 1,
                    artifact_sha256=None if failed else "sha256:" + "c" * 64,
                    finished_at=started + timedelta(minutes=1),
                )
            )
        if temp:
            (temp_dir(self.root, ctx, "frames_dir") / "frame-0001.bin").write_bytes(b"x" * 100)
        if status == "running":
            return
        manifest = manifest_relpath(PLATFORM, video, run_id)
        self.write(manifest, json.dumps({"run_id": run_id, "video_id": video}).encode())
        self.store.finish_run(
            run_id,
            status="failed" if status == "failed" else "ok",
            manifest_path=manifest,
            finished_at=started + timedelta(minutes=2),
        )

    def write(self, relpath: str, data: bytes) -> None:
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def runs(self, video: str = VIDEO) -> set[str]:
        return {r.run_id for r in self.store.list_runs(video_id=video, limit=1000)}

    def files(self) -> set[str]:
        return {p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()}


@pytest.fixture
def history(store: RunStore, tmp_path: Path) -> History:
    root = tmp_path / "artifacts"
    root.mkdir()
    return History(store, root)


def assert_consistent(h: History) -> None:
    """No run left collecting, no file without a row, no row without its file."""
    report = find_orphans(h.store, h.root)
    assert report.clean, report.to_json_dict()
    assert h.store.collecting_videos() == []


def gc(h: History, **kw: Any) -> Any:
    return collect_garbage(h.store, h.root, now=NOW, **kw)


# -- the policy ----------------------------------------------------------------------


def test_keeps_the_latest_successful_run_plus_two_previous_per_group(history: History) -> None:
    h = history
    for i, days in enumerate((9, 8, 7, 6, 5), start=1):
        h.run(f"r{i}", days)
    h.run("other-config", 20, config="cfg-2")  # its own group: the latest of it
    h.run("other-models", 20, signature="sha256:" + "2" * 64)  # another signature set
    before = h.files()
    dry = gc(h, dry_run=True)
    assert [(r.run_id, r.reason) for r in dry.runs] == [("r1", "superseded"), ("r2", "superseded")]
    assert h.files() == before  # a dry run changes nothing
    assert h.runs() == {"r1", "r2", "r3", "r4", "r5", "other-config", "other-models"}
    gone = {f for f in before if "/r1/" in f or "/r2/" in f}
    assert len(gone) == 6  # two artifacts and a manifest each
    assert dry.files == 6
    assert dry.bytes_freed == sum((h.root / f).stat().st_size for f in gone)

    real = gc(h)
    assert real.to_json_dict() | {"dry_run": True} == dry.to_json_dict()  # the same report
    assert h.runs() == {"r3", "r4", "r5", "other-config", "other-models"}
    assert h.files() == before - gone
    assert h.store.component_runs("r1") == []
    assert_consistent(h)
    assert gc(h).runs == []  # nothing more to do


def test_keep_previous_is_configurable_and_failed_runs_go(history: History) -> None:
    h = history
    h.run("r1", 5)
    h.run("r2", 4)
    h.run("broken", 3, status="failed")
    report = gc(h, policy=RetentionPolicy(keep_previous=0))
    assert {(r.run_id, r.reason) for r in report.runs} == {
        ("r1", "superseded"),
        ("broken", "failed"),
    }
    assert h.runs() == {"r2"}
    assert_consistent(h)


def test_signature_set_is_order_and_duplicate_free() -> None:
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    assert signature_set([b, a, b]) == signature_set([a, b])
    assert signature_set([a, ""]) == signature_set([a])
    assert signature_set([a]) != signature_set([a, b])


def test_producer_of_an_artifact_a_kept_run_references_stays(history: History) -> None:
    h = history
    h.run("r1", 10)  # computes both artifacts
    for i, days in enumerate((9, 8, 7, 6), start=2):
        h.run(f"r{i}", days, cached_from="r1")  # cache hits on r1's artifacts
    report = gc(h)
    # r2 is beyond the newest three (r5, r4, r3) and goes; r1 produced what they use.
    assert [r.run_id for r in report.runs] == ["r2"]
    assert h.runs() == {"r1", "r3", "r4", "r5"}
    assert (h.root / artifact_relpath(PLATFORM, VIDEO, "frames", "r1")).is_file()
    assert not (h.root / manifest_relpath(PLATFORM, VIDEO, "r2")).exists()
    assert h.store.lookup(key_of("frames", "cfg-1", "sha256:" + "1" * 64)) is not None
    assert_consistent(h)


def test_hard_cap_removes_old_runs_and_invalidates_rows_that_used_their_artifacts(
    history: History,
) -> None:
    h = history
    h.run("ancient", 61, config="cfg-old")  # the only run of its group, still over the cap
    h.run("p1", 65)  # produced the artifacts...
    h.run("c1", 10, cached_from="p1")  # ...that this young run reuses
    report = gc(h)
    assert {(r.run_id, r.reason) for r in report.runs} == {
        ("ancient", "hard_cap"),
        ("p1", "hard_cap"),
    }
    assert h.runs() == {"c1"}
    assert report.rows_invalidated == 2
    assert {r.status for r in h.store.component_runs("c1")} == {"invalidated"}
    assert not any("/p1/" in f or "ancient" in f for f in h.files())
    assert h.store.lookup(key_of("frames", "cfg-1", "sha256:" + "1" * 64)) is None
    assert_consistent(h)  # invalidated rows claim no file


def test_runs_in_progress_and_leased_keys_are_never_touched(history: History) -> None:
    h = history
    h.run("p1", 20)
    h.run("live", 19, status="running", cached_from="p1")  # in progress, reuses p1
    h.run("leased", 18, config="cfg-lease")
    for i, days in enumerate((5, 4, 3), start=1):
        h.run(f"n{i}", days)  # p1 is beyond the newest three of its group
        h.run(f"l{i}", days, config="cfg-lease")
    assert h.store.try_acquire(key_of("audio", "cfg-lease", "sha256:" + "1" * 64), "w", 600)
    h.run("dead", 61, status="running", config="cfg-dead")  # a dead worker's, over the cap
    report = gc(h)
    assert [(r.run_id, r.reason) for r in report.runs] == [("dead", "hard_cap")]
    assert {"p1", "live", "leased"} <= h.runs()
    assert (h.root / artifact_relpath(PLATFORM, VIDEO, "frames", "p1")).is_file()


def test_temp_data_expires_after_its_ttl(history: History) -> None:
    h = history
    h.run("old", 8, temp=True, config="cfg-a")
    h.run("young", 3, temp=True, config="cfg-b")
    h.run("busy", 10, status="running", temp=True, config="cfg-c")
    report = gc(h)
    assert report.runs == []
    assert report.temp_dirs == 1
    temps = {f.split("/")[3] for f in h.files() if "/_tmp/" in f}
    assert temps == {"young", "busy"}
    assert h.runs() == {"old", "young", "busy"}
    assert not (h.root / PLATFORM / VIDEO / "_tmp" / "old").exists()
    assert gc(h, policy=RetentionPolicy(temp_ttl_days=1)).temp_dirs == 1  # now "young" too


def test_temp_relpath_layout_and_names() -> None:
    assert temp_relpath("yt", "v1", "run-1", "frames_dir") == "yt/v1/_tmp/run-1/frames_dir"
    with pytest.raises(ValueError, match="not a valid temp"):
        temp_relpath("yt", "v1", "run-1", "../x")


def test_policy_values_are_checked_and_read_from_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from modelmanager.config import Settings

    with pytest.raises(ValueError, match="keep_previous"):
        RetentionPolicy(keep_previous=-1)
    with pytest.raises(ValueError, match="hard_cap_days"):
        RetentionPolicy(hard_cap_days=0)
    monkeypatch.setenv("MODELMANAGER_GC_KEEP_PREVIOUS", "5")
    monkeypatch.setenv("MODELMANAGER_GC_HARD_CAP_DAYS", "30")
    assert RetentionPolicy.from_settings(Settings()) == RetentionPolicy(5, 7.0, 30.0)


def test_missing_artifact_root_with_runs_is_refused(history: History, tmp_path: Path) -> None:
    history.run("r1", 1)
    with pytest.raises(ArtifactRootMissing):
        collect_garbage(history.store, tmp_path / "nowhere", now=NOW)
    assert history.runs() == {"r1"}


# -- interrupt safety ----------------------------------------------------------------

_KILLED_GC = """
import os, signal, sys
from datetime import datetime
from modelmanager.index import RunStore
from modelmanager.retention import collect_garbage

url, root, now, after = sys.argv[1:5]

def progress(done, total):
    if done >= int(after):
        os.kill(os.getpid(), signal.SIGKILL)

with RunStore.open(url) as store:
    collect_garbage(store, root, now=datetime.fromisoformat(now), progress=progress)
"""


def test_gc_killed_midway_then_run_again_leaves_a_consistent_store(
    history: History, store_url: str
) -> None:
    h = history
    for video in ("vid-a", "vid-b"):
        for i, days in enumerate((9, 8, 7, 6, 5), start=1):
            h.run(f"{video}-r{i}", days, video=video)
    before = h.files()
    child = subprocess.run(
        [sys.executable, "-c", _KILLED_GC, store_url, str(h.root), NOW.isoformat(), "3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    # Killed midway: the decision is committed, some files are gone, no row is.
    collecting = h.store.collecting_videos()
    assert collecting == [(PLATFORM, "vid-a"), (PLATFORM, "vid-b")]
    assert len(before) - len(h.files()) == 3
    assert h.runs("vid-a") == {f"vid-a-r{i}" for i in range(1, 6)}  # every row still there

    report = gc(h)
    assert sorted(r.reason for r in report.runs) == ["resumed"] * 4
    for video in ("vid-a", "vid-b"):
        assert h.runs(video) == {f"{video}-r3", f"{video}-r4", f"{video}-r5"}
    assert_consistent(h)


# -- orphans -------------------------------------------------------------------------


def test_orphans_are_reported_and_fixed(history: History) -> None:
    h = history
    h.run("r1", 3)
    h.run("r2", 2, config="cfg-2")
    h.run("busy", 1, status="running", config="cfg-3")
    h.write(f"{PLATFORM}/{VIDEO}/frames/ghost/frames.npz", b"no row knows me")
    h.write("stray.txt", b"?")
    (h.root / artifact_relpath(PLATFORM, VIDEO, "audio", "r1")).unlink()
    (h.root / manifest_relpath(PLATFORM, VIDEO, "r2")).unlink()
    h.write(f"{PLATFORM}/{VIDEO}/frames/busy/.frames.npz.0123456789abcdef.tmp", b"writing")

    report = find_orphans(h.store, h.root)
    assert report.unknown_files == ["stray.txt", f"{PLATFORM}/{VIDEO}/frames/ghost/frames.npz"]
    assert report.unknown_bytes == len(b"no row knows me") + 1
    assert {(m.kind, m.run_id) for m in report.missing} == {("artifact", "r1"), ("manifest", "r2")}
    assert h.files() >= {"stray.txt"}  # reporting deletes nothing

    fixed = find_orphans(h.store, h.root, fix=True)
    assert (fixed.rows_invalidated, fixed.runs_collected) == (1, 1)
    assert h.runs() == {"r1", "busy"}
    assert [r.status for r in h.store.component_runs("r1")] == ["ok", "invalidated"]
    assert not (h.root / "stray.txt").exists()
    assert not (h.root / PLATFORM / VIDEO / "frames" / "ghost").exists()
    assert (h.root / f"{PLATFORM}/{VIDEO}/frames/busy/.frames.npz.0123456789abcdef.tmp").exists()
    assert_consistent(h)


# -- delete by video -----------------------------------------------------------------


def _table_text(store: RunStore) -> str:
    """Every value of every table, as text."""
    chunks = []
    with store.engine.connect() as conn:
        for table in inspect(store.engine).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                chunks.append(" ".join(str(v) for v in row))
    return "\n".join(chunks)


def _tree_text(root: Path) -> str:
    return "\n".join(
        f"{p.relative_to(root)} {p.read_bytes().decode(errors='replace') if p.is_file() else ''}"
        for p in root.rglob("*")
    )


def test_delete_video_leaves_no_file_and_no_row_naming_it(history: History) -> None:
    h = history
    doomed, kept = "doomed-7f3a", "kept-9c1b"
    h.run("d-run-1", 5, video=doomed, temp=True)
    h.run("d-run-2", 4, video=doomed, cached_from="d-run-1")
    h.run("d-run-3", 3, video=doomed, status="failed")
    h.run("k-run-1", 5, video=kept)
    kept_files = {f for f in h.files() if kept in f}
    kept_rows = h.store.component_runs("k-run-1")
    assert doomed in _tree_text(h.root)
    assert doomed in _table_text(h.store)

    dry = delete_video(h.store, h.root, PLATFORM, doomed, dry_run=True, actor="tester")
    assert (dry.runs, dry.component_rows, dry.files) == (3, 6, 7)
    assert dry.audit_id is None
    assert doomed in _tree_text(h.root)

    report = delete_video(h.store, h.root, PLATFORM, doomed, actor="tester", now=NOW)
    assert report.to_json_dict() | {"dry_run": True, "audit_id": None} == dry.to_json_dict()
    assert doomed not in _tree_text(h.root)
    assert doomed not in _table_text(h.store)
    assert not (h.root / PLATFORM / doomed).exists()
    assert {f for f in h.files() if kept in f} == kept_files
    assert h.store.component_runs("k-run-1") == kept_rows

    [audit] = h.store.deletion_audits()
    assert audit.id == report.audit_id
    assert audit.subject_sha256 == subject_sha256(PLATFORM, doomed)
    assert (audit.actor, audit.requested_at) == ("tester", NOW)
    assert audit.counts == {"runs": 3, "component_runs": 6, "files": 7, "bytes": report.bytes_freed}

    again = delete_video(h.store, h.root, PLATFORM, doomed, actor="tester")
    assert not again.found
    assert (again.runs, again.files) == (0, 0)
    assert len(h.store.deletion_audits(subject_sha256(PLATFORM, doomed))) == 2
    assert_consistent(h)


def test_delete_video_refuses_while_a_run_is_in_progress(history: History) -> None:
    h = history
    h.run("live", 1, status="running")
    with pytest.raises(DeletionBlocked, match="in progress"):
        delete_video(h.store, h.root, PLATFORM, VIDEO)
    assert delete_video(h.store, h.root, PLATFORM, VIDEO, dry_run=True).runs == 1
    assert h.runs() == {"live"}
    forced = delete_video(h.store, h.root, PLATFORM, VIDEO, force=True)
    assert forced.runs == 1
    assert h.runs() == set()
    with pytest.raises(InvalidRunContext):
        delete_video(h.store, h.root, PLATFORM, "../etc")


# -- migration -----------------------------------------------------------------------


def test_upgrade_from_0001_keeps_the_rows_and_allows_collecting(store_url: str) -> None:
    with RunStore.open(store_url, migrate=False) as store:
        store.upgrade("0001")
        # The run row as revision 0001 has it (start_run writes the columns of the head).
        with store.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO runs (run_id, platform_id, video_id, config_hash,"
                    " sampling_policy_version, dataprocessor_version, status, mapping_source,"
                    " started_at) VALUES ('old', 'youtube', 'vid-001', 'cfg-abc', '2', '0.9.0',"
                    " 'running', 'x', :now)"
                ),
                {
                    "now": datetime.now(UTC).replace(tzinfo=None)
                    if "sqlite" in store_url
                    else datetime.now(UTC)
                },
            )
            # As 0001's code recorded it (today's checks a table 0002 creates).
            row = component_row("old")
            fields = {name: getattr(row, name) for name in row.__dataclass_fields__}
            conn.execute(COMPONENTS.insert().values({k: v for k, v in fields.items() if k != "id"}))
            conn.execute(text("UPDATE runs SET status = 'ok', manifest_path = 'm'"))
        store.upgrade()
        assert [r.run_id for r in store.component_runs("old")] == ["old"]
        assert store.mark_collecting(["old"], invalidate_row_ids=[]) == 1
        assert store.get_run("old").status == "collecting"  # type: ignore[union-attr]
        with store.engine.connect() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            assert version == HEAD
            audit = metadata.tables["deletion_audit"]
            assert conn.execute(select(audit)).all() == []
