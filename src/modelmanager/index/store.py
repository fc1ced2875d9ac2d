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

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from alembic import command
from alembic.config import Config
from alembic.util.exc import CommandError
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Interval,
    Row,
    Select,
    String,
    bindparam,
    delete,
    exc,
    func,
    insert,
    literal,
    make_url,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import BindParameter

from modelmanager import offline
from modelmanager.errors import DatabaseError, InvalidModelSpec, ModelManagerError
from modelmanager.index._engine import IMMEDIATE, create_store_engine, is_transient
from modelmanager.index.models import (
    Base,
    ComponentRunTable,
    DeletionAuditTable,
    LeaseTable,
    ProfileTable,
    RunTable,
    UtcDateTime,
)
from modelmanager.index.records import CachedArtifact, ComponentRunRow, DeletionAudit, Lease, RunRow
from modelmanager.mapping.spec import RunContext, parse_mapping

__all__ = ["RunStore", "video_history_statements"]

logger = logging.getLogger(__name__)


_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# pg_advisory_xact_lock key serializing concurrent migrations ("mmdb").
_MIGRATION_LOCK_KEY = 0x6D6D6462


def _check_profile_name(name: str) -> None:
    if not isinstance(name, str) or not name or name != name.strip() or len(name) > 255:
        raise InvalidModelSpec(
            f"profile name {name!r} must be 1-255 characters without surrounding spaces",
            source=f"database:{name}",
            field="profile",
        )


def _check_ttl(ttl_s: float) -> None:
    if not ttl_s > 0:
        raise ValueError(f"ttl_s must be > 0, got {ttl_s!r}")


def _run_row(row: Row[Any]) -> RunRow:
    return RunRow(**row._asdict())


def _component_row(row: Row[Any]) -> ComponentRunRow:
    return ComponentRunRow(**row._asdict())


_RUNS = Base.metadata.tables[RunTable.__tablename__]
_COMPONENTS = Base.metadata.tables[ComponentRunTable.__tablename__]
_INSERT_COMPONENT = insert(_COMPONENTS)
_LEASES = Base.metadata.tables[LeaseTable.__tablename__]
_PROFILES = Base.metadata.tables[ProfileTable.__tablename__]
_AUDIT = Base.metadata.tables[DeletionAuditTable.__tablename__]
# Values per IN (...) list: well under SQLite's 32766 bound parameters.
_IN_CHUNK = 500


class RunStore:
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

    def __init__(self, engine: Engine) -> None:
        """Wrap an engine made by :meth:`open` (which sets up SQLite's transactions)."""
        self._engine = engine
        self._backend = engine.dialect.name
        # Same pool; on SQLite its transactions begin IMMEDIATE.
        self._writer = engine.execution_options(**{IMMEDIATE: True})
        self.url = engine.url.render_as_string(hide_password=True)
        """The database URL, password hidden."""

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> RunStore:
        """Connect to the run index at ``url``, and bring its schema to the newest revision.

        Args:
            url: ``sqlite:///path/index.sqlite3`` (directories are created) or
                ``postgresql+psycopg://user@host/db``.
            migrate: run Alembic ``upgrade head`` now (safe when several
                processes open one database at once).

        Raises:
            DatabaseError: a bad URL, an unsupported backend, a missing driver, or
                the database is unreachable (transient) or cannot be migrated.
        """
        try:
            parsed = make_url(url)
        except exc.ArgumentError as error:
            raise DatabaseError(f"not a database URL: {error}", url="<unparsable>") from error
        shown = parsed.render_as_string(hide_password=True)
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
        if migrate:
            try:
                store.upgrade()
            except BaseException:
                store.close()
                raise
        return store

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

    # -- plumbing ---------------------------------------------------------------

    @contextmanager
    def _translated(self, action: str, **fields: Any) -> Iterator[None]:
        try:
            yield
        except exc.SQLAlchemyError as error:
            detail = error.orig if isinstance(error, exc.DBAPIError) else error
            first_line = str(detail).strip().splitlines()[0] if str(detail).strip() else ""
            raise DatabaseError(
                f"{action} failed: {first_line or type(detail).__name__} ({self.url})",
                transient=is_transient(error, self._backend),
                url=self.url,
                **fields,
            ) from error

    @contextmanager
    def _write(self, action: str, **fields: Any) -> Iterator[Connection]:
        """One write transaction (BEGIN IMMEDIATE on SQLite), committed on success."""
        with self._translated(action, **fields), self._writer.begin() as conn:
            yield conn

    @contextmanager
    def _read(self, action: str, **fields: Any) -> Iterator[Connection]:
        with self._translated(action, **fields), self._engine.connect() as conn:
            yield conn

    def _upsert(
        self,
        values: Mapping[str, Any],
        *,
        table: Any,
        key: str,
        update_columns: Sequence[str],
        where: ColumnElement[bool] | None = None,
    ) -> Insert:
        dialect_insert = postgresql.insert if self._backend == "postgresql" else sqlite.insert
        stmt = dialect_insert(table).values(**values)
        return stmt.on_conflict_do_update(
            index_elements=[key],
            set_={name: stmt.excluded[name] for name in update_columns},
            where=where,
        )

    def _clock(self, ttl_s: float = 0.0) -> tuple[ColumnElement[datetime], ColumnElement[datetime]]:
        """``(now, now + ttl_s)`` by the lease clock: PostgreSQL's server, or SQLite's host."""
        if self._backend == "postgresql":
            now = func.now(type_=UtcDateTime())
            later = func.now() + literal(timedelta(seconds=ttl_s), Interval())
            return now, type_coerce(later, UtcDateTime())
        host_now = datetime.now(UTC)
        return (
            literal(host_now, UtcDateTime()),
            literal(host_now + timedelta(seconds=ttl_s), UtcDateTime()),
        )

    # -- schema -----------------------------------------------------------------

    def upgrade(self, revision: str = "head") -> None:
        """Run Alembic ``upgrade`` in one transaction that holds the migration lock.

        On SQLite, foreign keys are off while it runs (a revision that changes a
        table copies it, and dropping a referenced table would fail) and
        ``PRAGMA foreign_key_check`` must pass before the commit.

        Raises:
            DatabaseError: the database is unreachable or at a revision this
                version does not know (a newer modelmanager migrated it).
        """
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS).replace("%", "%%"))
        with self._translated("migrating the run index"), self._writer.connect() as conn:
            sqlite_fks = _SqliteForeignKeysOff(conn) if self._backend == "sqlite" else None
            try:
                with conn.begin():
                    if self._backend == "postgresql":
                        conn.execute(
                            text("SELECT pg_advisory_xact_lock(:key)"),
                            {"key": _MIGRATION_LOCK_KEY},
                        )
                    config.attributes["connection"] = conn
                    try:
                        command.upgrade(config, revision)
                    except CommandError as error:
                        raise DatabaseError(
                            f"cannot migrate the run index at {self.url}: {error}", url=self.url
                        ) from error
                    if sqlite_fks is not None:
                        sqlite_fks.check(self.url)
            finally:
                if sqlite_fks is not None:
                    sqlite_fks.restore()
        logger.debug("run index at %s is at the newest revision", self.url)

    # -- profiles (R-MAP-2) -----------------------------------------------------

    def save_profile(self, name: str, document: Mapping[str, Any]) -> None:
        """Store (or replace) profile ``name``; the document's ``profile`` becomes ``name``.

        Raises:
            InvalidModelSpec: the document breaks a rule, or is not JSON data;
                nothing is written.
            DatabaseError: the write failed.
        """
        _check_profile_name(name)
        source = f"database:{name}"
        stored = {**document, "profile": name}
        mapping = parse_mapping(stored, source=source)
        try:
            encoded = json.dumps(stored, sort_keys=True, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise InvalidModelSpec(
                f"{source}: the profile is not JSON data ({error})", source=source
            ) from error
        values = {
            "name": name,
            "document": encoded,
            "format_version": mapping.format_version,
            "updated_at": datetime.now(UTC),
        }
        stmt = self._upsert(
            values,
            table=_PROFILES,
            key="name",
            update_columns=("document", "format_version", "updated_at"),
        )
        with self._write("saving profile", profile=name) as conn:
            conn.execute(stmt)
        logger.info("stored profile %r in %s", name, self.url)

    def load_profile(self, name: str) -> dict[str, Any] | None:
        """The mapping document of profile ``name``, or None (a :class:`ProfileStore`)."""
        with self._read("loading profile", profile=name) as conn:
            encoded = conn.execute(
                select(_PROFILES.c.document).where(_PROFILES.c.name == name)
            ).scalar_one_or_none()
        if encoded is None:
            return None
        document: dict[str, Any] = json.loads(encoded)
        return document

    def list_profiles(self) -> list[str]:
        """The stored profiles' names, sorted."""
        with self._read("listing profiles") as conn:
            return list(conn.execute(select(_PROFILES.c.name).order_by(_PROFILES.c.name)).scalars())

    # -- runs -------------------------------------------------------------------

    def start_run(
        self, run_context: RunContext, *, mapping_source: str, started_at: datetime | None = None
    ) -> None:
        """Record a new run, status ``running``, started ``started_at`` (default: now).

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
                }
            ),
            "status": "running",
            "mapping_source": mapping_source,
            "manifest_path": None,
            "started_at": started_at or datetime.now(UTC),
            "finished_at": None,
        }
        run_id = run_context.run_id
        try:
            with self._write("starting run", run_id=run_id) as conn:
                conn.execute(insert(_RUNS).values(**values))
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

    def finish_run(
        self,
        run_id: str,
        *,
        status: Literal["ok", "failed"],
        manifest_path: str | None,
        finished_at: datetime | None = None,
    ) -> None:
        """Mark run ``run_id`` finished with ``status`` at ``finished_at`` (default: now).

        Raises:
            ValueError: ``status`` is neither ``ok`` nor ``failed``.
            DatabaseError: no such run, or the write failed.
        """
        if status not in ("ok", "failed"):
            raise ValueError(f"a finished run's status is 'ok' or 'failed', not {status!r}")
        stmt = (
            update(_RUNS)
            .where(_RUNS.c.run_id == run_id)
            .values(
                status=status,
                manifest_path=manifest_path,
                finished_at=finished_at or datetime.now(UTC),
            )
        )
        with self._write("finishing run", run_id=run_id) as conn:
            found = conn.execute(stmt).rowcount
        if not found:
            raise DatabaseError(
                f"run {run_id!r} is not in the run index ({self.url})", url=self.url, run_id=run_id
            )

    def get_run(self, run_id: str) -> RunRow | None:
        """Run ``run_id``, or None."""
        with self._read("reading run", run_id=run_id) as conn:
            row = conn.execute(select(_RUNS).where(_RUNS.c.run_id == run_id)).one_or_none()
        return None if row is None else _run_row(row)

    def list_runs(
        self, *, platform_id: str | None = None, video_id: str | None = None, limit: int = 50
    ) -> list[RunRow]:
        """Runs, newest first, optionally of one platform and/or video."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        stmt = select(_RUNS)
        if platform_id is not None:
            stmt = stmt.where(_RUNS.c.platform_id == platform_id)
        if video_id is not None:
            stmt = stmt.where(_RUNS.c.video_id == video_id)
        stmt = stmt.order_by(_RUNS.c.started_at.desc(), _RUNS.c.run_id.desc()).limit(limit)
        with self._read("listing runs") as conn:
            return [_run_row(row) for row in conn.execute(stmt)]

    # -- component rows ---------------------------------------------------------

    def record_component(self, row: ComponentRunRow) -> None:
        """Record one component of a started run.

        Raises:
            DatabaseError: the run is not in the index, the component is already
                recorded for it, or the write failed.
        """
        if row.id is not None:
            raise ValueError("a row to record has no id yet; the database assigns it")
        values = {k: v for k, v in _component_fields(row).items() if k != "id"}
        with self._write("recording component", run_id=row.run_id, component=row.component) as conn:
            # One statement object, rows as parameters: SQLAlchemy compiles it once (~3x cheaper).
            conn.execute(_INSERT_COMPONENT, values)

    def component_runs(self, run_id: str) -> list[ComponentRunRow]:
        """The component rows of run ``run_id``, in the order they were recorded."""
        stmt = select(_COMPONENTS).where(_COMPONENTS.c.run_id == run_id).order_by(_COMPONENTS.c.id)
        with self._read("reading component rows", run_id=run_id) as conn:
            return [_component_row(row) for row in conn.execute(stmt)]

    # -- cache lookup (R-SIG-4) -------------------------------------------------

    def lookup(self, cache_key: str) -> CachedArtifact | None:
        """The newest ``ok`` row under ``cache_key`` with a whole artifact record, or None.

        A whole record has path, size and sha256: without them a reader could
        not verify the file, so it is never served.

        One query on ``ix_component_runs_lookup (cache_key, status, finished_at)``.
        The caller still verifies size, sha256 and schema before trusting the file
        (D5), and calls :meth:`forget` when it turns out invalid.
        """
        c = _COMPONENTS.c
        stmt = (
            select(
                c.cache_key,
                c.run_id,
                c.component,
                c.artifact_path,
                c.artifact_size,
                c.artifact_sha256,
                c.schema_version,
                c.finished_at,
            )
            .where(
                c.cache_key == cache_key,
                c.status == "ok",
                c.artifact_path.is_not(None),
                c.artifact_size.is_not(None),
                c.artifact_sha256.is_not(None),
            )
            .order_by(c.finished_at.desc())
            .limit(1)
        )
        with self._read("cache lookup", cache_key=cache_key) as conn:
            row = conn.execute(stmt).one_or_none()
        return None if row is None else CachedArtifact(**row._asdict())

    def forget(self, cache_key: str, artifact_path: str) -> int:
        """Mark the rows serving ``artifact_path`` under ``cache_key`` ``invalidated``.

        :meth:`lookup` never returns them again. Returns how many rows changed.
        """
        c = _COMPONENTS.c
        stmt = (
            update(_COMPONENTS)
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

    # -- retention (R-GC) -------------------------------------------------------

    def videos(self) -> list[tuple[str, str]]:
        """Every ``(platform_id, video_id)`` with a run, sorted (a scan of ``ix_runs_video``)."""
        r = _RUNS.c
        stmt = select(r.platform_id, r.video_id).distinct().order_by(r.platform_id, r.video_id)
        with self._read("listing videos") as conn:
            return [(row.platform_id, row.video_id) for row in conn.execute(stmt)]

    def video_history(
        self, platform_id: str, video_id: str
    ) -> tuple[list[RunRow], list[ComponentRunRow]]:
        """Every run and component row of one video (``ix_runs_video``, ``ix_component_runs_video``)."""
        params = {"platform_id": platform_id, "video_id": video_id}
        with self._read("reading a video's history", video_id=video_id) as conn:
            runs = [_run_row(row) for row in conn.execute(_VIDEO_RUNS, params)]
            rows = [_component_row(row) for row in conn.execute(_VIDEO_ROWS, params)]
        return runs, rows

    def collecting_videos(self) -> list[tuple[str, str]]:
        """Videos with a run left ``collecting`` by an interrupted collection (``ix_runs_status_started``)."""
        r = _RUNS.c
        stmt = (
            select(r.platform_id, r.video_id)
            .where(r.status == "collecting")
            .distinct()
            .order_by(r.platform_id, r.video_id)
        )
        with self._read("listing collecting runs") as conn:
            return [(row.platform_id, row.video_id) for row in conn.execute(stmt)]

    def live_lease_keys(self) -> set[str]:
        """Cache keys whose lease is held now (by the lease clock)."""
        l = _LEASES.c  # noqa: E741
        stmt = select(l.cache_key).where(l.expires_at >= self._clock()[0])
        with self._read("reading leases") as conn:
            return set(conn.execute(stmt).scalars())

    def mark_collecting(self, run_ids: Sequence[str], *, invalidate_row_ids: Sequence[int]) -> int:
        """Commit the decision to collect ``run_ids``: status ``collecting``, their rows invalidated.

        Rows ``invalidate_row_ids`` (of runs that stay, whose artifact goes) become
        ``invalidated`` in the same transaction, so :meth:`lookup` serves none of
        them from now on. Runs ``running`` at this moment are left alone.
        Returns how many runs changed.
        """
        r, c = _RUNS.c, _COMPONENTS.c
        changed = 0
        with self._write("marking runs for collection") as conn:
            for chunk in _chunks(run_ids):
                changed += conn.execute(
                    update(_RUNS)
                    .where(r.run_id.in_(chunk), r.status.in_(("ok", "failed", "running")))
                    .values(status="collecting")
                ).rowcount
                conn.execute(
                    update(_COMPONENTS)
                    .where(c.run_id.in_(chunk), c.status.in_(("ok", "cached")))
                    .values(status="invalidated")
                )
            for ids in _chunks(invalidate_row_ids):
                conn.execute(
                    update(_COMPONENTS)
                    .where(c.id.in_(ids), c.status.in_(("ok", "cached")))
                    .values(status="invalidated")
                )
        return changed

    def invalidate_rows(self, row_ids: Sequence[int]) -> int:
        """Mark component rows ``invalidated`` (their artifact is gone); returns how many changed."""
        c = _COMPONENTS.c
        changed = 0
        with self._write("invalidating component rows") as conn:
            for ids in _chunks(row_ids):
                changed += conn.execute(
                    update(_COMPONENTS)
                    .where(c.id.in_(ids), c.status.in_(("ok", "cached")))
                    .values(status="invalidated")
                ).rowcount
        return changed

    def delete_collected(self, run_ids: Sequence[str]) -> tuple[int, int]:
        """Delete the rows of runs that are ``collecting``; returns (runs, component rows) deleted.

        Runs in any other status are not touched: only a committed decision deletes.
        """
        r, c = _RUNS.c, _COMPONENTS.c
        runs = rows = 0
        with self._write("deleting collected runs") as conn:
            for chunk in _chunks(run_ids):
                collecting = select(r.run_id).where(r.run_id.in_(chunk), r.status == "collecting")
                rows += conn.execute(delete(_COMPONENTS).where(c.run_id.in_(collecting))).rowcount
                runs += conn.execute(
                    delete(_RUNS).where(r.run_id.in_(chunk), r.status == "collecting")
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
        r, c = _RUNS.c, _COMPONENTS.c
        with self._write("deleting a video's rows", video_id=video_id) as conn:
            rows = conn.execute(
                delete(_COMPONENTS).where(c.platform_id == platform_id, c.video_id == video_id)
            ).rowcount
            runs = conn.execute(
                delete(_RUNS).where(r.platform_id == platform_id, r.video_id == video_id)
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
                insert(_AUDIT).values(**values).returning(_AUDIT.c.id)
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
        stmt = select(_AUDIT).order_by(_AUDIT.c.id)
        if subject_sha256 is not None:
            stmt = stmt.where(_AUDIT.c.subject_sha256 == subject_sha256)
        with self._read("reading the deletion audit") as conn:
            return [
                DeletionAudit(**{**row._asdict(), "counts": json.loads(row.counts)})
                for row in conn.execute(stmt)
            ]

    # -- leases (D4) ------------------------------------------------------------

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
        l = _LEASES.c  # noqa: E741
        now, expires_at = self._clock(ttl_s)
        values = {
            "cache_key": cache_key,
            "owner": owner,
            "acquired_at": now,
            "expires_at": expires_at,
        }
        stmt = self._upsert(
            values,
            table=_LEASES,
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
        stmt = (
            update(_LEASES).where(*self._is_claim(lease)).values(expires_at=self._clock(ttl_s)[1])
        )
        with self._write("renewing lease", cache_key=lease.cache_key, owner=lease.owner) as conn:
            return conn.execute(stmt).rowcount == 1

    def release(self, lease: Lease) -> bool:
        """Give ``lease`` up, if it is still this claim; returns whether it was."""
        stmt = delete(_LEASES).where(*self._is_claim(lease))
        with self._write("releasing lease", cache_key=lease.cache_key, owner=lease.owner) as conn:
            released = conn.execute(stmt).rowcount == 1
        logger.debug("lease on %s released by %s: %s", lease.cache_key, lease.owner, released)
        return released

    def holder(self, cache_key: str) -> tuple[str, datetime] | None:
        """``(owner, expires_at)`` of the live lease on ``cache_key``, or None (free or expired)."""
        l = _LEASES.c  # noqa: E741
        stmt = select(l.owner, l.expires_at).where(
            l.cache_key == cache_key, l.expires_at >= self._clock()[0]
        )
        with self._read("reading lease", cache_key=cache_key) as conn:
            row = conn.execute(stmt).one_or_none()
        return None if row is None else (row.owner, row.expires_at)

    @staticmethod
    def _is_claim(lease: Lease) -> tuple[ColumnElement[bool], ...]:
        l = _LEASES.c  # noqa: E741
        return (
            l.cache_key == lease.cache_key,
            l.owner == lease.owner,
            l.acquired_at == lease.acquired_at,
        )


class _SqliteForeignKeysOff:
    """``PRAGMA foreign_keys = OFF`` on a connection outside any transaction, until restored.

    The pragma is a no-op inside a transaction, so it goes straight to the
    DBAPI connection (in autocommit mode, see ``_engine``) before BEGIN.
    """

    def __init__(self, conn: Connection) -> None:
        self._dbapi = conn.connection.dbapi_connection
        if self._dbapi is None:
            raise RuntimeError("the connection has no DBAPI connection")
        self._dbapi.cursor().execute("PRAGMA foreign_keys = OFF")

    def check(self, url: str) -> None:
        """Raise DatabaseError if a row breaks a foreign key (checked before the commit)."""
        assert self._dbapi is not None
        problems = self._dbapi.cursor().execute("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise DatabaseError(
                f"migration left {len(problems)} rows breaking foreign keys, e.g. {problems[0]}",
                url=url,
            )

    def restore(self) -> None:
        assert self._dbapi is not None
        self._dbapi.cursor().execute("PRAGMA foreign_keys = ON")


def video_history_statements(
    platform_id: str | BindParameter[str], video_id: str | BindParameter[str]
) -> tuple[Select[Any], Select[Any]]:
    """The two queries of :meth:`RunStore.video_history` (the benchmark EXPLAINs them)."""
    r, c = _RUNS.c, _COMPONENTS.c
    runs = select(_RUNS).where(r.platform_id == platform_id, r.video_id == video_id)
    rows = (
        select(_COMPONENTS)
        .where(c.platform_id == platform_id, c.video_id == video_id)
        .order_by(c.id)
    )
    return runs, rows


# Built once, values bound per call: GC runs them for every video (compiled once, cached).
_VIDEO_RUNS, _VIDEO_ROWS = video_history_statements(
    bindparam("platform_id", type_=String()), bindparam("video_id", type_=String())
)


def _chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _component_fields(row: ComponentRunRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in ComponentRunRow.__dataclass_fields__}
