"""The run index's schema revision: read with one query, Alembic only to create or upgrade.

Opening a database that is already at :data:`~modelmanager.index.migrations.HEAD`
(the common case: every process, every CLI command) costs one ``SELECT`` on
``alembic_version`` and never imports Alembic. Anything else (a new database,
an older revision, one this version does not know) goes through
:func:`upgrade`: Alembic ``upgrade`` in one transaction that holds the
migration lock, ``pg_advisory_xact_lock`` on PostgreSQL, the write lock of
``BEGIN IMMEDIATE`` on SQLite, so concurrent openers migrate one at a time and
the later ones find nothing left to do.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, Engine, Select, String, column, exc, select, table, text

from modelmanager.errors import DatabaseError
from modelmanager.index._base import translated
from modelmanager.index._engine import is_transient
from modelmanager.index.migrations import SCRIPT_LOCATION

__all__ = ["revisions", "upgrade"]

logger = logging.getLogger(__name__)

# pg_advisory_xact_lock key serializing concurrent migrations ("mmdb").
_MIGRATION_LOCK_KEY = 0x6D6D6462
_REVISIONS: Select[str] = select(column("version_num", String())).select_from(
    table("alembic_version")
)


def revisions(engine: Engine, *, url: str, backend: str) -> list[str] | None:
    """The revisions in the database's ``alembic_version`` (one query); None where the
    table is missing or unreadable (an empty or foreign database: no run index).

    Raises:
        DatabaseError: the database is unreachable (transient).
    """
    with translated("reading the run index's revision", url=url, backend=backend):
        try:
            with engine.connect() as conn:
                return list(conn.execute(_REVISIONS).scalars())
        except exc.SQLAlchemyError as error:
            if is_transient(error, backend):
                raise
            return None


def upgrade(writer: Engine, *, url: str, backend: str, revision: str = "head") -> None:
    """Run Alembic ``upgrade`` in one transaction that holds the migration lock.

    ``writer``: the store's engine whose SQLite transactions begin IMMEDIATE.
    On SQLite, foreign keys are off while it runs (a revision that changes a
    table copies it, and dropping a referenced table would fail) and
    ``PRAGMA foreign_key_check`` must pass before the commit.

    Raises:
        DatabaseError: the database is unreachable or at a revision this
            version does not know (a newer modelmanager migrated it).
    """
    from alembic import command
    from alembic.config import Config
    from alembic.util.exc import CommandError

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION).replace("%", "%%"))
    with translated("migrating the run index", url=url, backend=backend), writer.connect() as conn:
        sqlite_fks = _SqliteForeignKeysOff(conn) if backend == "sqlite" else None
        try:
            with conn.begin():
                if backend == "postgresql":
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                    )
                config.attributes["connection"] = conn
                try:
                    command.upgrade(config, revision)
                except CommandError as error:
                    raise DatabaseError(
                        f"cannot migrate the run index at {url}: {error}", url=url
                    ) from error
                if sqlite_fks is not None:
                    sqlite_fks.check(url)
        finally:
            if sqlite_fks is not None:
                sqlite_fks.restore()
    logger.debug("run index at %s is at the newest revision", url)


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
