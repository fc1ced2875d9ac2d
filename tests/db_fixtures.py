"""Fixtures of the run index: a fresh, isolated database per test, on SQLite and on PostgreSQL.

``store_url`` is parametrized over both backends (D4: both are tested):

- ``sqlite``: a new file in the test's ``tmp_path``;
- ``postgresql``: a new schema ``mm_test_<random>`` in the database at
  ``TEST_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``),
  selected through the URL (``options=-csearch_path=<schema>``) so every
  connection of every process opened on the URL lands in it; dropped after
  the test. Unreachable PostgreSQL skips the parameter with the reason (and
  under ``CI=true`` the project's conftest turns that skip into a failure).

``store`` is a :class:`~modelmanager.index.RunStore` opened (and migrated) on it.
conftest.py imports both: ``from .db_fixtures import store, store_url``.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, exc, make_url, text
from sqlalchemy.pool import NullPool

from modelmanager.index import ComponentRunRow, RunStore
from modelmanager.mapping.spec import RunContext

__all__ = [
    "POSTGRES_URL",
    "component_row",
    "postgres_unavailable",
    "run_context",
    "store",
    "store_url",
]

# Not MODELMANAGER_*: the autouse isolated_env fixture removes those.
POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@functools.cache
def _admin_engine() -> Engine:
    return create_engine(
        POSTGRES_URL,
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 3},
    )


@functools.cache
def postgres_unavailable() -> str | None:
    """Why PostgreSQL at POSTGRES_URL cannot be used (probed once per session), or None."""
    shown = make_url(POSTGRES_URL).render_as_string(hide_password=True)
    try:
        with _admin_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
    except (exc.SQLAlchemyError, ImportError) as error:
        first_line = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        return f"PostgreSQL at {shown} is unreachable ({first_line}); set TEST_POSTGRES_URL"
    return None


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, empty run index database of the parameter's backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'index.sqlite3'}"
        return
    reason = postgres_unavailable()
    if reason is not None:
        pytest.skip(reason)
    schema = f"mm_test_{uuid.uuid4().hex[:16]}"
    with _admin_engine().connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with _admin_engine().connect() as conn:
            # A test that leaves a connection open fails here instead of hanging.
            conn.execute(text("SET lock_timeout = '10s'"))
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def store(store_url: str) -> Iterator[RunStore]:
    """A RunStore opened (and migrated) on ``store_url``; closed after the test."""
    with RunStore.open(store_url) as opened:
        yield opened


def run_context(run_id: str = "run-001", **overrides: Any) -> RunContext:
    """A valid run context; keys in ``overrides`` replace its fields."""
    fields: dict[str, Any] = {
        "platform_id": "youtube",
        "video_id": "vid-001",
        "run_id": run_id,
        "config_hash": "cfg-abc",
        "sampling_policy_version": "2",
        "dataprocessor_version": "0.9.0",
    }
    fields.update(overrides)
    return RunContext(**fields)


def component_row(
    run_id: str = "run-001",
    component: str = "text_ocr",
    *,
    cache_key: str = "sha256:" + "a" * 64,
    finished_at: datetime | None = None,
    **overrides: Any,
) -> ComponentRunRow:
    """A valid ``ok`` component row with an artifact; keys in ``overrides`` replace fields."""
    finished = finished_at or datetime.now(UTC)
    fields: dict[str, Any] = {
        "run_id": run_id,
        "platform_id": "youtube",
        "video_id": "vid-001",
        "component": component,
        "cache_key": cache_key,
        "model_signature": "sha256:" + "b" * 64,
        "producer_version": "1.2.0",
        "schema_version": "3",
        "status": "ok",
        "cache_hit": False,
        "started_at": finished - timedelta(milliseconds=250),
        "finished_at": finished,
        "latency_ms": 250.0,
        "device": "cpu",
        "batch_size": 8,
        "artifact_path": f"youtube/vid-001/{component}/{run_id}/{component}.npz",
        "artifact_size": 1234,
        "artifact_sha256": "sha256:" + "c" * 64,
    }
    fields.update(overrides)
    return ComponentRunRow(**fields)
