"""The ``modelmanager`` command: every group and command, assembled.

Command modules import typer, rich and ``cli._common`` at the top and anything
heavier (the index, runtimes, numpy) inside the command that needs it, so
``modelmanager --help`` costs little more than importing typer (``make bench``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from modelmanager.cli import db, gc, gpus, lint, mapping, models, plan, profiles, run, runs, triton
from modelmanager.cli._common import command_group

__all__ = ["app", "main"]

app = command_group("The model system of the video-analytics pipeline.", name="modelmanager")


def _print_version(value: bool) -> None:
    if value:
        from modelmanager import __version__

        typer.echo(f"modelmanager {__version__}")
        raise typer.Exit()


def _setting(variable: str, help: str) -> Any:
    """The root option of one setting (see :class:`modelmanager.config.Settings`)."""
    return typer.Option(help=f"{help} [env: MODELMANAGER_{variable}]", show_default=False)


@app.callback()
def _main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log debug details and show tracebacks.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    # Every setting (modelmanager.config.Settings) as a flag, read by cli._common's
    # current_settings from this context's params; a flag wins over its variable.
    models_root: Annotated[Path | None, _setting("MODELS_ROOT", "Root of local weights.")] = None,
    cache_dir: Annotated[
        Path | None, _setting("CACHE_DIR", "Per-host caches (the digest cache).")
    ] = None,
    digest_workers: Annotated[
        int | None, _setting("DIGEST_WORKERS", "Threads hashing files (default: CPU count).")
    ] = None,
    data_dir: Annotated[
        Path | None, _setting("DATA_DIR", "Home of the SQLite run index and the artifacts.")
    ] = None,
    database_url: Annotated[
        str | None, _setting("DATABASE_URL", "The run index (sqlite:///… or postgresql://…).")
    ] = None,
    artifact_root: Annotated[
        Path | None, _setting("ARTIFACT_ROOT", "Where artifacts and manifests go.")
    ] = None,
    lease_ttl_s: Annotated[
        float | None, _setting("LEASE_TTL_S", "Seconds a claim on a cache key lasts unrenewed.")
    ] = None,
    lease_wait_s: Annotated[
        float | None,
        _setting("LEASE_WAIT_S", "Seconds to wait for another worker computing the same key."),
    ] = None,
    gc_keep_previous: Annotated[
        int | None, _setting("GC_KEEP_PREVIOUS", "gc keeps this many runs before the newest.")
    ] = None,
    gc_temp_ttl_days: Annotated[
        float | None, _setting("GC_TEMP_TTL_DAYS", "Temporary data of a run expires after.")
    ] = None,
    gc_hard_cap_days: Annotated[
        float | None, _setting("GC_HARD_CAP_DAYS", "Nothing older survives gc.")
    ] = None,
    gpu_inventory: Annotated[
        Path | None,
        _setting("GPU_INVENTORY", "A GPU inventory file used instead of NVML's."),
    ] = None,
) -> None:
    import logging
    import sys

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


app.command()(mapping.resolve)
app.command()(mapping.health)
app.command()(mapping.digest)
app.command()(runs.explain)
app.command("run")(run.run)
app.command("plan")(plan.plan_command)
app.command("gpus")(gpus.gpus_command)
app.add_typer(runs.runs_app, name="runs")
app.add_typer(db.db_app, name="db")
app.add_typer(profiles.profiles_app, name="profiles")
app.add_typer(models.models_app, name="models")
app.add_typer(models.licenses_app, name="licenses")
app.add_typer(triton.triton_app, name="triton")
app.command("lint-offline")(lint.lint_offline)
app.command("gc")(gc.gc_command)
app.command("orphans")(gc.orphans_command)
app.command("delete-video")(gc.delete_video_command)


def main() -> None:
    """Console entry point."""
    app()
