"""Time zones and cron: quiet windows and digest schedules in a zone (DST included), a digest
on a cron schedule sent at its time, a watch on a cron schedule in the daemon.

Every zone is named explicitly; nothing here reads the host's time zone (the daemon runs
with TZ set to a zone no test uses, to show it does not either)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, available_timezones

import httpx
import pytest
from checkworld import CheckWorld
from regharness import Pusher, Registry, free_port, unique_repo

from tagwatch.config import load_config
from tagwatch.core.model import DeliveryState, Event, EventKind
from tagwatch.daemon import plan_jobs
from tagwatch.errors import ConfigError
from tagwatch.timing import Cron, longest_gap, zone

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_the_zone_database_is_there() -> None:
    """zoneinfo finds zones here: the system's database, or the tzdata package (a dependency
    for hosts without one)."""
    assert {"UTC", BERLIN, NEW_YORK} <= available_timezones()
    assert utc(2026, 7, 1, 12).astimezone(ZoneInfo(BERLIN)).hour == 14


# --- cron expressions and zones (APScheduler's CronTrigger) -----------------------------------


def test_cron_fires_in_its_zone_across_dst() -> None:
    weekdays = Cron.parse("0 9 * * MON-FRI", NEW_YORK)
    # Friday before US DST starts (Sunday 2026-03-08): next is Monday 09:00 EDT = 13:00 UTC
    assert weekdays.next_after(utc(2026, 3, 6, 15)) == utc(2026, 3, 9, 13)
    # and a week earlier, in EST: 14:00 UTC
    assert weekdays.next_after(utc(2026, 2, 27, 15)) == utc(2026, 3, 2, 14)
    # strictly after: at the fire itself, the next one
    assert weekdays.next_after(utc(2026, 3, 9, 13)) == utc(2026, 3, 10, 13)
    daily = Cron.parse("09:00", BERLIN)
    assert daily.expression == "0 9 * * *" and str(daily) == "09:00"
    assert daily.next_after(utc(2026, 3, 28, 9)) == utc(2026, 3, 29, 7)  # CET -> CEST
    assert longest_gap([weekdays], utc(2026, 6, 3, 12)) == 3 * 86400  # Friday to Monday
    assert longest_gap([Cron.parse("*/15 * * * *")], utc(2026, 6, 3, 12)) == 900


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 9 * *", "bad cron expression '0 9 * *': Wrong number of fields; got 4, expected 5"),
        ("61 9 * * *", "bad cron expression '61 9 * * *': Error validating expression '61'"),
        ("0 9 * * FUNDAY", 'Invalid weekday name "FUNDAY"'),
        ("9am", "bad time '9am': use HH:MM (e.g. 09:00) or a cron expression (five fields"),
        ("25:00", "bad time '25:00'"),
        ("0 9 * * * *", "Wrong number of fields; got 6, expected 5"),
    ],
)
def test_bad_cron_expressions_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        Cron.parse(text, "UTC")
    assert message in str(info.value)


def test_zones_are_iana_names_with_the_nearest_suggested() -> None:
    assert zone(BERLIN) == ZoneInfo(BERLIN)
    with pytest.raises(ValueError, match=r"unknown time zone 'Europe/Berln' \(did you mean "
                                         r"'Europe/Berlin'\?\)"):
        zone("Europe/Berln")
    for bad in ("", "../../etc/passwd", "/etc/localtime", "CEST+2"):
        with pytest.raises(ValueError, match="unknown time zone"):
            zone(bad)


def test_config_keys(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"

    def load(text: str) -> object:
        path.write_text(text)
        return load_config(path, env={})

    def error(text: str) -> str:
        with pytest.raises(ConfigError) as info:
            load(text)
        return str(info.value)

    config = load(
        f'[tagwatch]\ntimezone = "{BERLIN}"\n'
        '[[watch]]\nimage = "a:1"\nschedule = "0  9 * * mon-fri"\nquiet = ["22:00-07:00"]\n'
        '[[notify]]\nurl = "json://x"\nmode = "digest"\nschedule = "0 9 * * MON-FRI"\n'
        '[[notify]]\nurl = "json://y"\nmode = "digest"\nschedule = ["08:00", "0 17 * * FRI"]\n'
        f'timezone = "{NEW_YORK}"\nquiet = ["12:00-13:00"]\n'
    )
    assert config.settings.timezone == BERLIN  # type: ignore[attr-defined]
    [watch] = config.targets  # type: ignore[attr-defined]
    assert watch.schedule == "0 9 * * mon-fri" and watch.interval is None
    first, second = config.notify  # type: ignore[attr-defined]
    assert first.timezone == BERLIN and [c.expression for c in first.schedule] == [
        "0 9 * * MON-FRI"]
    assert second.timezone == NEW_YORK and len(second.schedule) == 2
    assert second.schedule[0].timezone == NEW_YORK and second.quiet
    assert load("").settings.timezone == "UTC"  # type: ignore[attr-defined]

    assert ":2: tagwatch.timezone: unknown time zone 'Europe/Berln' (did you mean " \
           "'Europe/Berlin'?)" in error('[tagwatch]\ntimezone = "Europe/Berln"\n')
    assert ":4: watch[0].schedule: give interval or schedule, not both" in error(
        '[[watch]]\nimage = "a:1"\ninterval = "1h"\nschedule = "0 9 * * *"\n')
    assert ":3: watch[0].schedule: bad cron expression '0 9 * *'" in error(
        '[[watch]]\nimage = "a:1"\nschedule = "0 9 * *"\n')
    assert ":4: notify[0].schedule: bad time 'nine'" in error(
        '[[notify]]\nurl = "json://x"\nmode = "digest"\nschedule = ["09:00", "nine"]\n')
    assert ":3: notify[0].timezone: unknown time zone 'Mars/Olympus'" in error(
        '[[notify]]\nurl = "json://x"\ntimezone = "Mars/Olympus"\n')
    assert "notify[0].schedule: a digest needs a schedule" in error(
        '[[notify]]\nurl = "json://x"\nmode = "digest"\n')


# --- quiet windows and digests, through the check -------------------------------------------


@pytest.fixture
def world(tmp_path: Path) -> Iterator[CheckWorld]:
    w = CheckWorld(tmp_path)
    yield w
    w.close()


def test_quiet_window_across_a_dst_change(world: CheckWorld) -> None:
    """22:00-07:00 in Berlin: 05:30 UTC is 06:30 (quiet) on the Saturday and 07:30 (not) on
    the Sunday the clocks go forward; the window follows the wall clock."""
    h, fake = world.host, world.fake
    fake.put_image("app", "t", "0")
    world.configure(f'[[watch]]\nimage = "{h}/app:t"\nquiet = ["22:00-07:00"]\n',
                    settings=f'timezone = "{BERLIN}"')
    world.cycle(utc(2026, 3, 27, 12))
    fake.put_image("app", "t", "1")
    assert world.cycle(utc(2026, 3, 28, 5, 30)).sent == 0  # 06:30 CET: quiet
    fake.put_image("app", "t", "2")
    assert world.cycle(utc(2026, 3, 28, 6, 0)).sent == 1  # 07:00 CET: the window is over
    fake.put_image("app", "t", "3")
    assert world.cycle(utc(2026, 3, 29, 4, 59)).sent == 0  # 06:59 CEST: quiet
    fake.put_image("app", "t", "4")
    assert world.cycle(utc(2026, 3, 29, 5, 30)).sent == 1  # 07:30 CEST: not quiet, though
    # 05:30 UTC was quiet the day before
    fake.put_image("app", "t", "5")
    assert world.cycle(utc(2026, 3, 29, 20, 0)).sent == 0  # 22:00 CEST: quiet again
    assert [state for _, state, _ in world.deliveries()] == [
        "held", "sent", "held", "sent", "held"]


def test_a_targets_own_quiet_window_in_its_own_zone(world: CheckWorld) -> None:
    """[[notify]] quiet in its own timezone; the same instant is another target's day."""
    assert world.notifier is None
    world.configure('[[watch]]\nimage = "registry.example/app:t"\n',
                    settings=f'timezone = "{BERLIN}"',
                    notify=f'timezone = "{NEW_YORK}"\nquiet = ["00:00-06:00"]')
    assert world.notifier is not None
    event = Event(EventKind.MOVED, "watch:registry.example/app:t", "registry.example/app", "t",
                  utc(2026, 11, 2, 6))
    # 06:00 UTC: 01:00 in New York (quiet there), 07:00 in Berlin
    [route] = world.notifier.routes(event, None, utc(2026, 11, 2, 6))
    assert route.state is DeliveryState.HELD
    [route] = world.notifier.routes(event, None, utc(2026, 11, 2, 11, 1))  # 06:01 there
    assert route.state is DeliveryState.PENDING


def test_cron_digest_is_sent_at_its_time(world: CheckWorld) -> None:
    """A weekday-mornings digest in New York: a move on Friday afternoon goes out on Monday
    at 09:00 local — 13:00 UTC, since the clocks went forward on the Sunday between."""
    h, fake = world.host, world.fake
    fake.put_image("app", "a", "a0")
    fake.put_image("app", "b", "b0")
    world.configure(
        f'[[watch]]\nimage = "{h}/app:a"\n[[watch]]\nimage = "{h}/app:b"\n',
        notify=f'mode = "digest"\nschedule = "0 9 * * MON-FRI"\ntimezone = "{NEW_YORK}"',
    )
    world.cycle(utc(2026, 3, 6, 12))
    fake.put_image("app", "a", "a1")
    fake.put_image("app", "b", "b1")
    assert world.cycle(utc(2026, 3, 6, 20)).sent == 0  # Friday 15:00 EST
    assert world.deliveries() == [
        ("moved", "pending", "2026-03-09T13:00:00Z"),
        ("moved", "pending", "2026-03-09T13:00:00Z"),
    ]
    assert world.cycle(utc(2026, 3, 7, 14)).sent == 0  # Saturday 09:00: not a weekday
    assert world.cycle(utc(2026, 3, 9, 12, 59)).sent == 0  # Monday 08:59 EDT
    assert world.cycle(utc(2026, 3, 9, 13)).sent == 1  # Monday 09:00 EDT: the digest
    assert world.titles() == ["[tagwatch] digest: 2 events (moved ×2)"]
    assert world.cycle(utc(2026, 3, 10, 13)).sent == 0  # nothing new since


# --- the daemon ---------------------------------------------------------------------------


def test_plan_puts_cron_watches_in_their_own_job(tmp_path: Path) -> None:
    d = "sha256:" + "a" * 64
    config = tmp_path / "c.toml"
    config.write_text(textwrap.dedent(f"""\
        [tagwatch]
        interval = "15m"
        timezone = "{BERLIN}"
        [[watch]]
        image = "ghcr.io/o/app:1"
        schedule = "0 9 * * MON-FRI"
        [[pin]]
        image = "ghcr.io/o/app:1@{d}"
        schedule = "0 17 * * *"
        [[watch]]
        image = "ghcr.io/o/lib:2"
        schedule = "0 9 * * MON-FRI"
        [[watch]]
        image = "ghcr.io/o/both:1"
        schedule = "0 9 * * *"
        [[pin]]
        image = "ghcr.io/o/both:1@{d}"
        """))
    plans = plan_jobs(load_config(config, env={}), utc(2026, 6, 3, 12))
    assert {k: (sorted(t.display for t in p.targets), p.cron, p.timezone, p.interval)
            for k, p in plans.items()} == {
        # one tag, two schedules: checked at both times, in one job
        "ghcr.io at 0 17 * * * | 0 9 * * MON-FRI (Europe/Berlin)": (
            ["ghcr.io/o/app:1", "ghcr.io/o/app:1"], ("0 17 * * *", "0 9 * * MON-FRI"),
            BERLIN, 86400.0),  # Friday 17:00 to Saturday 17:00
        "ghcr.io at 0 9 * * MON-FRI (Europe/Berlin)": (
            ["ghcr.io/o/lib:2"], ("0 9 * * MON-FRI",), BERLIN, 3 * 86400.0),
        # an interval wins over a schedule: checked at least as often as each asks
        "ghcr.io every 15m": (["ghcr.io/o/both:1", "ghcr.io/o/both:1"], (), "UTC", 900.0),
    }


@pytest.mark.integration
def test_daemon_checks_a_watch_on_its_cron_schedule(
    registry_anonymous: Registry, tmp_path: Path
) -> None:
    """`schedule = "* * * * *"` in the real daemon: checked at start, then at the top of the
    next minute (and not in between), while an hourly watch is checked only at start."""
    push = Pusher(registry_anonymous)
    cron_repo, hourly_repo = unique_repo("cron"), unique_repo("hourly")
    push.push_image(cron_repo, "1", seed="c")
    push.push_image(hourly_repo, "1", seed="h")
    port = free_port()
    host = registry_anonymous.host
    config = tmp_path / "config.toml"
    config.write_text(textwrap.dedent(f"""\
        [tagwatch]
        database = "{tmp_path / "db"}"
        timezone = "{NEW_YORK}"
        jitter = "0s"
        [metrics]
        listen = "127.0.0.1:{port}"
        [[watch]]
        image = "{host}/{cron_repo}:1"
        schedule = "* * * * *"
        [[watch]]
        image = "{host}/{hourly_repo}:1"
        interval = "1h"
        """))
    # A host zone no test uses (and a half-hour offset): the daemon must not read it.
    env = dict(os.environ, TZ="Asia/Kolkata")
    log = tmp_path / "daemon.log"
    with log.open("w") as err:  # the child keeps its own copy
        proc = subprocess.Popen([sys.executable, "-m", "tagwatch", "run", "-c", str(config),
                                 "-v"], env=env, stdout=subprocess.DEVNULL, stderr=err)

    def checked() -> dict[str, float]:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except httpx.HTTPError:
            return {}
        out = {}
        for line in text.splitlines():
            if line.startswith("tagwatch_tag_checked_timestamp_seconds{"):
                repo = cron_repo if cron_repo in line else hourly_repo
                out[repo] = float(line.rsplit(" ", 1)[1])
        return out

    def wait(predicate: object, timeout: float) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = checked()
            if predicate(seen):  # type: ignore[operator]
                return seen
            time.sleep(0.2)
        raise AssertionError(f"not reached; last {checked()}\n{log.read_text()}")

    try:
        first = wait(lambda s: len(s) == 2, 30)  # both checked at start
        started = first[cron_repo]
        # the next check of the cron watch comes at the top of a minute
        later = wait(lambda s: s.get(cron_repo, 0) > started, 90)
        at = datetime.fromtimestamp(later[cron_repo], UTC)
        assert at.second < 15, at  # the check started on the minute (allowing a slow cycle)
        assert later[hourly_repo] == first[hourly_repo]  # the hourly one waits its hour
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert health.status_code == 200, health.text
    finally:
        proc.terminate()
        assert proc.wait(20) == 0
