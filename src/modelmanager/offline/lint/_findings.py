"""Findings, and the ``# offline: allow <reason>`` comments that drop them."""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

_Hit = tuple[str, str]  # (rule, why): what a rule says about one call


@dataclass(frozen=True)
class Finding:
    """One call that would reach the network.

    ``line`` and ``col`` are 1-based (as ruff and flake8 print them); ``call``
    is the called expression as written (``"M.from_pretrained"``).
    """

    path: str
    line: int
    col: int
    rule: str
    call: str
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.rule}: {self.call} — {self.why}"


@dataclass(frozen=True)
class _Raw:
    """A finding before allow comments: the lines where an allow comment applies."""

    finding: Finding
    allow_lines: frozenset[int]
    line_above: int


_ALLOW = re.compile(r"offline:\s*allow(?![\w-])(?P<reason>[^#]*)")


@dataclass(frozen=True)
class _Allow:
    line: int
    col: int
    text: str
    reason: str
    own_line: bool  # the comment is alone on its line


def _allow_comments(source: str) -> Iterator[_Allow]:
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return
    for token in tokens:
        if token.type != tokenize.COMMENT:
            continue
        match = _ALLOW.search(token.string)
        if match is None:
            continue
        line, col = token.start
        yield _Allow(
            line=line,
            col=col + 1,
            text=token.string[: match.end()].rstrip(),
            reason=match.group("reason").strip(" \t:-—"),
            own_line=not token.line[:col].strip(),
        )


def _apply_allows(raw: Sequence[_Raw], allows: Sequence[_Allow], path: str) -> list[Finding]:
    same_line = {a.line for a in allows if a.reason}
    line_above = {a.line for a in allows if a.reason and a.own_line}
    findings = [
        r.finding for r in raw if not (r.allow_lines & same_line or r.line_above in line_above)
    ]
    findings += [
        Finding(
            path,
            a.line,
            a.col,
            "allow-without-reason",
            a.text,
            "an allow comment needs a reason ('# offline: allow <why this call stays local>'); it allows nothing",
        )
        for a in allows
        if not a.reason
    ]
    return findings
