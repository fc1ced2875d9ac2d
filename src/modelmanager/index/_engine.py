"""Engines of the run index: SQLite's transaction recipe, PostgreSQL's driver, error kinds.

SQLite: sqlite3 is told not to emit BEGIN (``isolation_level = None``) and
SQLAlchemy's ``begin`` event emits it instead (the recipe of SQLAlchemy's SQLite
dialect docs, "Using SQLAlchemy to emit BEGIN in lieu of SQLite's transaction
control"): ``BEGIN IMMEDIATE`` on a connection carrying the :data:`IMMEDIATE`
execution option, a plain deferred ``BEGIN`` (a WAL read snapshot) otherwise.
Every connection gets WAL, ``busy_timeout`` 5000 ms, ``synchronous=NORMAL``
and ``foreign_keys=ON``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import URL
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
        if not in_memory and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    if backend == "postgresql":
        if url.drivername == "postgresql":  # the project's driver is psycopg 3, not psycopg2
            url = url.set(drivername="postgresql+psycopg")
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    raise DatabaseError(
        f"unsupported database {backend!r}: the run index runs on SQLite or PostgreSQL",
        url=url.render_as_string(hide_password=True),
    )


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
    # No SQLSTATE: libpq failed to connect or lost the connection.
    return sqlstate is None or str(sqlstate)[:2] in _TRANSIENT_SQLSTATE_CLASSES
