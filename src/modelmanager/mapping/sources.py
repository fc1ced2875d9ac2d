"""Where a run's mapping comes from: payload, else profile YAML, else database (R-MAP-1).

A run payload is ``{"run_context": {...}, "model_mapping": {...}}``; a profile
is a YAML (or JSON) document ``{"format_version": 1, "profile": name,
"components": {component: {role: entry}}}``. Both are read with duplicate
keys refused: YAML and JSON parsers otherwise keep the last of two
``detector:`` entries without a word.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from modelmanager.errors import InvalidModelSpec, ModelMappingMissing, ProfileLoadFailed
from modelmanager.mapping.spec import ResolvedMapping, parse_mapping

__all__ = [
    "MappingSource",
    "ProfileStore",
    "load_document",
    "resolve_mapping",
]


class ProfileStore(Protocol):
    """The database source of profiles (R-MAP-2); implemented with the run index."""

    def load_profile(self, name: str) -> Mapping[str, Any] | None:
        """The raw mapping document of profile ``name``, or None."""


@dataclass(frozen=True, slots=True)
class MappingSource:
    """Which layer the mapping came from: ``payload``, ``profile`` or ``database``."""

    kind: str
    location: str | None = None

    def __str__(self) -> str:
        return self.kind if self.location is None else f"{self.kind}:{self.location}"


def resolve_mapping(
    *,
    payload: Mapping[str, Any] | None = None,
    profile_path: str | Path | None = None,
    store: ProfileStore | None = None,
    profile_name: str | None = None,
) -> tuple[ResolvedMapping, MappingSource]:
    """The mapping of a run from the first layer that has one (R-MAP-1).

    Args:
        payload: the run payload; its ``model_mapping`` wins when present.
        profile_path: a profile YAML, used when the payload has no mapping.
        store: the database profiles, used when neither of the above is given.
        profile_name: the profile to take from ``store``.

    Raises:
        ModelMappingMissing: no layer has a mapping.
        ProfileLoadFailed: the profile file cannot be read or parsed.
        InvalidModelSpec: the mapping found breaks a rule (names the layer).
    """
    if payload is not None and payload.get("model_mapping") is not None:
        source = MappingSource("payload")
        return parse_mapping(payload["model_mapping"], source=str(source)), source
    if profile_path is not None:
        source = MappingSource("profile", str(profile_path))
        return parse_mapping(load_document(profile_path), source=str(profile_path)), source
    if store is not None and profile_name is not None:
        source = MappingSource("database", profile_name)
        document = store.load_profile(profile_name)
        if document is None:
            raise ModelMappingMissing(
                f"profile {profile_name!r} is not in the database", profile=profile_name
            )
        return parse_mapping(document, source=str(source)), source
    raise ModelMappingMissing(
        "no model mapping: the payload has no model_mapping, and no profile path or "
        "database profile was given"
    )


def load_document(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON document (by suffix ``.json``, else YAML), refusing duplicate keys.

    Raises:
        ProfileLoadFailed: missing, unreadable, unparsable, or not a mapping.
        InvalidModelSpec: a key appears twice (named by its path in the document).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileLoadFailed(f"{path}: no such file", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileLoadFailed(f"{path}: cannot be read ({exc})", path=str(path)) from exc
    data = _parse_json(text, path) if path.suffix == ".json" else _parse_yaml(text, path)
    if not isinstance(data, dict):
        raise ProfileLoadFailed(
            f"{path}: the document is a {type(data).__name__}, not a mapping", path=str(path)
        )
    return data


# libyaml's parser where PyYAML has it (several times faster); the nodes, the duplicate-key
# check and the construction below are the same either way.
_COMPOSER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse_yaml(text: str, path: Path) -> Any:
    try:
        node = yaml.compose(text, Loader=_COMPOSER)
        if node is None:
            return None
        _refuse_duplicate_yaml_keys(node, (), path)
        loader = yaml.SafeLoader("")
        try:
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ProfileLoadFailed(f"{path}: not valid YAML: {exc}", path=str(path)) from exc


def _refuse_duplicate_yaml_keys(node: yaml.Node, where: tuple[str, ...], path: Path) -> None:
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in first_line:
                raise _duplicate_key((*where, key), f"lines {first_line[key]} and {line}", path)
            first_line[key] = line
            _refuse_duplicate_yaml_keys(value_node, (*where, key), path)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicate_yaml_keys(item, (*where, str(i)), path)


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _parse_json(text: str, path: Path) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in items:
            if key in result:
                raise _DuplicateKey(key)
            result[key] = value
        return result

    try:
        return json.loads(text, object_pairs_hook=pairs)
    except _DuplicateKey as dup:
        # The hook runs innermost first and cannot know the path: find it.
        where = _find_duplicate_path(text, dup.key) or (dup.key,)
        raise _duplicate_key(where, "twice in one object", path) from None
    except json.JSONDecodeError as exc:
        raise ProfileLoadFailed(f"{path}: not valid JSON: {exc}", path=str(path)) from exc


def _find_duplicate_path(text: str, key: str) -> tuple[str, ...] | None:
    found: list[tuple[str, ...]] = []

    def walk(value: Any, where: tuple[str, ...]) -> None:
        if isinstance(value, list):
            if value and isinstance(value[0], tuple):  # pairs of one object
                keys = [k for k, _ in value]
                if keys.count(key) > 1 and not found:
                    found.append((*where, key))
                for k, v in value:
                    walk(v, (*where, k))
            else:
                for i, item in enumerate(value):
                    walk(item, (*where, str(i)))

    walk(json.loads(text, object_pairs_hook=list), ())
    return found[0] if found else None


def _duplicate_key(where: tuple[str, ...], detail: str, path: Path) -> InvalidModelSpec:
    component = role = field = None
    if len(where) >= 2 and where[0] == "components":
        component = where[1]
        role = where[2] if len(where) >= 3 else None
        field = ".".join(where[3:]) or None
    else:
        field = ".".join(where)
    what = "role" if field is None and role is not None else "key"
    return InvalidModelSpec(
        f"{path}: {what} {'.'.join(where)!r} is defined {detail}; each may appear once",
        source=str(path),
        component=component,
        role=role,
        field=field,
    )
