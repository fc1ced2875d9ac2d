"""Keeping a lease on a cache key alive while its holder computes (D4)."""

from __future__ import annotations

import logging
import threading

from modelmanager.errors import ModelManagerError
from modelmanager.index import Lease, RunStore

__all__ = ["LeaseHeartbeat"]

logger = logging.getLogger(__name__)


class LeaseHeartbeat:
    """Renews a lease every third of its TTL while the work under it runs."""

    def __init__(self, store: RunStore, lease: Lease, ttl_s: float) -> None:
        self.store, self.lease, self.ttl_s = store, lease, ttl_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                held = self.store.renew(self.lease, self.ttl_s)
            except ModelManagerError as exc:  # a database hiccup: the next beat tries again
                logger.warning("could not renew the lease on %s: %s", self.lease.cache_key, exc)
                continue
            if not held:
                # Taken over: the work goes on, but its result will not be published
                # (the runner's publish is fenced by this claim).
                logger.warning(
                    "lost the lease on %s to another worker; this result will not be published",
                    self.lease.cache_key,
                )
                return

    def __enter__(self) -> LeaseHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
