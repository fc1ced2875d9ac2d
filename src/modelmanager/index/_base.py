"""What every part of :class:`~modelmanager.index.RunStore` shares: the engine, transactions,
error translation, the lease clock, upserts and the tables.

:class:`StoreBase` holds the engine; the mixins of :mod:`~modelmanager.index.profiles`,
:mod:`~modelmanager.index.leases` and :mod:`~modelmanager.index.retention_queries`
build on it, and :class:`~modelmanager.index.store.RunStore` composes them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Interval,
    Row,
    exc,
    func,
    literal,
    type_coerce,
)
from sqlalchemy.sql.dml import Insert

from modelmanager.errors import DatabaseError
from modelmanager.index._engine import IMMEDIATE, is_transient
from modelmanager.index.models import (
    AUDIT,
    COMPONENTS,
    GPU_RESERVATIONS,
    LEASES,
    PROFILES,
    RUNS,
    UtcDateTime,
)
from modelmanager.index.records import ComponentRunRow, RunRow

__all__ = [
    "AUDIT",
    "COMPONENTS",
    "GPU_RESERVATIONS",
    "LEASES",
    "PROFILES",
    "RUNS",
    "StoreBase",
    "chunks",
    "component_row",
    "run_row",
    "translated",
]

# Values per IN (...) list: well under SQLite's 32766 bound parameters.
_IN_CHUNK = 500


def run_row(row: Row[Any]) -> RunRow:
    return RunRow(**row._asdict())


def component_row(row: Row[Any]) -> ComponentRunRow:
    return ComponentRunRow(**row._asdict())


def chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterator[list[Any]]:
    """``items`` in lists of at most ``size``: one ``IN (...)`` each."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


@contextmanager
def translated(action: str, *, url: str, backend: str, **fields: Any) -> Iterator[None]:
    """Turn a SQLAlchemy error into a DatabaseError naming ``action`` and ``url``."""
    try:
        yield
    except exc.SQLAlchemyError as error:
        detail = error.orig if isinstance(error, exc.DBAPIError) else error
        first_line = str(detail).strip().splitlines()[0] if str(detail).strip() else ""
        raise DatabaseError(
            f"{action} failed: {first_line or type(detail).__name__} ({url})",
            transient=is_transient(error, backend),
            url=url,
            **fields,
        ) from error


class StoreBase:
    """The engine of a run index and its plumbing (see :class:`~modelmanager.index.RunStore`)."""

    def __init__(self, engine: Engine) -> None:
        """Wrap an engine made by :meth:`RunStore.open` (which sets up SQLite's transactions)."""
        self._engine = engine
        self._backend = engine.dialect.name
        # Same pool; on SQLite its transactions begin IMMEDIATE.
        self._writer = engine.execution_options(**{IMMEDIATE: True})
        self.url = engine.url.render_as_string(hide_password=True)
        """The database URL, password hidden."""
        self._abandon_looked_at: float | None = None  # see RunStore.abandon_dead_runs

    @contextmanager
    def _translated(self, action: str, **fields: Any) -> Iterator[None]:
        with translated(action, url=self.url, backend=self._backend, **fields):
            yield

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
        # The backend's own dialect, imported on first use (the other one costs ~20 ms).
        dialect = importlib.import_module(f"sqlalchemy.dialects.{self._backend}")
        stmt = dialect.insert(table).values(**values)
        upsert: Insert = stmt.on_conflict_do_update(
            index_elements=[key],
            set_={name: stmt.excluded[name] for name in update_columns},
            where=where,
        )
        return upsert

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
