"""The one timestamp format tagwatch writes, and what it reads (core/times.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tagwatch.core.times import format_time, parse_time

NOON = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture
def far_east(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The host in UTC+9: nothing here may depend on it."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_written_as_utc_whole_seconds(far_east: None) -> None:
    assert format_time(NOON) == "2026-11-24T12:00:00Z"
    assert format_time(NOON.replace(microsecond=999_999)) == "2026-11-24T12:00:00Z"
    plus_two = timezone(timedelta(hours=2))
    assert format_time(datetime(2026, 11, 24, 14, 0, tzinfo=plus_two)) == "2026-11-24T12:00:00Z"
    assert format_time(datetime(2026, 11, 24, 12, 0)) == "2026-11-24T12:00:00Z"  # naive: UTC
    assert format_time(None) is None


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-24T12:00:00Z",
        "2026-11-24T12:00:00+00:00",
        "2026-11-24T14:00:00+02:00",
        "2026-11-24T07:00:00-05:00",
        "2026-11-24T12:00:00",  # no offset (some image configs): UTC, not the host's zone
    ],
)
def test_read_as_aware_utc(text: str, far_east: None) -> None:
    parsed = parse_time(text)
    assert parsed == NOON and parsed is not None and parsed.tzinfo is UTC


def test_image_config_times_with_nanoseconds() -> None:
    parsed = parse_time("2026-11-24T12:00:00.123456789Z")
    assert parsed == NOON.replace(microsecond=123456)


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "yesterday",
        "2026-13-01T00:00:00Z",
        "12:00",
        # an image publisher's `created`: valid, but out of range once in UTC
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
    ],
)
def test_unreadable_is_none(text: str | None) -> None:
    assert parse_time(text) is None


def test_round_trip() -> None:
    for minutes in (0, 1, 59, 60 * 24 * 400):
        when = NOON + timedelta(minutes=minutes)
        assert parse_time(format_time(when)) == when
