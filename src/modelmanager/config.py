"""Settings: one typed object, read from ``MODELMANAGER_*`` when asked, never at import.

A value that does not fit its setting (``MODELMANAGER_GC_KEEP_PREVIOUS=abc``) is
:class:`~modelmanager.errors.ConfigurationInvalid` naming the variable and the
reason, raised by ``Settings()`` itself, so every command and the manager report
it the same way instead of a pydantic traceback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from modelmanager.errors import ConfigurationInvalid

__all__ = ["Settings", "require_models_root"]


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "modelmanager"


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "modelmanager"


class Settings(BaseSettings):
    """Where models and caches live.

    Attributes:
        models_root: root of every local artifact path in a mapping (R-SPEC-5);
            ``MODELMANAGER_MODELS_ROOT``.
        cache_dir: per-host caches such as the digest cache;
            ``MODELMANAGER_CACHE_DIR`` (default ``$XDG_CACHE_HOME/modelmanager``).
        digest_workers: threads hashing files in parallel (default: CPU count).
        data_dir: the embedded defaults' home (``MODELMANAGER_DATA_DIR``, default
            ``$XDG_DATA_HOME/modelmanager``): the SQLite run index and the artifacts.
        database_url: the run index (``MODELMANAGER_DATABASE_URL``); default SQLite
            in data_dir; PostgreSQL by URL (``postgresql+psycopg://…``).
        artifact_root: where NPZ artifacts and manifests go
            (``MODELMANAGER_ARTIFACT_ROOT``, default ``<data_dir>/artifacts``).
        lease_ttl_s: how long a worker's claim on a cache key lasts without renewal.
        lease_wait_s: how long a worker waits for another one computing the same key.
        gc_keep_previous: garbage collection keeps the newest successful run of a
            group plus this many previous ones (R-GC-2; ``MODELMANAGER_GC_KEEP_PREVIOUS``).
        gc_temp_ttl_days: temporary data of a run expires this long after the run
            started (R-GC-3; ``MODELMANAGER_GC_TEMP_TTL_DAYS``).
        gc_hard_cap_days: nothing older survives garbage collection (R-GC-1;
            ``MODELMANAGER_GC_HARD_CAP_DAYS``).
        gpu_inventory: an injected GPU inventory (JSON, as ``gpus --json`` prints) used
            instead of NVML's (``MODELMANAGER_GPU_INVENTORY``): planning for another machine.
    """

    model_config = SettingsConfigDict(env_prefix="MODELMANAGER_", extra="ignore", frozen=True)

    models_root: Path | None = None
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    digest_workers: int | None = Field(default=None, ge=1)
    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = None
    artifact_root: Path | None = None
    lease_ttl_s: float = Field(default=60.0, gt=0)
    lease_wait_s: float = Field(default=600.0, ge=0)
    gc_keep_previous: int = Field(default=2, ge=0)
    gc_temp_ttl_days: float = Field(default=7.0, gt=0)
    gc_hard_cap_days: float = Field(default=60.0, gt=0)
    gpu_inventory: Path | None = None

    def __init__(self, **values: Any) -> None:
        """Read the settings: ``values`` first, then ``MODELMANAGER_*``, then the defaults.

        Raises:
            ConfigurationInvalid: a value does not fit its setting (names the
                environment variable, or the keyword, and why).
        """
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise _invalid_settings(error, values) from error
        except SettingsError as error:  # pydantic-settings could not even decode the value
            raise ConfigurationInvalid(
                f"the MODELMANAGER_* environment is not usable: {error}", setting="environment"
            ) from error

    @property
    def resolved_database_url(self) -> str:
        """``database_url``, or the SQLite file in ``data_dir``."""
        return self.database_url or f"sqlite:///{self.data_dir / 'modelmanager.sqlite3'}"

    @property
    def resolved_artifact_root(self) -> Path:
        """``artifact_root``, or ``<data_dir>/artifacts``."""
        return self.artifact_root or self.data_dir / "artifacts"


def _invalid_settings(error: ValidationError, given: Mapping[str, Any]) -> ConfigurationInvalid:
    """The error naming each bad value by where it came from: a keyword, else its variable."""
    problems: list[str] = []
    for item in error.errors(include_url=False):
        setting = str(item["loc"][0]) if item["loc"] else "settings"
        source = setting if setting in given else f"MODELMANAGER_{setting.upper()}"
        value = repr(item.get("input"))
        shown = value if len(value) <= 60 else value[:57] + "..."
        problems.append(f"{source}={shown} is not valid: {item['msg']}")
    first = error.errors(include_url=False)[0]
    setting = str(first["loc"][0]) if first["loc"] else "settings"
    variable = None if setting in given else f"MODELMANAGER_{setting.upper()}"
    return ConfigurationInvalid(
        "; ".join(problems),
        setting=setting,
        variable=variable,
        reason=first["msg"],
        hint=f"Fix or unset {variable}." if variable else None,
    )


def require_models_root(root: Path | None) -> Path:
    """``root``, or the error that says how to set it.

    Raises:
        ConfigurationInvalid: models_root is set neither by flag nor environment.
    """
    if root is None:
        raise ConfigurationInvalid(
            "models_root is not set: pass --models-root or set MODELMANAGER_MODELS_ROOT",
            setting="models_root",
        )
    return root
