"""Engines of the run index: SQLite's transaction recipe, PostgreSQL's driver, error kinds.

SQLite: sqlite3 is told not to emit BEGIN (``isolation_level = None``) and
SQLAlchemy's ``begin`` event emits it instead (the recipe of SQLAlchemy's SQLite
dialect docs, "Using SQLAlchemy to emit BEGIN in lieu of SQLite's transaction
control"): ``BEGIN IMMEDIATE`` on a connection carrying the :data:`IMMEDIATE`
execution option, a plain deferred ``BEGIN`` (a WAL read snapshot) otherwise.
Every connection gets WAL, ``busy_timeout`` 5000 ms, ``synchronous=NORMAL``
and ``foreign_keys=ON``. A file location that cannot hold the index (a directory
in place of the file, a file in place of a directory, a directory that cannot be
written) is a :class:`DatabaseError` naming the path, checked before the engine
is made and, for what only SQLite can tell (``SQLITE_CANTOPEN``), when it connects.

PostgreSQL: ``postgres://`` and ``postgresql://`` URLs get the project's driver,
psycopg 3. A failed connection carries no SQLSTATE (libpq reports it as text), so
it counts as transient, unless the server refused it for a reason a retry cannot
change: those reasons are the one table :data:`_PERMANENT_CONNECT_FAILURES`.
"""

from __future__ import annotations

import errno
import os
import re
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import URL, ExceptionContext
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from modelmanager.errors import DatabaseError

__all__ = ["IMMEDIATE", "create_store_engine", "is_transient"]

SQLITE_BUSY_TIMEOUT_MS = 5000
POSTGRES_CONNECT_TIMEOUT_S = 10
# Execution option that makes the SQLite begin hook emit BEGIN IMMEDIATE.
IMMEDIATE = "modelmanager_begin_immediate"
# SQLSTATE classes worth a retry: connection, transaction rollback
# (serialization, deadlock), insufficient resources, operator intervention.
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57"})
# What a PostgreSQL server answers (FATAL, during the connection, so libpq gives no
# SQLSTATE) when retrying cannot help; English server messages (lc_messages).
_PERMANENT_CONNECT_FAILURES = re.compile(
    "|".join(
        [
            r'database "[^"]*" does not exist',  # 3D000
            r'role "[^"]*" does not exist',  # 28000
            r"password authentication failed",  # 28P01
            r"no pg_hba\.conf entry",  # 28000
        ]
    )
)


def _sqlite_on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # sqlite3 must not emit BEGIN on its own: _sqlite_on_begin does (SQLAlchemy's recipe).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get(IMMEDIATE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_store_engine(url: URL) -> Engine:
    """An engine for ``url``, set up for the run index (see the module docstring).

    Raises:
        DatabaseError: neither SQLite nor PostgreSQL.
    """
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database or ""
        in_memory = database in ("", ":memory:") or url.query.get("mode") == "memory"
        path = None
        if not in_memory and not database.startswith("file:"):
            path = Path(database).expanduser()
            _prepare_sqlite_location(path, url)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        if path is not None:
            event.listen(engine, "handle_error", _SqliteCantOpen(path, url))
        return engine
    if backend in ("postgresql", "postgres"):
        # The project's driver is psycopg 3 (not psycopg2, SQLAlchemy's default), and
        # SQLAlchemy no longer knows the "postgres" name libpq and many hosts still use.
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        elif backend == "postgres":
            url = url.set(drivername="postgresql+" + url.drivername.partition("+")[2])
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
        engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
        event.listen(engine, "handle_error", _PostgresRefused(url))
        return engine
    raise DatabaseError(
        f"unsupported database {backend!r}: the run index runs on SQLite or PostgreSQL",
        url=url.render_as_string(hide_password=True),
    )


def _prepare_sqlite_location(path: Path, url: URL) -> None:
    """Create the directories of the index file ``path``, or say why it cannot live there.

    Raises:
        DatabaseError: ``path`` is a directory, a component of its directory is a
            file, or the directory cannot be created or written.
    """
    shown = url.render_as_string(hide_password=True)
    if path.is_dir():
        raise DatabaseError(
            f"the run index {path} is a directory, not a database file; "
            "point the URL at a file in it",
            url=shown,
            path=str(path),
        )
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        blocker = next((p for p in (directory, *directory.parents) if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            reason = f"{blocker} is a file, not a directory"
        else:
            reason = os.strerror(error.errno) if error.errno else str(error)
        raise DatabaseError(
            f"cannot create the directory of the run index {path}: {reason}",
            url=shown,
            path=str(path),
            errno=errno.errorcode.get(error.errno) if error.errno else None,
        ) from error
    # A new index is created there. An existing one is left to SQLite (its -wal/-shm
    # files may be writable where the directory is not); _SqliteCantOpen names it.
    if not path.exists() and not os.access(directory, os.W_OK | os.X_OK):
        raise DatabaseError(
            f"cannot create the run index {path}: its directory is not writable",
            url=shown,
            path=str(path),
            errno="EACCES",
        )


class _SqliteCantOpen:
    """``handle_error`` hook: SQLite's "unable to open database file" names the file."""

    def __init__(self, path: Path, url: URL) -> None:
        self.path = path
        self.shown = url.render_as_string(hide_password=True)

    def __call__(self, context: ExceptionContext) -> None:
        original = context.original_exception
        if (
            isinstance(original, sqlite3.Error)
            and getattr(original, "sqlite_errorcode", None) == sqlite3.SQLITE_CANTOPEN
        ):
            raise DatabaseError(
                f"cannot open the run index {self.path}: {original} (is it a file, in a "
                "writable directory?)",
                url=self.shown,
                path=str(self.path),
            ) from context.sqlalchemy_exception


class _PostgresRefused:
    """``handle_error`` hook: a server that refuses the connection for good (no such
    database or role, bad credentials) is a non-transient error that says so at once,
    before anything reads it as a missing schema or retries it."""

    def __init__(self, url: URL) -> None:
        self.shown = url.render_as_string(hide_password=True)

    def __call__(self, context: ExceptionContext) -> None:
        original = context.original_exception
        if getattr(original, "sqlstate", True) is not None:
            return  # the server answered a statement: its SQLSTATE decides elsewhere
        message = str(original)
        if _PERMANENT_CONNECT_FAILURES.search(message) is None:
            return
        # libpq's line is "connection to server at ... failed: FATAL:  <the reason>".
        detail = message.strip().splitlines()[0].rpartition("FATAL:")[2].strip()
        raise DatabaseError(
            f"the PostgreSQL server refused the run index's connection: {detail} "
            f"({self.shown}); retrying cannot help",
            transient=False,
            url=self.shown,
            hint="Create the database or role (createdb, CREATE ROLE), or fix the URL "
            "(MODELMANAGER_DATABASE_URL).",
        ) from context.sqlalchemy_exception


def is_transient(error: exc.SQLAlchemyError, backend: str) -> bool:
    """Whether ``error`` may pass on retry: a lost connection, a timeout, a lock, a conflict."""
    if isinstance(error, exc.TimeoutError | exc.DisconnectionError):
        return True
    if not isinstance(error, exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    if not isinstance(error, exc.OperationalError):
        return False
    if backend == "sqlite":
        message = str(error.orig).lower()
        return "locked" in message or "busy" in message
    sqlstate = getattr(error.orig, "sqlstate", None)
    if sqlstate is None:
        # libpq failed to connect or lost the connection: worth a retry, unless the
        # server itself refused (no such database or role, bad credentials).
        return _PERMANENT_CONNECT_FAILURES.search(str(error.orig)) is None
    return str(sqlstate)[:2] in _TRANSIENT_SQLSTATE_CLASSES
