"""Durations and rates as people write them in config files: `30s`, `15m`, `6h`, `7d`,
`1h30m`; `10/s`, `100/m`. Pure."""

from __future__ import annotations

import math
import re

__all__ = ["format_duration", "parse_duration", "parse_rate"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h|d|w)")
_HELP = "use a number with s, m, h, d or w (e.g. 30s, 15m, 6h, 7d)"


def parse_duration(text: str) -> float:
    """Seconds in `text`; ValueError with a one-line message for anything else.

    A bare number is refused: `interval = "15"` could mean seconds or minutes, and guessing
    wrong makes a daemon hammer a registry. Units may be combined, largest first or not
    (`1h30m`), with optional spaces between parts.
    """
    if not isinstance(text, str):
        raise ValueError(f"bad duration {text!r}: {_HELP}")
    compact = text.strip().lower().replace(" ", "")
    if not compact:
        raise ValueError(f"bad duration {text!r}: {_HELP}")
    total = 0.0
    position = 0
    for match in _PART.finditer(compact):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(compact):
        raise ValueError(f"bad duration {text!r}: {_HELP}")
    if not math.isfinite(total):
        raise ValueError(f"bad duration {text!r}: too large")
    return total


def format_duration(seconds: float) -> str:
    """Two largest units, for humans: `2d 3h`, `5m 10s`, `0s`."""
    if not math.isfinite(seconds):
        return "forever"
    sign = "-" if seconds < 0 else ""
    if 0 < abs(seconds) < 1:
        return f"{sign}{abs(seconds) * 1000:.0f}ms"
    remaining = int(round(abs(seconds)))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + (" ".join(parts[:2]) if parts else "0s")


_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*(s|m|h|sec|min|hour|second|minute)\s*\Z")
_PER = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
}


def parse_rate(text: str) -> float:
    """`10/s`, `100/m`, `5000/h` -> requests per second. ValueError for anything else."""
    match = _RATE.match(text.lower())
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f'bad rate {text!r}: use requests per s, m or h, e.g. "10/s"')
    return float(match.group(1)) / _PER[match.group(2)]
