"""Read-only callers never create the run index: ``RunStore.open(url, create=False)``.

An empty or foreign database is left untouched and a DatabaseError names the URL with
the hint ``modelmanager db upgrade creates it``; ``modelmanager db upgrade`` creates it.
An index at an older revision is still upgraded (it is this application's). Both backends.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from modelmanager.cli.app import app
from modelmanager.errors import DatabaseError, hint_for
from modelmanager.index import RunStore
from modelmanager.index.migrations import HEAD

cli = CliRunner()


def _tables(url: str) -> set[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_an_empty_database_is_not_created(store_url: str) -> None:
    with pytest.raises(DatabaseError) as raised:
        RunStore.open(store_url, create=False)
    assert "has no run index" in raised.value.message
    assert raised.value.fields["url"] in raised.value.message
    assert hint_for(raised.value) == "modelmanager db upgrade creates it"
    if store_url.startswith("sqlite"):
        assert not Path(store_url.removeprefix("sqlite:///")).exists()
    else:
        assert _tables(store_url) == set()


def test_a_foreign_database_is_left_alone(store_url: str) -> None:
    engine = create_engine(store_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE someone_elses (id INTEGER)"))
    engine.dispose()
    with pytest.raises(DatabaseError, match="has no run index"):
        RunStore.open(store_url, create=False)
    assert _tables(store_url) == {"someone_elses"}


def test_an_index_at_head_opens_and_an_older_one_is_upgraded(store_url: str) -> None:
    with RunStore.open(store_url, migrate=False) as store:
        store.upgrade("0003")
    with RunStore.open(store_url, create=False) as store:
        assert store.revision() == HEAD
    with RunStore.open(store_url, create=False) as store:
        assert store.list_runs() == []


def test_db_upgrade_creates_the_index_then_has_nothing_to_do(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELMANAGER_DATABASE_URL", store_url)
    first = cli.invoke(app, ["db", "upgrade", "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) | {"database": None} == {
        "database": None,
        "from_revision": None,
        "revision": HEAD,
        "upgraded": True,
    }
    again = cli.invoke(app, ["db", "upgrade"])
    assert again.exit_code == 0, again.output
    assert "newest revision" in again.stdout
    with RunStore.open(store_url, create=False) as store:
        assert store.revision() == HEAD
