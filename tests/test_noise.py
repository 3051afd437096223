"""Noise control against the real registry: grace, quiet windows, summary and digest
targets, and templates. Cycles run in-process with a fake clock, so schedules are exact."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from regharness import Pusher, Registry, unique_repo
from sinks import WebhookSink

from tagwatch.check import CycleReport, run_cycle
from tagwatch.config import Config, load_config
from tagwatch.notify import Notifier
from tagwatch.registry.client import client_for
from tagwatch.store import Store

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 25, 8, 50, tzinfo=UTC)


class World:
    def __init__(
        self,
        registry: Registry,
        tmp_path: Path,
        webhook: WebhookSink,
        watch_keys: str = "",
        notify_keys: str = "",
        tags: int = 1,
    ) -> None:
        self.registry, self.push, self.webhook = registry, Pusher(registry), webhook
        self.repo = unique_repo("noise")
        self.digests = {
            f"t{i}": [self.push.push_image(self.repo, f"t{i}", seed=f"{i}-0")] for i in range(tags)
        }
        path = tmp_path / "config.toml"
        path.write_text(
            f'[tagwatch]\ndatabase = "{tmp_path / "t.db"}"\n'
            + "".join(
                f'[[watch]]\nimage = "{registry.host}/{self.repo}:t{i}"\n{watch_keys}\n'
                for i in range(tags)
            )
            + f'[[notify]]\nurl = "{webhook.url}"\n{notify_keys}\n'
        )
        self.config: Config = load_config(path)
        self.store = Store(self.config.settings.database)
        self.notifier = Notifier(self.config.notify, self.store)
        self.client = client_for(self.config)

    def move(self, tag: str = "t0") -> str:
        digest = self.push.push_image(self.repo, tag, seed=f"{tag}-{len(self.digests[tag])}")
        self.digests[tag].append(digest)
        return digest

    def cycle(self, at: datetime) -> CycleReport:
        clock: Callable[[], datetime] = lambda: at  # noqa: E731
        report = run_cycle(self.config, self.store, self.client, self.notifier, clock=clock)
        assert not report.failed, report
        return report

    def close(self) -> None:
        self.client.close()
        self.store.close()


def test_a_re_push_within_the_grace_is_one_alert(
    registry_anonymous: Registry, tmp_path: Path, webhook: WebhookSink
) -> None:
    w = World(registry_anonymous, tmp_path, webhook, watch_keys='grace = "10m"')
    first = w.digests["t0"][0]
    w.cycle(T0)
    w.move()
    assert w.cycle(T0 + timedelta(minutes=1)).sent == 0  # waits out the grace
    final = w.move()
    assert w.cycle(T0 + timedelta(minutes=4)).sent == 0  # moved again: the grace restarts
    assert w.cycle(T0 + timedelta(minutes=13)).sent == 0
    assert w.cycle(T0 + timedelta(minutes=15)).sent == 1
    assert w.cycle(T0 + timedelta(minutes=30)).sent == 0
    [message] = webhook.received
    assert message["title"] == f"[tagwatch] moved: {registry_anonymous.host}/{w.repo}:t0"
    assert f"old: {first}" in message["message"] and f"new: {final}" in message["message"]
    assert "moves: 2 within the grace period" in message["message"]
    w.close()


def test_a_move_and_back_within_the_grace_says_nothing(
    registry_anonymous: Registry, tmp_path: Path, webhook: WebhookSink
) -> None:
    w = World(registry_anonymous, tmp_path, webhook, watch_keys='grace = "10m"')
    w.cycle(T0)
    w.move()
    w.cycle(T0 + timedelta(minutes=1))
    w.push.tag(w.repo, "t0", w.digests["t0"][0])
    w.cycle(T0 + timedelta(minutes=2))
    w.cycle(T0 + timedelta(minutes=30))
    assert webhook.received == []
    events = [e["kind"] for e in w.store.events()]
    assert events == ["moved", "moved"]  # recorded all the same
    w.close()


def test_quiet_window_records_without_alerting(
    registry_anonymous: Registry, tmp_path: Path, webhook: WebhookSink
) -> None:
    w = World(registry_anonymous, tmp_path, webhook, watch_keys='quiet = ["22:00-07:00"]')
    w.cycle(T0.replace(hour=21))
    w.move()
    assert w.cycle(T0.replace(hour=23)).sent == 0
    assert w.cycle(T0.replace(hour=23) + timedelta(hours=9)).sent == 0  # not sent later
    assert webhook.received == [] and w.store.events()[0]["kind"] == "moved"
    w.move()
    assert w.cycle(T0.replace(hour=12) + timedelta(days=1)).sent == 1
    w.close()


def test_summary_target_gets_one_message_per_cycle(
    registry_anonymous: Registry, tmp_path: Path, webhook: WebhookSink
) -> None:
    w = World(registry_anonymous, tmp_path, webhook, notify_keys='mode = "summary"', tags=3)
    w.cycle(T0)
    for tag in ("t0", "t1", "t2"):
        w.move(tag)
    assert w.cycle(T0 + timedelta(minutes=15)).sent == 1
    [message] = webhook.received
    assert message["title"] == "[tagwatch] summary: 3 events (moved ×3)"
    for tag in ("t0", "t1", "t2"):
        assert f"moved: {registry_anonymous.host}/{w.repo}:{tag}" in message["message"]
        assert w.digests[tag][-1] in message["message"]
    w.close()


def test_digest_target_sends_once_at_its_schedule(
    registry_anonymous: Registry, tmp_path: Path, webhook: WebhookSink
) -> None:
    w = World(
        registry_anonymous,
        tmp_path,
        webhook,
        notify_keys='mode = "digest"\nschedule = ["09:00"]',
        tags=2,
    )
    w.cycle(T0)  # 08:50
    w.move("t0")
    assert w.cycle(T0 + timedelta(minutes=2)).sent == 0
    w.move("t1")
    assert w.cycle(T0 + timedelta(minutes=8)).sent == 0  # 08:58
    assert w.cycle(T0 + timedelta(minutes=11)).sent == 1  # 09:01: both, in one message
    w.move("t0")
    assert w.cycle(T0 + timedelta(hours=2)).sent == 0  # the next one waits for tomorrow
    assert w.cycle(T0 + timedelta(days=1, minutes=11)).sent == 1
    assert [m["title"] for m in webhook.received] == [
        "[tagwatch] digest: 2 events (moved ×2)",
        "[tagwatch] digest: 1 event (moved)",
    ]
    w.close()


def test_templates(registry_anonymous: Registry, tmp_path: Path, webhook: WebhookSink) -> None:
    w = World(
        registry_anonymous,
        tmp_path,
        webhook,
        notify_keys='title = "$kind on $ref"\nbody = "now $new_digest ($change)"',
    )
    w.cycle(T0)
    new = w.move()
    w.cycle(T0 + timedelta(minutes=15))
    [message] = webhook.received
    assert message["title"] == f"moved on {registry_anonymous.host}/{w.repo}:t0"
    assert message["message"] == f"now {new} (rebuild)"
    w.close()
