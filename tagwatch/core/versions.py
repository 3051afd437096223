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
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["POLICIES", "Version", "newer_versions", "parse_version"]

POLICIES = ("patch", "minor", "major")
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


def newer_versions(tag: str, tags: Iterable[str], policy: str) -> list[str]:
    """Tags newer than `tag` in its track under `policy`, oldest first."""
    current = parse_version(tag)
    if current is None or policy not in POLICIES:
        return []
    keep = {"patch": len(current.numbers) - 1, "minor": 1, "major": 0}[policy]
    keep = max(0, min(keep, len(current.numbers) - 1))
    found: list[tuple[Version, str]] = []
    for candidate in tags:
        version = parse_version(candidate)
        if version is None or version.track != current.track:
            continue
        if version.numbers[:keep] != current.numbers[:keep]:
            continue
        if version.numbers > current.numbers:
            found.append((version, candidate))
    return [text for _, text in sorted(found)]
