"""What every ``modelmanager`` subcommand shares: consoles, options, error reporting (D10)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from modelmanager.errors import ModelManagerError, hint_for

if TYPE_CHECKING:
    from modelmanager.config import Settings
    from modelmanager.index import RunStore

__all__ = [
    "ComponentOption",
    "JsonOption",
    "ModelsRootOption",
    "SourceArgument",
    "command_group",
    "open_run_store",
    "reported",
    "stderr",
    "stdout",
]

stdout = Console(highlight=False)
stderr = Console(stderr=True, highlight=False)
for _console in (stdout, stderr):
    if not _console.is_terminal:  # piped output: no wrapping at 80 columns
        _console.width = 200

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
SourceArgument = Annotated[
    str, typer.Argument(help="Profile YAML, run payload JSON, or the name of a database profile.")
]
ComponentOption = Annotated[
    str | None, typer.Option("--component", "-c", help="Only this component.")
]
ModelsRootOption = Annotated[
    Path | None, typer.Option(help="Root of local weights [env: MODELMANAGER_MODELS_ROOT].")
]


def command_group(help: str, name: str | None = None) -> typer.Typer:
    """A typer app (the command or one of its groups) with the project's settings."""
    return typer.Typer(
        name=name,
        help=help,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        # Plain help: typer's rich help formatter imports ~80 ms of rich for one screen
        # of text (`modelmanager --help` must stay near `import typer`, make bench).
        rich_markup_mode=None,
    )


@contextmanager
def reported(as_json: bool) -> Iterator[None]:
    """Turn a ModelManagerError into its message (or JSON) and exit code."""
    try:
        yield
    except ModelManagerError as exc:
        if as_json:
            stdout.print_json(data=exc.to_dict())
        else:
            stderr.print(f"[bold red]error[/] {escape(str(exc))}")
            hint = hint_for(exc)
            if hint:
                stderr.print(f"  hint: {hint}", markup=False)
        raise typer.Exit(exc.exit_code) from None


def open_run_store(settings: Settings | None = None) -> RunStore:
    """The run index of the settings (``MODELMANAGER_DATABASE_URL``), migrated if it must be."""
    from modelmanager.config import Settings
    from modelmanager.index import RunStore

    return RunStore.open((settings or Settings()).resolved_database_url)
