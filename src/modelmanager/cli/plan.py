"""``modelmanager plan``: each component's device and batch, and why, without running."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelmanager.cli._common import (
    JsonOption,
    current_settings,
    plain_table,
    print_json,
    reported,
    stdout,
)

__all__ = ["plan_command"]


def plan_command(
    profile: Annotated[Path, typer.Argument(help="Profile YAML or JSON.")],
    inventory: Annotated[
        Path | None,
        typer.Option(
            help="An injected GPU inventory (JSON, as `gpus --json` prints); "
            "default: this machine's GPUs through NVML."
        ),
    ] = None,
    headroom_mib: Annotated[int, typer.Option(min=0, help="MiB left free on every GPU.")] = 512,
    as_json: JsonOption = False,
) -> None:
    """Place each component on a device and choose its batch, from the GPUs' free memory
    and the models' memory checklists; nothing runs."""
    from modelmanager.components import batch_limits
    from modelmanager.mapping.sources import load_document
    from modelmanager.mapping.spec import parse_mapping
    from modelmanager.resources.inventory import read_inventory
    from modelmanager.resources.planner import plan_components

    with reported(as_json):
        document = load_document(profile)
        gpus = read_inventory(inventory or current_settings().gpu_inventory)
        plan = plan_components(
            document,
            gpus,
            component_limits=batch_limits(),
            headroom_mib=headroom_mib,
            source=str(profile),
        )
        parse_mapping(plan.document, source=str(profile))  # every device is now set
    if as_json:
        print_json(plan.to_json_dict())
        return
    stdout.print(f"inventory: {plan.inventory_source}   headroom: {headroom_mib} MiB", markup=False)
    table = plain_table("component", "device", "batch", "need MiB", "reason", wrap=("reason",))
    for p in plan.placements:
        need = "-" if p.need_mib is None else str(p.need_mib)
        table.add_row(p.component, p.device, str(p.batch_size), need, p.reason)
    stdout.print(table)
