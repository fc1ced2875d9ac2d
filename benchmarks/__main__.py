"""``python -m benchmarks [--quick] [--only NAME ...]``: run, print a table, write results.json."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from . import (
    bench_decode,
    bench_first_hash,
    bench_gc,
    bench_offline,
    bench_parallel,
    bench_plan,
    bench_resolve,
    bench_reverify,
    bench_runs,
    bench_runtime_overhead,
    bench_startup,
)
from .harness import FULL, QUICK, Config, OthersCpu, Result, Workspace

RESULTS_PATH = Path(__file__).with_name("results.json")
BENCHMARKS: dict[str, Callable[[Workspace], list[Result]]] = {
    module.NAME: module.run
    for module in (
        bench_first_hash,
        bench_reverify,
        bench_parallel,
        bench_resolve,
        bench_runtime_overhead,
        bench_runs,
        bench_startup,
        bench_offline,
        bench_gc,
        bench_plan,
        bench_decode,
    )
}
BUDGETS = {
    bench_runs.NAME: "cached re-run ≥ 20× faster than cold",
    bench_resolve.NAME: "resolve + signatures + keys of 10 components ≤ 1 ms",
    bench_startup.NAME: "modelmanager --help ≤ 1.5× import typer; cached run ≤ 1.3× its floor",
}
"""The project's budgets, by the benchmark that measures them (for "not run" lines)."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="smaller files, fewer repetitions (a smoke run)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=list(BENCHMARKS),
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="results JSON path")
    return parser.parse_args(argv)


def machine_text(config: Config) -> str:
    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{'QUICK (smoke) run' if config.quick else 'full run'} · {os.cpu_count()} CPUs · "
        f"load avg {load} · Python {platform.python_version()} · {openssl.strip()}"
    )


def run_all(names: Sequence[str], config: Config, console: Console) -> list[Result]:
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="modelmanager-bench-") as tmp:
        ws = Workspace(config, Path(tmp))
        for name in names:
            start = time.perf_counter()
            # A plain line, not a live spinner: its refresh thread would take the GIL
            # from the code being timed (several ms on a run of ~15 ms).
            console.print(f"[dim]running {name} ...[/dim]", highlight=False)
            with OthersCpu() as others:
                new = BENCHMARKS[name](ws)
            for r in new:
                r.others_busy_cores = others.cores
            results.extend(new)
            busy = "?" if others.cores is None else f"{others.cores:.2f}"
            console.print(
                f"[dim]{name}: {time.perf_counter() - start:.1f} s; "
                f"other processes kept {busy} cores busy meanwhile[/dim]",
                highlight=False,
            )
    return results


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def _met(met: bool | None) -> str:
    if met is None:
        return "[dim]ref[/dim]"
    return "[green]met[/green]" if met else "[bold red]MISSED[/bold red]"


def results_table(results: Sequence[Result], title: str) -> Table:
    table = Table(title=title)
    table.add_column("benchmark")
    table.add_column("ours", justify="right")
    table.add_column("baseline")
    table.add_column("baseline value", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("target")
    table.add_column("met")
    table.add_column("others busy", justify="right")
    for r in results:
        table.add_row(
            r.name,
            f"{_number(r.value)} {r.unit}",
            r.baseline_name or "—",
            "—"
            if r.baseline_value is None
            else f"{_number(r.baseline_value)} {r.baseline_unit or r.unit}",
            "—" if r.ratio is None else f"{_number(r.ratio)}×",
            r.target,
            _met(r.met),
            "?" if r.others_busy_cores is None else f"{r.others_busy_cores:.2f} cores",
        )
    return table


def print_notes(results: Sequence[Result], console: Console) -> None:
    console.print("[bold]Notes[/bold]")
    for r in results:
        if r.notes:
            console.print(f"• {r.name}: {r.notes}", highlight=False)
    console.print(
        "• sha256sum runs at ~0.19 GB/s on these machines (LIMITS.md) and is not a yardstick.",
        highlight=False,
    )


def print_budgets(results: Sequence[Result], names: Sequence[str], console: Console) -> None:
    """One line per budget: what was measured, against what, and met or MISSED."""
    console.print("[bold]Budgets[/bold]")
    for r in results:
        if r.budget is None:
            continue
        measured = f"{_number(r.value)} {r.unit}"
        if r.baseline_value is not None:
            unit = r.baseline_unit or r.unit
            measured += f" vs {r.baseline_name} {_number(r.baseline_value)} {unit}"
        if r.ratio is not None:
            measured += f" (ratio {_number(r.ratio)}×)"
        console.print(
            f"budget  {r.budget}: {measured}; target {r.target}: {_met(r.met)}", highlight=False
        )
    for name, budget in BUDGETS.items():
        if name not in names:
            console.print(f"budget  {budget}: [dim]not run[/dim] (--only)", highlight=False)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    config = QUICK if args.quick else FULL
    names = args.only or list(BENCHMARKS)
    # Wide enough for the table when the output goes to a file or a pipe.
    console = Console(width=None if sys.stdout.isatty() else 180)
    header = machine_text(config)
    console.print(header, highlight=False)
    start = time.perf_counter()
    results = run_all(names, config, console)
    mode = "QUICK smoke run: small files, targets not representative" if config.quick else "full"
    title = f"modelmanager benchmarks, {mode} ({time.perf_counter() - start:.0f} s)"
    console.print(results_table(results, title))
    print_notes(results, console)
    print_budgets(results, names, console)
    args.output.write_text(
        json.dumps(
            [{**r.to_json_dict(), "quick": config.quick} for r in results],
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
    console.print(f"wrote {args.output}", highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
