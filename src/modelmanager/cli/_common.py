"""What every ``modelmanager`` subcommand shares: consoles, options, error reporting (D10)."""

from __future__ import annotations

import json
import sys
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer import _click as click  # the click typer runs on (its own copy since typer 0.26)
from typer._click.globals import get_current_context
from typer.core import TyperGroup

from modelmanager.errors import (
    ConfigurationInvalid,
    InternalError,
    ModelManagerError,
    hint_for,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from modelmanager.config import Settings
    from modelmanager.index import RunStore
    from modelmanager.mapping.sources import MappingSource
    from modelmanager.mapping.spec import ResolvedMapping

__all__ = [
    "ComponentOption",
    "JsonOption",
    "JsonUsageGroup",
    "ModelsRootOption",
    "SourceArgument",
    "command_group",
    "current_settings",
    "mapping_from",
    "open_run_store",
    "plain_table",
    "print_json",
    "report",
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


_JSON_FLAG = "--json"
_JSON_META = "modelmanager.json"


class JsonUsageGroup(TyperGroup):
    """A typer group whose usage errors (a missing argument, an unknown option, a bad
    choice) follow the project's contract when ``--json`` is among the arguments: one
    JSON document on stdout (``configuration_invalid``, exit 2) instead of click's usage
    text. Without ``--json`` click's usage text stays, with its exit 2.

    The root group's ``invoke`` covers the subcommands too: a subcommand's arguments are
    parsed (``make_context``) inside its group's ``invoke``.
    """

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        as_json = _JSON_FLAG in args or (parent is not None and _wants_json(parent))
        with _usage_errors_as_json(as_json):
            ctx = super().make_context(info_name, args, parent=parent, **extra)
        ctx.meta[_JSON_META] = as_json
        return ctx

    def invoke(self, ctx: click.Context) -> Any:
        as_json = _wants_json(ctx)
        with _usage_errors_as_json(as_json):
            try:
                return super().invoke(ctx)
            except (typer.Exit, typer.Abort, click.ClickException):
                raise
            except ModelManagerError as exc:  # one a command did not report itself
                report(exc, as_json=as_json)
                raise typer.Exit(exc.exit_code) from None
            except Exception as exc:  # a bug: still one line (or document), under a code
                error = InternalError(
                    f"unexpected {type(exc).__name__}: {exc}", exception=type(exc).__name__
                )
                error.__cause__ = exc
                report(error, as_json=as_json)
                raise typer.Exit(error.exit_code) from None


def _wants_json(ctx: click.Context) -> bool:
    return bool(ctx.meta.get(_JSON_META)) or _JSON_FLAG in _pending_args(ctx)


def _pending_args(ctx: click.Context) -> Sequence[str]:
    protected = getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])
    return [*protected, *ctx.args]


@contextmanager
def _usage_errors_as_json(as_json: bool) -> Iterator[None]:
    """Report a click usage error as ``configuration_invalid`` JSON (exit 2) under ``--json``."""
    try:
        yield
    except click.ClickException as exc:
        if not as_json:
            raise
        ctx = getattr(exc, "ctx", None)
        param = getattr(exc, "param", None)
        error = ConfigurationInvalid(
            exc.format_message(),
            usage=ctx.get_usage().removeprefix("Usage: ") if ctx is not None else None,
            command=ctx.command_path if ctx is not None else None,
            param=getattr(param, "name", None),
        )
        report(error, as_json=True)
        raise typer.Exit(error.exit_code) from None


def command_group(help: str, name: str | None = None) -> typer.Typer:
    """A typer app (the command or one of its groups) with the project's settings."""
    return typer.Typer(
        name=name,
        help=help,
        cls=JsonUsageGroup,
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
        report(exc, as_json=as_json)
        raise typer.Exit(exc.exit_code) from None


def print_json(data: Any) -> None:
    """Print ``data`` as one JSON document on stdout, streamed: a large document (a resolve
    of 10k components is 13 MB) costs what ``json.dump`` costs, not rich's highlighting
    of it (20x the time, 1.4 GiB). Non-ASCII is escaped, so any stdout encoding takes it."""
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")
    sys.stdout.flush()


def report(exc: ModelManagerError, *, as_json: bool) -> None:
    """Print ``exc``: as one JSON document on stdout, or ``error [code] message`` and its
    hint on stderr; with ``-v``, its traceback and its cause's on stderr too."""
    if as_json:
        print_json(exc.to_dict())
    else:
        from rich.markup import escape

        stderr.print(f"[bold red]error[/] {escape(str(exc))}")
        hint = hint_for(exc)
        if hint:
            stderr.print(f"  hint: {hint}", markup=False)
    if _root_params().get("verbose"):
        import traceback

        stderr.print("".join(traceback.format_exception(exc)).rstrip(), markup=False)


def _root_params() -> dict[str, Any]:
    """The options given to ``modelmanager`` itself (``-v``, the settings' flags)."""
    ctx = get_current_context(silent=True)
    return {} if ctx is None else ctx.find_root().params


def current_settings() -> Settings:
    """The command's settings: the root flags, then ``MODELMANAGER_*``, then the defaults.

    Raises:
        ConfigurationInvalid: a value does not fit its setting.
    """
    from modelmanager.config import Settings

    params = _root_params()
    flags = {name: params[name] for name in Settings.model_fields if params.get(name) is not None}
    return Settings(**flags)


def open_run_store(given: Settings | None = None, *, create: bool = True) -> RunStore:
    """The run index of the settings (``--database-url``), migrated if it must be.

    Read-only commands pass ``create=False``: a database without a run index is left
    untouched and a DatabaseError says so (hint: ``modelmanager db upgrade``).
    """
    from modelmanager.index import RunStore

    return RunStore.open((given or current_settings()).resolved_database_url, create=create)


def mapping_from(
    source: str, settings: Settings
) -> tuple[ResolvedMapping, MappingSource, dict[str, Any] | None]:
    """The mapping a command's SOURCE names, where it came from, and a run payload's
    run_context (None otherwise): a profile file, a run payload file (its embedded
    mapping wins, R-MAP-1), or the name of a profile in the database (read only).

    Raises:
        ProfileLoadFailed, InvalidModelSpec: the file cannot be read or breaks a rule.
        ModelMappingMissing: no such profile in the database.
        DatabaseError: the database cannot be read.
    """
    from modelmanager.mapping.sources import load_document, resolve_mapping

    path = Path(source)
    if not path.is_file() and "/" not in source and path.suffix not in {".yaml", ".yml", ".json"}:
        with open_run_store(settings, create=False) as store:
            mapping, origin = resolve_mapping(store=store, profile_name=source)
        return mapping, origin, None
    document = load_document(source)
    is_payload = "model_mapping" in document
    mapping, origin = resolve_mapping(
        payload=document if is_payload else None,
        profile_path=None if is_payload else source,
    )
    run_context = document.get("run_context") if is_payload else None
    return mapping, origin, run_context if isinstance(run_context, dict) else None


def plain_table(*columns: str, wrap: Collection[str] = ()) -> Table:
    """The commands' plain table: bold headers, no box; columns not in ``wrap`` never wrap."""
    from rich.table import Table

    result = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        result.add_column(column, no_wrap=column not in wrap)
    return result
