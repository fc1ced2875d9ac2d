"""Shared pieces of the suite: configuration, interleaved timing, statistics, scratch files.

Nothing here is measured itself; see the ``bench_*`` modules for what is.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MiB = 1 << 20
GiB = 1 << 30
WRITE_BLOCK = 64 * MiB
PAST_NS = 10_000_000_000
"""How far into the past scratch files' mtimes are set: the digest cache refuses
files modified within its 2 s racy window (``digest.RACY_WINDOW_NS``)."""


@dataclass(frozen=True, slots=True)
class Config:
    """Sizes and repetition counts of one run."""

    quick: bool
    big_file_bytes: int
    pair_file_bytes: int
    file_reps: int
    reverify_calls: int
    resolve_iterations: int
    parse_reps: int
    runtime_calls: int
    """In-process inference calls per side (runtime_overhead)."""
    triton_calls: int
    """Triton inference calls per side, per protocol and batch size (runtime_overhead)."""
    run_pairs: int
    """Cold run + cached re-run pairs, each on fresh directories (runs)."""
    startup_reps: int
    """Runs of each command line, alternating (startup)."""
    bookkeeping_runs: int
    """Bookkeeping runs per side: ours, MLflow, ours on PostgreSQL (runs)."""


FULL = Config(
    quick=False,
    big_file_bytes=1 * GiB,
    pair_file_bytes=512 * MiB,
    file_reps=7,
    reverify_calls=10_000,
    resolve_iterations=2_000,
    parse_reps=200,
    runtime_calls=5_000,
    triton_calls=1_000,
    run_pairs=15,
    startup_reps=15,
    bookkeeping_runs=100,
)
QUICK = Config(
    quick=True,
    big_file_bytes=128 * MiB,
    pair_file_bytes=64 * MiB,
    file_reps=3,
    reverify_calls=1_000,
    resolve_iterations=200,
    parse_reps=20,
    runtime_calls=2_000,
    triton_calls=150,
    run_pairs=3,
    startup_reps=5,
    bookkeeping_runs=15,
)


@dataclass(slots=True)
class Result:
    """One line of the results table and one record of results.json.

    ``ratio`` is ours/baseline in the direction the target states; ``met`` is
    None for figures reported for reference only (no target in the issue).
    """

    name: str
    value: float
    unit: str
    baseline_name: str | None
    baseline_value: float | None
    ratio: float | None
    target: str
    met: bool | None
    notes: str = ""
    baseline_unit: str | None = None
    """The baseline's unit where it differs from ``unit``."""
    others_busy_cores: float | None = None
    """CPU cores that other processes kept busy, on average, while the benchmark ran."""
    budget: str | None = None
    """Set on the lines that are budgets of the project (``make bench`` lists them last)."""

    def to_json_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- timing -----------------------------------------------------------------


def time_call_ns(fn: Callable[[], object]) -> int:
    """Wall time of one call of ``fn``, in ns."""
    start = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - start


def interleaved(
    contenders: Mapping[str, Callable[[], object]], reps: int, *, warmup: int = 1
) -> dict[str, list[int]]:
    """Time each contender ``reps`` times, alternating them; ns per call.

    Each repetition runs every contender once, starting with a different one
    each time, so that neither side always runs first (or right after the other).
    """
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    samples: dict[str, list[int]] = {name: [] for name in names}
    for rep in range(reps):
        k = rep % len(names)
        for name in names[k:] + names[:k]:
            samples[name].append(time_call_ns(contenders[name]))
    return samples


def interleaved_blocks(
    contenders: Mapping[str, Callable[[], object]],
    calls: int,
    *,
    block: int,
    skip: int,
    warmup: int = 1,
) -> dict[str, list[int]]:
    """Like :func:`interleaved`, but alternating blocks of ``block`` calls; ns per call.

    The first ``skip`` calls of each block are run but not kept: they pay for the
    switch from the other contender (e.g. another onnxruntime session's thread pool
    still spinning on the cores). Blocks repeat until ``calls`` calls of each
    contender are kept; the starting contender rotates from block round to round.
    """
    if not 0 <= skip < block:
        raise ValueError(f"skip {skip} must be in [0, block {block})")
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    samples: dict[str, list[int]] = {name: [] for name in names}
    kept = block - skip
    for rnd in range(-(-calls // kept)):
        k = rnd % len(names)
        for name in names[k:] + names[:k]:
            fn, out = contenders[name], samples[name]
            for j in range(block):
                ns = time_call_ns(fn)
                if j >= skip:
                    out.append(ns)
    return {name: out[:calls] for name, out in samples.items()}


def median(samples: Sequence[int]) -> float:
    return float(statistics.median(samples))


def percentile(samples: Sequence[int], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return float(ordered[rank - 1])


def gb_per_s(size_bytes: int, ns: float) -> float:
    """Throughput in GB/s (10⁹ bytes per second), as LIMITS.md gives it."""
    return size_bytes / ns


# --- contention -------------------------------------------------------------


class OthersCpu:
    """How many cores other processes kept busy while a ``with`` block ran (Linux).

    System-wide busy time from ``/proc/stat`` (including time stolen by the
    hypervisor) minus this process's and its children's CPU time, divided by the
    wall time. ``cores`` stays None where ``/proc/stat`` is unreadable.
    """

    def __init__(self) -> None:
        self.cores: float | None = None
        self._start: tuple[float, float, float] | None = None

    def __enter__(self) -> OthersCpu:
        self._start = _cpu_snapshot()
        return self

    def __exit__(self, *exc: object) -> None:
        end = _cpu_snapshot()
        if self._start is None or end is None:
            return
        wall, busy, own = (e - s for e, s in zip(end, self._start, strict=True))
        self.cores = max(0.0, (busy - own) / wall) if wall > 0 else None


def _cpu_snapshot() -> tuple[float, float, float] | None:
    """(wall s, system-wide busy CPU s, own + children CPU s), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    t = os.times()
    own = t.user + t.system + t.children_user + t.children_system
    return time.perf_counter(), busy, own


# --- scratch files ------------------------------------------------------------


def write_file(path: Path, size: int) -> Path:
    """Write ``size`` random-ish bytes (one random 64 MiB block, repeated) and warm it.

    The data is fsynced so that no write-back runs during the measurements,
    then read once so that the page cache holds it.
    """
    block = memoryview(os.urandom(min(WRITE_BLOCK, size)))
    with open(path, "wb") as f:
        remaining = size
        while remaining:
            n = min(remaining, len(block))
            f.write(block[:n])
            remaining -= n
        f.flush()
        os.fsync(f.fileno())
    warm_page_cache(path)
    return path


def warm_page_cache(path: Path) -> None:
    """Read the whole file once."""
    buf = bytearray(WRITE_BLOCK)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass


def set_mtime_in_past(path: Path) -> None:
    """Move the mtime out of the digest cache's racy window (now − 10 s)."""
    t = time.time_ns() - PAST_NS
    os.utime(path, ns=(t, t))


class Workspace:
    """Scratch files shared by the benchmarks of one run, made on first use.

    ``rehash_ns`` is the median time of ``hash_file`` on :meth:`big_file`, set by
    ``first_hash`` and reused by ``reverify`` (which measures it itself when run alone).
    """

    def __init__(self, config: Config, root: Path) -> None:
        self.config = config
        self.root = root
        self.rehash_ns: float | None = None
        self._big: Path | None = None
        self._pair: tuple[Path, Path] | None = None

    def big_file(self) -> Path:
        if self._big is None:
            self._big = write_file(self.root / "big.bin", self.config.big_file_bytes)
        return self._big

    def pair_files(self) -> tuple[Path, Path]:
        if self._pair is None:
            size = self.config.pair_file_bytes
            self._pair = (
                write_file(self.root / "pair-a.bin", size),
                write_file(self.root / "pair-b.bin", size),
            )
        return self._pair

    def scratch_dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def size_text(size: int) -> str:
    return f"{size / GiB:g} GiB" if size >= GiB else f"{size / MiB:g} MiB"
