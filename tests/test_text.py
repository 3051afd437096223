"""core.text.clean and core.jsondoc.loads: text and JSON from peers, made safe. Pure."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tagwatch.core.jsondoc import MAX_DEPTH, JSONError, loads
from tagwatch.core.text import DEFAULT_LIMIT, clean


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("1.2.3", "1.2.3"),
        ("line one\nline two\r\n", "line one line two"),
        ("v1\n**new:** sha256:000", "v1 **new:** sha256:000"),
        ("\x1b[31mred\x1b[0m and \x1b[1;4mbold\x1b[m", "red and bold"),
        ("\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\", "click"),  # OSC 8 link
        ("\x1b]0;title\x07after", "after"),  # OSC with BEL
        ("\x9b31mC1 CSI\x9b0m", "C1 CSI"),
        ("\x1bPdevice control\x1b\\kept", "kept"),
        ("a\x00b\x07c\x7fd\x85e", "abcd e"),
        ("right\u202eto left\u2066x\u2069", "rightto leftx"),  # bidi overrides
        ("zero\u200bwidth\ufeff", "zerowidth"),
        ("tab\tand\u2028line\u2029para", "tab and line para"),
        ("  many   spaces\u00a0\u00a0here  ", "many spaces here"),
        ("unterminated \x1b]8;;http://x", "unterminated"),
        ("a lone escape \x1b", "a lone escape"),
        ("", ""),
        (b"bytes \xff\xfe ok", "bytes \ufffd\ufffd ok"),
        (404, "404"),
        ("日本語のラベル", "日本語のラベル"),
    ],
)
def test_clean(raw: object, shown: str) -> None:
    assert clean(raw) == shown


def test_clean_cuts_at_the_limit_with_an_ellipsis() -> None:
    assert clean("x" * 500) == "x" * (DEFAULT_LIMIT - 1) + "…"
    assert clean("abcdef", 4) == "abc…"
    assert clean("ab   cd", 4) == "ab…"  # no space before the ellipsis
    assert clean("abcd", 4) == "abcd"


def test_clean_bounds_its_work_on_a_megabyte() -> None:
    huge = ("\x1b[31m" + "a\n" * 100) * 20_000
    out = clean(huge, 50)
    assert len(out) == 50 and out.endswith("…") and "\x1b" not in out


@given(st.text())
def test_clean_is_one_printable_line_and_idempotent(text: str) -> None:
    out = clean(text)
    assert len(out) <= DEFAULT_LIMIT
    assert out == out.strip() and "  " not in out
    assert all(c.isprintable() for c in out)
    assert clean(out) == out


def test_loads_parses_what_registries_send() -> None:
    doc = {"schemaVersion": 2, "manifests": [{"platform": {"os": "linux"}, "annotations": {}}]}
    assert loads(json.dumps(doc).encode()) == doc
    assert loads('{"a": "[[[[ not nesting ]]]]"}') == {"a": "[[[[ not nesting ]]]]"}
    assert loads(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    quoted = b'{"s": "\\"' + b"[{" * 40 + b'"}'  # brackets in a string, after an escaped quote
    assert loads(quoted) == {"s": '"' + "[{" * 40}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, f"nested deeper than {MAX_DEPTH} levels"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "nested deeper"),
        (b'{"a": [{"b": ' * 40 + b"1" + b"}]" * 40 + b"}", "nested deeper"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"<html>", "not valid JSON"),
        (b"", "not valid JSON"),
    ],
)
def test_loads_refuses(body: bytes, message: str) -> None:
    with pytest.raises(JSONError, match=message):
        loads(body)


def test_loads_error_is_one_line_without_the_document() -> None:
    with pytest.raises(JSONError) as caught:
        loads(b'{"secret-looking": \n "x" \n oops}')
    assert "\n" not in str(caught.value) and "secret-looking" not in str(caught.value)
