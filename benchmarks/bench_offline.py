"""offline_guard: what the always-on network guard costs on the hot path (R-NET-2).

The guard is an audit hook, and an audit hook cannot be removed from a process:
so each measurement runs in a child process, with the guard
(``offline.install()``, what every ModelManager does) or without it, the same
calls otherwise, the two kinds alternating, median of the children's medians.

* inference: the example frame encoder (examples/models), batch 64, an
  onnxruntime session, per call;
* audit-heavy: ``open()`` + ``close()`` of a file, per call: every ``open`` is
  an audit event the hook sees (and lets through), the worst case for it.

Target (issue): no measurable cost on inference; the ratio should sit within
the run's noise (≈ ±3 %).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

from .harness import Result, Workspace

NAME = "offline_guard"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

_CHILD = textwrap.dedent(
    """
    import json, statistics, sys, time
    from pathlib import Path
    import numpy as np
    guard, calls, examples = sys.argv[1] == "1", int(sys.argv[2]), Path(sys.argv[3])
    model = examples / "models/frame-encoder/1.0.0/model.onnx"
    import onnxruntime as ort
    from modelmanager import offline
    if guard:
        offline.install()  # what every ModelManager does
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    run = lambda feed: session.run(["features"], feed)
    feed = {"pixels": np.ones((64, 3, 8, 8), np.float32)}
    def timed(fn):
        for _ in range(200):
            fn()
        samples = []
        for _ in range(calls):
            t = time.perf_counter_ns()
            fn()
            samples.append(time.perf_counter_ns() - t)
        return statistics.median(samples)
    def reopen():
        open(model, "rb").close()
    print(json.dumps({"infer_ns": timed(lambda: run(feed)), "open_ns": timed(reopen)}))
    """
)


def _child(guard: bool, calls: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, "1" if guard else "0", str(calls), str(EXAMPLES)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(ws: Workspace) -> list[Result]:
    pairs = 3 if ws.config.quick else 7
    calls = 500 if ws.config.quick else 3000
    guarded: list[dict[str, float]] = []
    bare: list[dict[str, float]] = []
    for i in range(pairs):
        first, second = (True, False) if i % 2 == 0 else (False, True)
        for guard in (first, second):
            (guarded if guard else bare).append(_child(guard, calls))
    results = []
    for key, label, unit_scale, target in (
        ("infer_ns", "inference, frame encoder batch 64", 1e3, "no measurable cost (≈ ±3 %)"),
        ("open_ns", "open()+close(), an audited call", 1e3, "none (worst case, reference)"),
    ):
        ours = statistics.median(g[key] for g in guarded) / unit_scale
        base = statistics.median(b[key] for b in bare) / unit_scale
        ratio = ours / base
        results.append(
            Result(
                name=f"{NAME}: {label}",
                value=ours,
                unit="µs",
                baseline_name="same, no guard (separate process)",
                baseline_value=base,
                ratio=ratio,
                target=target,
                met=(ratio <= 1.03) if key == "infer_ns" else None,
                notes=f"{pairs} child processes each side, {calls} calls each, alternating; "
                "the only difference: offline.install() in the guarded ones",
            )
        )
    return results
