"""Time zones and cron schedules: IANA zone names through `zoneinfo` (the `tzdata` package is
the fallback where the system has no zone database), cron expressions through APScheduler's
own `CronTrigger.from_crontab` — the parser and the DST rules the daemon schedules with.

    zone("Europe/Berlin")                          # a ZoneInfo, or ValueError naming the name
    Cron.parse("0 9 * * MON-FRI", "Europe/Berlin")  # or ValueError: what is wrong in it
    Cron.parse("09:00", "Europe/Berlin")            # a time of day: daily, "0 9 * * *"
    cron.next_after(now)                           # the first fire strictly after `now`

Pure apart from reading the zone database; no clock: `now` is always passed in.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from tagwatch.core.schedule import parse_time_of_day

__all__ = ["Cron", "longest_gap", "next_fire", "zone"]


@functools.lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The IANA zone `name` (`UTC`, `Europe/Berlin`); ValueError naming the nearest known
    one when it is not a zone."""
    try:
        if name.strip() != name or not name or name.startswith(("/", ".")) or ".." in name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        known = available_timezones()
        if not known:
            raise ValueError(
                f"unknown time zone {name!r}: this system has no time zone database "
                "(install tzdata)"
            ) from None
        import difflib  # only on the way to an error message

        near = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ValueError(
            f"unknown time zone {name!r}{hint}: use an IANA name such as UTC or Europe/Berlin"
        ) from None


@dataclass(frozen=True, slots=True)
class Cron:
    """A cron expression (five fields: minute hour day-of-month month day-of-week) read in a
    time zone. A time of day `HH:MM` is the daily expression `M H * * *`."""

    expression: str
    timezone: str = "UTC"
    text: str = ""  # as written in the configuration (for messages)

    @classmethod
    def parse(cls, text: str, timezone: str = "UTC") -> Cron:
        """ValueError with a one-line reason when `text` is neither `HH:MM` nor a cron
        expression APScheduler accepts."""
        written = text.strip()
        if " " not in written:  # one word: a time of day, or nothing
            try:
                at = parse_time_of_day(written)
            except ValueError:
                raise ValueError(
                    f"bad time {written!r}: use HH:MM (e.g. 09:00) or a cron expression "
                    '(five fields, e.g. "0 9 * * MON-FRI")'
                ) from None
            expression = f"{at.minute} {at.hour} * * *"
        else:
            expression = " ".join(written.split())
        cron = cls(expression, timezone, written)
        try:
            cron.trigger()
        except ValueError as exc:
            raise ValueError(
                f"bad cron expression {written!r}: {exc} (five fields: minute hour "
                'day-of-month month day-of-week, e.g. "0 9 * * MON-FRI")'
            ) from None
        return cron

    def trigger(self) -> Any:
        """APScheduler's CronTrigger for this expression and zone."""
        return _trigger(self.expression, self.timezone)

    def next_after(self, now: datetime) -> datetime:
        """The first fire strictly after `now`, in UTC."""
        # CronTrigger counts a fire at `now` itself; one microsecond later it does not.
        fire = self.trigger().get_next_fire_time(None, now + timedelta(microseconds=1))
        assert fire is not None  # a five-field crontab always fires again
        return fire.astimezone(UTC)  # type: ignore[no-any-return]

    def __str__(self) -> str:
        return self.text or self.expression


@functools.lru_cache(maxsize=256)
def _trigger(expression: str, timezone: str) -> Any:
    from apscheduler.triggers.cron import CronTrigger

    return CronTrigger.from_crontab(expression, timezone=zone(timezone))


def next_fire(crons: Iterable[Cron], now: datetime) -> datetime:
    """The first fire of any of `crons` strictly after `now` (UTC)."""
    return min(cron.next_after(now) for cron in crons)


def longest_gap(crons: Sequence[Cron], now: datetime) -> float:
    """Seconds of the longest wait between two fires over the next eight days (at least two
    fires, at most 2000): for a weekday-mornings schedule 3 days, Friday to Monday. It is
    what `interval` is for an interval schedule, for the daemon's health and
    `tagwatch_interval_seconds`."""
    longest = 0.0
    at = next_fire(crons, now)
    horizon = now + timedelta(days=8)
    for _ in range(2000):
        after = next_fire(crons, at)
        longest = max(longest, (after - at).total_seconds())
        at = after
        if at > horizon:
            break
    return longest
