"""``modelmanager gpus``: the GPUs this machine has, through NVML (issue 14).

    modelmanager gpus [--inventory FILE] [--json]

Prints where the inventory came from, then one row per GPU: index, name, memory
(total, free, used, MiB), utilisation and compute processes. A machine without a GPU,
a driver or NVML prints why and exits 0 (it is information, not a failure);
``--inventory`` reads an injected inventory instead (exit 2 when it does not fit).
The inventory itself is :mod:`modelmanager.resources.inventory`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelmanager.cli._common import (
    JsonOption,
    current_settings,
    plain_table,
    print_json,
    reported,
    stdout,
)

if TYPE_CHECKING:
    from modelmanager.resources.inventory import GpuInfo, Inventory

__all__ = ["gpus_command"]

InventoryOption = Annotated[
    Path | None,
    typer.Option(
        "--inventory",
        metavar="FILE",
        help="Read this JSON inventory (the shape --json prints) instead of the machine's GPUs.",
        show_default=False,
    ),
]


def gpus_command(inventory: InventoryOption = None, as_json: JsonOption = False) -> None:
    """List the GPUs (memory, utilisation, processes) as NVML reports them; no GPU is no error."""
    from rich.markup import escape

    from modelmanager.resources.inventory import read_inventory

    with reported(as_json):
        found = read_inventory(inventory or current_settings().gpu_inventory)
    if as_json:
        print_json(found.to_json_dict())
        return
    stdout.print(_headline(found), markup=False, soft_wrap=True)
    if not found.gpus:
        return
    table = plain_table(
        "index", "name", "total MiB", "free MiB", "used MiB", "util %", "processes", wrap=["name"]
    )
    for gpu in found.gpus:
        table.add_row(
            str(gpu.index),
            escape(gpu.name),
            str(gpu.total_mib),
            str(gpu.free_mib),
            str(gpu.used_mib),
            "-" if gpu.utilization_pct is None else str(gpu.utilization_pct),
            _processes(gpu),
        )
    stdout.print(table)


def _headline(found: Inventory) -> str:
    driver = f"driver {found.driver_version}" if found.driver_version else None
    if found.source == "none":
        return f"no GPU: {found.note}" + (f" ({driver})" if driver else "")
    source = "NVML" if found.source == "nvml" else f"{found.source} (injected)"
    if not found.gpus:
        return f"no GPU in {source}"
    noun = "GPU" if len(found.gpus) == 1 else "GPUs"
    return f"{len(found.gpus)} {noun} from {source}" + (f", {driver}" if driver else "")


def _processes(gpu: GpuInfo) -> str:
    if not gpu.processes:
        return "-"
    return ", ".join(f"{pid} ({'?' if used is None else used} MiB)" for pid, used in gpu.processes)
