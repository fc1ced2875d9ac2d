"""The ``modelmanager`` command: every group and command, assembled.

Command modules import typer, rich and ``cli._common`` at the top and anything
heavier (the index, runtimes, numpy) inside the command that needs it, so
``modelmanager --help`` costs little more than importing typer (``make bench``).
"""

from __future__ import annotations

from typing import Annotated

import typer

from modelmanager.cli import db, gc, lint, mapping, models, profiles, run, runs, triton
from modelmanager.cli._common import command_group

__all__ = ["app", "main"]

app = command_group("The model system of the video-analytics pipeline.", name="modelmanager")


def _print_version(value: bool) -> None:
    if value:
        from modelmanager import __version__

        typer.echo(f"modelmanager {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
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
