"""Retention's queries (R-GC): a video's history, and the transactions of collection and
delete-by-video (see :mod:`modelmanager.retention`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    String,
    bindparam,
    delete,
    exists,
    insert,
    select,
    update,
)
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
from modelmanager.mapping.canonical import sha256_tagged

__all__ = ["RetentionMixin", "subject_sha256", "video_history_statements"]


def subject_sha256(platform_id: str, video_id: str) -> str:
    """What the deletion audit stores instead of the ids: ``sha256:<hex>`` of ``"<p>/<v>"``."""
    return sha256_tagged(f"{platform_id}/{video_id}".encode())


def deletion_checks(run_id: str, platform_id: str, video_id: str) -> list[Any]:
    """Three labelled EXISTS columns that decide :func:`deletion_refuses`, to put in a
    SELECT of one's own (the publish path asks them in the same statement as its lease
    check): ``deletion_in_progress``, ``video_deleted`` and ``run_present``."""
    a = AUDIT.c
    subject = a.subject_sha256 == subject_sha256(platform_id, video_id)
    return [
        exists().where(subject, a.finished_at.is_(None)).label("deletion_in_progress"),
        exists().where(subject).label("video_deleted"),
        exists().where(RUNS.c.run_id == run_id).label("run_present"),
    ]


def refused(row: Any) -> bool:
    """Whether a row of :func:`deletion_checks`'s columns refuses publishing."""
    return bool(row.deletion_in_progress or (row.video_deleted and not row.run_present))


def deletion_refuses(conn: Connection, run_id: str, platform_id: str, video_id: str) -> bool:
    """Whether a deletion of the video forbids run ``run_id`` to publish anything (issue 12).

    It does while a deletion of the video is in progress (its audit row, written before
    anything is deleted, has no ``finished_at`` yet), and after one finished for a run
    whose row it removed (the run started before the deletion ended). A run started
    after a deletion finished publishes as usual. No clocks are compared. One query.
    """
    return refused(conn.execute(select(*deletion_checks(run_id, platform_id, video_id))).one())


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

    def deletion_refuses(self, run_id: str, platform_id: str, video_id: str) -> bool:
        """Whether a deletion of the video forbids run ``run_id`` to publish (see
        :func:`deletion_refuses`); what a run asks before it leaves a file behind."""
        with self._read("checking the video's deletions", run_id=run_id) as conn:
            return deletion_refuses(conn, run_id, platform_id, video_id)

    def begin_deletion(self, *, audit_subject: str, actor: str, requested_at: datetime) -> int:
        """Record a delete-video request before anything is deleted: its audit row, in
        progress (``finished_at`` NULL). From this commit on, nothing of the video is
        published (see :func:`deletion_refuses`). Returns the audit row's id."""
        values = {
            "subject_sha256": audit_subject,
            "actor": actor,
            "requested_at": requested_at,
            "finished_at": None,
            "counts": "{}",
        }
        with self._write("recording a deletion request") as conn:
            audit_id: int = conn.execute(
                insert(AUDIT).values(**values).returning(AUDIT.c.id)
            ).scalar_one()
        return audit_id

    def delete_video_rows(
        self,
        platform_id: str,
        video_id: str,
        *,
        audit_subject: str,
        actor: str,
        requested_at: datetime,
        counts: Mapping[str, int],
        audit_id: int | None = None,
    ) -> DeletionAudit:
        """Delete every run and component row of one video and record the audit row, atomically.

        With ``audit_id`` (from :meth:`begin_deletion`), that row is completed, and so is
        any other row of the subject a killed deletion left in progress; without, a new
        row is inserted. Returns the audit row, whose ``counts`` gain the rows deleted here.
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
            if audit_id is None:
                audit_id = conn.execute(
                    insert(AUDIT).values(**values).returning(AUDIT.c.id)
                ).scalar_one()
            else:
                a = AUDIT.c
                conn.execute(update(AUDIT).where(a.id == audit_id).values(**values))
                conn.execute(  # what a killed deletion of the subject left is done now
                    update(AUDIT)
                    .where(a.subject_sha256 == audit_subject, a.finished_at.is_(None))
                    .values(finished_at=finished_at)
                )
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
