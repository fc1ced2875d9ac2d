"""plan: what planning devices and batches costs a run (issue 14, R-RES-1, R-SCHED).

Setup: a profile document of 20 GPU components (``device_policy: cuda``), each with two
roles and memory checklists, and an injected inventory of 8 GPUs with different free
memory (no GPU is needed: the planner reads only the inventory).

Timed, alternating, median of the repetitions:

* ours: ``plan_components(document, inventory, component_limits=…)``: every component
  placed on the least-loaded GPU that fits, its batch chosen, the document copied with
  the devices filled;
* floor: ``parse_mapping`` of the same document with the devices already filled, which
  every run pays anyway (the plan's extra cost is ours − nothing; the floor shows its
  scale).

Reported per component, and as placements per second. Then the placements several
workers on one host share: ``RunStore.reserve_gpu`` (read the host's live reservations,
choose the least-loaded GPU, record the reservation, one transaction) followed by
``release_gpu``, on a scratch SQLite index, against a bare ``SELECT 1`` transaction on
the same store (the floor of any write). No target in the issue.
"""

from __future__ import annotations

import copy
from typing import Any

from modelmanager.index import RunStore
from modelmanager.mapping.spec import parse_mapping
from modelmanager.resources.inventory import GpuInfo, Inventory
from modelmanager.resources.planner import plan_components

from .harness import Result, Workspace, interleaved, median

NAME = "plan"
COMPONENTS = 20
GPUS = 8


def _document() -> dict[str, Any]:
    def entry(model: str, fixed: int, per_item: int) -> dict[str, Any]:
        return {
            "model_name": model,
            "model_version": "1.0.0",
            "weights_digest": "sha256:" + "ab" * 32,
            "runtime": "inprocess",
            "engine": "onnx",
            "precision": "fp16",
            "device_policy": "cuda",
            "artifacts": {"onnx_path": f"{model}/1.0.0/model.onnx"},
            "memory": {"fixed_mib": fixed, "per_item_mib": per_item, "max_batch": 64},
        }

    components = {
        f"component_{c}": {
            "detector": entry(f"det-{c}", 300 + 10 * c, 20),
            "recognizer": entry(f"rec-{c}", 200, 5 + c),
        }
        for c in range(COMPONENTS)
    }
    return {"format_version": 1, "profile": "bench-gpu", "components": components}


def _inventory() -> Inventory:
    gpus = tuple(
        GpuInfo(
            index=i,
            name="NVIDIA A10G",
            uuid=f"GPU-{i:08d}",
            total_mib=23_028,
            free_mib=23_028 - 1500 * i,
            used_mib=1500 * i,
            utilization_pct=10 * i,
            processes=(),
        )
        for i in range(GPUS)
    )
    return Inventory(gpus=gpus, source="bench", driver_version="550.54.15")


def run(ws: Workspace) -> list[Result]:
    document, inventory = _document(), _inventory()
    limits = dict.fromkeys(document["components"], 32)
    filled = plan_components(document, inventory, component_limits=limits).document
    reps = 200 if ws.config.quick else 2000
    samples = interleaved(
        {
            "plan": lambda: plan_components(document, inventory, component_limits=limits),
            "parse": lambda: parse_mapping(copy.deepcopy(filled)),
        },
        reps,
        warmup=20,
    )
    plan_us, parse_us = median(samples["plan"]) / 1e3, median(samples["parse"]) / 1e3
    per_component = plan_us / COMPONENTS
    return [
        Result(
            name="plan: devices and batches, per component",
            value=per_component,
            unit="µs",
            baseline_name="parse_mapping of the planned profile, per component",
            baseline_value=parse_us / COMPONENTS,
            ratio=plan_us / parse_us,
            target="none (reported)",
            met=None,
            notes=f"{COMPONENTS} GPU components × 2 roles with checklists, {GPUS} GPUs "
            f"(injected); whole plan {plan_us:.0f} µs, median of {reps}",
        ),
        Result(
            name="plan: placements per second",
            value=1e6 / per_component,
            unit="placements/s",
            baseline_name=None,
            baseline_value=None,
            ratio=None,
            target="none (reported; in one process)",
            met=None,
        ),
        _reservations(ws, inventory),
    ]


def _reservations(ws: Workspace, inventory: Inventory) -> Result:
    from sqlalchemy import text

    url = f"sqlite:///{ws.scratch_dir('plan-reservations') / 'index.sqlite3'}"
    free = {gpu.uuid: gpu.free_mib for gpu in inventory.gpus}

    def choose(promised: Any) -> tuple[str, int]:
        return max(free, key=lambda uuid: free[uuid] - promised.get(uuid, 0)), 10

    reps = 200 if ws.config.quick else 1000
    with RunStore.open(url) as store:

        def reserve_and_release() -> None:
            found = store.reserve_gpu("bench-host", "bench:1:a", "c", choose, ttl_s=600)
            assert found is not None
            store.release_gpu(found)

        def bare_write() -> None:
            with store.engine.begin() as conn:
                conn.execute(text("SELECT 1"))

        samples = interleaved({"ours": reserve_and_release, "bare": bare_write}, reps, warmup=10)
    ours_us, bare_us = median(samples["ours"]) / 1e3, median(samples["bare"]) / 1e3
    return Result(
        name="plan: a reservation in the run index (reserve + release), SQLite",
        value=ours_us,
        unit="µs",
        baseline_name="a bare write transaction (SELECT 1)",
        baseline_value=bare_us,
        ratio=ours_us / bare_us,
        target="none (reported)",
        met=None,
        notes=f"{1e6 / ours_us:,.0f} placements/s from one worker; two transactions each "
        f"(reserve, release); median of {reps}",
    )
