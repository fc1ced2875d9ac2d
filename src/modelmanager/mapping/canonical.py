"""Canonical JSON: the one serializer of every hashed material (D1).

The rule, fixed forever (a change of it is a new ``sig_v``, never a silent one):

* the value is built only of ``dict`` (ASCII string keys), ``list``, ``str``,
  ``int`` (within ±(2**53 - 1)), ``bool`` and ``None``; floats are refused,
  because serializers disagree on them;
* UTF-8, keys sorted, no whitespace, non-ASCII characters written as
  themselves, ``"`` ``\\`` and control characters escaped.

With these restrictions the bytes are exactly those of RFC 8785 (JSON
Canonicalization Scheme), so any language with a JCS library reproduces our
hashes; a property test checks that against an independent JCS implementation.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from modelmanager.errors import CanonicalJsonError

__all__ = ["CanonicalJsonError", "canonical_json", "check_sha256_tagged", "sha256_tagged"]

_MAX_SAFE_INT = 2**53 - 1

_encode = json.JSONEncoder(
    ensure_ascii=False,
    allow_nan=False,
    sort_keys=True,
    separators=(",", ":"),
).encode


def canonical_json(value: Any) -> bytes:
    """Serialize ``value`` to canonical JSON bytes.

    Raises:
        CanonicalJsonError: ``value`` holds a type or number the rule refuses.

    >>> canonical_json({"b": [1, None], "a": "é"})
    b'{"a":"\\xc3\\xa9","b":[1,null]}'
    """
    _check(value, "$")
    return _encode(value).encode("utf-8")


def sha256_tagged(data: bytes) -> str:
    """``sha256:<64 lowercase hex>`` of ``data``: the self-describing hash format."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


_SHA256_TAGGED = re.compile(r"sha256:[0-9a-f]{64}")


def check_sha256_tagged(value: str) -> str:
    """``value`` if it is ``sha256:`` + 64 lowercase hex digits (R-SPEC-4).

    Raises:
        ValueError: naming the value and the expected form.
    """
    if not _SHA256_TAGGED.fullmatch(value):
        raise ValueError(f"{value!r} is not 'sha256:' followed by 64 lowercase hex digits")
    return value


def _check(value: Any, where: str) -> None:
    # Exact str/None first: the bulk of every signature's material.
    if type(value) is str or value is None or isinstance(value, bool):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                raise CanonicalJsonError(f"{where}: key {key!r} is not an ASCII string")
            if type(item) is not str and item is not None:
                _check(item, f"{where}.{key}")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check(item, f"{where}[{i}]")
        return
    if isinstance(value, float):
        raise CanonicalJsonError(f"{where}: float {value!r} is not allowed in hashed material")
    if isinstance(value, int):
        if not -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            raise CanonicalJsonError(f"{where}: integer {value} is outside ±(2**53-1)")
        return
    if isinstance(value, str):
        return
    raise CanonicalJsonError(f"{where}: {type(value).__name__} is not a JSON value")
