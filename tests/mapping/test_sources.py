"""R-MAP-1: payload, else profile YAML, else database; duplicate keys refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from modelmanager import InvalidModelSpec, ModelMappingMissing, ProfileLoadFailed, resolve_mapping
from modelmanager.mapping.sources import load_document
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
