"""``modelmanager db``: the run index database's schema.

    modelmanager db upgrade [--json]

``upgrade`` creates the run index in an empty database, or brings one at an older
revision to the newest (Alembic ``upgrade head``, safe while other processes open
it). Read-only commands never create it: pointed at a database without a run
index, they say so and point here. The database is ``MODELMANAGER_DATABASE_URL``,
else the SQLite file in the data directory. Exit codes and error output are those
of the main command (D10).
"""

from __future__ import annotations

from typing import Any

from modelmanager.cli._common import (
    JsonOption,
    command_group,
    current_settings,
    print_json,
    reported,
    stdout,
)

__all__ = ["db_app"]

db_app = command_group("The run index database: create it, or bring its schema up to date.")


@db_app.command("upgrade")
def upgrade(as_json: JsonOption = False) -> None:
    """Create the run index, or migrate it to the newest revision (nothing to do if it is)."""
    from rich.markup import escape

    from modelmanager.index import RunStore
    from modelmanager.index.migrations import HEAD

    with reported(as_json):
        url = current_settings().resolved_database_url
        with RunStore.open(url, migrate=False) as store:
            before = store.revision()
            if before != HEAD:
                store.upgrade()
            after = store.revision()
            database = store.url
    summary: dict[str, Any] = {
        "database": database,
        "from_revision": before,
        "revision": after,
        "upgraded": before != after,
    }
    if as_json:
        print_json(summary)
        return
    if before == after:
        stdout.print(f"run index in {escape(database)} is at the newest revision {after}")
    elif before is None:
        stdout.print(f"created the run index in {escape(database)} (revision {after})")
    else:
        stdout.print(f"upgraded the run index in {escape(database)}: {before} -> {after}")
