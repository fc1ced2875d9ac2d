"""Offline, always (R-NET): the runtime network guard and the static check of sources.

:mod:`modelmanager.offline.guard` refuses sockets to outside hosts while a manager is
in use; :mod:`modelmanager.offline.lint` finds code that would download weights or
reach outside hosts (``modelmanager lint-offline``).
"""

from __future__ import annotations

from modelmanager.offline.guard import (
    OFFLINE_ENV,
    BlockedAttempt,
    allow,
    blocked_attempts,
    host_of,
    install,
    installed,
    refusal_in,
)

__all__ = [
    "OFFLINE_ENV",
    "BlockedAttempt",
    "allow",
    "blocked_attempts",
    "host_of",
    "install",
    "installed",
    "refusal_in",
]
