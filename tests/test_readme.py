"""README's Python example and the package docstring's doctest run as they stand (issue 11)."""

from __future__ import annotations

import doctest
import re
import subprocess
import sys
from pathlib import Path

import pytest

import modelmanager

ROOT = Path(__file__).resolve().parent.parent


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_python_example_runs(tmp_path: Path) -> None:
    (block,) = [b for b in _python_blocks((ROOT / "README.md").read_text()) if "Runner(" in b]
    script = tmp_path / "example.py"
    script.write_text(block)
    env_home = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, env=env_home, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_package_docstring_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = doctest.testmod(modelmanager, optionflags=doctest.ELLIPSIS)
    assert (result.attempted, result.failed) == (4, 0)
