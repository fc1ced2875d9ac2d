"""``modelmanager run``: the main job — run the known components of a profile over a sample.

    modelmanager run PROFILE SAMPLE_DIR [--models-root DIR] [--runtime inprocess|triton]
                                        [--verify-artifacts stat|full] [--run-id ID] [--json]

Components run are those of :data:`modelmanager.components.REGISTRY` that the
profile maps; a profile component that none of them consumes (a misspelling) is
an error naming the closest known one (``invalid_model_spec``, exit 2), before
any run starts; the run index and artifacts are the embedded defaults (or
``MODELMANAGER_DATABASE_URL`` / ``MODELMANAGER_ARTIFACT_ROOT``). Running it a
second time on the same sample and profile serves every component from the
cache. ``--runtime triton`` serves the profile's ONNX models from a local
Triton server started for the run (:mod:`modelmanager.triton.local`); those
components get their own signatures and cache keys. Exit 0 when every
component succeeded, 1 otherwise, 2 on bad input.

A fully cached run opens no model and re-hashes no artifact whose stat is
unchanged (``--verify-artifacts full`` re-hashes them), so this module imports
only what such a run needs: the model runtimes (onnxruntime, tritonclient), the
Triton server tooling and the components' own libraries load when a component is
computed or ``--runtime triton`` is asked for.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from contextlib import ExitStack, nullcontext
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelmanager.cli._common import (
    JsonOption,
    ModelsRootOption,
    current_settings,
    print_json,
    reported,
    stderr,
    stdout,
)

if TYPE_CHECKING:
    from rich.table import Table

    from modelmanager.run.contract import Component
    from modelmanager.run.runner import Runner, RunResult
    from modelmanager.store.manifest import ComponentEntry

__all__ = ["known_components", "run", "run_context_for", "run_table"]


class RuntimeChoice(StrEnum):
    inprocess = "inprocess"
    triton = "triton"


class VerifyChoice(StrEnum):
    stat = "stat"
    full = "full"


def run(
    profile: Annotated[Path, typer.Argument(help="Profile YAML (e.g. from `models prepare`).")],
    sample: Annotated[Path, typer.Argument(help="Sample directory (frames.npz, sample.wav).")],
    models_root: ModelsRootOption = None,
    runtime: Annotated[
        RuntimeChoice,
        typer.Option(
            help="Where the ONNX models run: in this process, or in a local Triton server "
            "started from the same profile for this run.",
        ),
    ] = RuntimeChoice.inprocess,
    verify_artifacts: Annotated[
        VerifyChoice,
        typer.Option(
            help="How a cache hit checks its artifact: 'stat' trusts the per-host digest "
            "cache while the file's stat (inode, size, mtime, ctime) is the one recorded "
            "when it was written or last hashed, since any rewrite changes it; 'full' "
            "re-hashes every cached artifact.",
        ),
    ] = VerifyChoice.stat,
    run_id: Annotated[str | None, typer.Option(help="Default: a new random id.")] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--component",
            "-c",
            help="Run only this pipeline component (repeat for more); default: every one, "
            "and the profile must map each.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run the profile's components over a sample: cached, reproducible, with a manifest."""
    from modelmanager.components import REGISTRY
    from modelmanager.config import require_models_root
    from modelmanager.errors import ConfigurationInvalid, RunInterrupted
    from modelmanager.index import RunStore
    from modelmanager.manager import ModelManager
    from modelmanager.mapping.sources import resolve_mapping
    from modelmanager.run.runner import Runner
    from modelmanager.run.signals import sigterm_as_interrupt
    from modelmanager.tools.media import load_sample

    with reported(as_json), ExitStack() as stack:
        settings = current_settings()
        stack.enter_context(sigterm_as_interrupt())
        mapping, source = resolve_mapping(profile_path=profile)
        components: list[Component] = [
            REGISTRY[name]()
            for name in known_components(mapping.components, REGISTRY, profile, only or ())
        ]
        try:
            media = load_sample(sample)
        except ConfigurationInvalid as exc:  # its own field, so its own hint
            raise ConfigurationInvalid(
                exc.message, **{**exc.fields, "sample": str(sample)}
            ) from exc
        context = run_context_for(media.path, run_id)
        inputs = {"audio": media.audio, "sample_rate": media.sample_rate, "frames": media.frames}
        root = models_root if models_root is not None else settings.models_root
        if runtime is RuntimeChoice.triton:
            from modelmanager.triton.local import local_triton  # its server tooling: only here

            starting = nullcontext() if as_json else stderr.status("starting a local Triton server")
            with starting:
                mapping = stack.enter_context(local_triton(mapping, require_models_root(root)))
        store = stack.enter_context(RunStore.open(settings.resolved_database_url))
        mm = stack.enter_context(
            ModelManager(context, mapping, models_root=root, settings=settings)
        )
        runner = Runner(
            mm,
            store,
            settings.resolved_artifact_root,
            mapping_source=str(source),
            lease_ttl_s=settings.lease_ttl_s,
            lease_wait_s=settings.lease_wait_s,
            verify_artifacts="full" if verify_artifacts is VerifyChoice.full else "stat",
        )
        try:
            result = _run_with_progress(runner, components, inputs, quiet=as_json)
        except KeyboardInterrupt as stop:
            raise RunInterrupted(
                f"run {context['run_id']} was stopped ({stop or 'SIGINT'}); it is recorded "
                "as interrupted, with its manifest",
                run_id=context["run_id"],
            ) from None
    if as_json:
        print_json(result.manifest.model_dump(mode="json"))
    else:
        _print_result(result, settings.resolved_artifact_root)
    if not result.ok:
        raise typer.Exit(1)


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


def run_context_for(sample: Path, run_id: str | None = None) -> dict[str, str]:
    """The run context ``modelmanager run`` gives a run over the sample directory ``sample``:
    its cache keys depend on it (a benchmark seeds the cache with the same)."""
    from modelmanager import __version__

    return {
        "platform_id": "local",
        "video_id": sample.name,
        "run_id": run_id or f"run-{uuid.uuid4().hex[:12]}",
        "config_hash": "default",
        "sampling_policy_version": "1",
        "dataprocessor_version": __version__,
    }


def _run_with_progress(
    runner: Runner, components: list[Component], inputs: dict[str, Any], *, quiet: bool
) -> RunResult:

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    # Nothing of a transient bar shows on a console that is not a terminal: skip its thread.
    disable = quiet or not stderr.is_terminal
    with Progress(*columns, console=stderr.console, transient=True, disable=disable) as bar:
        tasks = {c.name: bar.add_task(c.name, total=1, start=False) for c in components}

        def on_component(component: Component, entry: ComponentEntry | None) -> None:
            task = tasks[component.name]
            if entry is None:
                bar.start_task(task)
            else:
                bar.update(task, completed=1, description=f"{component.name}: {entry.status}")

        def on_wait(component: Component, owner: str) -> None:
            waiting = f"{component.name}: waiting for {owner} computing the same key"
            if not disable:
                bar.update(tasks[component.name], description=waiting)
            elif not quiet:  # no spinner to say it: one line
                stderr.print(waiting, markup=False)

        return runner.run(components, inputs, on_component=on_component, on_wait=on_wait)


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


def _print_result(result: RunResult, artifact_root: Path) -> None:
    stdout.print(run_table(result))
    stdout.print(f"manifest  {result.manifest_path}", markup=False, soft_wrap=True)
    for c in result.manifest.components:
        if c.artifact is not None:
            stdout.print(
                f"artifact  {artifact_root / c.artifact.relpath}", markup=False, soft_wrap=True
            )
