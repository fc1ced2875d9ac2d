"""Files a run writes are readable by the group: mode 0666 & ~umask, never 0600.

Artifacts, manifests (both through ``atomic_write``'s temp file) and the digest cache
(SQLite: 0644 & ~umask) are created like any other new file of the process.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelmanager.index import RunStore
from tests.runner_components import FrameFeatures, SceneStats, frames, make_runner


@pytest.fixture(params=[0o022, 0o002])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_artifacts_manifests_and_digest_cache_follow_the_umask(umask: int, tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    with RunStore.open(f"sqlite:///{tmp_path / 'index.sqlite3'}") as store:
        runner = make_runner(store, root, "run-modes")
        result = runner.run([FrameFeatures(), SceneStats()], {"frames": frames()})
        cache = runner.manager.digester.cache
    assert result.ok
    written = [p for p in root.rglob("*") if p.is_file()]
    assert {p.suffix for p in written} == {".npz", ".json"}
    assert cache is not None
    digest_files = [p for p in cache.path.parent.glob(cache.path.name + "*") if p.is_file()]
    assert digest_files
    # SQLite creates its files 0644 & ~umask (SQLITE_DEFAULT_FILE_PERMISSIONS).
    expected = {**dict.fromkeys(written, 0o666), **dict.fromkeys(digest_files, 0o644)}
    for path, base in expected.items():
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == base & ~umask, f"{path}: {oct(mode)}"
        assert mode & stat.S_IRGRP, f"{path} is not readable by the group"
