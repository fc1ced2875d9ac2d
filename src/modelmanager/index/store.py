"""RunStore: the run index over manifests and artifacts, profiles, metrics and leases (D4).

One :class:`RunStore` holds one SQLAlchemy engine (a connection pool) and is
safe to share between threads; every process opens its own (after a fork,
open a new one). SQLite (the embedded default) and PostgreSQL (by URL) run the
same code; what differs is kept in a few places:

    ============================  ==========================  =======================
    concern                       SQLite (one host)           PostgreSQL (many hosts)
    ============================  ==========================  =======================
    write transactions            ``BEGIN IMMEDIATE``         ``BEGIN`` (row locks)
    read transactions             ``BEGIN`` (WAL snapshot)    ``BEGIN``
    lease clock                   this host's UTC clock       the server's ``now()``
    concurrent ``upgrade head``   serialized by the write     ``pg_advisory_xact_lock``
                                  lock of BEGIN IMMEDIATE
    connection setup              WAL, busy_timeout 5000,     ``pool_pre_ping``,
                                  synchronous NORMAL,         ``connect_timeout`` 10 s
                                  foreign_keys ON
    ============================  ==========================  =======================

SQLite takes the write lock at ``BEGIN IMMEDIATE``, so a busy writer waits in
``busy_timeout`` instead of failing its lock upgrade midway ("database is
locked", LIMITS.md). Lease expiry is compared with ONE clock: the database
server's on PostgreSQL; SQLite lives on one host, whose clock all its workers
share.

Failures of the database or its driver surface as
:class:`~modelmanager.errors.DatabaseError` (``transient`` for lost
connections, timeouts, lock waits, serialization failures), naming the URL
without its password.

>>> with RunStore.open("sqlite:///index.sqlite3") as store:  # doctest: +SKIP
...     lease = store.try_acquire(cache_key, owner="host-1:4242", ttl_s=60)
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    case,
    exc,
    exists,
    insert,
    make_url,
    select,
    update,
)
from sqlalchemy.engine import URL

from modelmanager import offline
from modelmanager.errors import DatabaseError, LeaseLost, ModelManagerError, VideoDeleted
from modelmanager.index import _schema
from modelmanager.index._base import COMPONENTS, RUNS, component_row, run_row
from modelmanager.index._engine import create_store_engine
from modelmanager.index.leases import LeaseMixin
from modelmanager.index.migrations import HEAD
from modelmanager.index.profiles import ProfileMixin
from modelmanager.index.records import CachedArtifact, ComponentRunRow, Lease, RunRow
from modelmanager.index.reservations import ReservationMixin
from modelmanager.index.retention_queries import (
    RetentionMixin,
    deletion_checks,
    refused,
    video_history_statements,
)
from modelmanager.mapping.spec import RunContext

__all__ = ["RunStore", "video_history_statements"]

logger = logging.getLogger(__name__)

# One statement object, rows as parameters: SQLAlchemy compiles it once (~3x cheaper).
_INSERT_COMPONENT = insert(COMPONENTS)


_C = COMPONENTS.c
# Built once: the cache lookup runs once per component of every run (hot path).
_LOOKUP = (
    select(
        _C.cache_key,
        _C.run_id,
        _C.component,
        _C.artifact_path,
        _C.artifact_size,
        _C.artifact_sha256,
        _C.schema_version,
        _C.finished_at,
    )
    .where(
        _C.cache_key == bindparam("cache_key"),
        _C.status == "ok",
        _C.artifact_path.is_not(None),
        _C.artifact_size.is_not(None),
        _C.artifact_sha256.is_not(None),
    )
    .order_by(_C.finished_at.desc())
    .limit(1)
)


FinalRunStatus = Literal["ok", "failed", "interrupted"]
FINAL_RUN_STATUSES: tuple[FinalRunStatus, ...] = ("ok", "failed", "interrupted")
"""What a run's own process records as it ends (``abandoned`` is recorded by others)."""


class RunStore(ProfileMixin, RetentionMixin, LeaseMixin, ReservationMixin):
    """The run index: profiles, runs, component rows, cache lookup and leases.

    Open with :meth:`open`; use as a context manager or call :meth:`close`.
    Safe to share between threads; each process opens its own.

    >>> with RunStore.open("sqlite:///index.sqlite3") as store:  # doctest: +SKIP
    ...     cached = store.lookup(key)
    ...     if cached is None and (lease := store.try_acquire(key, "host-1:4242", 60)):
    ...         try:
    ...             ...  # compute, publish the artifact, record_component(...)
    ...         finally:
    ...             store.release(lease)
    """

    @classmethod
    def open(cls, url: str, *, migrate: bool = True, create: bool = True) -> RunStore:
        """Connect to the run index at ``url``, and bring its schema to the newest revision.

        Args:
            url: ``sqlite:///path/index.sqlite3`` (directories are created) or
                ``postgresql+psycopg://user@host/db``.
            migrate: bring the schema to the newest revision now: one query
                when it is there already (Alembic is not imported), else Alembic
                ``upgrade head`` (safe when several processes open one database at once).
            create: whether a database without a run index (empty, or another
                application's) gets one. Read-only callers pass False: such a
                database is left untouched (a SQLite file that does not exist is not
                created either) and :class:`DatabaseError` says so. A run index at an
                older revision is still upgraded (with ``migrate``): it is this
                application's, and the read queries need the newest schema.

        Raises:
            DatabaseError: a bad URL, an unsupported backend, a missing driver, the
                database is unreachable (transient) or cannot be migrated, or
                (``create=False``) it has no run index (hint: ``modelmanager db upgrade``).
        """
        try:
            parsed = make_url(url)
        except exc.ArgumentError as error:
            raise DatabaseError(f"not a database URL: {error}", url="<unparsable>") from error
        shown = parsed.render_as_string(hide_password=True)
        if not create and _sqlite_file_missing(parsed):
            raise _no_run_index(shown)
        if parsed.host:
            offline.allow([parsed.host])  # the run index is a host the guard lets through
        try:
            engine = create_store_engine(parsed)
        except ModelManagerError:
            raise
        except (exc.SQLAlchemyError, ImportError) as error:
            hint = (
                "pip install 'modelmanager[postgres]'" if isinstance(error, ImportError) else None
            )
            raise DatabaseError(
                f"cannot create an engine for {shown}: {error}", url=shown, hint=hint
            ) from error
        store = cls(engine)
        try:
            found = store._revisions()  # one query, no Alembic
            if not create and not found:
                raise _no_run_index(shown)
            if migrate and found != [HEAD]:
                store.upgrade()
        except BaseException:
            store.close()
            raise
        return store

    def _revisions(self) -> list[str] | None:
        """The rows of ``alembic_version`` (one query); None without a run index."""
        return _schema.revisions(self._engine, url=self.url, backend=self._backend)

    def revision(self) -> str | None:
        """The database's schema revision (``alembic_version``), or None without a run index."""
        found = self._revisions()
        return found[0] if found else None

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for inspection and tests)."""
        return self._engine

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._backend

    def close(self) -> None:
        """Close the pooled connections."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunStore({self.url!r})"

    # -- schema -----------------------------------------------------------------

    def upgrade(self, revision: str = "head") -> None:
        """Run Alembic ``upgrade`` in one transaction that holds the migration lock.

        See :func:`modelmanager.index._schema.upgrade` (SQLite's foreign keys are
        off while it runs and checked before the commit).

        Raises:
            DatabaseError: the database is unreachable or at a revision this
                version does not know (a newer modelmanager migrated it).
        """
        _schema.upgrade(self._writer, url=self.url, backend=self._backend, revision=revision)

    # -- runs -------------------------------------------------------------------

    def start_run(
        self,
        run_context: RunContext,
        *,
        mapping_source: str,
        started_at: datetime | None = None,
        worker: str | None = None,
    ) -> str | None:
        """Record a new run, status ``running``, started ``started_at`` (default: now), by
        ``worker`` (``host:pid:nonce``, so that a run whose worker died can be told apart).

        Returns the input digest of the video's newest earlier run when it differs from
        this run's (another file under the same ids: issue 13), else None. One more
        statement, in the same transaction, only for a run with an input digest.

        Raises:
            DatabaseError: ``run_id`` is already in the index, or the write failed.
        """
        values = {
            **run_context.model_dump(
                include={
                    "run_id",
                    "platform_id",
                    "video_id",
                    "config_hash",
                    "sampling_policy_version",
                    "dataprocessor_version",
                    "user_id",
                    "input_digest",
                }
            ),
            "status": "running",
            "mapping_source": mapping_source,
            "manifest_path": None,
            "started_at": started_at or datetime.now(UTC),
            "finished_at": None,
            "worker": worker,
            "heartbeat_at": started_at or datetime.now(UTC),
        }
        run_id = run_context.run_id
        digest = run_context.input_digest
        try:
            with self._write("starting run", run_id=run_id) as conn:
                earlier = None if digest is None else _earlier_digest(conn, run_context)
                conn.execute(insert(RUNS).values(**values))
        except DatabaseError as error:
            if isinstance(error.__cause__, exc.IntegrityError):
                raise DatabaseError(
                    f"run {run_id!r} is already in the run index ({self.url}); "
                    "every run needs a new run_id",
                    url=self.url,
                    run_id=run_id,
                ) from error.__cause__
            raise
        logger.debug("started run %s", run_id)
        return earlier if earlier != digest else None

    def finish_run(
        self,
        run_id: str,
        *,
        status: FinalRunStatus,
        manifest_path: str | None,
        finished_at: datetime | None = None,
        video: tuple[str, str] | None = None,
    ) -> None:
        """Mark run ``run_id`` finished with ``status`` at ``finished_at`` (default: now).

        With ``video`` (``(platform_id, video_id)`` of the run) and a ``manifest_path``,
        a deletion of the video in progress wins (issue 12): the run ends recorded
        without its manifest, and VideoDeleted tells the caller to remove the file.

        Raises:
            ValueError: ``status`` is not one a run ends with (``ok``, ``failed``,
                ``interrupted``).
            VideoDeleted: a deletion of the run's video is in progress: the status is
                recorded without ``manifest_path``, and the caller removes its manifest
                (the deletion wins, issue 12).
            DatabaseError: no such run, or the write failed.
        """
        if status not in FINAL_RUN_STATUSES:
            raise ValueError(
                f"a finished run's status is one of {FINAL_RUN_STATUSES}, not {status!r}"
            )
        values: dict[str, Any] = {
            "status": status,
            "manifest_path": manifest_path,
            "finished_at": finished_at or datetime.now(UTC),
        }
        in_progress = None
        if video is not None and manifest_path is not None:
            # A deletion of the video in progress: the run ends pointing at no manifest.
            in_progress = deletion_checks(run_id, *video)[0]
            values["manifest_path"] = case((in_progress, None), else_=manifest_path)
        stmt = (
            update(RUNS)
            .where(RUNS.c.run_id == run_id)
            .values(**values)
            .returning(RUNS.c.manifest_path)
        )
        with self._write("finishing run", run_id=run_id) as conn:
            found = conn.execute(stmt).all()
        if found and in_progress is not None and found[0].manifest_path is None:
            raise VideoDeleted(
                f"video {video[0]}/{video[1]} is being deleted; run {run_id} ended "  # type: ignore[index]
                "without its manifest",
                run_id=run_id,
            )
        if not found:
            raise DatabaseError(
                f"run {run_id!r} is not in the run index ({self.url})", url=self.url, run_id=run_id
            )

    def beat_run(self, run_id: str) -> None:
        """Renew run ``run_id``'s heartbeat (its worker is alive and still running it)."""
        stmt = (
            update(RUNS)
            .where(RUNS.c.run_id == run_id, RUNS.c.status == "running")
            .values(heartbeat_at=self._clock()[0])
        )
        with self._write("renewing the run's heartbeat", run_id=run_id) as conn:
            conn.execute(stmt)

    def abandon_dead_runs(
        self, *, stale_after_s: float = 180.0, at_most_every_s: float = 0.0
    ) -> list[str]:
        """Mark ``abandoned`` the runs still ``running`` whose worker died: its heartbeat is
        older than ``stale_after_s`` (default: three lease TTLs of 60 s; the runner renews it
        every third of its TTL), or it ran on this host under a pid that is gone.

        ``at_most_every_s``: skip the look when this store looked less than that long ago
        (a worker running many videos looks once per lease TTL, not once per run).

        Returns the run ids marked. One read; a write only when there is something to mark.
        """
        clock = time.monotonic()
        if (
            self._abandon_looked_at is not None
            and clock - self._abandon_looked_at < at_most_every_s
        ):
            return []
        self._abandon_looked_at = clock
        r = RUNS.c
        now = datetime.now(UTC)
        with self._read("reading running runs") as conn:
            running = conn.execute(
                select(r.run_id, r.worker, r.heartbeat_at).where(r.status == "running")
            ).all()
        cutoff = now - timedelta(seconds=stale_after_s)
        dead = [
            row.run_id
            for row in running
            if (row.heartbeat_at is not None and row.heartbeat_at < cutoff)
            or _worker_gone(row.worker)
        ]
        if dead:
            stmt = (
                update(RUNS)
                .where(r.run_id.in_(dead), r.status == "running")
                .values(status="abandoned", finished_at=now)
            )
            with self._write("marking abandoned runs") as conn:
                conn.execute(stmt)
            logger.warning("runs whose worker died, marked abandoned: %s", ", ".join(dead))
        return dead

    def get_run(self, run_id: str) -> RunRow | None:
        """Run ``run_id``, or None."""
        with self._read("reading run", run_id=run_id) as conn:
            row = conn.execute(select(RUNS).where(RUNS.c.run_id == run_id)).one_or_none()
        return None if row is None else run_row(row)

    def list_runs(
        self, *, platform_id: str | None = None, video_id: str | None = None, limit: int = 50
    ) -> list[RunRow]:
        """Runs, newest first, optionally of one platform and/or video."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        stmt = select(RUNS)
        if platform_id is not None:
            stmt = stmt.where(RUNS.c.platform_id == platform_id)
        if video_id is not None:
            stmt = stmt.where(RUNS.c.video_id == video_id)
        stmt = stmt.order_by(RUNS.c.started_at.desc(), RUNS.c.run_id.desc()).limit(limit)
        with self._read("listing runs") as conn:
            return [run_row(row) for row in conn.execute(stmt)]

    # -- component rows ---------------------------------------------------------

    def record_component(self, row: ComponentRunRow, *, lease: Lease | None = None) -> None:
        """Record one component of a started run; with ``lease``, only while it is still
        this claim, checked in the same transaction as the insert (a fencing token: a
        worker that paused past its TTL and was taken over publishes nothing).

        A deletion of the video wins (issue 12): while one is in progress, or once one
        removed this run's row, nothing is recorded (checked in the same transaction).

        Raises:
            VideoDeleted: the video is being or was deleted under this run; nothing was
                recorded (the caller removes the artifact it wrote).
            LeaseLost: ``lease`` is no longer this claim; nothing was recorded.
            DatabaseError: the run is not in the index, the component is already
                recorded for it, or the write failed.
        """
        if row.id is not None:
            raise ValueError("a row to record has no id yet; the database assigns it")
        values = {k: v for k, v in _component_fields(row).items() if k != "id"}
        try:
            with self._write(
                "recording component", run_id=row.run_id, component=row.component
            ) as conn:
                # One statement: the lease's claim and the video's deletions (a published file).
                check = None
                if lease is not None:
                    claimed = exists(self._claim_check(lease)).label("claimed")
                    check = conn.execute(
                        select(claimed, *deletion_checks(row.run_id, row.platform_id, row.video_id))
                    ).one()
                if lease is not None and check is not None and not check.claimed:
                    raise LeaseLost(
                        f"{row.component}: the lease on its key was taken over by another worker "
                        "(this one paused past its TTL); its result is not published",
                        component=row.component,
                        cache_key=lease.cache_key,
                    )
                if check is not None and refused(check):
                    raise VideoDeleted(
                        f"{row.component}: video {row.platform_id}/{row.video_id} was deleted "
                        f"while run {row.run_id} computed it; its result is not published",
                        component=row.component,
                        run_id=row.run_id,
                    )
                conn.execute(_INSERT_COMPONENT, values)
        except DatabaseError as error:
            # No file to publish (no lease), but the run's row may be gone with its video's.
            if isinstance(error.__cause__, exc.IntegrityError) and self.deletion_refuses(
                row.run_id, row.platform_id, row.video_id
            ):
                raise VideoDeleted(
                    f"{row.component}: video {row.platform_id}/{row.video_id} was deleted "
                    f"under run {row.run_id}; nothing is recorded",
                    component=row.component,
                    run_id=row.run_id,
                ) from error
            raise

    def component_runs(self, run_id: str) -> list[ComponentRunRow]:
        """The component rows of run ``run_id``, in the order they were recorded."""
        stmt = select(COMPONENTS).where(COMPONENTS.c.run_id == run_id).order_by(COMPONENTS.c.id)
        with self._read("reading component rows", run_id=run_id) as conn:
            return [component_row(row) for row in conn.execute(stmt)]

    # -- cache lookup (R-SIG-4) -------------------------------------------------

    def lookup(self, cache_key: str) -> CachedArtifact | None:
        """The newest ``ok`` row under ``cache_key`` with a whole artifact record, or None.

        A whole record has path, size and sha256: without them a reader could
        not verify the file, so it is never served.

        One query on ``ix_component_runs_lookup (cache_key, status, finished_at)``.
        The caller still verifies size, sha256 and schema before trusting the file
        (D5), and calls :meth:`forget` when it turns out invalid.
        """
        with self._read("cache lookup", cache_key=cache_key) as conn:
            row = conn.execute(_LOOKUP, {"cache_key": cache_key}).one_or_none()
        return None if row is None else CachedArtifact(**row._asdict())

    def forget(self, cache_key: str, artifact_path: str) -> int:
        """Mark the rows serving ``artifact_path`` under ``cache_key`` ``invalidated``.

        :meth:`lookup` never returns them again. Returns how many rows changed.
        """
        c = COMPONENTS.c
        stmt = (
            update(COMPONENTS)
            .where(
                c.cache_key == cache_key,
                c.artifact_path == artifact_path,
                c.status.in_(("ok", "cached")),
            )
            .values(status="invalidated")
        )
        with self._write("forgetting artifact", cache_key=cache_key, path=artifact_path) as conn:
            changed = conn.execute(stmt).rowcount
        logger.info("forgot %s for %s (%d rows)", artifact_path, cache_key, changed)
        return changed


def _no_run_index(shown: str) -> DatabaseError:
    return DatabaseError(
        f"{shown} has no run index (an empty database, or another application's); "
        "nothing was created",
        url=shown,
        hint="modelmanager db upgrade creates it",
    )


def _sqlite_file_missing(url: URL) -> bool:
    """Whether ``url`` is a SQLite file that does not exist (opening it would create it)."""
    if url.get_backend_name() != "sqlite":
        return False
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return False
    return not Path(database).expanduser().exists()


def _component_fields(row: ComponentRunRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in ComponentRunRow.__dataclass_fields__}


def _worker_gone(worker: str | None) -> bool:
    """Whether ``worker`` (``host:pid:nonce``) ran on this host under a pid that is gone."""
    host, _, rest = (worker or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another host's worker: only its heartbeat can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another account's
        return False
    return False


def _earlier_digest(conn: Connection, run_context: RunContext) -> str | None:
    """The input digest of the newest run of ``run_context``'s video that had one."""
    r = RUNS.c
    stmt = (
        select(r.input_digest)
        .where(
            r.platform_id == run_context.platform_id,
            r.video_id == run_context.video_id,
            r.input_digest.is_not(None),
        )
        .order_by(r.started_at.desc(), r.run_id.desc())
        .limit(1)
    )
    digest: str | None = conn.execute(stmt).scalar_one_or_none()
    return digest
