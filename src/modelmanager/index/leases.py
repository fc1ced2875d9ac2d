"""Leases (D4): who computes a cache key now, by one clock (PostgreSQL's server, SQLite's host).

A lease is one row per cache key: taken by an atomic upsert that succeeds only
where no row is live, renewed and released only by the claim that took it.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import ColumnElement, Select, delete, select, update

from modelmanager.index._base import LEASES, StoreBase
from modelmanager.index.records import Lease

__all__ = ["LeaseMixin"]

logger = logging.getLogger(__name__)


def _check_ttl(ttl_s: float) -> None:
    if not ttl_s > 0:
        raise ValueError(f"ttl_s must be > 0, got {ttl_s!r}")


class LeaseMixin(StoreBase):
    """:class:`~modelmanager.index.RunStore`'s leases: try_acquire, renew, release, holder."""

    def try_acquire(self, cache_key: str, owner: str, ttl_s: float) -> Lease | None:
        """Claim ``cache_key`` for ``ttl_s`` seconds, or None while someone holds it.

        One atomic upsert: insert the lease, or take over a row whose
        ``expires_at`` is past by the database's clock. A lease is not
        re-entrant: an owner holding the key is refused too (use :meth:`renew`).

        Raises:
            ValueError: ``ttl_s`` is not positive.
            DatabaseError: the database failed.
        """
        _check_ttl(ttl_s)
        l = LEASES.c  # noqa: E741
        now, expires_at = self._clock(ttl_s)
        values = {
            "cache_key": cache_key,
            "owner": owner,
            "acquired_at": now,
            "expires_at": expires_at,
        }
        stmt = self._upsert(
            values,
            table=LEASES,
            key="cache_key",
            update_columns=("owner", "acquired_at", "expires_at"),
            where=l.expires_at < now,
        ).returning(l.cache_key, l.owner, l.acquired_at, l.expires_at)
        with self._write("acquiring lease", cache_key=cache_key, owner=owner) as conn:
            row = conn.execute(stmt).one_or_none()
        if row is None:
            return None
        logger.debug("lease on %s acquired by %s until %s", cache_key, owner, row.expires_at)
        return Lease(**row._asdict())

    def renew(self, lease: Lease, ttl_s: float) -> bool:
        """Extend ``lease`` to ``ttl_s`` from now, if it is still this claim; else False.

        A lease that expired but that nobody took over is still this claim.
        """
        _check_ttl(ttl_s)
        stmt = update(LEASES).where(*self._is_claim(lease)).values(expires_at=self._clock(ttl_s)[1])
        with self._write("renewing lease", cache_key=lease.cache_key, owner=lease.owner) as conn:
            return conn.execute(stmt).rowcount == 1

    def release(self, lease: Lease) -> bool:
        """Give ``lease`` up, if it is still this claim; returns whether it was."""
        stmt = delete(LEASES).where(*self._is_claim(lease))
        with self._write("releasing lease", cache_key=lease.cache_key, owner=lease.owner) as conn:
            released = conn.execute(stmt).rowcount == 1
        logger.debug("lease on %s released by %s: %s", lease.cache_key, lease.owner, released)
        return released

    def holder(self, cache_key: str) -> tuple[str, datetime] | None:
        """``(owner, expires_at)`` of the live lease on ``cache_key``, or None (free or expired)."""
        l = LEASES.c  # noqa: E741
        stmt = select(l.owner, l.expires_at).where(
            l.cache_key == cache_key, l.expires_at >= self._clock()[0]
        )
        with self._read("reading lease", cache_key=cache_key) as conn:
            row = conn.execute(stmt).one_or_none()
        return None if row is None else (row.owner, row.expires_at)

    @classmethod
    def _claim_check(cls, lease: Lease) -> Select[tuple[str]]:
        """Selects the lease's row while it is still this claim (expired or not)."""
        return select(LEASES.c.cache_key).where(*cls._is_claim(lease))

    @staticmethod
    def _is_claim(lease: Lease) -> tuple[ColumnElement[bool], ...]:
        l = LEASES.c  # noqa: E741
        return (
            l.cache_key == lease.cache_key,
            l.owner == lease.owner,
            l.acquired_at == lease.acquired_at,
        )

    def live_lease_keys(self) -> set[str]:
        """Cache keys whose lease is held now (by the lease clock)."""
        l = LEASES.c  # noqa: E741
        stmt = select(l.cache_key).where(l.expires_at >= self._clock()[0])
        with self._read("reading leases") as conn:
            return set(conn.execute(stmt).scalars())
