"""resolve_10_components: what one run asks a fresh ModelManager, for 10 components.

Setup: a synthetic mapping of 10 components (four with 2-3 roles, 16 roles in
all; 15 inprocess onnx entries with real files of a few KB under a scratch
models_root, one triton entry). ``parse_mapping`` is timed on its own and the
mapping parsed once. A shared ``Digester(DigestCache)`` is warmed (mtimes moved
into the past, every file hashed once and then found cached).

Timed per iteration, alternating with the floor, median of the iterations:

* ours: a fresh ``ModelManager(run_context_dict, parsed, models_root=...,
  digester=shared)``, then for each component ``resolve`` of every role,
  ``model_signature_for`` and ``cache_key_for(producer_version="1.0.0",
  schema_version="1")``;
* floor: ``hashlib.sha256(json.dumps(d, sort_keys=True).encode())`` over
  equivalent dicts, one per model_signature and one per cache key (20 calls).

Target (issue): ≤ 1 ms per iteration. A breakdown by phase is printed in the notes.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelmanager.manager import ModelManager
from modelmanager.mapping.spec import ResolvedMapping, parse_mapping
from modelmanager.weights.digest import DigestCache, Digester, hash_file

from .harness import Result, Workspace, interleaved, median, set_mtime_in_past

NAME = "resolve_10_components"
TARGET_MS = 1.0
ROLES_PER_COMPONENT = (3, 3, 2, 2, 1, 1, 1, 1, 1)  # plus one triton component
KEY_ARGS = {"producer_version": "1.0.0", "schema_version": "1"}
RUN_CONTEXT = {
    "platform_id": "youtube",
    "video_id": "dQw4w9WgXcQ",
    "run_id": "run-0001",
    "config_hash": "sha256:" + "ab" * 32,
    "sampling_policy_version": "2.0.0",
    "dataprocessor_version": "1.4.2",
}
TRITON_ROLE = {
    "model_name": "scene-scorer",
    "model_version": "3",
    "weights_digest": "sha256:" + "0c" * 32,
    "runtime": "triton",
    "engine": "onnx",
    "precision": "fp32",
    "device_policy": "cpu",
    "triton": {
        "grpc_url": "127.0.0.1:8001",
        "model_name": "scene_scorer",
        "model_version": 3,
        "preprocess_preset": "scene-224-bgr@1",
        "inputs": [{"name": "pixels", "dtype": "FP32", "shape": [-1, 3, 8, 8]}],
        "outputs": [{"name": "score", "dtype": "FP32", "shape": [-1, 1]}],
    },
}


def _local_role(root: Path, model: str, size: int) -> dict[str, Any]:
    """One inprocess onnx entry, with its file written under ``root``."""
    rel = f"{model}/1.0.0/model.onnx"
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    set_mtime_in_past(path)
    return {
        "model_name": model,
        "model_version": "1.0.0",
        "weights_digest": hash_file(path),
        "runtime": "inprocess",
        "engine": "onnx",
        "precision": "fp32",
        "device_policy": "cpu",
        "artifacts": {"onnx_path": rel, "preprocess_id": f"{model}-pre@1"},
    }


def build_mapping(root: Path) -> dict[str, Any]:
    """The raw mapping: 9 local components (15 roles) and one triton component."""
    components: dict[str, Any] = {}
    for c, n_roles in enumerate(ROLES_PER_COMPONENT):
        components[f"component_{c}"] = {
            f"role_{r}": _local_role(root, f"model-{c}-{r}", 2048 + 1024 * r)
            for r in range(n_roles)
        }
    components["component_triton"] = {"scorer": TRITON_ROLE}
    return {"format_version": 1, "profile": "bench", "components": components}


def _one_iteration(mapping: ResolvedMapping, root: Path, digester: Digester) -> None:
    mm = ModelManager(RUN_CONTEXT, mapping, models_root=root, digester=digester)
    for component, roles in mapping.components.items():
        for role in roles:
            mm.resolve(component, role)
        mm.model_signature_for(component)
        mm.cache_key_for(component, **KEY_ARGS)


def _floor_inputs(mapping: ResolvedMapping, root: Path, digester: Digester) -> list[Any]:
    """The dicts our code hashes, built once: models_used per component and key material."""
    mm = ModelManager(RUN_CONTEXT, mapping, models_root=root, digester=digester)
    docs: list[Any] = []
    for component in mapping.components:
        used = [u.model_dump() for u in mm.models_used_for(component)]
        docs.append({"kind": "model_signature", "sig_v": 1, "models_used": used})
        docs.append(dict(mm.cache_key_for(component, **KEY_ARGS).material))
    return docs


def _floor(docs: list[Any]) -> Callable[[], None]:
    def run() -> None:
        for doc in docs:
            hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    return run


def _warm_digester(ws: Workspace, mapping: ResolvedMapping, root: Path) -> Digester:
    digester = Digester(DigestCache(ws.scratch_dir("resolve-cache") / "digests.sqlite3"))
    ModelManager(RUN_CONTEXT, mapping, models_root=root, digester=digester).verify_all()
    again = ModelManager(RUN_CONTEXT, mapping, models_root=root, digester=digester).verify_all()
    if not all(d.cached for _, d in again):
        raise AssertionError("the warmed digest cache missed")
    return digester


def _breakdown_us(mapping: ResolvedMapping, root: Path, digester: Digester, n: int) -> str:
    """Median µs of each phase of an iteration (run separately, after the main timing)."""
    phases: dict[str, list[int]] = {"new manager": [], "resolve": [], "signature": [], "key": []}
    for _ in range(n):
        t0 = time.perf_counter_ns()
        mm = ModelManager(RUN_CONTEXT, mapping, models_root=root, digester=digester)
        t1 = time.perf_counter_ns()
        for component, roles in mapping.components.items():
            for role in roles:
                mm.resolve(component, role)
        t2 = time.perf_counter_ns()
        for component in mapping.components:
            mm.model_signature_for(component)
        t3 = time.perf_counter_ns()
        for component in mapping.components:
            mm.cache_key_for(component, **KEY_ARGS)
        t4 = time.perf_counter_ns()
        for name, ns in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            phases[name].append(ns)
    return ", ".join(f"{name} {median(ns) / 1e3:.0f}" for name, ns in phases.items())


def run(ws: Workspace) -> list[Result]:
    root = ws.scratch_dir("resolve-models")
    raw = build_mapping(root)
    parse_ns = interleaved({"parse": lambda: parse_mapping(raw)}, ws.config.parse_reps)["parse"]
    mapping = parse_mapping(raw)
    digester = _warm_digester(ws, mapping, root)
    docs = _floor_inputs(mapping, root, digester)
    n = ws.config.resolve_iterations
    samples = interleaved(
        {"ours": lambda: _one_iteration(mapping, root, digester), "floor": _floor(docs)},
        n,
        warmup=10,
    )
    breakdown = _breakdown_us(mapping, root, digester, max(10, n // 4))
    assert digester.cache is not None
    digester.cache.close()
    ours_ms, floor_ms = median(samples["ours"]) / 1e6, median(samples["floor"]) / 1e6
    n_roles = sum(len(roles) for roles in mapping.components.values())
    return [
        Result(
            name="resolve_10_components: iteration",
            value=ours_ms,
            unit="ms",
            baseline_name=f"floor: {len(docs)} × sha256(json.dumps)",
            baseline_value=floor_ms,
            ratio=ours_ms / floor_ms,
            target=f"≤ {TARGET_MS:g} ms",
            met=ours_ms <= TARGET_MS,
            notes=f"{len(mapping.components)} components, {n_roles} roles, median of {n:,}; "
            f"phases (µs, median): {breakdown}",
            budget=f"resolve + signatures + keys of 10 components ≤ {TARGET_MS:g} ms",
        ),
        Result(
            name="resolve_10_components: parse_mapping",
            value=median(parse_ns) / 1e6,
            unit="ms",
            baseline_name=None,
            baseline_value=None,
            ratio=None,
            target="none (reported separately)",
            met=None,
            notes=f"once per run, not per iteration; median of {ws.config.parse_reps}",
        ),
    ]
