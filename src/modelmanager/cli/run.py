"""``modelmanager run``: the main job — the pipeline's components over real videos.

    modelmanager run SOURCE VIDEO --video-id ID [--platform-id P]
    modelmanager run SOURCE --videos LIST
        [--models-root DIR] [--runtime inprocess|triton] [--verify-artifacts stat|full]
        [--run-id ID] [-c COMPONENT]... [--json]

SOURCE is a profile file, a run payload file (its embedded mapping wins, R-MAP-1), or
the name of a profile in the database. Each video is decoded once (PyAV, streamed) as
the profile's ``sampling:`` policy says, hashed (through the digest cache: a re-run costs
a stat), and run as its own run: its own run id, manifest and table; the models are
opened once for all of them. Ids come from the flags or the video list, never from file
names (:mod:`modelmanager.media.jobs`). The input's digest is in every cache key, so
other bytes under the same ids are computed anew, with a warning naming both digests.

Components run are those of :data:`modelmanager.components.REGISTRY`; the profile must
map each (or ``-c`` names the ones to run); a profile component none of them consumes (a
misspelling) is an error naming the closest known one. These, the ids, missing files
and files that are no video are refused before anything runs (exit 2). One video's
failure does not stop the others; the exit code is 0 when every component of every
video succeeded, 2 when a video turned out not decodable (truncated), else 1.

A fully cached run opens no model and re-hashes no artifact whose stat is unchanged
(``--verify-artifacts full`` re-hashes them), so this module imports only what such a
run needs; the model runtimes, the Triton tooling and the components' own libraries
load when a component is computed or ``--runtime triton`` is asked for.
"""

from __future__ import annotations

from contextlib import ExitStack, nullcontext
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelmanager.cli._common import (
    JsonOption,
    ModelsRootOption,
    SourceArgument,
    current_settings,
    print_json,
    reported,
    stderr,
)

if TYPE_CHECKING:
    from modelmanager.run.contract import Component

__all__ = ["run"]


class RuntimeChoice(StrEnum):
    inprocess = "inprocess"
    triton = "triton"


class VerifyChoice(StrEnum):
    stat = "stat"
    full = "full"


def run(
    source: SourceArgument,
    videos: Annotated[
        list[Path] | None,
        typer.Argument(help="One video file (MP4, WebM, ...); several: use --videos."),
    ] = None,
    video_id: Annotated[
        str | None, typer.Option(help="The video's id (never taken from its file name).")
    ] = None,
    platform_id: Annotated[str, typer.Option(help="The video's platform.")] = "local",
    video_list: Annotated[
        Path | None,
        typer.Option(
            "--videos",
            help='A YAML/JSON list of {"file", "platform_id", "video_id"}: many videos, '
            "one process, each model opened once.",
        ),
    ] = None,
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
    run_id: Annotated[
        str | None, typer.Option(help="Default: a new random id (one video only).")
    ] = None,
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
    """Run the pipeline's components over videos: cached, reproducible, with manifests."""
    from modelmanager.cli.run_videos import (
        Batch,
        check_job_components,
        context_defaults,
        exit_code,
        known_components,
        planned_mapping,
        print_outcome,
        run_all,
    )
    from modelmanager.components import REGISTRY
    from modelmanager.config import require_models_root
    from modelmanager.errors import ConfigurationInvalid
    from modelmanager.index import RunStore
    from modelmanager.manager import ModelManager
    from modelmanager.mapping.sampling import DEFAULT_POLICY
    from modelmanager.media import probe_video
    from modelmanager.media.jobs import video_jobs
    from modelmanager.run.signals import sigterm_as_interrupt

    with reported(as_json), ExitStack() as stack:
        settings = current_settings()
        stack.enter_context(sigterm_as_interrupt())
        jobs = video_jobs(
            videos or [], platform_id=platform_id, video_id=video_id, video_list=video_list
        )
        if run_id is not None and len(jobs) > 1:
            raise ConfigurationInvalid(
                "--run-id names one run; a video list makes one run per video",
                param="run_id",
                hint="Leave --run-id out: each video's run gets a new random id.",
            )
        # Not a video, no video stream: refused before any run.
        videos_found = [(job, probe_video(job.path)) for job in jobs]
        mapping, origin, payload_context, placements = planned_mapping(source, settings)
        components: list[Component] = [
            REGISTRY[name]()
            for name in known_components(mapping.components, REGISTRY, source, only or ())
        ]
        check_job_components(jobs, [c.name for c in components])
        root = models_root if models_root is not None else settings.models_root
        if runtime is RuntimeChoice.triton:
            from modelmanager.triton.local import local_triton  # its server tooling: only here

            starting = nullcontext() if as_json else stderr.status("starting a local Triton server")
            with starting:
                mapping = stack.enter_context(local_triton(mapping, require_models_root(root)))
        store = stack.enter_context(RunStore.open(settings.resolved_database_url))
        models = stack.enter_context(
            ModelManager(None, mapping, models_root=root, settings=settings)
        )
        batch = Batch(
            models=models,
            store=store,
            settings=settings,
            components=components,
            policy=mapping.sampling or DEFAULT_POLICY,
            mapping_source=str(origin),
            defaults=context_defaults(payload_context),
            run_id=run_id,
            verify="full" if verify_artifacts is VerifyChoice.full else "stat",
            placements=placements,
        )
        outcomes = run_all(batch, videos_found, quiet=as_json)
    if as_json:
        print_json(
            {"ok": all(o.ok for o in outcomes), "runs": [o.to_json_dict() for o in outcomes]}
        )
    else:
        for outcome in outcomes:
            print_outcome(outcome, settings.resolved_artifact_root)
    raise typer.Exit(exit_code(outcomes))
