"""The cycle's concurrency: the global limit and per-registry caps."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest

from tagwatch.check import run_bounded


def _no_failure(index: int, exc: BaseException) -> int:
    raise AssertionError(f"job {index} raised {exc!r}")


def tracked(
    limit: int, caps: dict[str, int], groups: list[str]
) -> tuple[list[int], dict[str, int], int]:
    lock = threading.Lock()
    now: Counter[str] = Counter()
    peak: Counter[str] = Counter()
    total_peak = 0

    def job(group: str, index: int) -> int:
        nonlocal total_peak
        with lock:
            now[group] += 1
            peak[group] = max(peak[group], now[group])
            total_peak = max(total_peak, sum(now.values()))
        time.sleep(0.01)
        with lock:
            now[group] -= 1
        return index

    jobs = [(g, lambda g=g, i=i: job(g, i)) for i, g in enumerate(groups)]
    results = run_bounded(jobs, limit, caps, fallback=_no_failure)
    return results, dict(peak), total_peak


def test_global_limit_and_per_registry_caps() -> None:
    groups = ["slow.io"] * 20 + ["ghcr.io"] * 20 + ["quay.io"] * 20
    results, peak, total = tracked(8, {"slow.io": 2}, groups)
    assert results == list(range(60))  # results in job order
    assert peak["slow.io"] == 2
    assert total == 8
    assert peak["ghcr.io"] > 2 and peak["quay.io"] > 2  # a capped registry holds no slots


@pytest.mark.parametrize("limit", [1, 3])
def test_limit_is_respected(limit: int) -> None:
    _, _, total = tracked(limit, {}, ["a"] * 10 + ["b"] * 10)
    assert total == limit


def test_a_job_that_raises_fails_alone() -> None:
    """Whatever a job raises becomes its fallback result; the others run on, nothing is raised
    to the caller."""
    assert run_bounded([], 4, {}, fallback=_no_failure) == []

    def deep() -> int:
        return len(json.loads("[" * 100_000 + "]" * 100_000))

    def boom() -> int:
        raise MemoryError("bounded allocation refused")

    def bug() -> int:
        raise SystemExit(3)  # not even a BaseException escapes

    seen: list[tuple[int, str]] = []

    def fallback(index: int, exc: BaseException) -> int:
        seen.append((index, type(exc).__name__))
        return -1

    jobs = [("a", deep), ("a", lambda: 1), ("b", boom), ("b", lambda: 3), ("a", bug)]
    assert run_bounded(jobs, 2, {}, fallback=fallback) == [-1, 1, -1, 3, -1]
    assert sorted(seen) == [(0, "RecursionError"), (2, "MemoryError"), (4, "SystemExit")]


def test_a_fallback_that_raises_is_a_bug_raised_after_the_rest() -> None:
    done: list[int] = []

    def job(i: int) -> int:
        if i == 0:
            raise ValueError("job failed")
        done.append(i)
        return i

    def broken(index: int, exc: BaseException) -> int:
        raise RuntimeError("the fallback is broken")

    with pytest.raises(RuntimeError, match="the fallback is broken"):
        run_bounded([("a", lambda i=i: job(i)) for i in range(4)], 1, {}, fallback=broken)
    assert sorted(done) == [1, 2, 3]
