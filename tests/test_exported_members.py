"""The public surface: small, complete, importable, one error root, no name twice (issue 11)."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
from types import ModuleType

import pytest

import modelmanager
from modelmanager import errors

# What a user of the library needs, and nothing else. Adding a public name is a
# decision: it goes here too.
PUBLIC_API = {
    # the seeds' API and what its methods take and return
    "ModelManager",
    "RunContext",
    "ResolvedMapping",
    "ResolvedModelSpec",
    "ModelUsed",
    "CacheKey",
    "HealthReport",
    "resolve_mapping",
    "MappingSource",
    "Runtime",
    "RuntimeFactory",
    "MockRuntime",
    # running components
    "Runner",
    "RunResult",
    "Component",
    "ComponentRequest",
    "ComponentOutput",
    "RunStore",
    "Settings",
    # input videos (issue 13)
    "SamplingPolicy",
    "VideoInputs",
    "decode_video",
    "probe_video",
    "__version__",
}
HEAVY = ("onnxruntime", "tritonclient", "torch", "sqlalchemy", "alembic", "av")


def _modules() -> list[ModuleType]:
    names = [
        info.name
        for info in pkgutil.walk_packages(modelmanager.__path__, "modelmanager.")
        if ".migrations" not in info.name  # Alembic scripts run only inside Alembic
    ]
    return [importlib.import_module(name) for name in names]


def _error_classes() -> set[str]:
    return {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, BaseException)
    }


def test_all_is_exactly_the_public_surface_and_every_error() -> None:
    assert set(modelmanager.__all__) == PUBLIC_API | _error_classes()
    assert len(modelmanager.__all__) == len(set(modelmanager.__all__))


def test_all_names_import() -> None:
    for name in modelmanager.__all__:
        assert getattr(modelmanager, name) is not None, name
    assert set(dir(modelmanager)) >= set(modelmanager.__all__)


def test_internal_names_are_not_reachable_from_the_package() -> None:
    with pytest.raises(AttributeError, match="Digester"):
        _ = modelmanager.Digester  # type: ignore[attr-defined]


def test_every_exception_of_the_package_is_under_the_root() -> None:
    found = {}
    for module in _modules():
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
                and not name.startswith("_")  # private control flow, caught where raised
            ):
                found[f"{module.__name__}.{name}"] = value
    assert found, "no exception classes found"
    outside = sorted(k for k, v in found.items() if not issubclass(v, errors.ModelManagerError))
    assert outside == []
    codes = [cls.code for cls in found.values()]
    assert len(codes) == len(set(codes)), "two error classes share a code"
    assert set(errors.ERROR_CLASSES.values()) == set(found.values()) - {errors.ModelManagerError}


def test_no_two_public_names_collide() -> None:
    """A name exported by two modules must be the same object (a re-export), not two things."""
    seen: dict[str, tuple[str, object]] = {}
    clashes = []
    for module in _modules():
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            if name in seen and seen[name][1] is not value:
                clashes.append(f"{name}: {seen[name][0]} and {module.__name__}")
            seen.setdefault(name, (module.__name__, value))
    assert clashes == []


def test_import_pulls_in_no_heavy_library() -> None:
    code = (
        "import json, sys, modelmanager, modelmanager.errors;"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []


def test_the_command_imports_nothing_heavy_to_start() -> None:
    """`modelmanager --help` stays near `import typer` (make bench): the commands import
    the index, runtimes, numpy, pydantic and rich inside their bodies."""
    heavy = (*HEAVY, "numpy", "pydantic", "rich.console", "yaml")
    code = (
        "import json, sys, modelmanager.cli.app;"
        f"print(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []
