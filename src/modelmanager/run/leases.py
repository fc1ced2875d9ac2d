"""Keeping a lease on a cache key alive while its holder computes (D4)."""

from __future__ import annotations

import logging
import threading

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
            if not self.store.renew(self.lease, self.ttl_s):
                logger.warning("lost the lease on %s", self.lease.cache_key)
                return

    def __enter__(self) -> LeaseHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
