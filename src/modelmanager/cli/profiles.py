"""``modelmanager profiles``: load YAML profiles into the run index, and list them (R-MAP-2).

    modelmanager profiles load PROFILE.yaml [--name NAME] [--json]
    modelmanager profiles list [--json]

The database profile is the production source of a run's mapping; a YAML
profile is a development seed that ``load`` validates and stores (replacing a
profile of the same name). The database is ``MODELMANAGER_DATABASE_URL``, else
the SQLite file in the data directory. Exit codes and error output are those
of the main command (D10).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from modelmanager.cli._common import (
    JsonOption,
    command_group,
    open_run_store,
    print_json,
    reported,
    stdout,
)
from modelmanager.errors import InvalidModelSpec

__all__ = ["profiles_app"]

profiles_app = command_group(
    "Profiles in the run index database: the production source of mappings."
)


@profiles_app.command("load")
def load(
    profile: Annotated[Path, typer.Argument(help="Profile YAML (or JSON).")],
    name: Annotated[
        str | None,
        typer.Option("--name", help="Store under this name [default: the profile's `profile:`]."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Validate a profile file and store it in the database (replacing one of the same name)."""
    from rich.markup import escape

    from modelmanager.mapping.sources import load_document

    with reported(as_json):
        document = load_document(profile)
        stored_name = name if name is not None else document.get("profile")
        if not isinstance(stored_name, str) or not stored_name:
            raise InvalidModelSpec(
                f"{profile}: the profile has no `profile:` name; pass --name",
                source=str(profile),
                field="profile",
            )
        with open_run_store() as store:
            store.save_profile(stored_name, document)
            stored = store.load_profile(stored_name) or {}
            database = store.url
    # What the database now holds, read back.
    components = {
        component: sorted(roles) for component, roles in sorted(stored["components"].items())
    }
    summary: dict[str, Any] = {
        "profile": stored_name,
        "source": str(profile),
        "database": database,
        "format_version": stored.get("format_version", 1),
        "components": components,
    }
    if as_json:
        print_json(summary)
        return
    models = sum(len(roles) for roles in components.values())
    stdout.print(
        f"stored profile [bold]{escape(stored_name)}[/] from {escape(str(profile))} "
        f"in {escape(database)}: {len(components)} components, {models} models"
    )
    for component, roles in components.items():
        stdout.print(f"  {escape(component)}: {escape(', '.join(roles)) or '(no models)'}")


@profiles_app.command("list")
def list_profiles(as_json: JsonOption = False) -> None:
    """List the profiles stored in the database."""
    from rich.markup import escape
    from rich.table import Table

    with reported(as_json), open_run_store(create=False) as store:
        names = store.list_profiles()
        database = store.url
    if as_json:
        print_json({"database": database, "profiles": names})
        return
    if not names:
        stdout.print(
            f"no profiles in {escape(database)}; load one with `modelmanager profiles load`"
        )
        return
    stdout.print(f"profiles in {escape(database)}:")
    table = Table("profile")
    for profile_name in names:
        table.add_row(escape(profile_name))
    stdout.print(table)
