"""GPU reservations (R-SCHED-2): the memory each placed component was promised, per host.

A placement reads the host's live reservations and records its own in one transaction:
SQLite's writes begin IMMEDIATE (one writer at a time), PostgreSQL takes a transaction
advisory lock per host. So workers placing at the same moment see each other's promises
and never promise one GPU more than it has. A reservation lapses at ``expires_at`` by
the database clock (a dead worker's promises do not outlive it) unless released first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

from sqlalchemy import Connection, delete, func, insert, select

from modelmanager.index._base import GPU_RESERVATIONS, StoreBase
from modelmanager.index.records import GpuReservation

__all__ = ["ReservationMixin"]

Choice = tuple[str, int]
"""``(gpu_uuid, mib)``: where a placement goes and how much it takes."""


class ReservationMixin(StoreBase):
    """:class:`~modelmanager.index.RunStore`'s GPU reservations."""

    def reserve_gpu(
        self,
        host: str,
        owner: str,
        component: str,
        choose: Callable[[Mapping[str, int]], Choice | None],
        ttl_s: float,
    ) -> GpuReservation | None:
        """Place one component on ``host``: ``choose`` gets the MiB already promised per
        GPU (live reservations, by uuid) and returns ``(gpu_uuid, mib)``, or None when
        nothing fits; the choice is recorded in the same transaction, so no other worker
        places between the read and the write. None: nothing was reserved.

        Raises:
            ValueError: ``ttl_s`` is not positive, or ``choose`` asked for negative MiB.
            DatabaseError: the database failed.
        """
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be > 0, got {ttl_s!r}")
        r = GPU_RESERVATIONS.c
        now, expires_at = self._clock(ttl_s)
        with self._write("reserving GPU memory", host=host, component=component) as conn:
            self._lock_host(conn, host)
            promised = self._promised(conn, host, now)
            choice = choose(promised)
            if choice is None:
                return None
            gpu_uuid, mib = choice
            if mib < 0:
                raise ValueError(f"a reservation of {mib} MiB")
            row = conn.execute(
                insert(GPU_RESERVATIONS)
                .values(
                    host=host,
                    gpu_uuid=gpu_uuid,
                    owner=owner,
                    component=component,
                    mib=mib,
                    created_at=now,
                    expires_at=expires_at,
                )
                .returning(r.id, r.expires_at)
            ).one()
        return GpuReservation(row.id, host, gpu_uuid, owner, component, mib, row.expires_at)

    def release_gpu(self, reservation: GpuReservation) -> bool:
        """Give ``reservation`` back; whether it was still there."""
        stmt = delete(GPU_RESERVATIONS).where(GPU_RESERVATIONS.c.id == reservation.id)
        with self._write("releasing GPU memory", host=reservation.host) as conn:
            return conn.execute(stmt).rowcount == 1

    def gpu_promised(self, host: str) -> dict[str, int]:
        """MiB promised per GPU (uuid) of ``host`` by its live reservations."""
        with self._read("reading GPU reservations", host=host) as conn:
            return self._promised(conn, host, self._clock()[0])

    @staticmethod
    def _promised(conn: Connection, host: str, now: object) -> dict[str, int]:
        r = GPU_RESERVATIONS.c
        stmt = (
            select(r.gpu_uuid, func.sum(r.mib))
            .where(r.host == host, r.expires_at >= now)
            .group_by(r.gpu_uuid)
        )
        return {uuid: int(total) for uuid, total in conn.execute(stmt)}

    def _lock_host(self, conn: Connection, host: str) -> None:
        """PostgreSQL: one placement per host at a time, until the transaction ends
        (SQLite: BEGIN IMMEDIATE already serializes every writer)."""
        if self._backend == "postgresql":
            key = int.from_bytes(hashlib.sha256(host.encode()).digest()[:8], "big", signed=True)
            conn.execute(select(func.pg_advisory_xact_lock(key)))
