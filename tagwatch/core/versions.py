"""Version-looking tags and their tracks, for "is there a newer version?". Pure.

A tag is a version when it is an optional `v`, one to four dot-separated numbers, and an
optional suffix starting with `-` or `_` (`3.12.7`, `v1.4`, `3.12-slim`,
`20.11.1-alpine3.20`). Its **track** is everything but the numbers' values: the `v`, how many
numbers, and the suffix. A newer version is a tag of the same track whose numbers are higher,
within the target's policy:

* ``patch``: same numbers but the last (3.12.7 → 3.12.9);
* ``minor``: same first number (3.12.7 → 3.13.0);
* ``major``: any higher (3.12.7 → 4.0.0).

Tags with a bigger first number than 1000 (dates like 20241120) are treated like any other;
pre-release suffixes (`-rc1`, `-beta`) are a different track, so `3.13.0-rc1` is never
offered for `3.12.7`.

Filters (`newer_include`, `newer_exclude`: regular expressions, `re.search` in the tag name):
`exclude` drops every candidate it matches. `include` chooses the suffix instead of the track:
a tag of the same form (the `v`, how many numbers) whose name matches one of the patterns is a
candidate whatever its suffix — `3.12` with `include = ["-slim$"]` is offered `3.13-slim`;
`20.11.1-alpine3.20` with `include = ["-alpine3\\.\\d+$"]` is offered `20.12.0-alpine3.21`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["POLICIES", "Version", "newer_versions", "parse_version"]

POLICIES = ("patch", "minor", "major")
MAX_TAG_LENGTH = 128  # the distribution spec's tag grammar: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
_VERSION = re.compile(r"(v?)(\d{1,9}(?:\.\d{1,9}){0,3})([-_][0-9A-Za-z._-]*)?\Z")


@dataclass(frozen=True, slots=True, order=True)
class Version:
    numbers: tuple[int, ...]
    prefix: str = ""
    suffix: str = ""

    @property
    def track(self) -> tuple[str, int, str]:
        return self.prefix, len(self.numbers), self.suffix


def parse_version(tag: str) -> Version | None:
    match = _VERSION.match(tag)
    if not match:
        return None
    numbers = tuple(int(n) for n in match.group(2).split("."))
    return Version(numbers, match.group(1), match.group(3) or "")


def newer_versions(
    tag: str,
    tags: Iterable[str],
    policy: str,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> list[str]:
    """Tags newer than `tag` under `policy`, oldest first: in its track, or, with `include`,
    of its form and matching one of `include`; never matching one of `exclude`."""
    current = parse_version(tag)
    if current is None or policy not in POLICIES:
        return []
    keep = {"patch": len(current.numbers) - 1, "minor": 1, "major": 0}[policy]
    keep = max(0, min(keep, len(current.numbers) - 1))
    form = (current.prefix, len(current.numbers))
    found: list[tuple[Version, str]] = []
    for candidate in tags:
        # A registry's tag names reach the operator's patterns: only names the distribution
        # spec allows (at most 128 characters), so no name can make a pattern run long.
        if len(candidate) > MAX_TAG_LENGTH:
            continue
        version = parse_version(candidate)
        if version is None:
            continue
        if include:
            if (version.prefix, len(version.numbers)) != form:
                continue
            if not any(re.search(p, candidate) for p in include):
                continue
        elif version.track != current.track:
            continue
        if version.numbers[:keep] != current.numbers[:keep]:
            continue
        if version.numbers <= current.numbers:
            continue
        if any(re.search(p, candidate) for p in exclude):
            continue
        found.append((version, candidate))
    return [text for _, text in sorted(found)]
