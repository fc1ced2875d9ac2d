"""Offline, always (R-NET): the runtime network guard and the static check of sources.

:mod:`modelmanager.offline.guard` refuses sockets to outside hosts, and programs it cannot
see into, while a manager is in use; :mod:`modelmanager.offline.lint` finds code that would
download weights or reach outside hosts (``modelmanager lint-offline``).

Importing this package in a child of a guarded process (``MODELMANAGER_OFFLINE_GUARD=1``
in its environment) installs the guard there too: see :func:`install_if_inherited`.
"""

from __future__ import annotations

from modelmanager.offline.guard import (
    GUARD_ENV,
    OFFLINE_ENV,
    BlockedAttempt,
    allow,
    allow_child_process,
    blocked_attempts,
    endpoint_of,
    host_of,
    install,
    install_if_inherited,
    installed,
    refusal_in,
)

__all__ = [
    "GUARD_ENV",
    "OFFLINE_ENV",
    "BlockedAttempt",
    "allow",
    "allow_child_process",
    "blocked_attempts",
    "endpoint_of",
    "host_of",
    "install",
    "install_if_inherited",
    "installed",
    "refusal_in",
]

install_if_inherited()  # a guarded parent's child is guarded from its first import of us
