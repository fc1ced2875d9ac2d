"""Issue 12: the artifact root never follows its own folders out of it (reads, writes, deletes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelmanager.errors import ArtifactPathUnsafe
from modelmanager.index import RunStore
from modelmanager.retention import delete_video
from modelmanager.store.layout import resolve_relpath
from tests.runner_components import FrameFeatures, frames, make_runner


@pytest.fixture
def linked_video(tmp_path: Path) -> tuple[Path, Path]:
    """An artifact root whose ``youtube/vid-001`` folder is a link to a folder outside it."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("not the model system's")
    (root / "youtube").mkdir(parents=True)
    (root / "youtube" / "vid-001").symlink_to(outside, target_is_directory=True)
    return root, outside


def test_paths_through_a_link_are_refused(linked_video: tuple[Path, Path]) -> None:
    root, _ = linked_video
    with pytest.raises(ArtifactPathUnsafe) as err:
        resolve_relpath(root, "youtube/vid-001/frame_features/r1/frame_features.npz")
    assert err.value.fields["path"] == str(root / "youtube" / "vid-001")
    # A missing path below real folders is fine (it is about to be created).
    assert resolve_relpath(root, "youtube/vid-002/x/y.npz") == root / "youtube/vid-002/x/y.npz"


def test_a_run_writes_nothing_through_a_link(
    store: RunStore, linked_video: tuple[Path, Path]
) -> None:
    root, outside = linked_video
    with pytest.raises(ArtifactPathUnsafe):  # the manifest cannot be written either
        make_runner(store, root, "run-link").run([FrameFeatures()], {"frames": frames()})
    assert sorted(p.name for p in outside.rglob("*")) == ["precious.txt"]
    run = store.get_run("run-link")
    assert run is not None
    assert run.status == "failed"
    (row,) = store.component_runs("run-link")
    assert (row.status, row.error_code) == ("failed", "artifact_path_unsafe")


def test_delete_video_deletes_nothing_through_a_link(
    store: RunStore, linked_video: tuple[Path, Path]
) -> None:
    root, outside = linked_video
    with pytest.raises(ArtifactPathUnsafe):
        delete_video(store, root, "youtube", "vid-001")
    assert (outside / "precious.txt").read_text() == "not the model system's"
