"""Where a run's mapping comes from: payload, else profile YAML, else database (R-MAP-1).

A run payload is ``{"run_context": {...}, "model_mapping": {...}}``; a profile
is a YAML (or JSON) document ``{"format_version": 1, "profile": name,
"components": {component: {role: entry}}}``. Both are read with duplicate
keys refused: YAML and JSON parsers otherwise keep the last of two
``detector:`` entries without a word.

A document is also bounded before anything is built from it (issue 12), so a
hostile file fails at once with ``profile_load_failed`` naming the limit instead
of hanging, exhausting memory or overflowing the stack:

- :data:`MAX_DOCUMENT_BYTES`: the file's size, checked before it is read;
- :data:`MAX_NESTING_DEPTH`: mappings and sequences nested in one another;
- :data:`MAX_DOCUMENT_NODES`: YAML nodes *after* alias expansion (a 500-byte
  "billion laughs" expands to hundreds of millions); an alias to an anchor
  that encloses it (a recursive alias) is refused outright.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from modelmanager.errors import InvalidModelSpec, ModelMappingMissing, ProfileLoadFailed
from modelmanager.mapping.spec import ResolvedMapping, parse_mapping

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "MAX_DOCUMENT_NODES",
    "MAX_NESTING_DEPTH",
    "MappingSource",
    "ProfileStore",
    "load_data",
    "load_document",
    "resolve_mapping",
]

# Bounds of a profile or payload document. The example profile is 2.5 KB, about 150
# nodes, 8 levels deep; these are hundreds of times that, and the heaviest document
# they admit (1 MiB of one-line keys) still parses in about a second and a half.
MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_NESTING_DEPTH = 64
MAX_DOCUMENT_NODES = 200_000


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
        ProfileLoadFailed: missing, unreadable, unparsable, not a mapping, or beyond
            a bound (:data:`MAX_DOCUMENT_BYTES`, :data:`MAX_NESTING_DEPTH`,
            :data:`MAX_DOCUMENT_NODES`; named in the message and ``fields["limit"]``).
        InvalidModelSpec: a key appears twice (named by its path in the document).
    """
    path = Path(path)
    data = load_data(path)
    if not isinstance(data, dict):
        raise ProfileLoadFailed(
            f"{path}: the document is a {type(data).__name__}, not a mapping", path=str(path)
        )
    return data


def load_data(path: str | Path) -> Any:
    """A YAML or JSON file's value, whatever its type, read within the same bounds as
    :func:`load_document` (a list of videos is one).

    Raises:
        ProfileLoadFailed: missing, unreadable, unparsable, or beyond a bound.
        InvalidModelSpec: a key appears twice.
    """
    path = Path(path)
    text = _read_bounded(path)
    return _parse_json(text, path) if path.suffix == ".json" else _parse_yaml(text, path)


def _read_bounded(path: Path) -> str:
    try:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            # A FIFO or a device reports no size: read one byte past the bound to know.
            raw = b"" if size > MAX_DOCUMENT_BYTES else file.read(MAX_DOCUMENT_BYTES + 1)
        if size > MAX_DOCUMENT_BYTES or len(raw) > MAX_DOCUMENT_BYTES:
            actual = f"{size} bytes" if size > MAX_DOCUMENT_BYTES else "larger"
            raise _too_big(
                path,
                f"the document is {actual}; a profile or payload may have at most "
                f"{MAX_DOCUMENT_BYTES} bytes (MAX_DOCUMENT_BYTES)",
                limit=MAX_DOCUMENT_BYTES,
            )
        return raw.decode("utf-8")
    except FileNotFoundError:
        raise ProfileLoadFailed(f"{path}: no such file", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileLoadFailed(f"{path}: cannot be read ({exc})", path=str(path)) from exc


def _too_big(path: Path, what: str, *, limit: int, line: int | None = None) -> ProfileLoadFailed:
    where = "" if line is None else f" (line {line})"
    return ProfileLoadFailed(f"{path}: {what}{where}", path=str(path), limit=limit, line=line)


# libyaml's parser where PyYAML has it (several times faster); the nodes, the duplicate-key
# check and the construction below are the same either way.
_COMPOSER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse_yaml(text: str, path: Path) -> Any:
    try:
        _check_yaml_bounds(text, path)
        node = yaml.compose(text, Loader=_COMPOSER)
        if node is None:
            return None
        _refuse_duplicate_yaml_keys(node, (), path)
        loader = yaml.SafeLoader("")
        try:
            return loader.construct_document(node)
        except ValueError as exc:  # a scalar its tag cannot hold: a 5000-digit int, month 13
            raise ProfileLoadFailed(
                f"{path}: a value cannot be read: {exc}", path=str(path)
            ) from exc
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ProfileLoadFailed(f"{path}: not valid YAML: {exc}", path=str(path)) from exc


def _check_yaml_bounds(text: str, path: Path) -> None:
    """Walk the parser's events (no nodes built yet), and stop at the first bound passed.

    Counts every node as often as aliases repeat it, so the count is what the
    duplicate-key check, the constructor and every later walk of the document would
    visit. libyaml's parser keeps its own stack, so deep input cannot overflow it;
    its composer and the walks below recurse, hence the depth bound before them.
    """
    # Per open collection, innermost last: its anchor, and its nodes so far (expanded).
    anchors: list[str | None] = []
    sizes: list[int] = []
    expanded: dict[str, int] = {}  # anchor -> nodes an alias to it stands for
    total = 0
    for event in yaml.parse(text, Loader=_COMPOSER):
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, count = anchors.pop(), sizes.pop() + 1
            if anchor is not None:
                expanded[anchor] = count
            if sizes:
                sizes[-1] += count
            continue
        if isinstance(event, yaml.CollectionStartEvent):
            if len(anchors) >= MAX_NESTING_DEPTH:
                raise _too_big(
                    path,
                    f"the document nests deeper than {MAX_NESTING_DEPTH} levels "
                    "(MAX_NESTING_DEPTH)",
                    limit=MAX_NESTING_DEPTH,
                    line=_line(event),
                )
            anchors.append(event.anchor)
            sizes.append(0)
            count = 1  # the collection's own node; its items are added as they come
        elif isinstance(event, yaml.AliasEvent):
            anchor = event.anchor or ""
            if anchor in anchors:
                raise ProfileLoadFailed(
                    f"{path}: alias *{anchor} (line {_line(event)}) is inside its own anchor "
                    f"&{anchor}: a recursive alias has no end",
                    path=str(path),
                    line=_line(event),
                )
            count = expanded.get(anchor, 1)  # an unknown anchor: the composer says so
        elif isinstance(event, yaml.ScalarEvent):
            count = 1
            if event.anchor is not None:
                expanded[event.anchor] = 1
        else:
            continue
        if sizes and not isinstance(event, yaml.CollectionStartEvent):
            sizes[-1] += count
        total += count
        if total > MAX_DOCUMENT_NODES:
            raise _too_big(
                path,
                f"the document has more than {MAX_DOCUMENT_NODES} nodes, aliases expanded "
                "(MAX_DOCUMENT_NODES)",
                limit=MAX_DOCUMENT_NODES,
                line=_line(event),
            )


def _line(event: yaml.Event) -> int | None:
    return None if event.start_mark is None else event.start_mark.line + 1


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

    _check_json_depth(text, path)
    try:
        return json.loads(text, object_pairs_hook=pairs)
    except _DuplicateKey as dup:
        # The hook runs innermost first and cannot know the path: find it.
        where = _find_duplicate_path(text, dup.key) or (dup.key,)
        raise _duplicate_key(where, "twice in one object", path) from None
    except json.JSONDecodeError as exc:
        raise ProfileLoadFailed(f"{path}: not valid JSON: {exc}", path=str(path)) from exc
    except ValueError as exc:  # a number Python refuses to convert (over 4300 digits)
        raise ProfileLoadFailed(f"{path}: a value cannot be read: {exc}", path=str(path)) from exc


# A JSON string (skipped whole, brackets in it are text) or a bracket.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def _check_json_depth(text: str, path: Path) -> None:
    """Refuse nesting beyond MAX_NESTING_DEPTH before the recursive decoder meets it."""
    depth = 0
    for token in _JSON_TOKEN.finditer(text):
        bracket = token.group()
        if bracket in ("[", "{"):
            depth += 1
            if depth > MAX_NESTING_DEPTH:
                raise _too_big(
                    path,
                    f"the document nests deeper than {MAX_NESTING_DEPTH} levels "
                    "(MAX_NESTING_DEPTH)",
                    limit=MAX_NESTING_DEPTH,
                    line=text.count("\n", 0, token.start()) + 1,
                )
        elif bracket in ("]", "}"):
            depth -= 1


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

    try:
        document = json.loads(text, object_pairs_hook=list)
    except ValueError:  # a value the first pass never reached: name the key alone
        return None
    walk(document, ())
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
