"""The fault matrix: the real registry behind a proxy that misbehaves on purpose.

For every fault: the exit status and state the contract names, no false alert, a bounded
number of requests (counted at the proxy), and a clean recovery without an alert once the
fault clears. Then the long-running cases: an `error` alert only after `error_after` failed
checks, `recovered` after it, and a move hidden by a fault alerted exactly once afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faultproxy import FaultProxy
from regharness import Pusher, Registry, unique_repo
from sinks import WebhookSink
from test_check_integration import Setup

pytestmark = pytest.mark.integration

RETRIES = 2  # RegistryClient's default: a transient fault is tried 1 + 2 times


@pytest.fixture
def proxy(registry_anonymous: Registry) -> Iterator[FaultProxy]:
    with FaultProxy(registry_anonymous.url) as p:
        yield p


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    s = Setup(tmp_path)
    s.parts[0] = s.parts[0].replace('timeout = "3s"', 'timeout = "1s"').replace(
        "concurrency = 16", "concurrency = 1")
    return s


def watch_through(proxy: FaultProxy, registry: Registry, setup: Setup, webhook: WebhookSink,
                  tags: int = 1, index: bool = False) -> tuple[str, list[str]]:
    repo = unique_repo("fault")
    push = Pusher(registry)
    digests = []
    for i in range(tags):
        if index:
            digests.append(push.push_index(repo, f"t{i}", ["linux/amd64", "linux/arm64"],
                                           seed=f"{repo}{i}")[0])
        else:
            digests.append(push.push_image(repo, f"t{i}", seed=f"{repo}{i}"))
        setup.watch(f"{proxy.host}/{repo}:t{i}")
    setup.notify(webhook.url)
    first = setup("check")
    assert first.code == 0, first.out + first.err
    proxy.reset_counts()
    return repo, digests


FAULTS: list[tuple[str, dict[str, Any], int, int, str]] = [
    # kind, params, exit status, requests per tag, text in the error
    ("reset", {}, 1, 1 + RETRIES, "reset by peer"),
    ("hang", {}, 1, 1 + RETRIES, "read timeout after 1s"),
    ("status", {"code": 500}, 1, 1 + RETRIES, "HTTP 500"),
    ("status", {"code": 503, "headers": {"Retry-After": "1"}}, 1, 1 + RETRIES, "HTTP 503"),
    ("status", {"code": 502}, 1, 1 + RETRIES, "HTTP 502"),
    ("html", {}, 1, 1, "text/html"),
    ("wrong_type", {}, 1, 1, "application/octet-stream"),
    ("status", {"code": 404, "content_type": "text/html", "body": b"<html>nope</html>"},
     1, 2, "404 with text/html"),
    ("latency", {"seconds": 0.3}, 0, 1, ""),
    ("drop_digest", {}, 0, 2, ""),  # HEAD without a digest: one GET, hashed
]


@pytest.mark.parametrize(("kind", "params", "code", "per_tag", "error"), FAULTS,
                         ids=[f"{f[0]}-{f[1].get('code', '')}".rstrip("-") for f in FAULTS])
def test_fault_is_never_a_move(registry_anonymous: Registry, proxy: FaultProxy, setup: Setup,
                               webhook: WebhookSink, kind: str, params: dict[str, Any],
                               code: int, per_tag: int, error: str) -> None:
    repo, digests = watch_through(proxy, registry_anonymous, setup, webhook, tags=2)
    proxy.set_fault(kind, **params)
    run = setup("check")
    assert run.code == code, run.out + run.err
    status = setup.status()
    for i, digest in enumerate(digests):
        target = status[f"watch:{proxy.host}/{repo}:t{i}"]
        assert target["digest"] == digest  # what was recorded stays
        if code:
            assert target["state"] == "error" and error in target["error"]
        else:
            assert target["state"] == "ok"
    assert len(proxy.requests) == per_tag * len(digests), proxy.requests
    assert webhook.received == []

    proxy.clear()
    proxy.reset_counts()
    again = setup("check")
    assert again.code == 0 and "0 events" in again.out
    assert all(o["state"] == "ok" for o in setup.status().values())
    assert [r.method for r in proxy.requests] == ["HEAD", "HEAD"]  # back to one HEAD per tag
    assert webhook.received == []  # a recovery after one failure is not news


def test_429_is_not_retried_and_stops_the_registry(registry_anonymous: Registry,
                                                   proxy: FaultProxy, setup: Setup,
                                                   webhook: WebhookSink) -> None:
    _, _ = watch_through(proxy, registry_anonymous, setup, webhook, tags=5)
    proxy.set_fault("status", code=429, headers={"Retry-After": "3600"})
    run = setup("check", "--json")
    assert run.code == 1
    errors = [o["error"] for o in run.json()]
    assert "rate limited (HTTP 429); retry after 3600s" in errors[0]
    assert all("429" in e for e in errors)
    # One request reached the registry's proxy; the other four were not sent at all.
    assert len(proxy.requests) == 1
    assert webhook.received == []


def test_truncated_and_corrupt_index_hide_a_move_until_they_clear(
        registry_anonymous: Registry, proxy: FaultProxy, setup: Setup,
        webhook: WebhookSink) -> None:
    repo, [old] = watch_through(proxy, registry_anonymous, setup, webhook, index=True)
    new, _ = Pusher(registry_anonymous).push_index(repo, "t0", ["linux/amd64", "linux/arm64"],
                                                   seed="moved")
    for kind, error in (("truncate", "while reading GET"), ("corrupt", "does not match")):
        proxy.reset_counts()
        proxy.set_fault(kind, match=("GET", "/manifests/sha256:"))
        run = setup("check")
        assert run.code == 1
        target = setup.status()[f"watch:{proxy.host}/{repo}:t0"]
        assert target["digest"] == old and target["state"] == "error"
        assert error in target["error"]
        heads = len(proxy.filter("HEAD"))
        gets = len(proxy.filter("GET"))
        assert heads == 1 and gets <= (1 + RETRIES) ** 2
        assert webhook.received == []
        proxy.clear()
    assert setup("check").code == 0
    webhook.wait_for(1)
    assert [m["title"] for m in webhook.received] == [f"[tagwatch] moved: {proxy.host}/{repo}:t0"]
    assert old in webhook.received[0]["message"] and new in webhook.received[0]["message"]
    assert setup("check").code == 0
    assert len(webhook.received) == 1


def test_error_alert_after_error_after_checks_then_recovered(
        registry_anonymous: Registry, proxy: FaultProxy, setup: Setup,
        webhook: WebhookSink) -> None:
    repo, _ = watch_through(proxy, registry_anonymous, setup, webhook)
    proxy.set_fault("status", code=503)
    for attempt in range(1, 4):
        assert setup("check").code == 1
        if attempt < 3:
            assert webhook.received == [], f"an error alert after {attempt} failures"
    webhook.wait_for(1)
    title, body = webhook.received[0]["title"], webhook.received[0]["message"]
    assert title == f"[tagwatch] error: {proxy.host}/{repo}:t0"
    assert "HTTP 503" in body and "failed checks in a row: 3" in body
    assert setup("check").code == 1
    assert len(webhook.received) == 1  # not repeated while it keeps failing
    proxy.clear()
    assert setup("check").code == 0
    webhook.wait_for(2)
    assert webhook.received[1]["title"] == f"[tagwatch] recovered: {proxy.host}/{repo}:t0"
    assert len(webhook.received) == 2
