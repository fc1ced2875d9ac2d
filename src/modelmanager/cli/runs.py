"""``modelmanager runs``: the run index, and why two runs did not share a cache entry.

    modelmanager runs list [--platform-id P] [--video-id V] [--limit N] [--json]
    modelmanager runs show RUN_ID [--json]
    modelmanager explain RUN_A RUN_B [--component C] [--json]
    modelmanager explain KEY_A.json KEY_B.json [--json]

The database is ``MODELMANAGER_DATABASE_URL`` (default: the SQLite file in the
data directory); manifests are read from ``MODELMANAGER_ARTIFACT_ROOT``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelmanager.cli._common import (
    ComponentOption,
    JsonOption,
    command_group,
    current_settings,
    open_run_store,
    plain_table,
    print_json,
    reported,
    stdout,
)
from modelmanager.errors import ModelMappingMissing, ProfileLoadFailed, RunNotFound

if TYPE_CHECKING:
    from modelmanager.config import Settings
    from modelmanager.index import RunStore
    from modelmanager.mapping.signature import FieldDifference
    from modelmanager.store.manifest import Manifest

__all__ = ["error_text", "explain", "explain_runs", "runs_app"]

runs_app = command_group("Runs in the run index: list them, show one.")


@runs_app.command("list")
def list_runs(
    platform_id: Annotated[str | None, typer.Option(help="Only this platform.")] = None,
    video_id: Annotated[str | None, typer.Option(help="Only this video.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """The newest runs, one line each."""
    with reported(as_json), open_run_store(create=False) as store:
        runs = store.list_runs(platform_id=platform_id, video_id=video_id, limit=limit)
    if as_json:
        print_json([_run_dict(r) for r in runs])
        return
    table = plain_table(
        "run_id", "platform_id", "video_id", "status", "started_at", "mapping_source"
    )
    for r in runs:
        table.add_row(
            r.run_id, r.platform_id, r.video_id, r.status, _time(r.started_at), r.mapping_source
        )
    stdout.print(table)


@runs_app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    as_json: JsonOption = False,
) -> None:
    """One run: its context and one line per component (status, cache hit, time, signature)."""

    with reported(as_json):
        settings = current_settings()
        with open_run_store(settings, create=False) as store:
            run = store.get_run(run_id)
            if run is None:
                raise RunNotFound(f"run {run_id!r} is not in the run index", run_id=run_id)
            rows = store.component_runs(run_id)
        messages = _error_messages(settings, run.manifest_path)
    if as_json:
        components = [
            {**_row_dict(row), "error": messages.get(row.component) if row.error_code else None}
            for row in rows
        ]
        print_json({**_run_dict(run), "components": components})
        return
    stdout.print(
        f"run {run.run_id}  {run.status}  {run.platform_id}/{run.video_id}  "
        f"config {run.config_hash}  manifest {run.manifest_path or '-'}",
        markup=False,
    )
    table = plain_table(
        "component",
        "status",
        "cache",
        "ms",
        "device",
        "batch",
        "signature",
        "error",
        wrap={"error"},
    )
    for row in rows:
        table.add_row(
            row.component,
            row.status,
            "hit" if row.cache_hit else "miss",
            "-" if row.latency_ms is None else f"{row.latency_ms:.1f}",
            row.device or "-",
            "-" if row.batch_size is None else str(row.batch_size),
            row.model_signature[:19] + "…" if row.model_signature else "-",
            error_text(row.error_code, messages.get(row.component)),
        )
    stdout.print(table)


def error_text(code: str | None, message: str | None) -> str:
    """A failed component's error for a rich table cell: ``[code] message`` (or what there
    is of it), escaped so that rich prints its brackets."""
    from rich.markup import escape

    if not code:
        return escape(message or "")
    return escape(f"[{code}] {message}" if message else f"[{code}]")


def _error_messages(settings: Settings, manifest_path: str | None) -> dict[str, str]:
    """Each failed component's error message, from the run's manifest (the index keeps only
    the code); none where the manifest is missing or unreadable."""
    from modelmanager.errors import ModelManagerError
    from modelmanager.store.manifest import read_manifest

    if manifest_path is None:
        return {}
    try:
        manifest = read_manifest(settings.resolved_artifact_root / manifest_path)
    except (ModelManagerError, OSError):
        return {}
    return {c.component: c.error for c in manifest.components if c.error}


def explain_runs(
    run_a: str, run_b: str, component: str | None
) -> dict[str, list[FieldDifference] | None]:
    """Per component of two runs: the key fields that differ ([] = same key), None = in one only.

    Raises:
        RunNotFound: a run id is not in the index, or its manifest is gone.
    """
    from modelmanager.mapping.signature import diff_documents

    settings = current_settings()
    with open_run_store(settings, create=False) as store:
        manifests = [_manifest(store, settings, run_id) for run_id in (run_a, run_b)]
    names = _names(manifests)
    if component is not None:
        if component not in names:
            raise ModelMappingMissing(
                f"component {component!r} is in neither run {run_a!r} nor {run_b!r} "
                f"(they have: {', '.join(names) or 'none'})",
                component=component,
                expected=names,
            )
        names = [component]
    result: dict[str, list[FieldDifference] | None] = {}
    for name in names:
        entries = [m.component(name) for m in manifests]
        if entries[0] is None or entries[1] is None:
            result[name] = None
        else:
            result[name] = diff_documents(
                entries[0].cache_key_material, entries[1].cache_key_material
            )
    return result


def explain(
    a: Annotated[str, typer.Argument(help="First run id, or key document (JSON file).")],
    b: Annotated[str, typer.Argument(help="Second run id, or key document (JSON file).")],
    component: ComponentOption = None,
    as_json: JsonOption = False,
) -> None:
    """Tell which key fields made two runs (or two keys) not share a cache entry.

    Two run ids: each component's cache key material from the runs' manifests.
    Two JSON files: a cache key as ModelManager writes it ({"cache_key",
    "material", "models_used"}), a bare key material, or `modelmanager resolve
    --json` output.
    """
    with reported(as_json):
        if Path(a).is_file() and Path(b).is_file():
            _print_differences(_diff_files(Path(a), Path(b)), "", as_json)
            return
        by_component = explain_runs(a, b, component)
    if as_json:
        print_json(
            {
                name: None if diffs is None else _differences_json(diffs)
                for name, diffs in by_component.items()
            }
        )
        return
    for name, diffs in by_component.items():
        if diffs is None:
            stdout.print(f"{name}: in one run only", markup=False)
        else:
            _print_differences(diffs, f"{name}: ", as_json=False)


def _differences_json(diffs: list[FieldDifference]) -> dict[str, Any]:
    return {"same": not diffs, "differences": [d.to_json_dict() for d in diffs]}


def _print_differences(diffs: list[FieldDifference], label: str, as_json: bool) -> None:
    if as_json:
        print_json(_differences_json(diffs))
    elif not diffs:
        stdout.print(f"{label}no differences: the same key, a shared cache entry", markup=False)
    else:
        stdout.print(f"{label}{len(diffs)} field(s) differ:", markup=False)
        for d in diffs:
            stdout.print(f"  {d}", markup=False)


def _diff_files(a: Path, b: Path) -> list[FieldDifference]:
    from modelmanager.mapping.signature import diff_documents
    from modelmanager.mapping.sources import load_document

    docs = [load_document(p) for p in (a, b)]
    for path, doc in zip((a, b), docs, strict=True):
        if not ({"cache_key", "material", "kind", "models_used", "components"} & doc.keys()):
            raise ProfileLoadFailed(
                f"{path}: not a key document (no cache_key, material, models_used or components)",
                path=str(path),
            )
    return diff_documents(docs[0], docs[1])


def _manifest(store: RunStore, settings: Settings, run_id: str) -> Manifest:
    from modelmanager.store.manifest import read_manifest

    run = store.get_run(run_id)
    if run is None or run.manifest_path is None:
        raise RunNotFound(
            f"run {run_id!r} is not in the run index"
            + ("" if run is None else " with a manifest (still running, or it crashed)"),
            run_id=run_id,
        )
    return read_manifest(settings.resolved_artifact_root / run.manifest_path)


def _names(manifests: list[Manifest]) -> list[str]:
    names: list[str] = []
    for manifest in manifests:
        names.extend(c.component for c in manifest.components if c.component not in names)
    return names


def _time(value: Any) -> str:
    return "-" if value is None else value.isoformat(timespec="seconds")


def _run_dict(run: Any) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "platform_id": run.platform_id,
        "video_id": run.video_id,
        "config_hash": run.config_hash,
        "sampling_policy_version": run.sampling_policy_version,
        "dataprocessor_version": run.dataprocessor_version,
        "user_id": run.user_id,
        "status": run.status,
        "mapping_source": run.mapping_source,
        "manifest_path": run.manifest_path,
        "started_at": _time(run.started_at),
        "finished_at": _time(run.finished_at),
    }


def _row_dict(row: Any) -> dict[str, Any]:
    return {
        "component": row.component,
        "status": row.status,
        "cache_hit": row.cache_hit,
        "cache_key": row.cache_key,
        "model_signature": row.model_signature,
        "latency_ms": row.latency_ms,
        "device": row.device,
        "batch_size": row.batch_size,
        "oom_retries": row.oom_retries,
        "error_code": row.error_code,
        "artifact_path": row.artifact_path,
        "artifact_size": row.artifact_size,
        "artifact_sha256": row.artifact_sha256,
    }
