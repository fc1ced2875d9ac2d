"""Issue 14 (R-RES-1, R-SCHED-2, R-MAP-4): each component's device and batch are chosen
before the run from the GPUs' free memory and the models' checklists. This machine has no
GPU: the inventories here are injected (the same GpuInfo NVML fills)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelmanager.errors import InsufficientGpuMemory, InvalidModelSpec
from modelmanager.mapping.signature import model_signature, models_used
from modelmanager.mapping.spec import parse_mapping
from modelmanager.resources.inventory import GpuInfo, Inventory
from modelmanager.resources.planner import plan_components
from tests.conftest import onnx_entry


def gpu(index: int, free: int, total: int = 24_000) -> GpuInfo:
    return GpuInfo(
        index=index,
        name="NVIDIA A10G",
        uuid=f"GPU-{index}",
        total_mib=total,
        free_mib=free,
        used_mib=total - free,
        utilization_pct=0,
        processes=(),
    )


def inventory(*gpus: GpuInfo) -> Inventory:
    return Inventory(gpus=tuple(gpus), source="test", driver_version="555.1")


def entry(policy: str = "cuda", memory: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    e = onnx_entry(device_policy=policy, precision="fp16", **kw)
    if memory is not None:
        e["memory"] = memory
    return e


def profile(**components: dict[str, Any]) -> dict[str, Any]:
    return {"profile": "gpu", "components": components}


def test_the_batch_is_the_largest_that_fits_less_the_headroom() -> None:
    doc = profile(ocr={"det": entry(memory={"fixed_mib": 1000, "per_item_mib": 100})})
    plan = plan_components(doc, inventory(gpu(0, free=3000)), component_limits={"ocr": 64})
    (p,) = plan.placements
    # (3000 free − 512 headroom − 1000 fixed) // 100 per item = 14
    assert (p.device, p.batch_size, p.need_mib, p.free_mib) == ("cuda:0", 14, 2400, 2488)
    assert "batch 14, the largest that fits" in p.reason
    assert plan.document["components"]["ocr"]["det"]["device"] == "cuda:0"
    assert parse_mapping(plan.document).components["ocr"]["det"].device == "cuda:0"


def test_max_batch_and_the_components_own_limit_cap_it() -> None:
    doc = profile(ocr={"det": entry(memory={"fixed_mib": 0, "per_item_mib": 1, "max_batch": 16})})
    big = inventory(gpu(0, free=20_000))
    assert plan_components(doc, big, component_limits={"ocr": 64}).placements[0].batch_size == 16
    capped = plan_components(doc, big, component_limits={"ocr": 8}).placements[0]
    assert capped.batch_size == 8
    assert "capped by the component's 8" in capped.reason


def test_roles_of_a_component_add_up() -> None:
    roles = {
        "det": entry(memory={"fixed_mib": 500, "per_item_mib": 50}),
        "rec": entry(memory={"fixed_mib": 300, "per_item_mib": 30, "max_batch": 8}),
    }
    plan = plan_components(
        profile(ocr=roles), inventory(gpu(0, free=10_000)), component_limits={"ocr": 64}
    )
    (p,) = plan.placements
    assert (p.batch_size, p.need_mib) == (8, 800 + 80 * 8)


def test_the_least_loaded_gpu_is_chosen_and_placements_reserve_memory() -> None:
    """R-SCHED-2: each component goes where most memory is still free after the ones
    placed before it; components of one run may land on different GPUs (R-SCHED-1)."""
    need = {"fixed_mib": 4000, "per_item_mib": 0}
    doc = profile(
        a={"m": entry(memory=need)}, b={"m": entry(memory=need)}, c={"m": entry(memory=need)}
    )
    plan = plan_components(doc, inventory(gpu(0, free=9000), gpu(1, free=6000)))
    assert [p.device for p in plan.placements] == ["cuda:0", "cuda:1", "cuda:0"]
    assert plan.reserved_mib == {0: 8000, 1: 4000}


def test_a_pinned_device_stays_and_cpu_stays_cpu() -> None:
    doc = profile(
        pinned={"m": entry(policy="cuda:1", memory={"fixed_mib": 100, "per_item_mib": 10})},
        cpu={"m": entry(policy="cpu")},
    )
    plan = plan_components(doc, inventory(gpu(0, free=20_000), gpu(1, free=2000)))
    assert [(p.device, p.batch_size) for p in plan.placements] == [("cuda:1", 1), ("cpu", 1)]


def test_nothing_fits_is_insufficient_gpu_memory_before_the_run() -> None:
    doc = profile(big={"m": entry(memory={"fixed_mib": 30_000, "per_item_mib": 1})})
    with pytest.raises(InsufficientGpuMemory) as caught:
        plan_components(doc, inventory(gpu(0, free=20_000)))
    assert caught.value.fields["need_mib"] == 30_001
    assert "cuda:0 19488 MiB" in str(caught.value)


def test_a_cuda_component_on_a_machine_without_gpu_says_so() -> None:
    doc = profile(ocr={"m": entry(memory={"fixed_mib": 1, "per_item_mib": 1})})
    with pytest.raises(InsufficientGpuMemory, match="no GPU is seen"):
        plan_components(doc, Inventory(gpus=(), source="none", driver_version=None))
    with pytest.raises(InsufficientGpuMemory, match="pinned to cuda:3"):
        plan_components(profile(ocr={"m": entry(policy="cuda:3")}), inventory(gpu(0, free=1)))


def test_without_a_checklist_the_components_own_batch_is_used_unchecked() -> None:
    plan = plan_components(
        profile(ocr={"m": entry()}),
        inventory(gpu(0, free=100), gpu(1, free=900)),
        component_limits={"ocr": 8},
    )
    (p,) = plan.placements
    assert (p.device, p.batch_size, p.need_mib) == ("cuda:1", 8, None)
    assert "unchecked" in p.reason


def test_roles_on_different_devices_are_refused() -> None:
    doc = profile(ocr={"a": entry(policy="cuda:0"), "b": entry(policy="cpu")})
    with pytest.raises(InvalidModelSpec, match="different devices"):
        plan_components(doc, inventory(gpu(0, free=10_000)))


def test_a_bad_checklist_names_the_component_and_role() -> None:
    doc = profile(ocr={"det": entry(memory={"fixed_mib": -1, "per_item_mib": 1})})
    with pytest.raises(InvalidModelSpec) as caught:
        plan_components(doc, inventory(gpu(0, free=10_000)))
    assert (caught.value.fields["component"], caught.value.fields["role"]) == ("ocr", "det")


def test_the_checklist_is_in_the_mapping_but_not_in_the_signature() -> None:
    plain = entry(policy="cpu")
    with_memory = copy.deepcopy(plain) | {"memory": {"fixed_mib": 10, "per_item_mib": 2}}
    a = parse_mapping(profile(c={"m": plain})).components["c"]["m"]
    b = parse_mapping(profile(c={"m": with_memory})).components["c"]["m"]
    assert b.memory is not None
    assert b.memory.need_mib(4) == 18
    assert model_signature(models_used([a])) == model_signature(models_used([b]))


def test_the_plan_command_with_an_injected_inventory() -> None:
    import json

    from typer.testing import CliRunner

    from modelmanager.cli import app
    from tests.conftest import EXAMPLES

    runner = CliRunner()
    args = ["plan", str(EXAMPLES / "gpu-profile.yaml"), "--inventory", str(EXAMPLES / "gpus.json")]
    text = runner.invoke(app, args)
    assert text.exit_code == 0, text.output
    assert "text_ocr      cuda:0  8" in text.stdout
    document = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    devices = {p["component"]: (p["device"], p["batch_size"]) for p in document["placements"]}
    assert devices == {
        "audio_vad": ("cpu", 1),
        "text_ocr": ("cuda:0", 8),
        "frame_safety": ("cuda:0", 8),
    }
    tight = runner.invoke(app, [*args, "--headroom-mib", "22400", "--json"])
    assert tight.exit_code == 1, tight.output
    assert json.loads(tight.stdout)["error_code"] == "insufficient_gpu_memory"


def test_the_plan_command_on_a_machine_without_gpu_says_so(tmp_path: Any) -> None:
    import json

    from typer.testing import CliRunner

    from modelmanager.cli import app
    from tests.conftest import EXAMPLES

    empty = tmp_path / "no-gpu.json"
    empty.write_text(json.dumps({"source": "nvml", "driver_version": None, "gpus": []}))
    args = ["plan", str(EXAMPLES / "gpu-profile.yaml"), "--inventory", str(empty)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "[insufficient_gpu_memory]" in result.stderr
    assert "no GPU is seen" in result.stderr
    assert "--inventory" in result.stderr
