"""R-NET-3: the static check finds the calls that would reach the network, and only those.

The corpus under ``tests/offline/lint_corpus/`` is data, not code (``*.py.txt``, so that
neither pytest nor ruff reads it): every line of a ``positive_*`` file that the
check must flag ends with ``# expect: <rule>[, <rule>]``; ``negative_*`` files
must give no finding at all.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from modelmanager.cli.lint import lint_offline
from modelmanager.offline.lint import RULES, Finding, lint_paths, lint_source, python_files

CORPUS = Path(__file__).parent / "lint_corpus"
POSITIVE = sorted(CORPUS.glob("positive_*.py.txt"))
NEGATIVE = sorted(CORPUS.glob("negative_*.py.txt"))
EXPECT = re.compile(r"# expect: (?P<rules>[\w, -]+)$")


def expected(path: Path) -> set[tuple[int, str]]:
    marks = set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = EXPECT.search(line)
        if match:
            marks |= {(number, rule.strip()) for rule in match.group("rules").split(",")}
    return marks


def test_corpus_is_there() -> None:
    assert len(POSITIVE) >= 3
    assert len(NEGATIVE) >= 2


@pytest.mark.parametrize("path", POSITIVE, ids=lambda p: p.name)
def test_positive_corpus_finds_exactly_the_marked_lines(path: Path) -> None:
    findings = lint_source(path.read_text(), str(path))
    found = {(f.line, f.rule) for f in findings}
    marks = expected(path)
    assert marks, "a positive file without markers tests nothing"
    assert found - marks == set(), "found, not marked"
    assert marks - found == set(), "marked, not found"


def test_positive_corpus_covers_every_call_rule() -> None:
    rules = {rule for path in POSITIVE for _, rule in expected(path)}
    assert rules == set(RULES) - {"syntax-error"}


@pytest.mark.parametrize("path", NEGATIVE, ids=lambda p: p.name)
def test_negative_corpus_finds_nothing(path: Path) -> None:
    assert lint_source(path.read_text(), str(path)) == []


def test_finding_carries_the_call_as_written_and_why() -> None:
    source = 'from transformers import AutoModel as M\nm = M.from_pretrained("org/x")\n'
    [finding] = lint_source(source, "m.py")
    assert finding == Finding(
        path="m.py",
        line=2,
        col=5,
        rule="hub-model-id",
        call="M.from_pretrained",
        why=finding.why,
    )
    assert "'org/x' is a Hub id" in finding.why
    assert "local_files_only=True" in finding.why
    assert str(finding).startswith("m.py:2:5: hub-model-id: M.from_pretrained — ")


@pytest.mark.parametrize(
    ("source", "rule"),
    [
        ('import requests\nrequests.get("https://example.com")', "http-outside"),
        ('from requests import get\nget("http://127.0.0.1:9/")', None),
        ("import requests\ndef f(u):\n    requests.get(u)", "http-unverifiable"),
        # Function bodies run later: a constant bound after the def is seen.
        ('import requests\ndef f():\n    requests.get(U)\nU = "http://localhost:1"', None),
        (
            'import requests\nU = "http://localhost:1"\ndef f(U):\n    requests.get(U)',
            "http-unverifiable",
        ),
        # A class body's names are not visible in its methods.
        (
            'import requests\nclass C:\n    U = "http://localhost:1"\n    def f(self):\n        requests.get(U)',
            "http-unverifiable",
        ),
        ('import requests\nrequests.get("http://[::1]:8000")', None),
        ('import requests\nrequests.get("http://[2001:db8::1]:8000")', "http-outside"),
        ('import requests\nrequests.get(f"http://127.0.0.1{P}")', "http-unverifiable"),
        ('import requests as r\nfor r in []:\n    r.get("https://x")', None),
        ('import clip\nclip.load("weights/ViT-B-32.pt")', None),
        ('import clip\nclip.load("weights/ViT-B-32")', "clip-load"),
        ("from transformers import AutoModel\nAutoModel.from_pretrained(**cfg)", "hub-model-id"),
    ],
)
def test_small_cases(source: str, rule: str | None) -> None:
    assert [f.rule for f in lint_source(source)] == ([rule] if rule else [])


def test_allow_comment_on_the_line_above_must_stand_alone() -> None:
    source = (
        "import requests\n"
        'a = requests.get("https://a.example")  # offline: allow mirror we run\n'
        'b = requests.get("https://b.example")\n'
    )
    assert [(f.line, f.rule) for f in lint_source(source)] == [(3, "http-outside")]


def test_allow_comment_without_reason_allows_nothing() -> None:
    source = 'import requests\n# offline: allow\nrequests.get("https://example.com")\n'
    findings = lint_source(source)
    assert [(f.line, f.col, f.rule) for f in findings] == [
        (2, 1, "allow-without-reason"),
        (3, 1, "http-outside"),
    ]
    assert findings[0].call == "# offline: allow"


def test_allow_text_inside_a_string_is_not_a_comment() -> None:
    source = 'import requests\nrequests.get("https://example.com", data="# offline: allow x")\n'
    assert [f.rule for f in lint_source(source)] == ["http-outside"]


def test_syntax_error_is_a_finding() -> None:
    [finding] = lint_source("def broken(:\n    pass\n", "bad.py")
    assert (finding.path, finding.line, finding.rule) == ("bad.py", 1, "syntax-error")
    assert finding.why.startswith("cannot parse")


def test_long_chains_are_checked_and_deep_nesting_is_reported_not_raised() -> None:
    # Generated code: a concatenation hundreds of terms long is checked, not a RecursionError.
    chain = "import requests\nrequests.get('https://' + " + " + ".join(["'a'"] * 800) + ")\n"
    assert [f.rule for f in lint_source(chain)] == ["http-outside"]
    # Nested past what the compiler or the checker can walk: a finding, whichever gives up first.
    for depth in (700, 3000):
        [finding] = lint_source("x = a" + ".b" * depth)
        assert finding.rule == "syntax-error"


def test_lint_paths_walks_directories_and_sorts(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "sub" / "b.py").write_text('import requests\nrequests.get("https://x")\n')
    (tmp_path / "pkg" / "a.py").write_text("\n\nimport torch\ntorch.hub.load('o/r', 'm')\n")
    (tmp_path / "pkg" / "notes.txt").write_text('requests.get("https://x")\n')
    (tmp_path / "pkg" / ".hidden").mkdir()
    (tmp_path / "pkg" / ".hidden" / "c.py").write_text(
        'import requests\nrequests.get("https://x")\n'
    )
    (tmp_path / "pkg" / "venv").mkdir()
    (tmp_path / "pkg" / "venv" / "pyvenv.cfg").write_text("")
    (tmp_path / "pkg" / "venv" / "d.py").write_text('import requests\nrequests.get("https://x")\n')
    findings = lint_paths([tmp_path / "pkg"])
    assert [(Path(f.path).name, f.line, f.rule) for f in findings] == [
        ("a.py", 4, "torch-hub"),
        ("b.py", 2, "http-outside"),
    ]
    # A file named explicitly is checked whatever its suffix.
    assert python_files([tmp_path / "pkg" / "notes.txt"]) == [tmp_path / "pkg" / "notes.txt"]


def test_lint_paths_reports_undecodable_file(tmp_path: Path) -> None:
    bad = tmp_path / "latin.py"
    bad.write_bytes(b"x = '\xff'\n")
    [finding] = lint_paths([bad])
    assert finding.rule == "syntax-error"


# --------------------------------------------------------------------------- #
# The command


def make_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Group, so that the command is called by its name as in modelmanager."""

    app.command("lint-offline")(lint_offline)
    return app


runner = CliRunner()


def invoke(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(make_app(), ["lint-offline", *map(str, args)])
    return result.exit_code, result.output


def test_cli_clean_exits_0(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text('import requests\nrequests.get("http://127.0.0.1:1/")\n')
    code, output = invoke(tmp_path)
    assert code == 0, output
    assert "0 findings" in output


def test_cli_findings_exit_1_one_line_each(tmp_path: Path) -> None:
    source = tmp_path / "bad.py"
    source.write_text('import requests\n\nrequests.get("https://example.com")\n')
    code, output = invoke(source)
    assert code == 1
    lines = output.splitlines()
    assert lines[0] == (
        f"{source}:3:1: http-outside: requests.get — 'example.com' is not a loopback host;"
        " the model system never reaches outside hosts (R-NET-1)"
    )
    assert lines[-1] == "1 finding in 1 file"


def test_cli_json(tmp_path: Path) -> None:
    source = tmp_path / "bad.py"
    source.write_text('import torch\ntorch.hub.load_state_dict_from_url("https://x/y.pth")\n')
    code, output = invoke(source, "--json")
    assert code == 1
    document = json.loads(output)
    assert document["count"] == 1
    assert document["files"] == 1
    [finding] = document["findings"]
    assert finding["path"] == str(source)
    assert (finding["line"], finding["col"], finding["rule"]) == (2, 1, "torch-hub")
    assert finding["call"] == "torch.hub.load_state_dict_from_url"


def test_cli_missing_path_exits_2(tmp_path: Path) -> None:
    code, output = invoke(tmp_path / "nope")
    assert code == 2
    assert f"[lint_path_missing] no such file or directory: {tmp_path / 'nope'}" in output
    code, output = invoke(tmp_path / "nope", "--json")
    assert code == 2
    assert json.loads(output)["error_code"] == "lint_path_missing"
