"""`WWW-Authenticate` challenges (RFC 9110 §11.6.1). Pure.

Registries send `Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull"`
or `Basic realm="Registry"`. Parameter values may be quoted strings (with backslash escapes)
or bare tokens; one header may carry several challenges and a response may carry several
headers. Scheme names and parameter names are case-insensitive; values are kept as sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Challenge", "parse_www_authenticate"]

_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower case: "bearer", "basic"
    params: dict[str, str] = field(default_factory=dict)  # lower-case names


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t":
        i += 1
    return i


def _token(text: str, i: int) -> tuple[str, int]:
    start = i
    while i < len(text) and text[i] in _TOKEN_CHARS:
        i += 1
    return text[start:i], i


def _quoted(text: str, i: int) -> tuple[str, int]:
    """text[i] is '"'; returns the unescaped value and the index after the closing quote."""
    out: list[str] = []
    i += 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if char == '"':
            return "".join(out), i + 1
        out.append(char)
        i += 1
    return "".join(out), i  # unterminated: take what there is


def _parse_one_header(text: str) -> list[Challenge]:
    challenges: list[Challenge] = []
    i = 0
    current: Challenge | None = None
    while i < len(text):
        i = _skip_space(text, i)
        if i >= len(text):
            break
        if text[i] == ",":
            i += 1
            continue
        word, j = _token(text, i)
        if not word:
            i += 1  # junk character: skip it rather than fail
            continue
        k = _skip_space(text, j)
        if k < len(text) and text[k] == "=" and current is not None:
            k = _skip_space(text, k + 1)
            if k < len(text) and text[k] == '"':
                value, i = _quoted(text, k)
            else:
                value, i = _token(text, k)
            # token68 values (Basic dGVzdA==) end in '=': treat a trailing run as the value.
            current.params.setdefault(word.lower(), value)
            continue
        # A new scheme.
        current = Challenge(word.lower(), {})
        challenges.append(current)
        i = j
    return challenges


def parse_www_authenticate(headers: list[str]) -> list[Challenge]:
    """Every challenge in the given header values, in order. Never raises."""
    challenges: list[Challenge] = []
    for header in headers:
        challenges.extend(_parse_one_header(header))
    return challenges

