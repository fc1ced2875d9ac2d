"""startup: what ``modelmanager`` costs as a process, against the imports it cannot avoid.

Four command lines, each a whole new process (``subprocess.run``, output discarded),
timed side by side in one run: each repetition runs every one of them once, the
starting one rotating (:func:`~benchmarks.harness.interleaved`); median wall time of
``startup_reps`` repetitions, one warm-up round first.

* ``python -c "import typer"``: the floor of any typer command line;
* ``modelmanager --help``: budget ≤ 1.5× that floor;
* ``python -c "import <CACHED_RUN_IMPORTS>"``: the floor of a fully cached run, the
  libraries it cannot do without: typer and rich (the command line, its progress
  and table), numpy (the artifacts' meta), pydantic and pydantic-settings (the
  mapping, manifest and settings), PyYAML (the profile), SQLAlchemy Core with its
  SQLite dialect and sqlite3 (the run index), PyAV (the video is probed: a file that
  is no video is refused before anything runs; it is not decoded);
* ``modelmanager run PROFILE examples/videos/talk.mp4 --video-id talk --models-root ROOT``
  with every component already in the run index (its own scratch data dir and digest cache):
  budget ≤ 1.3× its floor. Such a run opens no model and re-hashes no artifact, so
  it needs no onnxruntime, tritonclient, Triton tooling, Alembic, SciPy or torch; the
  notes say if any of them was imported, and which imports beyond the floor cost
  most (``PYTHONPROFILEIMPORTTIME``, one extra run).

The run uses the demo's real models when ``make demo`` has prepared them
(``~/.local/share/modelmanager/models/profile.yaml``): one cold run computes every
component first (not timed). Otherwise a stand-in, which no benchmark downloads
for: a profile mapping the same components (``modelmanager.components.REGISTRY``,
same names, roles, producer and schema versions) to small scratch files, whose
cache is filled by those components' stand-ins (one small array each) through
the same Runner, settings and run context (:func:`modelmanager.cli.run_videos.run_context_for`).
A cached run reads neither models nor the video's frames (its digest comes from the
digest cache, its header from a probe), so both time the same code; the notes say
which one ran.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .harness import Result, Workspace, interleaved, median

NAME = "startup"
HELP_BUDGET = 1.5
RUN_BUDGET = 1.3
CACHED_RUN_IMPORTS = (
    "typer",
    "rich.progress",
    "rich.table",
    "numpy",
    "pydantic",
    "pydantic_settings",
    "yaml",
    "sqlalchemy",
    "sqlalchemy.dialects.sqlite",
    "sqlite3",
    "av",
)
NOT_NEEDED = ("onnxruntime", "tritonclient", "modelmanager.triton", "alembic", "scipy", "torch")
VIDEO = Path(__file__).resolve().parent.parent / "examples" / "videos" / "talk.mp4"
VIDEO_ARGS = (str(VIDEO), "--video-id", "talk")
DEMO_PROFILE = Path.home() / ".local" / "share" / "modelmanager" / "models" / "profile.yaml"


def cli_command() -> list[str]:
    """The ``modelmanager`` console script of this interpreter, as a user runs it."""
    script = Path(sys.executable).with_name("modelmanager")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from modelmanager.cli import main; sys.exit(main())"]


def scratch_env(scratch: Path) -> dict[str, str]:
    """This environment without MODELMANAGER_* settings, with scratch data and cache dirs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELMANAGER_")}
    env["MODELMANAGER_DATA_DIR"] = str(scratch / "data")
    env["XDG_CACHE_HOME"] = str(scratch / "cache")
    return env


def _run_json(command: Sequence[str], env: Mapping[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [*command, "--json"], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {done.returncode}: {done.stdout[-2000:]}")
    manifest: dict[str, Any] = json.loads(done.stdout)["runs"][0]["manifest"]
    return manifest


class StandIn:
    """A component's name, roles and versions, computing one small array instead."""

    def __init__(self, real: Any) -> None:
        self.name = real.name
        self.roles: Sequence[str] = tuple(real.roles)
        self.producer_version = real.producer_version
        self.schema_version = real.schema_version

    def process(self, request: Any) -> Any:
        from modelmanager.run.contract import ComponentOutput

        return ComponentOutput({"stand_in": np.zeros(4, np.float32)})


def stand_in(scratch: Path) -> tuple[Path, Path]:
    """(profile, models_root) of the stand-in, its cache filled as ``modelmanager run`` finds it."""
    from modelmanager.cli.run_videos import run_context_for
    from modelmanager.components import REGISTRY
    from modelmanager.config import Settings
    from modelmanager.index import RunStore
    from modelmanager.manager import ModelManager
    from modelmanager.mapping.sampling import DEFAULT_POLICY
    from modelmanager.mapping.sources import resolve_mapping
    from modelmanager.media.jobs import VideoJob
    from modelmanager.run.runner import Runner
    from modelmanager.runtimes.mock import MockRuntime
    from modelmanager.weights.digest import hash_file

    models_root = scratch / "stand-in-models"
    components: dict[str, Any] = {}
    for name, component in REGISTRY.items():
        roles: dict[str, Any] = {}
        for role in component.roles:
            relpath = f"stand-in-{name}-{role}/1.0.0/model.onnx"
            path = models_root / relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(4096))
            roles[role] = {
                "model_name": f"stand-in-{name}-{role}",
                "model_version": "1.0.0",
                "weights_digest": hash_file(path),
                "runtime": "inprocess",
                "engine": "onnx",
                "precision": "fp32",
                "device_policy": "cpu",
                "artifacts": {"onnx_path": relpath},
            }
        components[name] = roles
    profile = scratch / "stand-in-profile.yaml"
    profile.write_text(
        yaml.safe_dump({"format_version": 1, "profile": "stand-in", "components": components})
    )
    # What `modelmanager run` reads from the scratch environment, given explicitly here.
    settings = Settings(data_dir=scratch / "data", cache_dir=scratch / "cache" / "modelmanager")
    mapping, source = resolve_mapping(profile_path=profile)
    mocked = MockRuntime.factory(lambda spec, inputs: {})
    with (
        RunStore.open(settings.resolved_database_url) as store,
        ModelManager(
            run_context_for(
                VideoJob(VIDEO, "local", "talk"), hash_file(VIDEO), DEFAULT_POLICY, "stand-in-seed"
            ),
            mapping,
            models_root=models_root,
            settings=settings,
            runtime_factory=mocked,
        ) as mm,
    ):
        result = Runner(mm, store, settings.resolved_artifact_root, mapping_source=str(source)).run(
            [StandIn(REGISTRY[name]()) for name in mapping.components if name in REGISTRY], {}
        )
    if not result.ok:
        raise AssertionError(f"seeding the stand-in failed: {result.manifest.components}")
    return profile, models_root


def _imports(command: Sequence[str], env: Mapping[str, str]) -> dict[str, int]:
    """Self time (µs) of every module one run of ``command`` imports."""
    done = subprocess.run(
        command,
        env={**env, "PYTHONPROFILEIMPORTTIME": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    found: dict[str, int] = {}
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            self_us, _cumulative, name = line[len("import time:") :].split("|", 2)
            found[name.strip()] = int(self_us)
    return found


def _beyond_floor(run: dict[str, int], floor: dict[str, int], top: int = 6) -> str:
    """The costliest imports of ``run`` that the floor does not have, by package."""
    groups: dict[str, int] = {}
    for name, us in run.items():
        if name in floor:
            continue
        parts = name.split(".")
        key = ".".join(parts[:2]) if parts[0] in ("modelmanager", "sqlalchemy") else parts[0]
        groups[key] = groups.get(key, 0) + us
    ranked = sorted(groups.items(), key=lambda kv: -kv[1])[:top]
    total = sum(groups.values()) / 1000
    return f"{total:.0f} ms in all; " + ", ".join(f"{k} {v / 1000:.0f} ms" for k, v in ranked)


def _process(command: Sequence[str], env: Mapping[str, str]) -> Callable[[], None]:
    def run() -> None:
        subprocess.run(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
        )

    return run


def run(ws: Workspace) -> list[Result]:
    scratch = ws.scratch_dir("startup")
    env = scratch_env(scratch)
    cli = cli_command()
    if DEMO_PROFILE.is_file():
        profile, models_root = DEMO_PROFILE, DEMO_PROFILE.parent
        which = f"the demo's prepared models ({models_root})"
        command = [*cli, "run", str(profile), *VIDEO_ARGS, "--models-root", str(models_root)]
        cold = _run_json(command, env)
        if {c["status"] for c in cold["components"]} != {"ok"}:
            raise AssertionError(f"cold demo run: {[c['status'] for c in cold['components']]}")
    else:
        profile, models_root = stand_in(scratch)
        which = "a stand-in (the demo's models are not prepared: `make demo` prepares them)"
        command = [*cli, "run", str(profile), *VIDEO_ARGS, "--models-root", str(models_root)]
    cached = _run_json(command, env)
    statuses = [c["status"] for c in cached["components"]]
    if not statuses or set(statuses) != {"cached"}:
        raise AssertionError(f"the timed run would not be fully cached: {statuses}")

    floor_code = "import " + ", ".join(CACHED_RUN_IMPORTS)
    contenders = {
        "import typer": _process([sys.executable, "-c", "import typer"], env),
        "--help": _process([*cli, "--help"], env),
        "import floor": _process([sys.executable, "-c", floor_code], env),
        "cached run": _process(command, env),
    }
    reps = ws.config.startup_reps
    samples = interleaved(contenders, reps, warmup=1)
    ms = {name: median(ns) / 1e6 for name, ns in samples.items()}

    run_imports = _imports(command, env)
    floor_imports = _imports([sys.executable, "-c", floor_code], env)
    loaded = [m for m in NOT_NEEDED if m in run_imports]
    help_ratio = ms["--help"] / ms["import typer"]
    run_ratio = ms["cached run"] / ms["import floor"]
    return [
        Result(
            name=f"{NAME}: modelmanager --help",
            value=ms["--help"],
            unit="ms",
            baseline_name="python -c 'import typer'",
            baseline_value=ms["import typer"],
            ratio=help_ratio,
            target=f"≤ {HELP_BUDGET:g}× import typer",
            met=help_ratio <= HELP_BUDGET,
            notes=f"whole processes, median of {reps}, alternating with the other startup lines",
            budget=f"modelmanager --help ≤ {HELP_BUDGET:g}× python -c 'import typer'",
        ),
        Result(
            name=f"{NAME}: cached modelmanager run",
            value=ms["cached run"],
            unit="ms",
            baseline_name=f"import floor ({len(CACHED_RUN_IMPORTS)} modules)",
            baseline_value=ms["import floor"],
            ratio=run_ratio,
            target=f"≤ {RUN_BUDGET:g}× import floor",
            met=run_ratio <= RUN_BUDGET,
            notes=f"{len(statuses)} components, all cached, on {which}; floor: "
            f"python -c '{floor_code}'; imported beyond the floor: "
            f"{_beyond_floor(run_imports, floor_imports)}; "
            + (
                f"IMPORTED though a cached run needs none of them: {', '.join(loaded)}"
                if loaded
                else f"none of {', '.join(NOT_NEEDED)} imported"
            )
            + f"; median of {reps}",
            budget=f"fully cached modelmanager run ≤ {RUN_BUDGET:g}× its import floor",
        ),
    ]
