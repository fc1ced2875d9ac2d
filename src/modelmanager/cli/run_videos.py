"""The parts of ``modelmanager run`` (:mod:`modelmanager.cli.run`) that run when it runs:
components checked against the profile, each video's run, the tables and the exit code.
Imported by the command itself, not at start-up, so that ``--help`` stays cheap.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelmanager.cli._common import mapping_from, stderr, stdout

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID
    from rich.table import Table

    from modelmanager.config import Settings
    from modelmanager.errors import ModelManagerError
    from modelmanager.index import RunStore
    from modelmanager.manager import ModelManager
    from modelmanager.mapping.sampling import SamplingPolicy
    from modelmanager.mapping.sources import MappingSource
    from modelmanager.mapping.spec import ResolvedMapping
    from modelmanager.media import VideoInfo
    from modelmanager.media.jobs import VideoJob
    from modelmanager.resources.planner import Placement
    from modelmanager.run.contract import Component
    from modelmanager.run.runner import RunResult
    from modelmanager.store.check import ArtifactVerify
    from modelmanager.store.manifest import ComponentEntry

__all__ = [
    "Batch",
    "check_job_components",
    "context_defaults",
    "exit_code",
    "known_components",
    "planned_mapping",
    "print_outcome",
    "run_all",
    "run_context_for",
    "run_table",
]


def known_components(
    names: Iterable[str],
    known: Collection[str],
    profile: object = None,
    only: Sequence[str] = (),
) -> list[str]:
    """The components to run: the profile's component ``names`` (in its order), checked
    against the ``known`` pipeline components, or only those of ``only`` (``--component``).

    Raises:
        InvalidModelSpec: a profile name no known component consumes (a misspelling: it
            names the closest known one), or no component at all; before any run starts.
        ModelMappingMissing: a pipeline component (every known one, or one of ``only``)
            that the profile has no mapping for; nothing falls back to running without it.
        ConfigurationInvalid: a name in ``only`` that is no known component.
    """
    from modelmanager.errors import ConfigurationInvalid, InvalidModelSpec, ModelMappingMissing

    names = list(names)
    choices = sorted(known)
    source = None if profile is None else str(profile)
    unknown = [name for name in names if name not in known]
    if unknown:
        guesses = {name: _closest(name, choices) for name in unknown}
        described = "; ".join(
            f"{name!r}" + (f" (did you mean {guess!r}?)" if guess else "")
            for name, guess in guesses.items()
        )
        first = unknown[0]
        raise InvalidModelSpec(
            f"{profile or 'the profile'}: no pipeline component consumes {described}; "
            f"the known components are {', '.join(choices)}",
            source=source,
            component=first,
            components=unknown,
            field="components",
            suggestion=guesses[first],
            expected=choices,
            hint=(
                f"Rename {first!r} to {guesses[first]!r} in the profile."
                if guesses[first]
                else f"Map only known components: {', '.join(choices)}."
            ),
        )
    if not names:
        raise InvalidModelSpec(
            f"{profile or 'the profile'}: it maps no component; the known components are "
            f"{', '.join(choices)}",
            source=source,
            field="components",
            expected=choices,
        )
    for name in only:
        if name not in known:
            guess = _closest(name, choices)
            raise ConfigurationInvalid(
                f"--component {name!r} is no pipeline component"
                + (f" (did you mean {guess!r}?)" if guess else "")
                + f"; the known components are {', '.join(choices)}",
                param="component",
                component=name,
                suggestion=guess,
                expected=choices,
            )
    wanted = list(dict.fromkeys(only)) if only else choices
    lacking = [name for name in wanted if name not in names]
    if lacking:
        raise ModelMappingMissing(
            f"{profile or 'the profile'} has no mapping for pipeline component"
            f"{'s' if len(lacking) > 1 else ''} {', '.join(map(repr, lacking))}",
            source=source,
            component=lacking[0],
            components=lacking,
            hint=(
                f"Add {', '.join(lacking)} to the profile"
                + ("." if only else ", or run only some components with --component.")
            ),
        )
    return [name for name in names if name in wanted]


def _closest(name: str, choices: Sequence[str]) -> str | None:
    import difflib

    guesses = difflib.get_close_matches(name, choices, n=1)
    return guesses[0] if guesses else None


def planned_mapping(
    source: str, settings: Settings
) -> tuple[ResolvedMapping, MappingSource, dict[str, Any] | None, dict[str, Placement]]:
    """The run's mapping (:func:`~modelmanager.cli._common.mapping_from`) and, for a profile
    file, each component's planned device and batch (R-RES-1, R-SCHED): a ``cuda`` entry
    gets its GPU here, before the manager is made (R-MAP-4). The GPUs are read (NVML) only
    when the profile has a GPU entry. A run payload's or a database profile's devices are
    already set: their components run at their own batch.

    Raises:
        InsufficientGpuMemory: a component fits no GPU (before anything runs).
    """
    from modelmanager.components import batch_limits
    from modelmanager.mapping.sources import MappingSource, load_document
    from modelmanager.mapping.spec import parse_mapping
    from modelmanager.resources.inventory import Inventory, read_inventory
    from modelmanager.resources.planner import plan_components

    path = Path(source)
    document = load_document(path) if path.is_file() else None
    if document is None or "model_mapping" in document:
        mapping, origin, context = mapping_from(source, settings)
        return mapping, origin, context, {}
    wants_gpu = any(
        isinstance(entry, Mapping) and str(entry.get("device_policy", "")).startswith("cuda")
        for roles in (document.get("components") or {}).values()
        if isinstance(roles, Mapping)
        for entry in roles.values()
    )
    gpus = (
        read_inventory(settings.gpu_inventory)
        if wants_gpu
        else Inventory((), "none", note="no GPU entry")
    )
    plan = plan_components(document, gpus, component_limits=batch_limits(), source=source)
    mapping = parse_mapping(plan.document, source=source)
    return (
        mapping,
        MappingSource("profile", source),
        None,
        {p.component: p for p in plan.placements},
    )


def run_context_for(
    job: VideoJob,
    input_digest: str,
    policy: SamplingPolicy,
    run_id: str | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The run context ``modelmanager run`` gives the run over ``job``: its ids, the input's
    digest, the sampling policy's key version; ``defaults`` (a run payload's context) give
    config_hash, dataprocessor_version and user_id. A benchmark seeds the cache with it."""
    from modelmanager import __version__

    defaults = defaults or {}
    return {
        "platform_id": job.platform_id,
        "video_id": job.video_id,
        "run_id": run_id or f"run-{uuid.uuid4().hex[:12]}",
        "config_hash": defaults.get("config_hash", "default"),
        "sampling_policy_version": policy.key_version,
        "dataprocessor_version": defaults.get("dataprocessor_version", __version__),
        "user_id": defaults.get("user_id"),
        "input_digest": input_digest,
    }


def context_defaults(payload_context: Mapping[str, Any] | None) -> dict[str, Any]:
    keep = ("config_hash", "dataprocessor_version", "user_id")
    return {k: payload_context[k] for k in keep if payload_context and k in payload_context}


@dataclass(frozen=True)
class Batch:
    """What every video's run shares: the models (opened once), the index, the settings."""

    models: ModelManager
    store: RunStore
    settings: Settings
    components: list[Component]
    policy: SamplingPolicy
    mapping_source: str
    defaults: dict[str, Any]
    run_id: str | None
    verify: ArtifactVerify
    placements: Mapping[str, Placement]


@dataclass
class Outcome:
    """One video's end: its run, or the error that kept it from running."""

    job: VideoJob
    input_digest: str | None = None
    result: RunResult | None = None
    error: ModelManagerError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None and self.result.ok

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.job.path),
            "platform_id": self.job.platform_id,
            "video_id": self.job.video_id,
            "input_digest": self.input_digest,
            "ok": self.ok,
            "manifest": None
            if self.result is None
            else self.result.manifest.model_dump(mode="json"),
            "error": None if self.error is None else self.error.to_dict(),
        }


def run_all(
    batch: Batch, videos: list[tuple[VideoJob, VideoInfo]], *, quiet: bool
) -> list[Outcome]:
    """Each video in turn, with a bar per video and an overall one (on a terminal)."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f}"),
        TimeElapsedColumn(),
    )
    # Nothing of a transient bar shows on a console that is not a terminal: skip its thread.
    disable = quiet or not stderr.is_terminal
    outcomes: list[Outcome] = []
    with Progress(*columns, console=stderr.console, transient=True, disable=disable) as bar:
        overall = bar.add_task("videos", total=len(videos)) if len(videos) > 1 else None
        for job, info in videos:
            name = f"{job.platform_id}/{job.video_id}"
            count = len(job.components or batch.components)
            task = bar.add_task(name, total=count)
            # With no bar to show a wait (not a terminal, not --json), a line says it.
            say_waits = disable and not quiet
            outcomes.append(run_one(batch, job, info, bar, task, name, say_waits=say_waits))
            bar.remove_task(task)
            if overall is not None:
                bar.advance(overall)
    return outcomes


def run_one(
    batch: Batch,
    job: VideoJob,
    info: VideoInfo,
    bar: Progress,
    task: TaskID,
    name: str,
    *,
    say_waits: bool,
) -> Outcome:
    """One video's run (its digest, its lazily decoded inputs, the Runner), or the error
    that kept it from running; Ctrl-C/SIGTERM stops every video (RunInterrupted)."""
    from modelmanager.errors import ModelManagerError, RunInterrupted
    from modelmanager.media import VideoInputs
    from modelmanager.run.runner import Runner

    outcome = Outcome(job)
    context: dict[str, Any] = {}
    try:
        outcome.input_digest = batch.models.digester.digest(job.path).digest
        inputs = VideoInputs(info, batch.policy)  # decoded only if a component computes
        context = run_context_for(
            job, outcome.input_digest, batch.policy, batch.run_id, batch.defaults
        )
        runner = Runner(
            batch.models.for_run(context),
            batch.store,
            batch.settings.resolved_artifact_root,
            mapping_source=batch.mapping_source,
            lease_ttl_s=batch.settings.lease_ttl_s,
            lease_wait_s=batch.settings.lease_wait_s,
            verify_artifacts=batch.verify,
            placements=batch.placements,
        )

        def on_component(component: Component, entry: ComponentEntry | None) -> None:
            if entry is None:
                bar.update(task, description=f"{name}: {component.name}")
            else:
                bar.advance(task)

        def on_wait(component: Component, owner: str) -> None:
            waiting = f"{name}: {component.name}: waiting for {owner} computing the same key"
            bar.update(task, description=waiting)
            if say_waits:
                stderr.print(waiting, markup=False)

        wanted = batch.components
        if job.components is not None:
            wanted = [c for c in wanted if c.name in job.components]
        outcome.result = runner.run(wanted, inputs, on_component=on_component, on_wait=on_wait)
    except KeyboardInterrupt as stop:
        run = context.get("run_id")
        raise RunInterrupted(
            f"{name}: stopped ({stop or 'SIGINT'})"
            + (f"; run {run} is recorded as interrupted, with its manifest" if run else ""),
            run_id=run,
        ) from None
    except ModelManagerError as exc:
        outcome.error = exc
    return outcome


def check_job_components(jobs: list[VideoJob], running: list[str]) -> None:
    """Each video's own ``components`` (from the video list) are among the run's."""
    from modelmanager.errors import ConfigurationInvalid

    for job in jobs:
        extra = [c for c in job.components or () if c not in running]
        if extra:
            raise ConfigurationInvalid(
                f"{job.platform_id}/{job.video_id}: components {', '.join(map(repr, extra))} "
                f"are not among this run's ({', '.join(running)})",
                video_id=job.video_id,
                components=extra,
                hint="Name in a video's components only components the run runs.",
            )


def exit_code(outcomes: list[Outcome]) -> int:
    """2 if a video was bad input (a truncated file fails the components that read it with
    video_invalid), else 1 if anything failed, else 0."""
    from modelmanager.errors import ERROR_CLASSES

    codes = [o.error.code for o in outcomes if o.error is not None]
    codes += [
        c.error_code
        for o in outcomes
        if o.result is not None
        for c in o.result.manifest.components
        if c.error_code
    ]
    if any(code in ERROR_CLASSES and ERROR_CLASSES[code].bad_input for code in codes):
        return 2
    return 0 if all(o.ok for o in outcomes) else 1


def run_table(result: RunResult, title: str | None = None) -> Table:
    """One row per component of a run: status, cache hit, time, device, batch, signature,
    and a failed component's error code and message."""
    from rich.table import Table

    from modelmanager.cli.runs import error_text

    run = result.manifest.run
    table = Table(title=title or f"run {run.run_id}  {run.status}", title_justify="left")
    for column in (
        "component",
        "status",
        "cache hit",
        "ms",
        "device",
        "batch",
        "signature",
        "error",
    ):
        table.add_column(column, no_wrap=column != "error")
    for c in result.manifest.components:
        table.add_row(
            c.component,
            c.status,
            "yes" if c.cache_hit else "no",
            f"{c.duration_ms:.1f}",
            c.device_used or "-",
            "-" if c.batch_size is None else str(c.batch_size),
            c.model_signature[:19] + "…" if c.model_signature else "-",
            error_text(c.error_code, c.error),
        )
    return table


def print_outcome(outcome: Outcome, artifact_root: Path) -> None:
    from rich.markup import escape

    from modelmanager.errors import hint_for

    job = outcome.job
    name = f"{escape(job.platform_id)}/{escape(job.video_id)}"
    if outcome.error is not None:  # on stderr, like every error; the others' tables go on
        stderr.print(f"[bold red]error[/] {name}: {escape(str(outcome.error))}")
        hint = hint_for(outcome.error)
        if hint:
            stderr.print(f"  hint: {hint}", markup=False)
        return
    digest = (outcome.input_digest or "-")[:19]
    stdout.print(f"[bold]{name}[/]  {escape(str(job.path))}  {digest}…")
    assert outcome.result is not None
    result = outcome.result
    stdout.print(run_table(result))
    stdout.print(f"manifest  {result.manifest_path}", markup=False, soft_wrap=True)
    for c in result.manifest.components:
        if c.artifact is not None:
            stdout.print(
                f"artifact  {artifact_root / c.artifact.relpath}", markup=False, soft_wrap=True
            )
    stdout.print()
