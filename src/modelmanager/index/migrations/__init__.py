"""Alembic migrations of the run index; run by :meth:`modelmanager.index.RunStore.upgrade`.

:data:`HEAD` lets :meth:`~modelmanager.index.RunStore.open` see that a database
is up to date with one query, without importing Alembic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

__all__ = ["HEAD", "SCRIPT_LOCATION"]

HEAD: Final = "0006"
"""The newest revision under ``versions/`` (a new revision updates it; a test checks)."""

SCRIPT_LOCATION: Final = Path(__file__).resolve().parent
"""Alembic's ``script_location``: this directory (``env.py``, ``versions/``)."""
