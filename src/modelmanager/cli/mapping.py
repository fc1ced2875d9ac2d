"""Commands on a mapping and its weights: ``resolve``, ``health``, ``digest``.

    modelmanager resolve SOURCE [--component C] [--models-root DIR] [--json]
    modelmanager health SOURCE [--component C] [--models-root DIR] [--json]
    modelmanager digest PATH... [--no-cache] [--json]

SOURCE is a profile YAML, a run payload JSON, or the name of a profile in the
database (R-MAP-1). Heavy modules are imported inside the commands (fast ``--help``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelmanager.cli._common import (
    ComponentOption,
    JsonOption,
    ModelsRootOption,
    SourceArgument,
    current_settings,
    mapping_from,
    plain_table,
    print_json,
    reported,
    stderr,
    stdout,
)
from modelmanager.errors import ConfigurationInvalid

if TYPE_CHECKING:
    from modelmanager.manager import ModelManager
    from modelmanager.mapping.sources import MappingSource

__all__ = ["digest", "health", "resolve"]

# Hashing below this many bytes is too quick for a progress bar to help.
_PROGRESS_MIN_BYTES = 64 << 20


@contextmanager
def _byte_progress(total_hint: int, label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr for long hashing, or None where it would only be noise."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    if total_hint < _PROGRESS_MIN_BYTES or not stderr.is_terminal:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr.console, transient=True) as bar:
        task = bar.add_task(label, total=total_hint)

        def advance(n: int, total: int) -> None:
            bar.update(task, advance=n, total=total)

        yield advance


def resolve(
    source: SourceArgument,
    component: ComponentOption = None,
    models_root: ModelsRootOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validate a mapping, verify local weights, print models_used and signatures."""
    with reported(as_json):
        mm, origin = _manager_from(source, models_root)
        mapping = mm.mapping
        names = [component] if component is not None else sorted(mapping.components)
        wanted = [s for s in mapping.iter_specs() if s.component_name in names]
        with _byte_progress(_local_size(mm, wanted), "verifying weights") as progress:
            verified = {
                (spec.component_name, spec.role): digest
                for spec, digest in mm.verify_all(names, progress=progress)
            }
        result: dict[str, Any] = {
            "source": str(origin),
            "profile": mapping.profile,
            "models_root": None if mm.models_root is None else str(mm.models_root),
            "components": {
                name: {
                    "roles": {
                        role: {
                            **spec.model_dump(mode="json", exclude={"component_name", "role"}),
                            "verified": _verified_text(verified.get((name, role))),
                        }
                        for role, spec in sorted(mapping.components[name].items())
                    },
                    "models_used": [u.model_dump() for u in mm.models_used_for(name)],
                    "model_signature": mm.model_signature_for(name),
                }
                for name in names
            },
        }
    if as_json:
        print_json(result)
        return
    _print_resolved(result)


def _manager_from(source: str, models_root: Path | None) -> tuple[ModelManager, MappingSource]:
    """A manager over the mapping ``source`` names (:func:`mapping_from`), with the run
    context of a run payload."""
    from modelmanager.manager import ModelManager

    settings = current_settings()
    mapping, origin, run_context = mapping_from(source, settings)
    manager = ModelManager(run_context, mapping, models_root=models_root, settings=settings)
    return manager, origin


def health(
    source: SourceArgument,
    component: ComponentOption = None,
    models_root: ModelsRootOption = None,
    as_json: JsonOption = False,
) -> None:
    """Open every model of a mapping and check it serves: local sessions load, Triton
    versions are READY with matching I/O. Exit 1 if any is not healthy."""
    with reported(as_json):
        mm, _ = _manager_from(source, models_root)
        with mm:
            reports = mm.health([component] if component is not None else None)
    healthy = all(r.ok for r in reports)
    if as_json:
        print_json({"healthy": healthy, "models": [r.to_json_dict() for r in reports]})
    else:
        table = plain_table(
            "component", "role", "runtime", "status", "ms", "detail", wrap={"detail"}
        )
        for r in reports:
            status = "ok" if r.ok else f"FAIL {r.error_code or ''}".strip()
            table.add_row(
                r.spec.component_name, r.spec.role, r.spec.runtime, status, f"{r.ms:.1f}", r.detail
            )
        stdout.print(table)
    if not healthy:
        raise typer.Exit(1)


def _local_size(mm: ModelManager, specs: list[Any]) -> int:
    total = 0
    for spec in specs:
        if spec.local_artifact is not None and mm.models_root is not None:
            path = mm.models_root / spec.local_artifact
            if path.is_file():
                total += path.stat().st_size
    return total


def _verified_text(digest: Any) -> str:
    if digest is None:
        return "from mapping (triton)"
    return "verified (cached)" if digest.cached else "verified (hashed)"


def _print_resolved(result: dict[str, Any]) -> None:
    stdout.print(
        f"source: {result['source']}   profile: {result['profile'] or '-'}   "
        f"models_root: {result['models_root'] or '-'}",
        markup=False,
    )
    table = plain_table(
        "component", "role", "model", "runtime", "engine", "precision", "device", "weights"
    )
    for name, comp in result["components"].items():
        for role, spec in comp["roles"].items():
            table.add_row(
                name,
                role,
                f"{spec['model_name']}@{spec['model_version']}",
                spec["runtime"],
                spec["engine"],
                spec["precision"],
                spec["device"],
                spec["verified"],
            )
        if not comp["roles"]:
            table.add_row(name, "(calls no model)", *[""] * 6)
    stdout.print(table)
    stdout.print("\nmodel_signature", style="bold")
    width = max(map(len, result["components"]), default=0)
    for name, comp in result["components"].items():
        stdout.print(f"  {name:<{width}}  {comp['model_signature']}", markup=False)


def digest(
    paths: Annotated[list[Path], typer.Argument(help="Files or directory models.")],
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Hash every file; do not read or write the cache.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Print the weights_digest of files and directory models. A missing path is bad input (exit 2)."""
    from modelmanager.weights.digest import DigestCache, Digester

    with reported(as_json):
        missing = [str(path) for path in paths if not path.exists()]
        if missing:  # bad input (exit 2), as for every command given a path
            raise ConfigurationInvalid(
                f"no such file or directory: {', '.join(missing)}", path=missing
            )
        settings = current_settings()
        cache = None if no_cache else DigestCache.in_dir(settings.cache_dir)
        digester = Digester(cache, workers=settings.digest_workers)
        size_hint = sum(p.stat().st_size for p in paths if p.is_file())
        try:
            with _byte_progress(size_hint, "hashing") as progress:
                results = digester.digest_many(paths, progress=progress)
        finally:
            if cache is not None:
                cache.close()
    if as_json:
        print_json([r.to_json_dict() for r in results])
        return
    for r in results:
        note = "cached" if r.cached else "hashed"
        files = f", {r.files} files" if r.files != 1 else ""
        stdout.print(f"{r.digest}  {r.path}  ({r.size} bytes{files}, {note})", markup=False)
