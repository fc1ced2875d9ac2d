"""gc: garbage collection and delete-by-video over a run index of 1,000,000 component runs.

The index (SQLite scratch file, the store's setup, migrated by ``RunStore.open``)
is synthetic, bulk-inserted (executemany, one transaction per 100,000 rows):
20,000 videos × 10 runs × 5 components (``--quick``: 2,000 videos, 100,000 rows).
Per video, run ``j`` (0..9) started ``80 − 8j`` days before ``now``; runs
alternate between two model signature sets (two groups); the first run of each
group computes its 5 artifacts and the later ones are cache hits on them; run 5
failed. So the policy has every case: superseded runs, a failed one, producers
kept because kept runs use their artifacts, hard-capped producers whose users'
rows are invalidated. Files (a 4 KiB artifact per computed row, a manifest per
run) exist only for a sample of 200 videos; the rest are index rows only.

Timed once each (one pass is the measurement; a GC cannot be repeated on the
same state):

* ``gc --dry-run`` over the whole index (plan every video, stat the sample's files);
* ``gc`` for real (the same plan, then mark, delete files, delete rows), and its
  end state checked: the sample's files and the index agree (``find_orphans``
  over the sample's videos is clean, no run left ``collecting``);
* ``delete-video`` of 20 sample videos (median per video), each checked to leave
  no row and no directory of the video.

Query plans: ``EXPLAIN QUERY PLAN`` of the per-video history queries, the
video list, the 'collecting' lookup and the deletes; each must use an index
(``USING INDEX`` / ``USING COVERING INDEX`` / ``PRIMARY KEY``) and none may scan
``component_runs`` whole. No target in the issue: times are reported.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from modelmanager.index import RunStore
from modelmanager.index.models import metadata
from modelmanager.index.retention_queries import video_history_statements
from modelmanager.retention import collect_garbage, delete_video, find_orphans
from modelmanager.store.layout import artifact_relpath, manifest_relpath

from .harness import Result, Workspace

NAME = "gc"
NOW = datetime(2031, 3, 1, tzinfo=UTC)
RUNS_PER_VIDEO = 10
COMPONENTS = ("visual", "audio", "text_ocr", "speech", "scene")
SAMPLE_VIDEOS = 200
DELETED_VIDEOS = 20
_INSERT_CHUNK = 100_000
_RUNS = metadata.tables["runs"]
_ROWS = metadata.tables["component_runs"]
_INDEXED = ("USING INDEX", "USING COVERING INDEX", "USING INTEGER PRIMARY KEY", "PRIMARY KEY")


def _video(i: int) -> str:
    return f"v{i:06d}"


def _signature(group: int) -> str:
    return "sha256:" + hashlib.sha256(f"models-{group}".encode()).hexdigest()


def build(store: RunStore, root: Path, videos: int) -> int:
    """Bulk-insert the synthetic history; write files for the sample. Returns component rows."""
    runs: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    total = 0
    sample = set(range(0, videos, max(1, videos // SAMPLE_VIDEOS)))
    with store.engine.begin() as conn:
        for v in range(videos):
            video = _video(v)
            producers: dict[int, str] = {}
            for j in range(RUNS_PER_VIDEO):
                run_id = f"{video}-r{j}"
                group = j % 2
                started = NOW - timedelta(days=80 - 8 * j)
                failed = j == 5
                manifest = manifest_relpath("yt", video, run_id)
                runs.append(
                    {
                        "run_id": run_id,
                        "platform_id": "yt",
                        "video_id": video,
                        "config_hash": "cfg",
                        "sampling_policy_version": "1",
                        "dataprocessor_version": "1.0",
                        "user_id": None,
                        "status": "failed" if failed else "ok",
                        "mapping_source": "bench",
                        "manifest_path": manifest,
                        "started_at": started,
                        "finished_at": started + timedelta(minutes=5),
                    }
                )
                producer = producers.setdefault(group, run_id) if not failed else run_id
                for c, component in enumerate(COMPONENTS):
                    broken = failed and c == len(COMPONENTS) - 1
                    path = artifact_relpath("yt", video, component, producer)
                    rows.append(
                        {
                            "run_id": run_id,
                            "platform_id": "yt",
                            "video_id": video,
                            "component": component,
                            "cache_key": f"k-{video}-{component}-{group}",
                            "model_signature": _signature(group),
                            "producer_version": "1",
                            "schema_version": "1",
                            "status": "failed"
                            if broken
                            else ("ok" if producer == run_id else "cached"),
                            "cache_hit": producer != run_id and not broken,
                            "error_code": "component_failed" if broken else None,
                            "latency_ms": 12.5,
                            "device": "cpu",
                            "batch_size": 8,
                            "oom_retries": 0,
                            "artifact_path": None if broken else path,
                            "artifact_size": None if broken else 4096,
                            "artifact_sha256": None if broken else "sha256:" + "0" * 64,
                            "started_at": started,
                            "finished_at": started + timedelta(minutes=1),
                        }
                    )
                    if v in sample and producer == run_id and not broken:
                        _write(root / path, 4096)
                if v in sample:
                    _write(root / manifest, 512)
            if len(rows) >= _INSERT_CHUNK or v == videos - 1:
                conn.execute(insert(_RUNS), runs)
                conn.execute(insert(_ROWS), rows)
                total += len(rows)
                runs, rows = [], []
    return total


def _write(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)


def query_plans(engine: Engine) -> tuple[dict[str, str], list[str]]:
    """EXPLAIN QUERY PLAN of the retention queries; and the ones that do not use an index."""
    runs_stmt, rows_stmt = video_history_statements("yt", _video(1))
    r, c = _RUNS.c, _ROWS.c
    statements = {
        "video runs": runs_stmt,
        "video component rows": rows_stmt,
        "video list": select(r.platform_id, r.video_id).distinct(),
        "collecting runs": select(r.platform_id, r.video_id).where(r.status == "collecting"),
        "delete rows of runs": delete(_ROWS).where(c.run_id.in_(["a", "b"])),
        "delete video rows": delete(_ROWS).where(c.platform_id == "yt", c.video_id == "v"),
        "rows by artifact": select(c.id).where(c.artifact_path == "yt/v/a/r/a.npz"),
    }
    plans: dict[str, str] = {}
    bad: list[str] = []
    with engine.connect() as conn:
        for name, stmt in statements.items():
            sql = str(stmt.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
            lines = [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
            plans[name] = "; ".join(lines)
            full_scan = any(
                line.startswith("SCAN component_runs") and not any(k in line for k in _INDEXED)
                for line in lines
            )
            if full_scan or not any(k in plans[name] for k in _INDEXED):
                bad.append(name)
    return plans, bad


def run(ws: Workspace) -> list[Result]:
    videos = 2_000 if ws.config.quick else 20_000
    directory = ws.scratch_dir("gc")
    root = directory / "artifacts"
    root.mkdir(exist_ok=True)
    url = f"sqlite:///{directory / 'index.sqlite3'}"
    with RunStore.open(url) as store:
        start = time.perf_counter()
        total = build(store, root, videos)
        build_s = time.perf_counter() - start
        plans, unindexed = query_plans(store.engine)
        if unindexed:
            raise AssertionError(f"queries without an index: {unindexed}: {plans}")

        start = time.perf_counter()
        dry = collect_garbage(store, root, now=NOW, dry_run=True)
        dry_s = time.perf_counter() - start
        start = time.perf_counter()
        real = collect_garbage(store, root, now=NOW)
        real_s = time.perf_counter() - start
        if (len(real.runs), real.files, real.bytes_freed) != (
            len(dry.runs),
            dry.files,
            dry.bytes_freed,
        ):
            raise AssertionError("the real GC did not do what the dry run said")
        if store.collecting_videos():
            raise AssertionError("runs left collecting after GC")

        sample_videos = sorted(p.name for p in (root / "yt").iterdir())
        doomed = sample_videos[:DELETED_VIDEOS]
        delete_ns: list[int] = []
        for video in doomed:
            t0 = time.perf_counter_ns()
            report = delete_video(store, root, "yt", video, actor="bench", now=NOW)
            delete_ns.append(time.perf_counter_ns() - t0)
            if not report.found or (root / "yt" / video).exists():
                raise AssertionError(f"delete-video left {video} behind")
            if store.video_history("yt", video) != ([], []):
                raise AssertionError(f"delete-video left rows of {video}")

        start = time.perf_counter()
        checked = [("yt", v) for v in sample_videos[DELETED_VIDEOS:]]
        orphans = find_orphans(store, root, videos=checked)
        orphans_s = time.perf_counter() - start
        if not orphans.clean:
            raise AssertionError(
                f"GC left {len(orphans.unknown_files)} unknown files and "
                f"{len(orphans.missing)} rows without files, e.g. {orphans.missing[:3]}"
            )

    delete_ms = statistics.median(delete_ns) / 1e6
    plan_text = " | ".join(f"{k}: {v}" for k, v in plans.items())
    common = (
        f"{total:,} component rows in {videos:,} videos ({build_s:.0f} s to build), "
        f"files for {SAMPLE_VIDEOS} videos"
    )
    return [
        Result(
            name=f"gc_dry_run_{total // 1000}k_rows",
            value=dry_s,
            unit="s",
            baseline_name=None,
            baseline_value=None,
            ratio=None,
            target="none (reported)",
            met=None,
            notes=f"{common}; would collect {len(dry.runs):,} runs, {dry.component_rows:,} rows, "
            f"invalidate {dry.rows_invalidated:,}; {dry.files:,} files, {dry.bytes_freed:,} bytes",
        ),
        Result(
            name=f"gc_{total // 1000}k_rows",
            value=real_s,
            unit="s",
            baseline_name="dry run (line above)",
            baseline_value=dry_s,
            ratio=real_s / dry_s,
            target="none (reported)",
            met=None,
            notes=f"collected {len(real.runs):,} runs ({real.component_rows:,} rows), kept "
            f"{real.runs_kept:,}, deleted {real.files:,} files; orphan check afterwards "
            f"of the {len(checked)} sample videos with files {orphans_s:.2f} s: clean. Query plans: {plan_text}",
        ),
        Result(
            name="delete_video",
            value=delete_ms,
            unit="ms",
            baseline_name=None,
            baseline_value=None,
            ratio=None,
            target="none (reported)",
            met=None,
            notes=f"median of {len(delete_ns)} sample videos in the collected index "
            f"(p-max {max(delete_ns) / 1e6:.1f} ms); each left no row and no directory",
        ),
    ]
