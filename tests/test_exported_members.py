"""The public surface: __all__ is complete and importable (httpx's test of the same name)."""

from __future__ import annotations

import types

import modelmanager


def test_all_names_import() -> None:
    for name in modelmanager.__all__:
        assert hasattr(modelmanager, name), name


def test_all_lists_every_public_name() -> None:
    public = {
        name
        for name, value in vars(modelmanager).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    assert public == set(modelmanager.__all__) - {"__version__"}
