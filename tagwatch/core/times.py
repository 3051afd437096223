"""Timestamps, written one way and read one way. Pure.

tagwatch writes every time as `2026-11-24T12:00:00Z`: UTC, whole seconds (the database,
alerts, `--json`, tables, metrics labels never). It reads its own, and the RFC 3339 times of
image configs (`created`, often with nanoseconds or an offset), into aware UTC datetimes.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

__all__ = ["TIME_FORMAT", "format_time", "parse_time"]

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


# A store's rows share a few seconds (one per cycle, per job). Small: a daemon makes a new
# second every cycle, and a cache of 4,096 kept growing for 4,096 cycles (issue 17's hour:
# ~0.4 KB per cycle of the RSS, both caches).
_CACHED = 512


@functools.lru_cache(maxsize=_CACHED)
def format_time(dt: datetime | None) -> str | None:
    """`2026-11-24T12:00:00Z`; None for None. A naive datetime is taken as UTC."""
    if dt is None:
        return None
    return _utc(dt).strftime(TIME_FORMAT)


def parse_time(text: str | None) -> datetime | None:
    """An ISO 8601 / RFC 3339 time -> an aware UTC datetime; None when absent or unreadable
    (an image config's `created` is the publisher's text: it may be anything, even a time
    that is out of range once in UTC). A time without an offset is taken as UTC (never the
    host's zone).

    fromisoformat: C-fast, unlike strptime, which cost a cycle over thousands of tags tens of
    milliseconds. Cached for text of a time's length: `status`, `check` and each cycle read
    thousands of rows stamped with the same few seconds (every tag checked in one cycle);
    a publisher's longer text is parsed and not kept."""
    if not text:
        return None
    if len(text) <= _CACHED_LENGTH:
        return _parse_cached(text)
    return _parse(text)


_CACHED_LENGTH = 40  # `2026-11-24T12:00:00.123456789+00:00` is 35


@functools.lru_cache(maxsize=_CACHED)
def _parse_cached(text: str) -> datetime | None:
    return _parse(text)


def _parse(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        return _utc(parsed)
    except (ValueError, OverflowError):  # OverflowError: `0001-01-01T00:00:00+14:00` in UTC
        return None


def _utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt if dt.tzinfo is UTC else dt.astimezone(UTC)
