"""R-TEST-1: deterministic budgets of a run, counted, never timed (CI runs them).

What a cached re-run may cost, as counts that do not depend on the machine:

* models opened: 0 (counted through the injectable runtime factory);
* bytes hashed: 0, weights and artifacts alike, while their stat is unchanged
  (:func:`~modelmanager.weights.digest.hashing_totals` counts every byte read for
  hashing);
* SQL statements per component: at most the constants below, cold and cached,
  counted with SQLAlchemy's ``before_cursor_execute`` on the store's engine, on
  SQLite and on PostgreSQL (``store`` is parametrized over both).

Timings stay in ``make bench``; a budget here fails only when the work itself grows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event

from modelmanager.index import RunStore
from modelmanager.manager import ModelManager
from modelmanager.mapping.spec import ResolvedModelSpec
from modelmanager.run.contract import Component, ComponentOutput, ComponentRequest
from modelmanager.run.runner import Runner, RunResult
from modelmanager.runtimes import Runtime, default_runtime
from modelmanager.store.manifest import ComponentEntry
from modelmanager.weights.digest import HashTotals, hashing_totals

from .conftest import EXAMPLES, age
from .runner_components import SceneStats, frames, mapping, run_context

# Statements per component, counted between the runner's start and end of that
# component (BEGIN/BEGIN IMMEDIATE count on SQLite, where the store issues them
# itself; psycopg begins implicitly, so PostgreSQL issues about half):
#   cached: lookup (BEGIN + SELECT), record_component (BEGIN IMMEDIATE + INSERT);
#   cold:   lookup, try_acquire (BEGIN IMMEDIATE + INSERT lease), lookup again
#           (another worker may have published meanwhile), record_component with
#           its fence (the SELECT of the lease's claim, issue 12: 3 statements),
#           release (BEGIN IMMEDIATE + DELETE).
CACHED_STATEMENTS_PER_COMPONENT = 4
COLD_STATEMENTS_PER_COMPONENT = 11
# Per run, outside any component: start_run and finish_run, each BEGIN IMMEDIATE + one write,
# and the look for runs whose worker died (BEGIN + SELECT; issue 12).
RUN_STATEMENTS = 6

N_ENCODERS = 3
MODEL = "frame-encoder/1.0.0/model.onnx"


class Encoder:
    """Per-frame features from the example encoder, under a name of its own."""

    producer_version = "1.0.0"
    schema_version = "1"
    roles = ("encoder",)

    def __init__(self, index: int) -> None:
        self.name = f"encoder_{index}"

    def process(self, request: ComponentRequest) -> ComponentOutput:
        pixels = np.asarray(request.inputs["frames"], np.float32)
        features = request.runtimes["encoder"]({"pixels": pixels})["features"]
        return ComponentOutput({"features": features}, batch_size=len(pixels), seed=0)


class Opens:
    """A runtime factory that counts the models the manager opens (and opens them for real)."""

    def __init__(self) -> None:
        self.opened: list[str] = []

    def __call__(self, spec: ResolvedModelSpec, path: Path | None) -> Runtime:
        self.opened.append(f"{spec.component_name}/{spec.role}")
        return default_runtime(spec, path)


class Statements:
    """SQL statements the store's engine executes, attributed to the component running."""

    def __init__(self, store: RunStore) -> None:
        self.engine = store.engine
        self.current: str | None = None
        self.by_component: dict[str, int] = {}
        self.outside = 0
        event.listen(self.engine, "before_cursor_execute", self._count)

    def _count(self, *args: Any) -> None:
        if self.current is None:
            self.outside += 1
        else:
            self.by_component[self.current] = self.by_component.get(self.current, 0) + 1

    def on_component(self, component: Component, entry: ComponentEntry | None) -> None:
        self.current = component.name if entry is None else None

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._count)


@pytest.fixture
def models_root(tmp_path: Path) -> Path:
    """The example encoder, copied and aged out of the digest cache's racy window, so
    that a weights check is a cache hit whatever the checkout's mtimes."""
    root = tmp_path / "models"
    target = root / MODEL
    target.parent.mkdir(parents=True)
    target.write_bytes((EXAMPLES / "models" / MODEL).read_bytes())
    age(target)
    return root


def budget_mapping() -> dict[str, Any]:
    document = mapping()
    entry = document["components"]["frame_features"]["encoder"]
    document["components"] = {
        **{f"encoder_{i}": {"encoder": dict(entry)} for i in range(N_ENCODERS)},
        "scene_stats": {},
    }
    return document


def components() -> list[Any]:
    return [*(Encoder(i) for i in range(N_ENCODERS)), SceneStats()]


def run(
    store: RunStore,
    root: Path,
    models_root: Path,
    run_id: str,
    opens: Opens | None = None,
    statements: Statements | None = None,
    **runner_options: Any,
) -> RunResult:
    mm = ModelManager(
        run_context(run_id),
        budget_mapping(),
        models_root=models_root,
        runtime_factory=opens or Opens(),
    )
    with mm:
        runner = Runner(mm, store, root, **runner_options)
        return runner.run(
            components(),
            {"frames": frames()},
            on_component=None if statements is None else statements.on_component,
        )


@contextmanager
def hashed() -> Iterator[list[HashTotals]]:
    """``[files and bytes hashed inside the block]``, filled in as the block ends."""
    out: list[HashTotals] = []
    before = hashing_totals()
    yield out
    out.append(hashing_totals() - before)


def statuses(result: RunResult) -> list[tuple[str, bool]]:
    return [(c.status, c.cache_hit) for c in result.manifest.components]


def artifact_paths(root: Path, result: RunResult) -> list[Path]:
    return [root / c.artifact.relpath for c in result.manifest.components if c.artifact]


def test_cached_rerun_opens_no_model_and_hashes_no_byte(
    store: RunStore, tmp_path: Path, models_root: Path
) -> None:
    root = tmp_path / "artifacts"
    cold_opens, cached_opens = Opens(), Opens()
    cold = run(store, root, models_root, "run-cold", cold_opens)
    assert statuses(cold) == [("ok", False)] * (N_ENCODERS + 1)
    assert len(cold_opens.opened) == N_ENCODERS

    with hashed() as cached_hashing:
        cached = run(store, root, models_root, "run-cached", cached_opens)
    assert statuses(cached) == [("cached", True)] * (N_ENCODERS + 1)
    assert cached_opens.opened == []
    assert cached_hashing[0] == HashTotals(files=0, bytes=0)


def test_a_changed_stat_is_rehashed_once_then_trusted_again(
    store: RunStore, tmp_path: Path, models_root: Path
) -> None:
    root = tmp_path / "artifacts"
    cold = run(store, root, models_root, "run-cold")
    touched = artifact_paths(root, cold)[0]
    age(touched)  # same bytes, new ctime (and an old mtime: out of the racy window)
    with hashed() as first:
        again = run(store, root, models_root, "run-2")
    assert statuses(again) == [("cached", True)] * (N_ENCODERS + 1)
    assert first[0] == HashTotals(files=1, bytes=os.stat(touched).st_size)
    with hashed() as second:
        run(store, root, models_root, "run-3")
    assert second[0] == HashTotals(files=0, bytes=0)  # the full check re-cached it


def test_verify_full_rehashes_every_artifact(
    store: RunStore, tmp_path: Path, models_root: Path
) -> None:
    root = tmp_path / "artifacts"
    cold = run(store, root, models_root, "run-cold")
    sizes = [p.stat().st_size for p in artifact_paths(root, cold)]
    with hashed() as full:
        result = run(store, root, models_root, "run-full", verify_artifacts="full")
    assert statuses(result) == [("cached", True)] * (N_ENCODERS + 1)
    assert full[0] == HashTotals(files=len(sizes), bytes=sum(sizes))


def test_recomputing_with_unchanged_weights_hashes_no_weight_byte(
    store: RunStore, tmp_path: Path, models_root: Path
) -> None:
    root = tmp_path / "artifacts"
    cold = run(store, root, models_root, "run-cold")  # the weights are hashed (and cached)
    for path in artifact_paths(root, cold):
        path.unlink()
    opens = Opens()
    with hashed() as recompute:
        result = run(store, root, models_root, "run-recompute", opens)
    assert statuses(result) == [("ok", False)] * (N_ENCODERS + 1)
    assert len(opens.opened) == N_ENCODERS  # every weights file was resolved again...
    assert recompute[0] == HashTotals(files=0, bytes=0)  # ...by a stat and a lookup


def test_sql_statements_per_component(store: RunStore, tmp_path: Path, models_root: Path) -> None:
    root = tmp_path / "artifacts"
    n = N_ENCODERS + 1
    budgets = {"cold": COLD_STATEMENTS_PER_COMPONENT, "cached": CACHED_STATEMENTS_PER_COMPONENT}
    for run_id, budget in budgets.items():
        statements = Statements(store)
        try:
            run(store, root, models_root, f"run-{run_id}", statements=statements)
        finally:
            statements.close()
        assert len(statements.by_component) == n
        assert max(statements.by_component.values()) <= budget, (run_id, statements.by_component)
        assert statements.outside <= RUN_STATEMENTS, (run_id, statements.outside)
