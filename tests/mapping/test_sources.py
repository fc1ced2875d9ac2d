"""R-MAP-1: payload, else profile YAML, else database; duplicate keys refused."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelmanager import InvalidModelSpec, ModelMappingMissing, ProfileLoadFailed, resolve_mapping
from modelmanager.mapping.sources import (
    MAX_DOCUMENT_BYTES,
    MAX_DOCUMENT_NODES,
    MAX_NESTING_DEPTH,
    load_document,
)
from tests.conftest import EXAMPLES, onnx_entry


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


class FakeStore:
    """The database seam: what issue 4's profile table provides."""

    def __init__(self, profiles: dict[str, Any]) -> None:
        self.profiles = profiles

    def load_profile(self, name: str) -> dict[str, Any] | None:
        return self.profiles.get(name)


def test_payload_mapping_wins_over_profile_and_database(tmp_path: Path) -> None:
    payload = {"model_mapping": {"profile": "from-payload", "components": {"c": {}}}}
    mapping, source = resolve_mapping(
        payload=payload,
        profile_path=EXAMPLES / "profile.yaml",
        store=FakeStore({"p": {"profile": "from-db", "components": {}}}),
        profile_name="p",
    )
    assert (mapping.profile, str(source)) == ("from-payload", "payload")


def test_profile_when_payload_has_no_mapping() -> None:
    mapping, source = resolve_mapping(
        payload={"run_context": {}}, profile_path=EXAMPLES / "profile.yaml"
    )
    assert mapping.profile == "example-cpu"
    assert source.kind == "profile"


def test_database_when_nothing_else() -> None:
    store = FakeStore({"p": {"profile": "from-db", "components": {"c": {}}}})
    mapping, source = resolve_mapping(store=store, profile_name="p")
    assert (mapping.profile, str(source)) == ("from-db", "database:p")
    with pytest.raises(ModelMappingMissing, match="'q' is not in the database"):
        resolve_mapping(store=store, profile_name="q")


def test_no_source_at_all() -> None:
    with pytest.raises(ModelMappingMissing) as info:
        resolve_mapping(payload={})
    assert info.value.exit_code == 2


def test_invalid_payload_mapping_names_the_layer() -> None:
    with pytest.raises(InvalidModelSpec, match=r"payload: component 'c'"):
        resolve_mapping(
            payload={"model_mapping": {"components": {"c": {"r": onnx_entry(engine="x")}}}}
        )


def test_duplicate_role_in_yaml(tmp_path: Path) -> None:
    entry = yaml.safe_dump({"detector": onnx_entry()}).replace("\n", "\n    ")
    text = f"components:\n  text_ocr:\n    {entry}\n    {entry}\n"
    with pytest.raises(InvalidModelSpec) as info:
        load_document(_write(tmp_path / "p.yaml", text))
    assert (info.value.fields["component"], info.value.fields["role"]) == ("text_ocr", "detector")
    assert info.value.fields.get("field") is None
    assert "role 'components.text_ocr.detector' is defined lines" in info.value.message


def test_duplicate_field_in_yaml(tmp_path: Path) -> None:
    text = "components:\n  ocr:\n    det:\n      model_version: '1'\n      model_version: '2'\n"
    with pytest.raises(InvalidModelSpec) as info:
        load_document(_write(tmp_path / "p.yaml", text))
    assert info.value.fields["field"] == "model_version"
    assert "lines 4 and 5" in info.value.message


def test_duplicate_role_in_json(tmp_path: Path) -> None:
    text = '{"components": {"ocr": {"det": {}, "rec": {}, "det": {}}}}'
    with pytest.raises(InvalidModelSpec) as info:
        load_document(_write(tmp_path / "p.json", text))
    assert (info.value.fields["component"], info.value.fields["role"]) == ("ocr", "det")


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    text = "base: &b {engine: onnx, precision: fp32}\nx:\n  <<: *b\n  precision: fp16\n"
    assert load_document(_write(tmp_path / "p.yaml", text))["x"] == {
        "engine": "onnx",
        "precision": "fp16",
    }


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("p.yaml", "components: [unclosed", "not valid YAML"),
        ("p.json", "{nope", "not valid JSON"),
        ("p.yaml", "- a list\n", "not a mapping"),
        ("p.yaml", "", "not a mapping"),
    ],
)
def test_unreadable_documents(tmp_path: Path, name: str, text: str, match: str) -> None:
    with pytest.raises(ProfileLoadFailed, match=match) as info:
        load_document(_write(tmp_path / name, text))
    assert info.value.exit_code == 2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileLoadFailed, match="no such file"):
        load_document(tmp_path / "absent.yaml")


# -- issue 12 (R-FAIL): hostile documents fail at once, naming the bound -------------------


def _billion_laughs() -> str:
    """Nine levels of nine aliases: ~300 bytes that expand to 9**9 (387 million) leaves."""
    lines = ["a: &a [x,x,x,x,x,x,x,x,x]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _refused_at_once(path: Path) -> ProfileLoadFailed:
    started = time.perf_counter()
    with pytest.raises(ProfileLoadFailed) as info:
        load_document(path)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"took {elapsed:.2f} s"
    assert info.value.exit_code == 2
    return info.value


def test_billion_laughs_is_refused_at_once(tmp_path: Path) -> None:
    """Issue 12 (R-FAIL): a ~300-byte alias bomb ran past 30 s; now the expanded node bound
    stops it within the first lines, and the message names the bound and its limit."""
    text = _billion_laughs()
    assert len(text.encode()) < 512
    error = _refused_at_once(_write(tmp_path / "p.yaml", text))
    assert error.fields["limit"] == MAX_DOCUMENT_NODES
    assert f"more than {MAX_DOCUMENT_NODES} nodes" in error.message
    assert "MAX_DOCUMENT_NODES" in error.message


@pytest.mark.parametrize(
    "text",
    ["a: &a [1, *a]\n", "a: &a {b: *a}\n", "a: &a\n  <<: *a\n  x: 1\n"],
    ids=["sequence", "mapping", "merge"],
)
def test_recursive_alias_is_refused(tmp_path: Path, text: str) -> None:
    """Issue 12 (R-FAIL): an alias inside its own anchor ended in a RecursionError traceback."""
    error = _refused_at_once(_write(tmp_path / "p.yaml", text))
    assert "recursive alias" in error.message
    assert error.fields["line"] in (1, 2)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("p.json", "[" * 100_000 + "]" * 100_000),
        ("p.json", '{"a": ' * 100_000 + "1" + "}" * 100_000),
        ("p.yaml", "[" * 100_000 + "]" * 100_000),
        ("p.yaml", "".join(" " * i + "a:\n" for i in range(1000)) + " " * 1000 + "b: 1\n"),
    ],
    ids=["json-arrays", "json-objects", "yaml-flow", "yaml-block"],
)
def test_deep_nesting_is_refused(tmp_path: Path, name: str, text: str) -> None:
    """Issue 12 (R-FAIL): 10**5 levels ended in RecursionError (JSON) or crashed the process
    (libyaml's composer recursing in C); now the depth bound refuses them, with the line."""
    error = _refused_at_once(_write(tmp_path / name, text))
    assert error.fields["limit"] == MAX_NESTING_DEPTH
    assert f"deeper than {MAX_NESTING_DEPTH} levels" in error.message
    assert "MAX_NESTING_DEPTH" in error.message


@pytest.mark.parametrize("name", ["p.yaml", "p.json"])
def test_nesting_at_the_bound_loads(tmp_path: Path, name: str) -> None:
    """Issue 12: the depth bound counts collections; exactly MAX_NESTING_DEPTH of them load."""
    depth = MAX_NESTING_DEPTH - 1  # the document's own mapping is the first level
    text = '{"a": ' * depth + "[]" + "}" * depth
    document = load_document(_write(tmp_path / name, text))
    for _ in range(depth - 1):
        document = document["a"]
    assert document == {"a": []}


def test_aliases_below_the_bound_load(tmp_path: Path) -> None:
    """Issue 12: aliases themselves are fine (merge keys share entries); only the expansion
    is bounded."""
    text = "a: &a [" + ", ".join(["x"] * 999) + "]\nb: [" + ", ".join(["*a"] * 150) + "]\n"
    document = load_document(_write(tmp_path / "p.yaml", text))
    assert len(document["b"]) == 150
    assert document["b"][149] == ["x"] * 999


@pytest.mark.parametrize("extra", [0, 1], ids=["at-the-bound", "one-past"])
def test_the_node_bound_counts_every_alias_expansion(tmp_path: Path, extra: int) -> None:
    """Issue 12 (R-FAIL past the bound): nodes are counted as the walks of the document
    meet them, each alias as its anchor's whole subtree: exactly MAX_DOCUMENT_NODES load."""
    # root 1, "a" 1, &a 1 + 999, "b" 1, b 1 + 198 * 1000, "c" 1, c 1 + r
    tail = MAX_DOCUMENT_NODES - (1 + 1 + 1000 + 1 + 1 + 198 * 1000 + 1 + 1) + extra
    text = (
        "a: &a [" + ",".join(["x"] * 999) + "]\n"
        "b: [" + ",".join(["*a"] * 198) + "]\n"
        "c: [" + ",".join(["y"] * tail) + "]\n"
    )
    path = _write(tmp_path / "p.yaml", text)
    if extra == 0:
        assert len(load_document(path)["c"]) == tail
    else:
        error = _refused_at_once(path)
        assert (error.fields["limit"], error.fields["line"]) == (MAX_DOCUMENT_NODES, 3)


@pytest.mark.parametrize("name", ["p.yaml", "p.json"])
def test_oversized_document_is_refused_before_reading(tmp_path: Path, name: str) -> None:
    """Issue 12 (R-FAIL): a profile with a 50 MB field took 205 s and 4 GB; now its size is
    refused before a byte is parsed, naming the size and the bound."""
    field = "x" * 50_000_000
    text = f'{{"field": "{field}"}}' if name == "p.json" else f"field: {field}\n"
    error = _refused_at_once(_write(tmp_path / name, text))
    assert error.fields["limit"] == MAX_DOCUMENT_BYTES
    assert f"is {len(text)} bytes" in error.message
    assert f"at most {MAX_DOCUMENT_BYTES} bytes (MAX_DOCUMENT_BYTES)" in error.message


def test_document_at_the_size_bound_loads(tmp_path: Path) -> None:
    """Issue 12: the byte bound is inclusive."""
    text = "field: " + "x" * (MAX_DOCUMENT_BYTES - len("field: \n")) + "\n"
    assert len(text) == MAX_DOCUMENT_BYTES
    assert len(load_document(_write(tmp_path / "p.yaml", text))["field"]) == MAX_DOCUMENT_BYTES - 8


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("p.json", '{"a": ' + "1" * 5000 + "}"),
        ("p.yaml", "a: " + "1" * 5000 + "\n"),
        ("p.yaml", "a: 2001-13-45\n"),
    ],
    ids=["json-int", "yaml-int", "yaml-date"],
)
def test_values_python_cannot_hold_are_refused(tmp_path: Path, name: str, text: str) -> None:
    """Issue 12 (R-FAIL): a 5000-digit integer or a 13th month ended in a ValueError
    traceback; now it is profile_load_failed."""
    error = _refused_at_once(_write(tmp_path / name, text))
    assert "a value cannot be read" in error.message
