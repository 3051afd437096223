"""Undelivered alerts are visible: `status` (table and `--json`) shows the alerts waiting for
delivery and the last delivery error per notification target (by its name, never its URL),
and the daemon exports `tagwatch_notifications_pending{notify}` for the alert rule
TagwatchNotificationsPending (its promtool tests: prometheus/tagwatch-alerts.test.yml)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from regharness import Pusher, Registry, free_port, unique_repo
from sinks import WebhookSink

pytestmark = pytest.mark.integration

TOKEN = "hooktoken-3c9d1e"  # a secret in the apprise URL: never shown


def tagwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tagwatch", *args], capture_output=True,
                          text=True, timeout=120)


def write_config(tmp_path: Path, registry: Registry, repo: str, webhook: WebhookSink,
                 extra: str = "") -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[tagwatch]\ndatabase = "{tmp_path / "t.db"}"\n' + extra +
        f'[[watch]]\nimage = "{registry.host}/{repo}:1"\n'
        f'[[notify]]\nname = "ops-hook"\nurl = "{webhook.url}?token={TOKEN}"\n')
    return config


def test_status_shows_alerts_waiting_for_delivery_and_the_last_error(
        registry_anonymous: Registry, tmp_path: Path, webhook: WebhookSink) -> None:
    push = Pusher(registry_anonymous)
    repo = unique_repo("outbox")
    push.push_image(repo, "1", seed="o1")
    config = write_config(tmp_path, registry_anonymous, repo, webhook)
    assert tagwatch("check", "-c", str(config)).returncode == 0

    before = tagwatch("status", "-c", str(config))
    assert "waiting for delivery" not in before.stdout
    [obj] = json.loads(tagwatch("status", "--json", "-c", str(config)).stdout)
    assert obj["undelivered"] == []

    webhook.set_failing(True, status=503)
    push.push_image(repo, "1", seed="o2")
    moved = tagwatch("check", "-c", str(config))
    assert moved.returncode == 0  # a delivery failure is not a failed check
    assert "1 alerts failed (will retry)" in moved.stdout

    table = tagwatch("status", "-c", str(config))
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    header = lines.index("alerts waiting for delivery (retried at every check):")
    assert lines[header + 1].split() == ["NOTIFY", "WAITING", "OLDEST", "ATTEMPTS", "LAST",
                                         "ERROR"]
    row = lines[header + 2]
    assert row.startswith("ops-hook  1 ") and " 1 " in row, row
    assert "503" in row or "Service Unavailable" in row, row
    [obj] = json.loads(tagwatch("status", "--json", "-c", str(config)).stdout)
    [waiting] = obj["undelivered"]
    assert waiting["event"] == "moved" and waiting["notify"] == "ops-hook"
    assert waiting["attempts"] == 1 and waiting["error"], waiting
    for out in (table.stdout, json.dumps(obj), moved.stdout + moved.stderr):
        assert TOKEN not in out and webhook.url not in out

    webhook.set_failing(False)
    assert tagwatch("check", "-c", str(config)).returncode == 0  # the retry goes out
    assert [m["title"].split(":")[0] for m in webhook.received] == ["[tagwatch] moved"]
    assert "waiting for delivery" not in tagwatch("status", "-c", str(config)).stdout
    [obj] = json.loads(tagwatch("status", "--json", "-c", str(config)).stdout)
    assert obj["undelivered"] == []


def test_the_daemon_exports_pending_alerts_per_target(
        registry_anonymous: Registry, tmp_path: Path, webhook: WebhookSink) -> None:
    push = Pusher(registry_anonymous)
    repo = unique_repo("pending")
    push.push_image(repo, "1", seed="p1")
    port = free_port()
    config = write_config(tmp_path, registry_anonymous, repo, webhook,
                          'interval = "1s"\njitter = "0s"\n'
                          f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    log = tmp_path / "run.log"
    with log.open("w") as out:
        daemon = subprocess.Popen([sys.executable, "-m", "tagwatch", "run", "-c", str(config)],
                                  stdout=out, stderr=subprocess.STDOUT, env=env)

    def pending(value: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            except httpx.TransportError:
                text = ""
            if f'tagwatch_notifications_pending{{notify="ops-hook"}} {value}' in text:
                return text
            time.sleep(0.2)
        raise AssertionError(f"no pending {value} in\n{text}\n{log.read_text()}")

    try:
        pending("0.0")  # exported from the start, at 0
        webhook.set_failing(True)
        push.push_image(repo, "1", seed="p2")
        text = pending("1.0")
        assert TOKEN not in text
        webhook.set_failing(False)
        pending("0.0")
        assert [m["title"].split(":")[0] for m in webhook.received] == ["[tagwatch] moved"]
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=20) == 0
