"""Issue 12 (R-FAIL-4): every run ends recorded, with its manifest, whatever happened.

Ctrl-C and SIGTERM end a run ``interrupted``; a disk that refuses a write is
``storage_unavailable`` (not the component's bug); the key's lease is released on any
exit the process survives. Both backends (the ``store`` fixture).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from modelmanager.index import RunStore
from modelmanager.run.contract import ComponentOutput, ComponentRequest
from modelmanager.store.manifest import read_manifest
from tests.runner_components import FrameFeatures, frames, make_runner


class Interrupted(FrameFeatures):
    """Ctrl-C arrives while the model runs."""

    def process(self, request: ComponentRequest) -> ComponentOutput:
        request.runtimes["encoder"]({"pixels": frames(1)})
        raise KeyboardInterrupt


def test_ctrl_c_records_the_run_interrupted_with_its_manifest(
    store: RunStore, tmp_path: Path
) -> None:
    runner = make_runner(store, tmp_path, "run-int")
    with pytest.raises(KeyboardInterrupt):
        runner.run([Interrupted()], {"frames": frames()})
    run = store.get_run("run-int")
    assert run is not None
    assert run.status == "interrupted"
    assert run.finished_at is not None
    assert run.manifest_path is not None
    manifest = read_manifest(tmp_path / run.manifest_path)
    assert manifest.run.status == "interrupted"
    assert store.live_lease_keys() == set()  # the key's lease went with the interrupt
    # The next run computes the key at once: nobody holds it.
    result = make_runner(store, tmp_path, "run-next", lease_wait_s=1.0).run(
        [FrameFeatures()], {"frames": frames()}
    )
    assert [e.status for e in result.manifest.components] == ["ok"]


def test_a_disk_that_refuses_the_artifact_is_storage_unavailable(
    store: RunStore, tmp_path: Path
) -> None:
    # Where the component's directory would go, a file: the write fails with ENOTDIR.
    blocked = tmp_path / "youtube" / "vid-001" / "frame_features"
    blocked.parent.mkdir(parents=True)
    blocked.write_bytes(b"not a directory")
    result = make_runner(store, tmp_path, "run-disk").run([FrameFeatures()], {"frames": frames()})
    (entry,) = result.manifest.components
    assert (entry.status, entry.error_code) == ("failed", "storage_unavailable")
    assert entry.error_fields["path"].startswith(str(blocked))
    run = store.get_run("run-disk")
    assert run is not None
    assert (run.status, run.manifest_path) == (
        "failed",
        result.manifest_path.relative_to(tmp_path).as_posix(),
    )
    assert store.live_lease_keys() == set()


def test_a_manifest_that_cannot_be_written_still_ends_the_run(
    store: RunStore, tmp_path: Path
) -> None:
    runs_dir = tmp_path / "youtube" / "vid-001" / "runs"
    runs_dir.parent.mkdir(parents=True)
    runs_dir.write_bytes(b"not a directory")
    from modelmanager.errors import StorageUnavailable

    with pytest.raises(StorageUnavailable):
        make_runner(store, tmp_path, "run-nomanifest").run([FrameFeatures()], {"frames": frames()})
    run = store.get_run("run-nomanifest")
    assert run is not None
    assert (run.status, run.manifest_path) == ("failed", None)


CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from modelmanager.index import RunStore
    from modelmanager.run.signals import sigterm_as_interrupt
    from tests.runner_components import FrameFeatures, frames, make_runner

    url, root = sys.argv[1], Path(sys.argv[2])
    with RunStore.open(url) as store, sigterm_as_interrupt():
        runner = make_runner(store, root, "run-term", lease_ttl_s=600.0)
        print("started", flush=True)
        try:
            result = runner.run([FrameFeatures()], {"frames": frames(), "delay_s": 60})
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(3)
        print("finished", [(e.status, e.error) for e in result.manifest.components], flush=True)
    """
)


def test_sigterm_ends_the_run_interrupted_and_frees_its_lease(
    store: RunStore, store_url: str, tmp_path: Path
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, store_url, str(tmp_path)],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "started"
    deadline = time.monotonic() + 30
    while not store.live_lease_keys():  # the child is computing under the key's lease
        assert time.monotonic() < deadline, "the child never took the lease"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGTERM)
    out, err = child.communicate(timeout=30)
    assert (child.returncode, out.strip()) == (3, "interrupted"), out + err
    run = store.get_run("run-term")
    assert run is not None
    assert run.status == "interrupted"
    assert store.live_lease_keys() == set()


class TakenOver(FrameFeatures):
    """While this worker computes, another one takes its key over (as after a pause past the
    lease's TTL): the claim in the leases table becomes someone else's."""

    def __init__(self, store: RunStore) -> None:
        self.store = store

    def process(self, request: ComponentRequest) -> ComponentOutput:
        output = super().process(request)
        with self.store.engine.begin() as conn:
            conn.execute(text("UPDATE leases SET owner = 'thief:1:0'"))
        return output


def test_a_worker_whose_lease_was_taken_over_publishes_nothing(
    store: RunStore, tmp_path: Path
) -> None:
    """Issue 12, lease fencing: the publish checks the claim in its own transaction."""
    result = make_runner(store, tmp_path, "run-paused").run(
        [TakenOver(store)], {"frames": frames()}
    )
    (entry,) = result.manifest.components
    assert (entry.status, entry.error_code) == ("failed", "lease_lost")
    assert entry.artifact is None
    rows = store.component_runs("run-paused")
    assert [(r.status, r.artifact_path) for r in rows] == [("failed", None)]
    assert store.lookup(entry.cache_key) is None  # nothing of this worker is served
    assert not list((tmp_path / "youtube" / "vid-001" / "frame_features").rglob("*.npz"))


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def test_a_dead_workers_run_is_marked_abandoned_by_the_next_run(
    store: RunStore, tmp_path: Path
) -> None:
    """Issue 12: a SIGKILLed worker's run does not stay ``running`` forever."""
    import socket
    from datetime import UTC, datetime, timedelta

    from modelmanager.mapping.spec import RunContext
    from tests.runner_components import run_context

    here = socket.gethostname()
    store.start_run(
        RunContext(**run_context("dead-here")), mapping_source="x", worker=f"{here}:{_dead_pid()}:0"
    )
    store.start_run(
        RunContext(**run_context("dead-elsewhere")),
        mapping_source="x",
        worker="another-host:1:0",
        started_at=datetime.now(UTC) - timedelta(hours=1),
    )
    store.start_run(
        RunContext(**run_context("alive")), mapping_source="x", worker=f"{here}:{os.getpid()}:0"
    )
    make_runner(store, tmp_path, "run-next").run([FrameFeatures()], {"frames": frames()})
    statuses = {r: store.get_run(r).status for r in ("dead-here", "dead-elsewhere", "alive")}  # type: ignore[union-attr]
    assert statuses == {"dead-here": "abandoned", "dead-elsewhere": "abandoned", "alive": "running"}


def test_delete_video_needs_no_force_for_a_dead_workers_run(
    store: RunStore, tmp_path: Path
) -> None:
    import socket

    from modelmanager.mapping.spec import RunContext
    from modelmanager.retention import delete_video
    from tests.runner_components import run_context

    store.start_run(
        RunContext(**run_context("dead")),
        mapping_source="x",
        worker=f"{socket.gethostname()}:{_dead_pid()}:0",
    )
    (tmp_path / "youtube" / "vid-001").mkdir(parents=True)
    report = delete_video(store, tmp_path, "youtube", "vid-001")
    assert report.runs == 1
    assert store.get_run("dead") is None
