"""Issue 14 (R-SCHED-2): GPU reservations in the run index. Several workers placing on one
host at once never promise a GPU more memory than it has: each placement reads the live
reservations and adds its own in one transaction. SQLite and PostgreSQL (``store``)."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Mapping

import pytest

from modelmanager.index import RunStore

CAPACITY = {"GPU-a": 1000, "GPU-b": 600}
NEED = 13
WORKERS, EACH = 4, 50  # 200 placements


def least_loaded(promised: Mapping[str, int]) -> tuple[str, int] | None:
    """The GPU with the most MiB left where NEED fits, as the planner chooses."""
    left = {gpu: cap - promised.get(gpu, 0) for gpu, cap in CAPACITY.items()}
    fitting = [gpu for gpu, mib in left.items() if mib >= NEED]
    if not fitting:
        return None
    return max(fitting, key=lambda gpu: (left[gpu], gpu)), NEED


def test_reserve_release_and_what_is_promised(store: RunStore) -> None:
    first = store.reserve_gpu("host-1", "w:1:a", "text_ocr", least_loaded, ttl_s=60)
    assert first is not None
    assert (first.gpu_uuid, first.mib, first.component) == ("GPU-a", NEED, "text_ocr")
    assert store.gpu_promised("host-1") == {"GPU-a": NEED}
    assert store.gpu_promised("host-2") == {}  # another host's GPUs are its own
    assert store.release_gpu(first) is True
    assert store.release_gpu(first) is False
    assert store.gpu_promised("host-1") == {}


def test_nothing_fits_reserves_nothing(store: RunStore) -> None:
    assert store.reserve_gpu("h", "w", "c", lambda promised: None, ttl_s=60) is None
    assert store.gpu_promised("h") == {}
    with pytest.raises(ValueError, match="ttl_s"):
        store.reserve_gpu("h", "w", "c", least_loaded, ttl_s=0)


def test_a_dead_workers_reservation_lapses(store: RunStore) -> None:
    assert store.reserve_gpu("h", "w", "c", least_loaded, ttl_s=0.2) is not None
    assert store.gpu_promised("h") == {"GPU-a": NEED}
    time.sleep(0.4)
    assert store.gpu_promised("h") == {}


def _worker(url: str, name: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    placed = []
    with RunStore.open(url) as store:
        for i in range(EACH):
            found = store.reserve_gpu("host-1", name, f"c{i}", least_loaded, ttl_s=600)
            if found is not None:
                placed.append((found.gpu_uuid, found.mib))
    out.put(placed)


def test_200_concurrent_placements_never_oversubscribe(store_url: str) -> None:
    with RunStore.open(store_url):
        pass  # migrated once, before the workers race
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    workers = [
        context.Process(target=_worker, args=(store_url, f"worker-{w}", out))
        for w in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    placed = [p for _ in workers for p in out.get(timeout=240)]
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    per_gpu = {gpu: sum(mib for g, mib in placed if g == gpu) for gpu in CAPACITY}
    assert all(per_gpu[gpu] <= CAPACITY[gpu] for gpu in CAPACITY), per_gpu
    # Every MiB that could be promised was, and no more: 76 on GPU-a, 46 on GPU-b.
    assert len(placed) == sum(cap // NEED for cap in CAPACITY.values()) == 122
    with RunStore.open(store_url) as store:
        assert store.gpu_promised("host-1") == per_gpu
