"""The cycle's concurrency: the global limit and per-registry caps."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from tagwatch.check import run_bounded


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
    results = run_bounded(jobs, limit, caps)
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


def test_errors_propagate_and_empty_is_empty() -> None:
    assert run_bounded([], 4, {}) == []

    def boom() -> int:
        raise RuntimeError("job failed")

    with pytest.raises(RuntimeError, match="job failed"):
        run_bounded([("a", boom)], 2, {})
