"""Issue 12: a deletion wins a race with a run of the same video.

A component whose ``process()`` deletes its own video midway (``delete_video`` with
``force``: its run is ``running``) and then returns: nothing of the video is published
after the audit row, no file of the video remains, no ``ok`` row, and the audit row
exists. Both backends (the ``store`` fixture).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from modelmanager.index import RunStore
from modelmanager.retention import delete_video, subject_sha256
from modelmanager.run.contract import ComponentOutput, ComponentRequest
from tests.runner_components import FrameFeatures, SceneStats, frames, make_runner


class DeletesItsVideo(FrameFeatures):
    """Computes, and midway its own video is deleted (delete-video run meanwhile)."""

    def __init__(self, store: RunStore, root: Path) -> None:
        self.store, self.root = store, root

    def process(self, request: ComponentRequest) -> ComponentOutput:
        output = super().process(request)
        ctx = request.run_context
        report = delete_video(self.store, self.root, ctx.platform_id, ctx.video_id, force=True)
        assert report.audit_id is not None
        return output


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_a_deletion_during_a_run_wins(store: RunStore, tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    # An earlier run of the video: the deletion removes its files and rows.
    make_runner(store, root, "run-before").run([SceneStats()], {"frames": frames()})
    assert _files(root / "youtube" / "vid-001")

    result = make_runner(store, root, "run-race").run(
        [DeletesItsVideo(store, root), SceneStats()], {"frames": frames()}
    )

    (entry,) = result.manifest.components  # nothing more is computed for a deleted video
    assert (entry.status, entry.error_code, entry.artifact) == ("failed", "video_deleted", None)
    assert not (root / "youtube" / "vid-001").exists()  # no file of the video remains
    assert _files(root) == []
    assert store.video_history("youtube", "vid-001") == ([], [])  # no ok row, no run
    assert store.lookup(entry.cache_key) is None
    [audit] = store.deletion_audits(subject_sha256("youtube", "vid-001"))
    assert audit.finished_at is not None
    # The audit counts what was really removed: the earlier run's artifact and manifest.
    assert audit.counts["files"] == 2
    assert audit.counts["runs"] == 2  # run-before and run-race
    assert store.live_lease_keys() == set()


def test_a_run_started_after_the_deletion_publishes(store: RunStore, tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    make_runner(store, root, "run-1").run([SceneStats()], {"frames": frames()})
    delete_video(store, root, "youtube", "vid-001")
    result = make_runner(store, root, "run-2").run([SceneStats()], {"frames": frames()})
    assert result.ok
    assert result.manifest_path.is_file()
    assert [r.status for r in store.component_runs("run-2")] == ["ok"]


def test_a_killed_deletion_blocks_publishing_until_it_is_run_again(
    store: RunStore, tmp_path: Path
) -> None:
    root = tmp_path / "artifacts"
    subject = subject_sha256("youtube", "vid-001")
    # A delete-video killed right after it recorded the request.
    store.begin_deletion(audit_subject=subject, actor="ops", requested_at=_now())
    result = make_runner(store, root, "run-1").run([SceneStats()], {"frames": frames()})
    assert [e.error_code for e in result.manifest.components] == ["video_deleted"]
    assert _files(root) == []
    delete_video(store, root, "youtube", "vid-001")  # finishes what the killed one left
    assert all(a.finished_at is not None for a in store.deletion_audits(subject))
    assert make_runner(store, root, "run-2").run([SceneStats()], {"frames": frames()}).ok


def _now() -> datetime:
    return datetime.now(UTC)
