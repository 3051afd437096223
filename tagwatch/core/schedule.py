"""Times of day for alert noise control: quiet windows and digest schedules. Pure: a time
of day is wall-clock time in whatever zone the caller puts `now` in ([tagwatch] timezone, or
a [[notify]] target's own; UTC by default).

    quiet = ["22:00-07:00"]      # no alerts from 22:00 to 07:00 (recorded all the same)
    schedule = ["09:00"]         # a digest target sends once a day at 09:00 (tagwatch.timing)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, time, timedelta

__all__ = ["in_windows", "next_time", "parse_time_of_day", "parse_window"]

_HHMM = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)\Z")


def parse_time_of_day(text: str) -> time:
    match = _HHMM.match(text.strip())
    if not match:
        raise ValueError(f"bad time {text!r}: use HH:MM, e.g. 09:00")
    return time(int(match.group(1)), int(match.group(2)))


def parse_window(text: str) -> tuple[time, time]:
    """`22:00-07:00` -> (22:00, 07:00); a window may run over midnight."""
    start, sep, end = text.partition("-")
    if not sep:
        raise ValueError(f"bad window {text!r}: use HH:MM-HH:MM, e.g. 22:00-07:00")
    try:
        window = parse_time_of_day(start), parse_time_of_day(end)
    except ValueError:
        raise ValueError(
            f"bad window {text!r}: use HH:MM-HH:MM (UTC), e.g. 22:00-07:00"
        ) from None
    if window[0] == window[1]:
        raise ValueError(f"bad window {text!r}: start and end are the same")
    return window


def in_windows(now: datetime, windows: Sequence[tuple[time, time]]) -> bool:
    t = now.time().replace(tzinfo=None)
    for start, end in windows:
        if start < end and start <= t < end:
            return True
        if start > end and (t >= start or t < end):  # over midnight
            return True
    return False


def next_time(now: datetime, times: Sequence[time]) -> datetime:
    """The first of the daily `times` strictly after `now` (same timezone as `now`)."""
    candidates = []
    for day in (0, 1):
        base = (now + timedelta(days=day)).date()
        for t in times:
            at = datetime.combine(base, t, tzinfo=now.tzinfo)
            if at > now:
                candidates.append(at)
    return min(candidates)
