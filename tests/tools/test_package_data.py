"""The defaults of ``models prepare`` and ``licenses check`` are package data, not paths
relative to the working directory (issue 12, point 5)."""

from __future__ import annotations

import fnmatch
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import modelmanager
import modelmanager.tools.prepare as prepare_module
from modelmanager.cli.models import (
    DEFAULT_INVENTORY,
    DEFAULT_PROFILE_DIR,
    DEFAULT_SPEC,
    licenses_app,
    models_app,
)
from modelmanager.tools.licenses import parse_inventory
from modelmanager.tools.prepare import PreparedModel, load_model_sources
from tests.conftest import EXAMPLES, REPO

PACKAGE = Path(modelmanager.__file__).resolve().parent


def test_defaults_are_inside_the_package() -> None:
    for path in (DEFAULT_SPEC, DEFAULT_INVENTORY, DEFAULT_PROFILE_DIR):
        assert path.is_absolute(), path
        assert path.resolve().is_relative_to(PACKAGE), path
    assert DEFAULT_SPEC.is_file()
    assert DEFAULT_INVENTORY.is_file()
    assert DEFAULT_PROFILE_DIR.is_dir()


def test_repository_paths_point_at_the_package_files() -> None:
    """One copy of each: the paths people, the Makefile and tests use are links to it."""
    assert (REPO / "MODEL_LICENSES.md").samefile(DEFAULT_INVENTORY)
    assert (EXAMPLES / "models.yaml").samefile(DEFAULT_SPEC)
    assert (EXAMPLES / "profile.yaml").samefile(DEFAULT_PROFILE_DIR / "profile.yaml")


def test_licenses_check_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(licenses_app, ["--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["inventory"] == str(DEFAULT_INVENTORY)
    assert data["profiles"] == [str(DEFAULT_PROFILE_DIR / "profile.yaml")]
    assert data["models_used"]
    assert data["missing"] == []


def test_models_prepare_finds_its_spec_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Path] = []

    def fake_prepare(spec: Path, models_root: Path, **kwargs: Any) -> list[PreparedModel]:
        seen.append(spec)
        load_model_sources(spec)  # the default spec resolves and is valid
        return []

    monkeypatch.setattr(prepare_module, "prepare_models", fake_prepare)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(models_app, ["--models-root", str(tmp_path / "root"), "--json"])
    assert result.exit_code == 0, result.output
    assert seen == [DEFAULT_SPEC]


def test_packaged_inventory_covers_the_packaged_spec() -> None:
    names = {s.name for s in load_model_sources(DEFAULT_SPEC)}
    assert names <= parse_inventory(DEFAULT_INVENTORY).keys()


def test_package_data_globs_ship_the_defaults() -> None:
    """pyproject's package-data puts every default into the wheel."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["modelmanager"]
    for path in (DEFAULT_SPEC, DEFAULT_INVENTORY, DEFAULT_PROFILE_DIR / "profile.yaml"):
        rel = path.resolve().relative_to(PACKAGE).as_posix()
        assert any(fnmatch.fnmatch(rel, p) for p in patterns), rel
