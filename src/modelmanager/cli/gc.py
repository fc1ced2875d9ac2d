"""``modelmanager gc | orphans | delete-video``: retention of runs and artifacts (R-GC-1..4).

    modelmanager gc [--dry-run] [--json] [--keep-previous N] [--hard-cap-days D] [--temp-ttl-days D]
                    [--now TIME]
    modelmanager orphans [--fix] [--json]
    modelmanager delete-video --platform-id P --video-id V [--dry-run] [--json] [--actor NAME] [--force]

The database is ``MODELMANAGER_DATABASE_URL``, the files ``MODELMANAGER_ARTIFACT_ROOT``;
the policy's defaults come from ``MODELMANAGER_GC_*`` (see :mod:`modelmanager.retention`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelmanager.cli._common import (
    JsonOption,
    current_settings,
    open_run_store,
    plain_table,
    print_json,
    reported,
    stderr,
    stdout,
)
from modelmanager.errors import ConfigurationInvalid

if TYPE_CHECKING:
    from modelmanager.config import Settings
    from modelmanager.index import RunStore
    from modelmanager.retention import GcReport, OrphanReport, RetentionPolicy

__all__ = ["delete_video_command", "gc_command", "orphans_command"]

DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Show what would go and the bytes freed; change nothing.")
]
# Fewer files than this go too quickly for a progress bar to help.
_PROGRESS_MIN_FILES = 200
# Human output lists at most this many runs; --json lists all.
_LIST_RUNS = 20


def gc_command(
    dry_run: DryRunOption = False,
    keep_previous: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Previous successful runs kept per group (env MODELMANAGER_GC_KEEP_PREVIOUS).",
        ),
    ] = None,
    hard_cap_days: Annotated[
        float | None,
        typer.Option(help="Nothing older survives (env MODELMANAGER_GC_HARD_CAP_DAYS)."),
    ] = None,
    temp_ttl_days: Annotated[
        float | None,
        typer.Option(help="Temporary data expires after (env MODELMANAGER_GC_TEMP_TTL_DAYS)."),
    ] = None,
    now: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"],
            help="Apply the policy as of this time (UTC unless an offset is given); default now.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Collect old runs: keep the latest successful run per group plus N previous."""
    from modelmanager.retention import collect_garbage

    with reported(as_json):  # the options are checked before the index opens
        settings = current_settings()
        policy = _policy(settings, keep_previous, hard_cap_days, temp_ttl_days)
    with _on_the_index(as_json, settings, create=not dry_run) as (store, artifact_root, progress):
        report = collect_garbage(
            store,
            artifact_root,
            policy=policy,
            now=None if now is None else _utc(now),
            dry_run=dry_run,
            progress=progress,
        )
    if as_json:
        print_json(report.to_json_dict())
        return
    _print_gc(report)


def orphans_command(
    fix: Annotated[
        bool,
        typer.Option(
            "--fix",
            help="Delete unknown files, invalidate rows whose artifact is gone, "
            "collect runs whose manifest is gone.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Files under the artifact root that no row knows, and rows whose files are gone.
    Exit 1 when it finds any and --fix was not given (0 when clean or fixed)."""
    from modelmanager.retention import find_orphans

    with _on_the_index(as_json, create=fix) as (store, artifact_root, progress):
        report = find_orphans(store, artifact_root, fix=fix, progress=progress)
    if as_json:
        print_json(report.to_json_dict())
    else:
        _print_orphans(report, fix)
    if not report.clean and not fix:
        raise typer.Exit(1)


def _print_orphans(report: OrphanReport, fix: bool) -> None:
    if report.clean:
        stdout.print("no orphans: every file has its row and every row its file", markup=False)
        return
    verb = "deleted" if fix else "unknown"
    for relpath in report.unknown_files:
        stdout.print(f"{verb} file  {relpath}", markup=False)
    for missing in report.missing:
        stdout.print(
            f"missing {missing.kind:<8} {missing.relpath}  (run {missing.run_id})", markup=False
        )
    summary = (
        f"{len(report.unknown_files)} unknown files ({_size(report.unknown_bytes)}), "
        f"{len(report.missing)} rows whose file is gone"
    )
    if fix:
        summary += (
            f"; fixed: files deleted, {report.rows_invalidated} rows invalidated, "
            f"{report.runs_collected} runs collected"
        )
    else:
        summary += "; run with --fix to fix"
    stdout.print(summary, markup=False)


def delete_video_command(
    platform_id: Annotated[str, typer.Option(help="The video's platform.")],
    video_id: Annotated[str, typer.Option(help="The video to delete.")],
    dry_run: DryRunOption = False,
    actor: Annotated[
        str | None, typer.Option(help="Who asks, for the audit row (default: the OS user).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Delete even while a run of the video is 'running'.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete every artifact, manifest, temp file and row of one video; audit it."""
    from modelmanager.retention import delete_video

    with _on_the_index(as_json, create=not dry_run) as (store, artifact_root, progress):
        report = delete_video(
            store,
            artifact_root,
            platform_id,
            video_id,
            actor=actor,
            dry_run=dry_run,
            force=force,
            progress=progress,
        )
    if as_json:
        print_json(report.to_json_dict())
        return
    subject = f"{platform_id}/{video_id}"
    if not report.found:
        stdout.print(f"nothing found for {subject}: no run, row or file", markup=False)
        return
    verb = "would delete" if dry_run else "deleted"
    stdout.print(
        f"{verb} {subject}: {report.runs} runs, {report.component_rows} component rows, "
        f"{report.files} files ({_size(report.bytes_freed)})",
        markup=False,
    )
    if report.audit_id is not None:
        stdout.print(
            f"audit #{report.audit_id}: subject {report.subject_sha256}, actor {report.actor}",
            markup=False,
        )


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _policy(
    settings: Settings,
    keep_previous: int | None,
    hard_cap_days: float | None,
    temp_ttl_days: float | None,
) -> RetentionPolicy:
    from modelmanager.retention import RetentionPolicy

    base = RetentionPolicy.from_settings(settings)
    try:
        return RetentionPolicy(
            keep_previous=base.keep_previous if keep_previous is None else keep_previous,
            hard_cap_days=base.hard_cap_days if hard_cap_days is None else hard_cap_days,
            temp_ttl_days=base.temp_ttl_days if temp_ttl_days is None else temp_ttl_days,
        )
    except ValueError as error:
        raise ConfigurationInvalid(str(error), setting="gc") from None


@contextmanager
def _on_the_index(
    as_json: bool, settings: Settings | None = None, *, create: bool
) -> Iterator[tuple[RunStore, Path, Callable[[int, int], None] | None]]:
    """The run index, the artifact root and a file progress bar of ``settings`` (default:
    the environment's), with errors reported as the command's (:func:`reported`). A command
    that changes nothing passes ``create=False``: it never creates a run index."""

    with reported(as_json):
        settings = current_settings() if settings is None else settings
        with (
            open_run_store(settings, create=create) as store,
            _file_progress("deleting") as progress,
        ):
            yield store, settings.resolved_artifact_root, progress


@contextmanager
def _file_progress(label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr, started once a deletion turns out long; None off a terminal."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeRemainingColumn,
    )

    if not stderr.is_terminal:
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeRemainingColumn(), console=stderr.console, transient=True) as bar:
        task: list[TaskID] = []

        def advance(done: int, total: int) -> None:
            if total < _PROGRESS_MIN_FILES:
                return
            if not task:
                task.append(bar.add_task(f"{label} files", total=total))
            bar.update(task[0], completed=done, total=total)

        yield advance


def _print_gc(report: GcReport) -> None:
    policy = report.policy
    stdout.print(
        f"policy: keep latest + {policy.keep_previous} previous per group, temp data "
        f"{policy.temp_ttl_days:g} days, hard cap {policy.hard_cap_days:g} days "
        f"(now {report.now.isoformat(timespec='seconds')})",
        markup=False,
    )
    if report.runs:
        table = plain_table("run_id", "platform_id", "video_id", "status", "started_at", "reason")
        for run in report.runs[:_LIST_RUNS]:
            table.add_row(
                run.run_id,
                run.platform_id,
                run.video_id,
                run.status,
                run.started_at.isoformat(timespec="seconds"),
                run.reason,
            )
        stdout.print(table)
        if len(report.runs) > _LIST_RUNS:
            stdout.print(f"… and {len(report.runs) - _LIST_RUNS} more runs (--json lists all)")
    verb = "would free" if report.dry_run else "freed"
    stdout.print(
        f"{'dry run: ' if report.dry_run else ''}{len(report.runs)} runs of "
        f"{report.videos} videos collected ({report.runs_kept} kept), "
        f"{report.component_rows} component rows, {report.rows_invalidated} rows invalidated, "
        f"{report.temp_dirs} temp dirs; {report.files} files, {verb} {_size(report.bytes_freed)}",
        markup=False,
    )


def _size(n: int) -> str:
    """``1.5 MiB``-style size."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
