"""Retention's queries (R-GC): a video's history, and the transactions of collection and
delete-by-video (see :mod:`modelmanager.retention`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, String, bindparam, delete, insert, select, update
from sqlalchemy.sql.elements import BindParameter

from modelmanager.index._base import (
    AUDIT,
    COMPONENTS,
    RUNS,
    StoreBase,
    chunks,
    component_row,
    run_row,
)
from modelmanager.index.records import ComponentRunRow, DeletionAudit, RunRow

__all__ = ["RetentionMixin", "video_history_statements"]


def video_history_statements(
    platform_id: str | BindParameter[str], video_id: str | BindParameter[str]
) -> tuple[Select[Any], Select[Any]]:
    """The two queries of :meth:`RunStore.video_history` (the benchmark EXPLAINs them)."""
    r, c = RUNS.c, COMPONENTS.c
    runs = select(RUNS).where(r.platform_id == platform_id, r.video_id == video_id)
    rows = (
        select(COMPONENTS)
        .where(c.platform_id == platform_id, c.video_id == video_id)
        .order_by(c.id)
    )
    return runs, rows


# Built once, values bound per call: GC runs them for every video (compiled once, cached).
_VIDEO_RUNS, _VIDEO_ROWS = video_history_statements(
    bindparam("platform_id", type_=String()), bindparam("video_id", type_=String())
)


class RetentionMixin(StoreBase):
    """:class:`~modelmanager.index.RunStore`'s retention queries and transactions."""

    def videos(self) -> list[tuple[str, str]]:
        """Every ``(platform_id, video_id)`` with a run, sorted (a scan of ``ix_runs_video``)."""
        r = RUNS.c
        stmt = select(r.platform_id, r.video_id).distinct().order_by(r.platform_id, r.video_id)
        with self._read("listing videos") as conn:
            return [(row.platform_id, row.video_id) for row in conn.execute(stmt)]

    def video_history(
        self, platform_id: str, video_id: str
    ) -> tuple[list[RunRow], list[ComponentRunRow]]:
        """Every run and component row of one video (``ix_runs_video``, ``ix_component_runs_video``)."""
        params = {"platform_id": platform_id, "video_id": video_id}
        with self._read("reading a video's history", video_id=video_id) as conn:
            runs = [run_row(row) for row in conn.execute(_VIDEO_RUNS, params)]
            rows = [component_row(row) for row in conn.execute(_VIDEO_ROWS, params)]
        return runs, rows

    def collecting_videos(self) -> list[tuple[str, str]]:
        """Videos with a run left ``collecting`` by an interrupted collection (``ix_runs_status_started``)."""
        r = RUNS.c
        stmt = (
            select(r.platform_id, r.video_id)
            .where(r.status == "collecting")
            .distinct()
            .order_by(r.platform_id, r.video_id)
        )
        with self._read("listing collecting runs") as conn:
            return [(row.platform_id, row.video_id) for row in conn.execute(stmt)]

    def mark_collecting(self, run_ids: Sequence[str], *, invalidate_row_ids: Sequence[int]) -> int:
        """Commit the decision to collect ``run_ids``: status ``collecting``, their rows invalidated.

        Rows ``invalidate_row_ids`` (of runs that stay, whose artifact goes) become
        ``invalidated`` in the same transaction, so :meth:`lookup` serves none of
        them from now on. Runs ``running`` at this moment are left alone.
        Returns how many runs changed.
        """
        r, c = RUNS.c, COMPONENTS.c
        changed = 0
        with self._write("marking runs for collection") as conn:
            for chunk in chunks(run_ids):
                changed += conn.execute(
                    update(RUNS)
                    .where(
                        r.run_id.in_(chunk),
                        r.status.in_(("ok", "failed", "running", "interrupted", "abandoned")),
                    )
                    .values(status="collecting")
                ).rowcount
                conn.execute(
                    update(COMPONENTS)
                    .where(c.run_id.in_(chunk), c.status.in_(("ok", "cached")))
                    .values(status="invalidated")
                )
            for ids in chunks(invalidate_row_ids):
                conn.execute(
                    update(COMPONENTS)
                    .where(c.id.in_(ids), c.status.in_(("ok", "cached")))
                    .values(status="invalidated")
                )
        return changed

    def invalidate_rows(self, row_ids: Sequence[int]) -> int:
        """Mark component rows ``invalidated`` (their artifact is gone); returns how many changed."""
        c = COMPONENTS.c
        changed = 0
        with self._write("invalidating component rows") as conn:
            for ids in chunks(row_ids):
                changed += conn.execute(
                    update(COMPONENTS)
                    .where(c.id.in_(ids), c.status.in_(("ok", "cached")))
                    .values(status="invalidated")
                ).rowcount
        return changed

    def delete_collected(self, run_ids: Sequence[str]) -> tuple[int, int]:
        """Delete the rows of runs that are ``collecting``; returns (runs, component rows) deleted.

        Runs in any other status are not touched: only a committed decision deletes.
        """
        r, c = RUNS.c, COMPONENTS.c
        runs = rows = 0
        with self._write("deleting collected runs") as conn:
            for chunk in chunks(run_ids):
                collecting = select(r.run_id).where(r.run_id.in_(chunk), r.status == "collecting")
                rows += conn.execute(delete(COMPONENTS).where(c.run_id.in_(collecting))).rowcount
                runs += conn.execute(
                    delete(RUNS).where(r.run_id.in_(chunk), r.status == "collecting")
                ).rowcount
        return runs, rows

    def delete_video_rows(
        self,
        platform_id: str,
        video_id: str,
        *,
        audit_subject: str,
        actor: str,
        requested_at: datetime,
        counts: Mapping[str, int],
    ) -> DeletionAudit:
        """Delete every run and component row of one video and record the audit row, atomically.

        Returns the audit row, whose ``counts`` gain the rows deleted here.
        """
        r, c = RUNS.c, COMPONENTS.c
        with self._write("deleting a video's rows", video_id=video_id) as conn:
            rows = conn.execute(
                delete(COMPONENTS).where(c.platform_id == platform_id, c.video_id == video_id)
            ).rowcount
            runs = conn.execute(
                delete(RUNS).where(r.platform_id == platform_id, r.video_id == video_id)
            ).rowcount
            all_counts = {**counts, "runs": runs, "component_runs": rows}
            finished_at = datetime.now(UTC)
            values = {
                "subject_sha256": audit_subject,
                "actor": actor,
                "requested_at": requested_at,
                "finished_at": finished_at,
                "counts": json.dumps(all_counts, sort_keys=True),
            }
            audit_id = conn.execute(
                insert(AUDIT).values(**values).returning(AUDIT.c.id)
            ).scalar_one()
        return DeletionAudit(
            id=audit_id,
            subject_sha256=audit_subject,
            actor=actor,
            requested_at=requested_at,
            finished_at=finished_at,
            counts=all_counts,
        )

    def deletion_audits(self, subject_sha256: str | None = None) -> list[DeletionAudit]:
        """The delete-video audit rows, oldest first, optionally of one subject."""
        stmt = select(AUDIT).order_by(AUDIT.c.id)
        if subject_sha256 is not None:
            stmt = stmt.where(AUDIT.c.subject_sha256 == subject_sha256)
        with self._read("reading the deletion audit") as conn:
            return [
                DeletionAudit(**{**row._asdict(), "counts": json.loads(row.counts)})
                for row in conn.execute(stmt)
            ]
