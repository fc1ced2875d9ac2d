"""The run index (D4): SQLAlchemy 2 tables, Alembic migrations, and :class:`RunStore`.

>>> from modelmanager.index import RunStore
>>> with RunStore.open("sqlite:///index.sqlite3") as store:  # doctest: +SKIP
...     store.lookup(cache_key)
"""

from __future__ import annotations

from modelmanager.index.records import (
    CachedArtifact,
    ComponentRowStatus,
    ComponentRunRow,
    DeletionAudit,
    GpuReservation,
    Lease,
    RunRow,
    RunRowStatus,
)
from modelmanager.index.store import RunStore

__all__ = [
    "CachedArtifact",
    "ComponentRowStatus",
    "ComponentRunRow",
    "DeletionAudit",
    "GpuReservation",
    "Lease",
    "RunRow",
    "RunRowStatus",
    "RunStore",
]
