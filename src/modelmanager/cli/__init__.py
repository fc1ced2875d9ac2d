"""The ``modelmanager`` command line: one module per command group.

Exit codes everywhere (D10): 0 ok, 1 the operation failed (error code
printed), 2 bad input. Every command has ``--json``; with it, stdout holds one
JSON document, errors included (``{"error_code": ..., ...}``), usage errors too
(``configuration_invalid``, see ``_common.JsonUsageGroup``).

    app.py        the assembled command (entry point ``main``)
    _common.py    consoles, shared options, error reporting
    mapping.py    resolve, health, digest
    run.py        run (its parts that run only when it runs: run_videos.py)
    plan.py       plan
    gpus.py       gpus
    runs.py       runs list|show, explain
    profiles.py   profiles load|list
    models.py     models prepare, licenses check
    triton.py     triton build-repo|serve
    gc.py         gc, orphans, delete-video
    lint.py       lint-offline
"""

from __future__ import annotations

from modelmanager.cli.app import app, main

__all__ = ["app", "main"]
