"""What every ``modelmanager`` subcommand shares: consoles, options, error reporting (D10)."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelmanager.errors import ModelManagerError, hint_for

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from modelmanager.config import Settings
    from modelmanager.index import RunStore

__all__ = [
    "ComponentOption",
    "JsonOption",
    "ModelsRootOption",
    "SourceArgument",
    "command_group",
    "open_run_store",
    "plain_table",
    "reported",
    "stderr",
    "stdout",
]


class _LazyConsole:
    """A rich ``Console`` made on first use: rich costs ~30 ms to import, and ``--help``
    or a command that fails early prints nothing through it."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        """The console itself (what rich's ``Progress(console=...)`` takes)."""
        if self._console is None:
            from rich.console import Console

            console = Console(stderr=self._stderr, highlight=False)
            if not console.is_terminal:  # piped output: no wrapping at 80 columns
                console.width = 200
            self._console = console
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.console, name)


stdout = _LazyConsole(stderr=False)
stderr = _LazyConsole(stderr=True)

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
            from rich.markup import escape

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


def plain_table(*columns: str, wrap: Collection[str] = ()) -> Table:
    """The commands' plain table: bold headers, no box; columns not in ``wrap`` never wrap."""
    from rich.table import Table

    result = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        result.add_column(column, no_wrap=column not in wrap)
    return result
