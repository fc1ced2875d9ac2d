"""D4: leases on cache keys in the run index, on SQLite and PostgreSQL (same tests, both).

One worker computes a key at a time: acquire, refuse, release, expiry and
takeover by the database's clock, renewal by the holder only, and real races
between threads and between spawned processes with their own stores.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from modelmanager.index import Lease, RunStore

# The run index fixtures (redundant, and harmless, once conftest.py imports them).

KEY = "sha256:" + "a" * 64


def test_acquire_gives_a_lease_and_names_its_holder(store: RunStore) -> None:
    lease = store.try_acquire(KEY, "worker-1", ttl_s=30)
    assert lease is not None
    assert (lease.cache_key, lease.owner) == (KEY, "worker-1")
    assert lease.acquired_at.tzinfo is not None
    assert lease.expires_at - lease.acquired_at == timedelta(seconds=30)
    assert store.holder(KEY) == ("worker-1", lease.expires_at)
    assert store.holder("sha256:" + "b" * 64) is None


def test_a_held_key_is_refused_to_everyone(store: RunStore) -> None:
    lease = store.try_acquire(KEY, "worker-1", ttl_s=30)
    assert lease is not None
    assert store.try_acquire(KEY, "worker-2", ttl_s=30) is None
    assert store.try_acquire(KEY, "worker-1", ttl_s=30) is None  # not re-entrant
    assert store.holder(KEY) == ("worker-1", lease.expires_at)
    # Other keys are independent.
    assert store.try_acquire("sha256:" + "b" * 64, "worker-2", ttl_s=30) is not None


def test_release_frees_the_key_and_only_the_holder_releases(store: RunStore) -> None:
    lease = store.try_acquire(KEY, "worker-1", ttl_s=30)
    assert lease is not None
    assert store.release(replace(lease, owner="worker-2")) is False
    assert store.holder(KEY) is not None
    assert store.release(lease) is True
    assert store.holder(KEY) is None
    assert store.release(lease) is False
    taken = store.try_acquire(KEY, "worker-2", ttl_s=30)
    assert taken is not None
    assert taken.owner == "worker-2"


def test_an_expired_lease_is_taken_over(store: RunStore) -> None:
    old = store.try_acquire(KEY, "worker-1", ttl_s=0.2)
    assert old is not None
    assert store.try_acquire(KEY, "worker-2", ttl_s=30) is None
    time.sleep(0.3)
    assert store.holder(KEY) is None  # expired: nobody holds it
    new = store.try_acquire(KEY, "worker-2", ttl_s=30)
    assert new is not None
    assert new.owner == "worker-2"
    assert new.acquired_at > old.acquired_at
    assert store.holder(KEY) == ("worker-2", new.expires_at)
    # The old holder lost it: it can neither renew nor release the new claim.
    assert store.renew(old, ttl_s=30) is False
    assert store.release(old) is False
    assert store.holder(KEY) == ("worker-2", new.expires_at)


def test_the_same_owner_taking_over_its_expired_lease_gets_a_new_claim(store: RunStore) -> None:
    old = store.try_acquire(KEY, "worker-1", ttl_s=0.2)
    assert old is not None
    time.sleep(0.3)
    new = store.try_acquire(KEY, "worker-1", ttl_s=30)
    assert new is not None
    assert store.release(old) is False  # the stale handle is not the live claim
    assert store.release(new) is True


def test_renew_extends_only_the_holders_lease(store: RunStore) -> None:
    lease = store.try_acquire(KEY, "worker-1", ttl_s=0.5)
    assert lease is not None
    assert store.renew(replace(lease, owner="worker-2"), ttl_s=60) is False
    assert store.renew(lease, ttl_s=60) is True
    held = store.holder(KEY)
    assert held is not None
    assert held[0] == "worker-1"
    assert held[1] >= lease.expires_at + timedelta(seconds=59)
    time.sleep(0.6)  # past the first expiry: the renewal keeps it
    assert store.try_acquire(KEY, "worker-2", ttl_s=30) is None
    assert store.renew(lease, ttl_s=0.2) is True


def test_ttl_must_be_positive(store: RunStore) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        store.try_acquire(KEY, "worker-1", ttl_s=0)
    lease = store.try_acquire(KEY, "worker-1", ttl_s=1)
    assert lease is not None
    with pytest.raises(ValueError, match="ttl_s"):
        store.renew(lease, ttl_s=-1)


def test_lease_times_come_from_one_clock(store: RunStore) -> None:
    """On PostgreSQL no worker's clock enters a lease: its statements bind no timestamp."""
    bound: list[Any] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, ctx: Any, many: bool) -> None:
        bound.extend(params.values() if isinstance(params, dict) else params)

    def timestamps() -> list[Any]:
        found = [p for p in bound if isinstance(p, datetime | str) and str(p)[:2] == "20"]
        bound.clear()
        return found

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        lease = store.try_acquire(KEY, "worker-1", ttl_s=30)
        acquire_times = timestamps()
        store.holder(KEY)
        holder_times = timestamps()
        assert lease is not None
        store.renew(lease, ttl_s=30)
        renew_times = timestamps()
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    if store.backend == "postgresql":
        assert (acquire_times, holder_times) == ([], [])
        assert renew_times == [lease.acquired_at]  # the claim's identity, not a clock reading
        with store.engine.connect() as conn:
            server_now = conn.exec_driver_sql("SELECT now()").scalar_one()
        assert abs(server_now - lease.acquired_at) < timedelta(seconds=5)
    else:  # SQLite lives on one host: its workers share this host's clock
        assert len(acquire_times) == 3  # acquired_at, expires_at, and now in the WHERE


# -- races --------------------------------------------------------------------------


def test_threads_race_for_one_key_and_one_wins(store: RunStore) -> None:
    threads_n = 8
    barrier = threading.Barrier(threads_n)
    won: list[Lease] = []
    errors: list[BaseException] = []

    def race(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            lease = store.try_acquire(KEY, f"thread-{n}", ttl_s=30)
            if lease is not None:
                won.append(lease)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(won) == 1
    assert store.holder(KEY) == (won[0].owner, won[0].expires_at)


def _race_worker(url: str, owner: str, keys: list[str], start: Any, results: Any) -> None:
    """In a spawned process: its own RunStore; race for each key at once with the others."""
    try:
        with RunStore.open(url) as own:
            won = []
            for key in keys:
                start.wait(timeout=60)
                if own.try_acquire(key, owner, ttl_s=60) is not None:
                    won.append(key)
        results.put((owner, won, None))
    except BaseException as error:
        results.put((owner, [], f"{type(error).__name__}: {error}"))


def test_processes_race_for_keys_and_exactly_one_wins_each(store: RunStore, store_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    workers = 4
    keys = [f"sha256:race-{i}" for i in range(8)]
    start = ctx.Barrier(workers)
    results = ctx.Queue()
    processes = [
        ctx.Process(target=_race_worker, args=(store_url, f"proc-{n}", keys, start, results))
        for n in range(workers)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    assert [error for _, _, error in outcomes if error is not None] == []
    winners = {key: [owner for owner, won, _ in outcomes if key in won] for key in keys}
    assert {key: len(owners) for key, owners in winners.items()} == dict.fromkeys(keys, 1)
    for key, owners in winners.items():
        held = store.holder(key)
        assert held is not None
        assert held[0] == owners[0]
