"""JSON from a peer, parsed with limits. Pure.

Python's parser recurses once per nesting level: a document nested 100,000 deep (which the
distribution registry stores and serves as a config blob without complaint) raises
`RecursionError`, and one nested a few hundred deep parses but breaks whatever walks it
next. Real manifests, indexes, configs, tag lists, error bodies and token answers are at most
five or six levels deep, so `loads` refuses anything deeper than `MAX_DEPTH` before parsing,
and the only error it raises is `JSONError`, with a one-line message.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["MAX_DEPTH", "JSONError", "loads"]

MAX_DEPTH = 32  # an OCI index with nested indexes and annotations is 6 deep

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class JSONError(ValueError):
    """Not a JSON document within the limits. The message is one line and quotes nothing
    from the document."""


def _too_deep(data: bytes, max_depth: int) -> bool:
    # Cheap bound first: the depth is at most the number of opening brackets.
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return False
    # Brackets inside strings do not nest: drop the strings, keep only the brackets.
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    depth = 0
    for byte in brackets:
        if byte in b"[{":
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse a JSON document (bytes must be UTF-8) nested at most `max_depth` deep.

    Raises JSONError for invalid JSON, invalid UTF-8 and deeper nesting. (NaN and Infinity
    are accepted as Python does: a number that matters is checked where it is used.)
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if _too_deep(raw, max_depth):
        raise JSONError(f"JSON nested deeper than {max_depth} levels")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JSONError(f"not UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise JSONError(
            f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except RecursionError:  # unreachable after the depth check; kept as a last line
        raise JSONError(f"JSON nested deeper than {max_depth} levels") from None
