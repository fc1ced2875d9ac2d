"""The model license inventory, ``MODEL_LICENSES.md``, and the check that profiles keep to it (R-LIC-1).

The inventory is a markdown table with the columns ``model_name | source |
license | link | restrictions`` (in that order, one row per model name; cells
may not hold ``|``). :func:`check_profiles` lists the model names that
profiles use and the inventory lacks: CI fails on any.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelmanager.errors import ConfigurationInvalid
from modelmanager.mapping.sources import load_document

__all__ = [
    "COLUMNS",
    "LicenseEntry",
    "check_profiles",
    "is_profile",
    "parse_inventory",
    "profile_model_names",
]

COLUMNS = ("model_name", "source", "license", "link", "restrictions")


@dataclass(frozen=True, slots=True)
class LicenseEntry:
    """One row of the inventory."""

    model_name: str
    source: str
    license: str
    link: str
    restrictions: str


def _cells(line: str) -> list[str]:
    inner = line.strip()
    inner = inner.removeprefix("|").removesuffix("|")
    return [cell.strip() for cell in inner.split("|")]


def _is_separator(cells: list[str]) -> bool:
    return all(cell and set(cell) <= {"-", ":", " "} for cell in cells)


def parse_inventory(path: Path) -> dict[str, LicenseEntry]:
    """The inventory's rows by model name.

    Raises:
        ConfigurationInvalid: the file is missing, has no table with the
            :data:`COLUMNS`, a row has another number of cells, an empty
            model_name, source or license, or repeats a model name.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationInvalid(
            f"license inventory {path} cannot be read ({exc})", path=str(path)
        ) from exc
    entries: dict[str, LicenseEntry] = {}
    in_table = False
    for number, line in enumerate(lines, start=1):
        if not line.strip().startswith("|"):
            in_table = False
            continue
        cells = _cells(line)
        if not in_table:
            if tuple(c.lower() for c in cells) == COLUMNS:
                in_table = True
            continue
        if _is_separator(cells):
            continue
        where = f"{path}:{number}"
        if len(cells) != len(COLUMNS):
            raise ConfigurationInvalid(
                f"{where}: {len(cells)} cells, expected {len(COLUMNS)} ({' | '.join(COLUMNS)})",
                path=str(path),
            )
        name = cells[0].strip("`").strip()
        entry = LicenseEntry(name, *cells[1:])
        for field in ("model_name", "source", "license"):
            if not getattr(entry, field):
                raise ConfigurationInvalid(f"{where}: empty {field}", path=str(path), field=field)
        if name in entries:
            raise ConfigurationInvalid(f"{where}: model {name!r} is listed twice", path=str(path))
        entries[name] = entry
    if not entries:
        raise ConfigurationInvalid(
            f"{path}: no table with columns {' | '.join(COLUMNS)}", path=str(path)
        )
    return entries


def is_profile(document: Mapping[str, Any]) -> bool:
    """Whether a YAML/JSON document is a profile (it has ``components``)."""
    return isinstance(document.get("components"), Mapping)


def profile_model_names(document: Mapping[str, Any]) -> set[str]:
    """The ``model_name`` of every entry of a profile document (component → role → entry)."""
    names: set[str] = set()
    components = document.get("components")
    if not isinstance(components, Mapping):
        return names
    for roles in components.values():
        if not isinstance(roles, Mapping):
            continue
        for entry in roles.values():
            if isinstance(entry, Mapping) and isinstance(entry.get("model_name"), str):
                names.add(entry["model_name"])
    return names


def check_profiles(
    inventory: Mapping[str, LicenseEntry], profile_paths: Iterable[Path]
) -> list[str]:
    """The model names the profiles use that the inventory lacks, sorted.

    Raises:
        ProfileLoadFailed: a profile cannot be read or parsed.
    """
    used: set[str] = set()
    for path in profile_paths:
        used |= profile_model_names(load_document(path))
    return sorted(used - inventory.keys())
