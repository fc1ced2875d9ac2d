"""D4, R-MAP-2, R-SIG-4, R-OBS-1: the run index on SQLite and PostgreSQL (same tests, both).

Schema by migration, profiles, runs, component rows, the indexed cache lookup,
forget, error translation, threads and processes writing at once, and the
``modelmanager profiles`` commands.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event, inspect, make_url
from typer.testing import CliRunner

from modelmanager.cli.profiles import profiles_app
from modelmanager.errors import DatabaseError, InvalidModelSpec
from modelmanager.index import RunStore
from modelmanager.index.migrations import HEAD, SCRIPT_LOCATION
from modelmanager.index.models import metadata
from modelmanager.mapping.sources import ProfileStore, load_document, resolve_mapping
from tests.db_fixtures import POSTGRES_URL, component_row, postgres_unavailable, run_context

# The run index fixtures (redundant, and harmless, once conftest.py imports them).

EXAMPLE_PROFILE = Path(__file__).resolve().parents[2] / "examples" / "profile.yaml"
KEY = "sha256:" + "a" * 64


@contextmanager
def captured_sql(store: RunStore) -> Iterator[list[tuple[str, Any]]]:
    """Every (statement, parameters) the store's engine sends while the block runs."""
    seen: list[tuple[str, Any]] = []

    def record(
        conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


# -- schema -----------------------------------------------------------------------


def test_migrations_create_every_table_index_and_constraint(store: RunStore) -> None:
    inspector = inspect(store.engine)
    assert set(inspector.get_table_names()) == {
        "alembic_version",
        "profiles",
        "runs",
        "component_runs",
        "leases",
        "deletion_audit",
        "gpu_reservations",
    }
    indexes = {
        table: {
            ix["name"]: ix["column_names"]
            for ix in inspector.get_indexes(table)
            if not ix.get("duplicates_constraint")  # PostgreSQL's index of the unique constraint
        }
        for table in ("runs", "component_runs")
    }
    assert indexes["runs"] == {
        "ix_runs_video": ["platform_id", "video_id"],
        "ix_runs_status_started": ["status", "started_at"],
    }
    assert indexes["component_runs"] == {
        "ix_component_runs_lookup": ["cache_key", "status", "finished_at"],
        "ix_component_runs_video": ["platform_id", "video_id"],
        "ix_component_runs_signature": ["model_signature"],
        "ix_component_runs_artifact": ["artifact_path"],
    }
    uniques = [u["column_names"] for u in inspector.get_unique_constraints("component_runs")]
    assert ["run_id", "component"] in uniques
    [fk] = inspector.get_foreign_keys("component_runs")
    assert (fk["constrained_columns"], fk["referred_table"]) == (["run_id"], "runs")
    assert inspector.get_pk_constraint("leases")["constrained_columns"] == ["cache_key"]
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == HEAD


def test_migrated_schema_matches_the_models(store: RunStore) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_open_again_is_a_no_op_and_migrate_false_touches_nothing(
    store: RunStore, store_url: str, tmp_path: Path
) -> None:
    store.save_profile("p", load_document(EXAMPLE_PROFILE))
    with RunStore.open(store_url) as again:
        assert again.list_profiles() == ["p"]
    # A database nobody migrated: migrate=False creates nothing, and using it
    # is a database error, not a crash.
    with RunStore.open(f"sqlite:///{tmp_path / 'blank.sqlite3'}", migrate=False) as blank:
        assert inspect(blank.engine).get_table_names() == []
        with pytest.raises(DatabaseError, match="no such table") as caught:
            blank.list_profiles()
        assert caught.value.transient is False


def test_head_constant_is_alembics_head(store: RunStore) -> None:
    """HEAD, what open() compares the database with, is the head of the revision scripts."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD]
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == HEAD


_OPEN_AND_LIST_ALEMBIC = """
import sys
from modelmanager.index import RunStore
with RunStore.open(sys.argv[1]) as store:
    store.list_runs()
print(sorted(name for name in sys.modules if name.split(".")[0] == "alembic"))
"""


def _alembic_modules_after_open(url: str) -> str:
    child = subprocess.run(
        [sys.executable, "-c", _OPEN_AND_LIST_ALEMBIC, url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    return child.stdout.strip()


def test_opening_an_up_to_date_store_does_not_import_alembic(
    store: RunStore, store_url: str, tmp_path: Path
) -> None:
    """A fresh interpreter opens a database at HEAD with one query: Alembic stays unimported."""
    assert _alembic_modules_after_open(store_url) == "[]"
    # A new database does need Alembic (the check above can tell the difference).
    assert "'alembic'" in _alembic_modules_after_open(f"sqlite:///{tmp_path / 'new.sqlite3'}")


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[RunStore]:
    """A store on SQLite only, for what is SQLite's own (pragmas, BEGIN modes)."""
    with RunStore.open(f"sqlite:///{tmp_path / 'sqlite-only.sqlite3'}") as opened:
        yield opened


def test_sqlite_connection_settings(sqlite_store: RunStore) -> None:
    store = sqlite_store
    with store.engine.connect() as conn:
        pragmas = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "busy_timeout", "synchronous", "foreign_keys")
        }
    assert pragmas == {
        "journal_mode": "wal",
        "busy_timeout": 5000,
        "synchronous": 1,
        "foreign_keys": 1,
    }


def test_sqlite_writes_begin_immediate_and_reads_begin_deferred(sqlite_store: RunStore) -> None:
    store = sqlite_store
    with captured_sql(store) as seen:
        store.start_run(run_context(), mapping_source="payload")
    assert seen[0][0] == "BEGIN IMMEDIATE"
    with captured_sql(store) as seen:
        store.get_run("run-001")
    assert seen[0][0] == "BEGIN"


# -- profiles (R-MAP-2) -----------------------------------------------------------


def test_profile_round_trip(store: RunStore) -> None:
    document = load_document(EXAMPLE_PROFILE)
    store.save_profile("example-cpu", document)
    assert store.load_profile("example-cpu") == document
    assert store.load_profile("missing") is None
    assert store.list_profiles() == ["example-cpu"]
    # The store is the database layer of resolve_mapping (R-MAP-1).
    profile_store: ProfileStore = store
    mapping, source = resolve_mapping(store=profile_store, profile_name="example-cpu")
    assert str(source) == "database:example-cpu"
    assert mapping.profile == "example-cpu"


def test_profile_saved_again_is_replaced_and_named_by_its_key(store: RunStore) -> None:
    document = load_document(EXAMPLE_PROFILE)
    store.save_profile("b-profile", document)
    smaller = {**document, "components": {"scene_stats": {}}}
    store.save_profile("b-profile", smaller)
    store.save_profile("a-profile", document)
    loaded = store.load_profile("b-profile")
    assert loaded is not None
    assert loaded["components"] == {"scene_stats": {}}
    assert loaded["profile"] == "b-profile"  # stored under another name than the file's
    assert store.list_profiles() == ["a-profile", "b-profile"]


def test_invalid_profile_is_refused_and_nothing_is_written(store: RunStore) -> None:
    document = load_document(EXAMPLE_PROFILE)
    store.save_profile("example-cpu", document)
    broken = json.loads(json.dumps(document))
    broken["components"]["text_ocr"]["detector"]["model_version"] = "latest"
    with pytest.raises(InvalidModelSpec) as caught:
        store.save_profile("example-cpu", broken)
    assert caught.value.fields["source"] == "database:example-cpu"
    assert caught.value.fields["component"] == "text_ocr"
    with pytest.raises(InvalidModelSpec):
        store.save_profile("new-one", broken)
    with pytest.raises(InvalidModelSpec, match="profile name"):
        store.save_profile(" padded ", document)
    assert store.list_profiles() == ["example-cpu"]
    assert store.load_profile("example-cpu") == document


# -- runs and component rows --------------------------------------------------------


def test_run_round_trip(store: RunStore) -> None:
    before = datetime.now(UTC)
    store.start_run(run_context(user_id="user-7"), mapping_source="profile:examples/profile.yaml")
    run = store.get_run("run-001")
    assert run is not None
    assert (run.run_id, run.platform_id, run.video_id, run.user_id) == (
        "run-001",
        "youtube",
        "vid-001",
        "user-7",
    )
    assert (run.config_hash, run.sampling_policy_version, run.dataprocessor_version) == (
        "cfg-abc",
        "2",
        "0.9.0",
    )
    assert (run.status, run.mapping_source, run.manifest_path, run.finished_at) == (
        "running",
        "profile:examples/profile.yaml",
        None,
        None,
    )
    assert run.started_at.tzinfo is not None
    assert before - timedelta(seconds=1) <= run.started_at <= datetime.now(UTC)

    store.finish_run("run-001", status="ok", manifest_path="youtube/vid-001/manifest.json")
    done = store.get_run("run-001")
    assert done is not None
    assert (done.status, done.manifest_path) == ("ok", "youtube/vid-001/manifest.json")
    assert done.finished_at is not None
    assert done.finished_at >= done.started_at
    assert store.get_run("missing") is None


def test_list_runs_newest_first_with_filters(store: RunStore) -> None:
    for i, video in enumerate(["v1", "v2", "v1", "v1"]):
        store.start_run(run_context(f"run-{i}", video_id=video), mapping_source="payload")
        time.sleep(0.002)  # distinct started_at
    assert [r.run_id for r in store.list_runs()] == ["run-3", "run-2", "run-1", "run-0"]
    assert [r.run_id for r in store.list_runs(video_id="v1", limit=2)] == ["run-3", "run-2"]
    assert [r.run_id for r in store.list_runs(platform_id="youtube", video_id="v2")] == ["run-1"]
    assert store.list_runs(platform_id="other") == []


def test_reused_run_id_is_a_database_error_naming_it(store: RunStore) -> None:
    store.start_run(run_context(), mapping_source="payload")
    with pytest.raises(DatabaseError, match="run-001") as caught:
        store.start_run(run_context(), mapping_source="payload")
    assert caught.value.transient is False
    assert caught.value.fields["run_id"] == "run-001"
    with pytest.raises(DatabaseError, match="not in the run index"):
        store.finish_run("no-such-run", status="failed", manifest_path=None)


def test_component_rows_round_trip(store: RunStore) -> None:
    store.start_run(run_context(), mapping_source="payload")
    ocr = component_row(component="text_ocr", oom_retries=1, batch_size=4)
    failed = component_row(
        component="scene_score",
        cache_key="sha256:" + "d" * 64,
        status="failed",
        error_code="triton_unavailable",
        artifact_path=None,
        artifact_size=None,
        artifact_sha256=None,
        latency_ms=None,
        device="cuda:1",
    )
    store.record_component(ocr)
    store.record_component(failed)
    rows = store.component_runs("run-001")
    assert [r.id is not None for r in rows] == [True, True]
    assert [replace(r, id=None) for r in rows] == [ocr, failed]
    assert store.component_runs("missing") == []


def test_component_row_constraints(store: RunStore) -> None:
    store.start_run(run_context(), mapping_source="payload")
    store.record_component(component_row())
    with pytest.raises(DatabaseError) as caught:
        store.record_component(component_row())  # unique (run_id, component)
    assert caught.value.fields == {
        "url": store.url,
        "run_id": "run-001",
        "component": "text_ocr",
    }
    with pytest.raises(DatabaseError):
        store.record_component(component_row(run_id="no-such-run"))  # foreign key
    with pytest.raises(ValueError, match="naive"):
        component_row(finished_at=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="status"):
        component_row(status="done")


# -- cache lookup (R-SIG-4) and forget --------------------------------------------------


def _record_history(store: RunStore) -> datetime:
    """Runs 0-4 and 6 under KEY, run-5 under another key; returns run-0's finish time."""
    t0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    for i in range(7):
        store.start_run(run_context(f"run-{i}"), mapping_source="payload")
    store.record_component(component_row("run-0", finished_at=t0))
    store.record_component(component_row("run-1", finished_at=t0 + timedelta(minutes=1)))
    store.record_component(
        component_row("run-2", finished_at=t0 + timedelta(minutes=2), status="failed")
    )
    store.record_component(  # ok but no artifact: nothing to serve
        component_row(
            "run-3",
            finished_at=t0 + timedelta(minutes=3),
            artifact_path=None,
            artifact_size=None,
            artifact_sha256=None,
        )
    )
    store.record_component(  # a path without size and sha256 cannot be verified: not served
        component_row("run-6", finished_at=t0 + timedelta(minutes=3), artifact_sha256=None)
    )
    store.record_component(  # a reuse of run-1's artifact
        component_row(
            "run-4",
            finished_at=t0 + timedelta(minutes=4),
            status="cached",
            cache_hit=True,
            artifact_path=component_row("run-1").artifact_path,
        )
    )
    store.record_component(
        component_row("run-5", cache_key="sha256:" + "e" * 64, finished_at=t0 + timedelta(hours=1))
    )
    return t0


def test_lookup_returns_the_newest_ok_row_with_an_artifact(store: RunStore) -> None:
    t0 = _record_history(store)
    found = store.lookup(KEY)
    assert found is not None
    expected = component_row("run-1")
    assert (found.cache_key, found.run_id, found.component) == (KEY, "run-1", "text_ocr")
    assert (found.artifact_path, found.artifact_size, found.artifact_sha256) == (
        expected.artifact_path,
        1234,
        "sha256:" + "c" * 64,
    )
    assert found.schema_version == "3"
    assert found.finished_at == t0 + timedelta(minutes=1)
    assert store.lookup("sha256:" + "f" * 64) is None


def test_forget_hides_an_invalid_artifact_from_lookup(store: RunStore) -> None:
    _record_history(store)
    newest = store.lookup(KEY)
    assert newest is not None
    # run-1's own row and run-4's reuse of it.
    assert store.forget(KEY, newest.artifact_path) == 2
    older = store.lookup(KEY)
    assert older is not None
    assert older.run_id == "run-0"
    assert [r.status for r in store.component_runs("run-4")] == ["invalidated"]
    assert store.forget(KEY, older.artifact_path) == 1
    assert store.lookup(KEY) is None
    assert store.forget(KEY, older.artifact_path) == 0


def test_lookup_is_one_query_on_the_lookup_index(store: RunStore) -> None:
    _record_history(store)
    for i in range(20):  # other keys, so a scan would have something to scan
        store.start_run(run_context(f"bulk-{i}"), mapping_source="payload")
        store.record_component(component_row(f"bulk-{i}", cache_key=f"sha256:{i:064x}"))
    with captured_sql(store) as seen:
        assert store.lookup(KEY) is not None
    queries = [(sql, params) for sql, params in seen if sql.lstrip().upper().startswith("SELECT")]
    assert len(queries) == 1
    sql, params = queries[0]
    with store.engine.connect() as conn:
        if store.backend == "sqlite":
            plan = " | ".join(
                row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
            )
            assert "USING INDEX ix_component_runs_lookup" in plan, plan
            assert "TEMP B-TREE" not in plan, plan  # the index gives the order too
        else:
            conn.exec_driver_sql("ANALYZE component_runs")
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {sql}", params))
            assert "ix_component_runs_lookup" in plan, plan
            assert "Seq Scan" not in plan, plan
            assert "Sort" not in plan, plan


# -- errors ---------------------------------------------------------------------------


def test_unreachable_postgres_is_a_transient_error_without_the_password() -> None:
    url = "postgresql+psycopg://mm:s3cret@127.0.0.1:1/index?connect_timeout=2"
    with pytest.raises(DatabaseError) as caught:
        RunStore.open(url)
    error = caught.value
    assert error.transient is True
    assert error.code == "database_error"
    assert "s3cret" not in str(error)
    assert "s3cret" not in json.dumps(error.to_dict())
    assert error.fields["url"] == "postgresql+psycopg://mm:***@127.0.0.1:1/index?connect_timeout=2"


def test_unsupported_or_malformed_urls_are_database_errors() -> None:
    with pytest.raises(DatabaseError, match="unsupported database 'mysql'"):
        RunStore.open("mysql://user:pw@localhost/db")
    with pytest.raises(DatabaseError, match="not a database URL"):
        RunStore.open("not a url")


def test_sqlite_directory_is_created(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a' / 'b' / 'index.sqlite3'}"
    with RunStore.open(url) as opened:
        assert opened.list_profiles() == []
    assert (tmp_path / "a" / "b" / "index.sqlite3").is_file()


# -- concurrency: threads and processes -------------------------------------------------


def _read_then_write(store: RunStore, prefix: str, rounds: int) -> None:
    for i in range(rounds):
        run_id = f"{prefix}-{i}"
        key = f"sha256:{prefix}-{i % 3}"
        store.start_run(run_context(run_id), mapping_source="payload")
        store.lookup(key)
        store.record_component(component_row(run_id, cache_key=key))
        assert store.lookup(key) is not None
        store.finish_run(run_id, status="ok", manifest_path=f"{run_id}/manifest.json")


def test_threads_share_one_store(store: RunStore) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            _read_then_write(store, f"t{n}", 15)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store.list_runs(limit=1000)) == 6 * 15


def _process_worker(url: str, prefix: str, rounds: int, start: Any, results: Any) -> None:
    """In a spawned process: its own store, migrated at the same moment as the others', then
    read-then-write rounds; reports any error."""
    try:
        with RunStore.open(url, migrate=False) as own:
            own.engine.connect().close()  # connected before the start line
            start.wait(timeout=60)
            own.upgrade()
            _read_then_write(own, prefix, rounds)
        results.put((prefix, None))
    except BaseException as error:
        results.put((prefix, f"{type(error).__name__}: {error}"))


def test_processes_migrate_and_read_then_write_without_lock_errors(store_url: str) -> None:
    """Several processes open one fresh database at the same moment (each runs ``upgrade
    head``: read the revision, then create tables) and then write and read in a loop."""
    ctx = multiprocessing.get_context("spawn")
    workers, rounds = 4, 25
    start = ctx.Barrier(workers)
    results = ctx.Queue()
    processes = [
        ctx.Process(target=_process_worker, args=(store_url, f"p{n}", rounds, start, results))
        for n in range(workers)
    ]
    for process in processes:
        process.start()
    outcomes = dict(results.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=30)
    assert outcomes == {f"p{n}": None for n in range(workers)}
    with RunStore.open(store_url, migrate=False) as opened:
        runs = opened.list_runs(limit=1000)
    assert len(runs) == workers * rounds
    assert {r.status for r in runs} == {"ok"}


# -- CLI: modelmanager profiles ----------------------------------------------------------

runner = CliRunner()


def test_cli_load_and_list(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELMANAGER_DATABASE_URL", store_url)
    result = runner.invoke(profiles_app, ["load", str(EXAMPLE_PROFILE)])
    assert result.exit_code == 0, result.output
    assert "stored profile example-cpu" in result.output
    assert "text_ocr: detector, recognizer" in result.output

    result = runner.invoke(profiles_app, ["load", str(EXAMPLE_PROFILE), "--name", "gpu", "--json"])
    assert result.exit_code == 0, result.output
    stored = json.loads(result.output)
    assert stored["profile"] == "gpu"
    assert stored["components"]["text_ocr"] == ["detector", "recognizer"]
    assert stored["database"] == make_url(store_url).render_as_string(hide_password=True)

    result = runner.invoke(profiles_app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["profiles"] == ["example-cpu", "gpu"]
    result = runner.invoke(profiles_app, ["list"])
    assert result.exit_code == 0, result.output
    assert "example-cpu" in result.output
    assert "gpu" in result.output
    with RunStore.open(store_url) as opened:
        loaded = opened.load_profile("gpu")
    assert loaded is not None
    assert loaded["profile"] == "gpu"


def test_cli_refuses_an_invalid_or_nameless_profile(
    store_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODELMANAGER_DATABASE_URL", store_url)
    document = load_document(EXAMPLE_PROFILE)
    broken = json.loads(json.dumps(document))
    del broken["components"]["text_ocr"]["detector"]["weights_digest"]
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    result = runner.invoke(profiles_app, ["load", str(tmp_path / "broken.json"), "--json"])
    assert result.exit_code == 2, result.output
    error = json.loads(result.output)
    assert (error["error_code"], error["field"]) == ("invalid_model_spec", "weights_digest")

    nameless = {k: v for k, v in document.items() if k != "profile"}
    (tmp_path / "nameless.json").write_text(json.dumps(nameless))
    result = runner.invoke(profiles_app, ["load", str(tmp_path / "nameless.json")])
    assert result.exit_code == 2
    assert "pass --name" in result.output

    result = runner.invoke(profiles_app, ["list", "--json"])
    assert json.loads(result.output)["profiles"] == []


def test_cli_uses_the_sqlite_file_in_the_data_dir_by_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODELMANAGER_DATA_DIR", str(tmp_path / "data"))
    result = runner.invoke(profiles_app, ["load", str(EXAMPLE_PROFILE)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / "modelmanager.sqlite3").is_file()
    result = runner.invoke(profiles_app, ["list"])
    assert "example-cpu" in result.output


def test_cli_reports_an_unreachable_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "MODELMANAGER_DATABASE_URL", "postgresql+psycopg://mm:pw@127.0.0.1:1/x?connect_timeout=2"
    )
    result = runner.invoke(profiles_app, ["list", "--json"])
    assert result.exit_code == 1
    error = json.loads(result.output)
    assert (error["error_code"], error["transient"]) == ("database_error", True)


# -- issue 12 (R-FAIL): unusable database locations and URLs -------------------------------


def _unwritable_directory(tmp_path: Path) -> Path:
    """A directory where no file can be created: mode 0555 for a user, /proc for root
    (whom permissions do not stop)."""
    if os.geteuid() != 0:
        directory = tmp_path / "read-only"
        directory.mkdir()
        directory.chmod(0o555)
        return directory
    return Path("/proc")


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("parent-is-a-file", "{blocker} is a file, not a directory"),
        ("ancestor-is-a-file", "{blocker} is a file, not a directory"),
        ("directory-in-place-of-the-file", "the run index {path} is a directory"),
        ("unwritable-directory", "{path}"),
        ("unwritable-directory-needs-a-subdirectory", "cannot create the directory of the run"),
    ],
)
def test_unusable_sqlite_location_is_a_database_error_naming_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str, message: str
) -> None:
    """Issue 12 (R-FAIL): a file where a directory must be ended in FileExistsError or
    NotADirectoryError tracebacks; a directory in place of the file, or one that cannot be
    written, in a vague "migrating ... unable to open database file". Now each is a
    non-transient DatabaseError with the path, from the library and from the CLI."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    path = {
        "parent-is-a-file": blocker / "index.sqlite3",
        "ancestor-is-a-file": blocker / "sub" / "index.sqlite3",
        "directory-in-place-of-the-file": tmp_path / "index.sqlite3",
        "unwritable-directory": _unwritable_directory(tmp_path) / "index.sqlite3",
        "unwritable-directory-needs-a-subdirectory": (
            _unwritable_directory(tmp_path) / "sub" / "index.sqlite3"
        ),
    }[layout]
    if layout == "directory-in-place-of-the-file":
        path.mkdir()
    url = f"sqlite:///{path}"

    with pytest.raises(DatabaseError) as caught:
        RunStore.open(url)
    error = caught.value
    assert (error.code, error.transient, error.exit_code) == ("database_error", False, 1)
    assert error.fields["path"] == str(path)
    assert message.format(blocker=blocker, path=path) in error.message

    monkeypatch.setenv("MODELMANAGER_DATABASE_URL", url)
    # A command that creates the index (read-only ones never create one: they say it has none).
    from modelmanager.cli.app import app

    result = runner.invoke(app, ["db", "upgrade", "--json"])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    shown = json.loads(result.output)
    assert (shown["error_code"], shown["path"]) == ("database_error", str(path))


@pytest.mark.parametrize(
    ("part", "value", "reason"),
    [
        ("database", "nope_does_not_exist", 'database "nope_does_not_exist" does not exist'),
        ("username", "nope_no_such_role", 'role "nope_no_such_role" does not exist'),
    ],
)
def test_postgres_refusal_is_not_transient(part: str, value: str, reason: str) -> None:
    """Issue 12 (R-FAIL): a database (or role) that does not exist was reported transient,
    so callers retried what cannot pass; now transient=False, with the server's reason."""
    unavailable = postgres_unavailable()
    if unavailable is not None:
        pytest.skip(unavailable)
    url = make_url(POSTGRES_URL).set(**{part: value}).render_as_string(hide_password=False)
    started = time.monotonic()
    with pytest.raises(DatabaseError) as caught:
        RunStore.open(url)
    error = caught.value
    assert error.transient is False
    assert reason in error.message
    assert "retrying cannot help" in error.message
    assert error.fields["url"] == make_url(url).render_as_string(hide_password=True)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("server_says", "transient"),
    [
        ('FATAL:  database "x" does not exist', False),
        ('FATAL:  role "x" does not exist', False),
        ('FATAL:  password authentication failed for user "x"', False),
        ('FATAL:  no pg_hba.conf entry for host "10.0.0.1", user "x", database "y"', False),
        ("Connection refused\n\tIs the server running on that host?", True),
        ("server closed the connection unexpectedly", True),
        ("timeout expired", True),
    ],
)
def test_each_permanent_connect_failure_pattern(server_says: str, transient: bool) -> None:
    """Issue 12: libpq gives connection failures no SQLSTATE, only text; each pattern of the
    one table of permanent refusals, and transient failures that must stay transient."""
    psycopg = pytest.importorskip("psycopg")
    from sqlalchemy import exc

    from modelmanager.index._engine import is_transient

    message = 'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
    error = exc.OperationalError("SELECT 1", {}, psycopg.OperationalError(message + server_says))
    assert is_transient(error, "postgresql") is transient


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgres+psycopg"])
def test_postgres_urls_without_the_driver_use_psycopg(store_url: str, scheme: str) -> None:
    """Issue 12 (R-FAIL for postgres://): libpq's and many hosts' ``postgres://`` was
    "unsupported database 'postgres'"; it and ``postgresql://`` get psycopg 3."""
    url = make_url(store_url).set(drivername=scheme).render_as_string(hide_password=False)
    with RunStore.open(url) as opened:
        assert opened.backend == "postgresql"
        assert opened.engine.url.drivername == "postgresql+psycopg"
        opened.save_profile("p", load_document(EXAMPLE_PROFILE))
        assert opened.list_profiles() == ["p"]
