"""Per-registry pacing: rate caps, 429 backoff and quota-aware GETs (fake clock)."""

from __future__ import annotations

import pytest

from tagwatch.core.durations import parse_rate
from tagwatch.errors import RateLimited
from tagwatch.registry.gate import Gate, parse_ratelimit_header


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        self.now += seconds


def gate(rate: float | None = None) -> tuple[Gate, Clock]:
    clock = Clock()
    return Gate("docker.io", rate, clock=clock, sleep=clock.sleep), clock


@pytest.mark.parametrize(("text", "per_second"),
                         [("10/s", 10.0), ("120/m", 2.0), ("3600/h", 1.0), ("0.5/s", 0.5)])
def test_parse_rate(text: str, per_second: float) -> None:
    assert parse_rate(text) == per_second


@pytest.mark.parametrize("text", ["10", "0/s", "fast", "10/d", "-1/s"])
def test_bad_rate(text: str) -> None:
    with pytest.raises(ValueError, match="bad rate"):
        parse_rate(text)


def test_ratelimit_header() -> None:
    assert parse_ratelimit_header("76;w=21600") == (76.0, 21600.0)
    assert parse_ratelimit_header("100") == (100.0, None)
    assert parse_ratelimit_header("lots") is None
    assert parse_ratelimit_header(None) is None


def test_rate_cap_spaces_requests() -> None:
    g, clock = gate(rate=4.0)
    for _ in range(5):
        g.wait("HEAD")
    assert clock.slept == [0.25, 0.25, 0.25, 0.25]


def test_429_closes_the_registry_for_retry_after() -> None:
    g, clock = gate()
    assert g.rate_limited(120.0) == 120.0
    with pytest.raises(RateLimited, match="backing off after HTTP 429, 120s left"):
        g.wait("HEAD")
    clock.now += 119
    with pytest.raises(RateLimited):
        g.wait("HEAD")
    clock.now += 1.5
    g.wait("HEAD")  # open again
    assert clock.slept == []


def test_429_without_retry_after_backs_off_exponentially() -> None:
    g, _ = gate()
    assert [g.rate_limited(None) for _ in range(9)] == [
        30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    g.answered(None, None)  # a normal answer ends the streak
    assert g.rate_limited(None) == 30


def test_low_quota_spreads_gets_but_never_heads() -> None:
    g, clock = gate()
    g.answered("50;w=21600", "100;w=21600")
    for _ in range(3):
        g.wait("GET")  # plenty left: no pacing
    g.answered("6;w=21600", "100;w=21600")  # under a tenth: 6 GETs over 6 hours
    g.wait("GET")
    with pytest.raises(RateLimited, match=r"quota nearly spent \(6 of 100 left\)"):
        g.wait("GET")
    for _ in range(10):
        g.wait("HEAD")  # HEADs do not count against Docker Hub's quota
    clock.now += 3600
    g.wait("GET")
    assert clock.slept == []
