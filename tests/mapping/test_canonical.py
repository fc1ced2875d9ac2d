"""D1: canonical JSON is RFC 8785 on our restricted value set, and refuses floats."""

from __future__ import annotations

import json
from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from modelmanager.mapping.canonical import CanonicalJsonError, canonical_json, sha256_tagged

SAFE = 2**53 - 1
scalars = st.none() | st.booleans() | st.integers(-SAFE, SAFE) | st.text()
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(alphabet=st.characters(max_codepoint=127), max_size=8), inner, max_size=4
        )
    ),
    max_leaves=20,
)


@given(values)
def test_bytes_equal_an_independent_rfc8785_implementation(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@given(values)
def test_round_trips_and_ignores_key_insertion_order(value: Any) -> None:
    encoded = canonical_json(value)
    assert json.loads(encoded) == value

    def reverse(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: reverse(v[k]) for k in reversed(list(v))}
        if isinstance(v, list):
            return [reverse(x) for x in v]
        return v

    assert canonical_json(reverse(value)) == encoded


def test_exact_bytes() -> None:
    assert canonical_json({"b": [1, None, True], "a": "é\n\u2028"}) == (
        b'{"a":"\xc3\xa9\\n\xe2\x80\xa8","b":[1,null,true]}'
    )


@pytest.mark.parametrize(
    "value",
    [
        1.0,
        {"x": 0.1},
        [float("nan")],
        2**53,
        -(2**53),
        {1: "int key"},
        {"ключ": "non-ASCII key"},
        {"x": b"bytes"},
        {"x": {1, 2}},
    ],
)
def test_refuses_what_would_make_hashes_ambiguous(value: Any) -> None:
    with pytest.raises(CanonicalJsonError):
        canonical_json(value)


def test_sha256_tagged_format() -> None:
    assert sha256_tagged(b"") == (
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
