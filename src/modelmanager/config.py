"""Settings: one typed object, read from ``MODELMANAGER_*`` when asked, never at import."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigurationInvalid

__all__ = ["Settings", "require_models_root"]


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
    """

    model_config = SettingsConfigDict(env_prefix="MODELMANAGER_", extra="ignore", frozen=True)

    models_root: Path | None = None
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    digest_workers: int | None = Field(default=None, ge=1)


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
