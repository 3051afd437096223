"""Pure pieces of the registry layer's limits: metadata addresses, token lifetimes, the
request budget."""

from __future__ import annotations

import math
import threading
import time

import pytest

from tagwatch.core.refs import is_metadata_host
from tagwatch.registry.auth import token_lifetime
from tagwatch.registry.deadline import budget, left, within


@pytest.mark.parametrize(
    ("host", "refused"),
    [
        ("169.254.169.254", True),
        ("169.254.169.254:80", True),
        ("169.254.0.1", True),
        ("[fe80::1]", True),
        ("[fe80::1%eth0]:8080", True),
        ("fe80::abcd", True),
        ("[::ffff:169.254.169.254]", True),
        ("[fd00:ec2::254]", True),
        ("100.100.100.200", True),
        ("metadata.google.internal", True),
        ("METADATA.google.internal.", True),
        ("metadata", True),
        ("instance-data.ec2.internal", True),
        ("127.0.0.1", False),
        ("10.0.0.1:5000", False),
        ("auth.docker.io", False),
        ("metadata.example.com", False),
        ("[::1]:5000", False),
        ("[fd00::1]", False),
    ],
)
def test_is_metadata_host(host: str, refused: bool) -> None:
    assert is_metadata_host(host) is refused


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (300, 300.0),
        (0.5, 0.5),
        ("300", 300.0),
        (" 60 ", 60.0),
        ("soon", None),
        ("NaN", None),
        (math.nan, None),
        ("inf", None),
        (math.inf, None),
        (-5, None),
        (0, None),
        (True, None),
        (None, None),
        ([300], None),
        ({"s": 1}, None),
    ],
)
def test_token_lifetime(value: object, seconds: float | None) -> None:
    assert token_lifetime(value) == seconds


def test_budget_is_per_thread_and_nested_budgets_keep_the_earlier_end() -> None:
    assert left() is None and budget(5.0) == 5.0
    with within(10):
        outer = left()
        assert outer is not None and 9 < outer <= 10
        with within(0.05):
            inner = budget(5.0)
            assert inner is not None and inner <= 0.05
            seen: list[float | None] = []
            other = threading.Thread(target=lambda: seen.append(left()))
            other.start()
            other.join()
            assert seen == [None]  # another thread has no budget of its own
            time.sleep(0.06)
            assert left() == 0.0 and budget(5.0) == 0.0
        with within(60):  # a nested budget never extends the outer one
            again = left()
            assert again is not None and again <= 10
    assert left() is None
