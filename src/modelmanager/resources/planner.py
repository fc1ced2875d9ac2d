"""Where each component runs and with what batch, decided before the run (R-RES-1, R-SCHED).

A component's models share its device and its batch, so its need is the sum of its
roles' checklists (``memory:`` in each mapping entry, :class:`MemoryChecklist`)::

    need(batch) = Σ fixed_mib + Σ per_item_mib × batch         (max_batch: the smallest)

Placement (R-SCHED-2, R-MAP-4: the manager never picks a GPU): an entry pinned to
``cuda:N`` stays there; an entry with ``device_policy: cuda`` goes to the GPU with the
most memory still free after the placements made before it, among those where a batch
of one fits; ``cpu`` stays on the CPU. The batch is then the largest that fits that
GPU's free memory less :data:`HEADROOM_MIB` (and what earlier placements reserved),
capped by the checklist's ``max_batch`` and the component's own limit. Without a
checklist the component's own batch is used, unchecked, and the reason says so.
Nothing fits: :class:`~modelmanager.errors.InsufficientGpuMemory`, before anything runs.

The plan works on the profile's document (before its ``cuda`` entries have a device)
and returns it with every device filled: what the manager is then made from.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelmanager.errors import InsufficientGpuMemory, InvalidModelSpec
from modelmanager.mapping.spec import MemoryChecklist
from modelmanager.resources.inventory import GpuInfo, Inventory

__all__ = ["HEADROOM_MIB", "Placement", "Plan", "plan_components"]

HEADROOM_MIB = 512
"""Left free on every GPU: the CUDA context, the runtime's workspace, fragmentation."""


@dataclass(frozen=True)
class Placement:
    """One component's device and batch, with the numbers that chose them."""

    component: str
    device: str
    batch_size: int
    reason: str
    need_mib: int | None = None
    free_mib: int | None = None

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "device": self.device,
            "batch_size": self.batch_size,
            "reason": self.reason,
            "need_mib": self.need_mib,
            "free_mib": self.free_mib,
        }


@dataclass(frozen=True)
class Plan:
    """Every component's placement, and the profile document with its devices filled."""

    placements: tuple[Placement, ...]
    document: dict[str, Any]
    inventory_source: str
    headroom_mib: int = HEADROOM_MIB
    reserved_mib: dict[int, int] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "inventory": self.inventory_source,
            "headroom_mib": self.headroom_mib,
            "placements": [p.to_json_dict() for p in self.placements],
            "reserved_mib": {str(k): v for k, v in sorted(self.reserved_mib.items())},
        }


def plan_components(
    document: Mapping[str, Any],
    inventory: Inventory,
    *,
    component_limits: Mapping[str, int] | None = None,
    headroom_mib: int = HEADROOM_MIB,
    source: str = "profile",
) -> Plan:
    """Place every component of the profile ``document`` and choose its batch.

    ``component_limits``: each component's own largest batch (a component without one
    runs its models with batch 1 when nothing else says).

    Raises:
        InvalidModelSpec: the document's components or a ``memory`` checklist break a rule,
            or a component's roles ask for different devices.
        InsufficientGpuMemory: no GPU fits a batch of one of a component (or the pinned
            one does not).
    """
    limits = dict(component_limits or {})
    placed = copy.deepcopy(dict(document))
    components = placed.get("components")
    if not isinstance(components, dict):
        raise InvalidModelSpec(f"{source}: no components to plan", source=source)
    reserved: dict[int, int] = {}
    placements = []
    for name, roles in components.items():
        if not isinstance(roles, dict) or not roles:
            placements.append(Placement(name, "cpu", 1, "calls no model"))
            continue
        placement = _place(name, roles, inventory, reserved, limits.get(name), headroom_mib)
        placements.append(placement)
        for entry in roles.values():
            if isinstance(entry, dict) and entry.get("device_policy") == "cuda":
                entry["device"] = placement.device
    return Plan(tuple(placements), placed, inventory.source, headroom_mib, reserved)


def _place(
    name: str,
    roles: Mapping[str, Any],
    inventory: Inventory,
    reserved: dict[int, int],
    limit: int | None,
    headroom_mib: int,
) -> Placement:
    policy = _policy(name, roles)
    checklists = [_checklist(name, role, entry) for role, entry in roles.items()]
    known = [c for c in checklists if c is not None]
    own = limit or 1
    if policy == "cpu":
        return Placement(name, "cpu", own, f"cpu: the component's own batch ({own})")
    if len(known) < len(checklists):
        device = _unchecked_device(policy, inventory, name)
        return Placement(
            name,
            device,
            own,
            f"no memory checklist for every role: the component's own batch ({own}), "
            "unchecked against the GPU's memory",
        )
    fixed = sum(c.fixed_mib for c in known)
    per_item = sum(c.per_item_mib for c in known)
    caps = [c.max_batch for c in known if c.max_batch is not None] + [own]
    cap = min(caps)
    gpu = _choose_gpu(name, policy, inventory, reserved, fixed + per_item, headroom_mib)
    free = gpu.free_mib - reserved.get(gpu.index, 0) - headroom_mib
    fits = cap if per_item == 0 else (free - fixed) // per_item
    batch = max(1, min(fits, cap))
    need = fixed + per_item * batch
    reserved[gpu.index] = reserved.get(gpu.index, 0) + need
    capped = (
        f"capped by max_batch {cap}"
        if fits > cap and cap != own
        else f"capped by the component's {own}"
        if fits > cap
        else "the largest that fits"
    )
    reason = (
        f"cuda:{gpu.index} ({gpu.name}) has {free} MiB usable (free {gpu.free_mib} − headroom "
        f"{headroom_mib} − reserved {reserved[gpu.index] - need}); need {fixed} + {per_item} "
        f"× batch: batch {batch}, {capped}"
    )
    return Placement(name, f"cuda:{gpu.index}", batch, reason, need, free)


def _policy(name: str, roles: Mapping[str, Any]) -> str:
    policies = {
        str(entry.get("device") or entry.get("device_policy"))
        for entry in roles.values()
        if isinstance(entry, Mapping)
    }
    if len(policies) != 1:
        raise InvalidModelSpec(
            f"component {name!r}: its roles ask for different devices ({', '.join(sorted(policies))}); "
            "a component's models run on one device",
            component=name,
            field="device_policy",
        )
    return policies.pop()


def _checklist(name: str, role: str, entry: Any) -> MemoryChecklist | None:
    memory = entry.get("memory") if isinstance(entry, Mapping) else None
    if memory is None:
        return None
    try:
        return MemoryChecklist.model_validate(memory)
    except ValueError as exc:
        raise InvalidModelSpec(
            f"{name}/{role}: memory: {exc}", component=name, role=role, field="memory"
        ) from None


def _candidates(policy: str, inventory: Inventory, name: str) -> list[GpuInfo]:
    if policy.startswith("cuda:"):
        index = int(policy.removeprefix("cuda:"))
        pinned = inventory.by_index(index)
        if pinned is None:
            raise InsufficientGpuMemory(
                f"component {name!r} is pinned to {policy}, and {_seen(inventory)}",
                component=name,
                device=policy,
            )
        return [pinned]
    if not inventory.gpus:
        raise InsufficientGpuMemory(
            f"component {name!r} needs a GPU (device_policy {policy!r}), and {_seen(inventory)}",
            component=name,
            device=policy,
            hint="Plan for the machine that will run it (--inventory, as its `modelmanager "
            "gpus --json` prints), or set the entry's device_policy to cpu.",
        )
    return list(inventory.gpus)


def _unchecked_device(policy: str, inventory: Inventory, name: str) -> str:
    gpus = _candidates(policy, inventory, name)
    best = max(gpus, key=lambda g: (g.free_mib, -g.index))
    return f"cuda:{best.index}"


def _choose_gpu(
    name: str,
    policy: str,
    inventory: Inventory,
    reserved: Mapping[int, int],
    need_one: int,
    headroom_mib: int,
) -> GpuInfo:
    gpus = _candidates(policy, inventory, name)
    usable = {g.index: g.free_mib - reserved.get(g.index, 0) - headroom_mib for g in gpus}
    fitting = [g for g in gpus if usable[g.index] >= need_one]
    if not fitting:
        shown = ", ".join(f"cuda:{i} {mib} MiB" for i, mib in sorted(usable.items()))
        raise InsufficientGpuMemory(
            f"component {name!r} needs {need_one} MiB for a batch of one; usable after "
            f"headroom and reservations: {shown}",
            component=name,
            need_mib=need_one,
            usable_mib=usable,
        )
    return max(fitting, key=lambda g: (usable[g.index], -g.index))


def _seen(inventory: Inventory) -> str:
    if not inventory.gpus:
        return f"no GPU is seen ({inventory.note or inventory.source})"
    return "the GPUs seen are " + ", ".join(f"cuda:{g.index}" for g in inventory.gpus)
