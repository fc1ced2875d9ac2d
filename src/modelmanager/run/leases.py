"""Heartbeats: a worker's claims stay alive while it works, and die with it (D4).

A key's lease is renewed every third of its TTL while its holder computes; a run's
``heartbeat_at`` likewise while the run goes on, so that a run whose worker died is
told from one still running (:meth:`~modelmanager.index.RunStore.abandon_dead_runs`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from modelmanager.errors import ModelManagerError
from modelmanager.index import Lease, RunStore

__all__ = ["Heartbeat", "lease_heartbeat", "run_heartbeat"]

logger = logging.getLogger(__name__)


class Heartbeat:
    """Calls ``beat()`` every ``interval_s`` in a daemon thread while the block runs.

    It stops when ``beat`` returns False (the claim is gone); a database error is
    logged and the next beat tries again, so one hiccup does not end the claim.
    """

    def __init__(self, beat: Callable[[], bool], interval_s: float, what: str) -> None:
        self._beat, self._interval_s, self._what = beat, interval_s, what
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat {what}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                alive = self._beat()
            except ModelManagerError as exc:
                logger.warning("could not renew %s: %s", self._what, exc)
                continue
            if not alive:
                return

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def lease_heartbeat(store: RunStore, lease: Lease, ttl_s: float) -> Heartbeat:
    """Renews ``lease`` every third of ``ttl_s``; stops once another worker took it over."""

    def renew() -> bool:
        if store.renew(lease, ttl_s):
            return True
        # Taken over: the work goes on, but its result will not be published (the
        # runner's publish is fenced by this claim).
        logger.warning(
            "lost the lease on %s to another worker; this result will not be published",
            lease.cache_key,
        )
        return False

    return Heartbeat(renew, ttl_s / 3, f"the lease on {lease.cache_key}")


def run_heartbeat(store: RunStore, run_id: str, interval_s: float) -> Heartbeat:
    """Renews run ``run_id``'s ``heartbeat_at`` every ``interval_s`` while it runs."""

    def beat() -> bool:
        store.beat_run(run_id)
        return True

    return Heartbeat(beat, interval_s, f"run {run_id}")
