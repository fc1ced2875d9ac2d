"""``modelmanager lint-offline``: find calls that would reach the network (R-NET-3).

    modelmanager lint-offline PATH... [--json]

Prints one line per finding, ``path:line:col: rule: call — why``, then a count.
Exit 0 when clean, 1 on findings, 2 when a path does not exist. The rules, and
what counts as a local path or a loopback URL, are in :mod:`modelmanager.offline.lint`.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from modelmanager.cli._common import JsonOption, print_json, reported, stdout
from modelmanager.errors import LintPathMissing

__all__ = ["lint_offline"]

PathsArgument = Annotated[
    list[Path],
    typer.Argument(
        metavar="PATH...", help="Python files, or directories to walk for *.py.", show_default=False
    ),
]


def lint_offline(paths: PathsArgument, as_json: JsonOption = False) -> None:
    """Find calls that would download or reach outside hosts: Hub ids in from_pretrained,
    huggingface_hub/torch.hub downloads, timm pretrained, clip.load, HTTP to non-loopback
    hosts. Allow a line with '# offline: allow <reason>'. Exit 1 on findings."""
    from modelmanager.offline.lint import lint_paths, python_files

    with reported(as_json):
        missing = [str(path) for path in paths if not path.exists()]
        if missing:
            raise LintPathMissing(f"no such file or directory: {', '.join(missing)}", path=missing)
        files = python_files(paths)
        findings = lint_paths(files)
    if as_json:
        print_json(
            {
                "findings": [asdict(f) for f in findings],
                "count": len(findings),
                "files": len(files),
            }
        )
    else:
        for finding in findings:
            stdout.print(str(finding), markup=False, soft_wrap=True)
        noun = "finding" if len(findings) == 1 else "findings"
        stdout.print(f"{len(findings)} {noun} in {len(files)} file{'' if len(files) == 1 else 's'}")
    if findings:
        raise typer.Exit(1)
