"""A database that cannot be written (read-only, disk full) is an error the cycle reports
and survives: nothing half-written, nothing lost, the alert goes out once it can be stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from regharness import Pusher, Registry, unique_repo
from sinks import WebhookSink

from tagwatch.check import run_cycle
from tagwatch.config import load_config
from tagwatch.notify import Notifier
from tagwatch.registry.client import client_for
from tagwatch.store import Store

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("break_it", "mend_it", "message"),
    [
        ("PRAGMA query_only = ON", "PRAGMA query_only = OFF", "readonly"),
    ],
    ids=["read-only"],
)
def test_unwritable_database_is_reported_and_survived(
    registry_anonymous: Registry,
    tmp_path: Path,
    webhook: WebhookSink,
    break_it: str,
    mend_it: str,
    message: str,
) -> None:
    repo = unique_repo("db")
    push = Pusher(registry_anonymous)
    first = push.push_image(repo, "1", seed="1")
    path = tmp_path / "config.toml"
    path.write_text(
        f'[tagwatch]\ndatabase = "{tmp_path / "t.db"}"\n'
        f'[[watch]]\nimage = "{registry_anonymous.host}/{repo}:1"\n'
        f'[[notify]]\nurl = "{webhook.url}"\n'
    )
    config = load_config(path)
    store = Store(config.settings.database)
    notifier = Notifier(config.notify, store)
    with client_for(config) as client:
        assert not run_cycle(config, store, client, notifier).failed
        moved = push.push_image(repo, "1", seed="2")
        pages = store.db.execute("PRAGMA page_count").fetchone()[0]
        store.db.execute(break_it.format(pages=pages))
        for _ in range(2):  # and again: nothing piles up or crashes
            report = run_cycle(config, store, client, notifier)
            assert report.failed and report.error is not None and message in report.error
            assert "\n" not in report.error
        assert webhook.received == []  # an event that could not be stored is not sent
        store.db.execute(mend_it)
        assert store.tag_views()[(registry_anonymous.host, repo, "1")].digest == first
        report = run_cycle(config, store, client, notifier)
        assert not report.failed and report.sent == 1
        webhook.wait_for(1)
        assert moved in webhook.received[0]["message"]
        assert run_cycle(config, store, client, notifier).sent == 0
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.close()


def test_daemon_survives_a_full_disk(
    registry_anonymous: Registry, tmp_path: Path, webhook: WebhookSink
) -> None:
    """RLIMIT_FSIZE makes every write past the current file sizes fail as a full disk does
    (EFBIG, with SIGXFSZ ignored): the daemon logs it, keeps cycling, and once space is back
    records the move and sends its alert exactly once."""
    import os
    import resource
    import signal
    import subprocess
    import sys
    import time

    repo = unique_repo("full")
    push = Pusher(registry_anonymous)
    push.push_image(repo, "1", seed="1")
    path = tmp_path / "config.toml"
    path.write_text(
        f'[tagwatch]\ndatabase = "{tmp_path / "t.db"}"\ninterval = "1s"\n'
        'jitter = "0s"\n[metrics]\nlisten = ""\n'
        f'[[watch]]\nimage = "{registry_anonymous.host}/{repo}:1"\n'
        f'[[notify]]\nurl = "{webhook.url}"\n'
    )
    log = tmp_path / "daemon.log"

    def ignore_sigxfsz() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    with log.open("w") as err:  # the child keeps its own copy
        daemon = subprocess.Popen(
            [sys.executable, "-m", "tagwatch", "run", "-vv", "-c", str(path)],
            stderr=err,
            preexec_fn=ignore_sigxfsz,
        )
    try:
        deadline = time.monotonic() + 10
        while "cycle" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)
        sizes = [p.stat().st_size for p in tmp_path.glob("t.db*")]
        resource.prlimit(daemon.pid, resource.RLIMIT_FSIZE, (max(sizes), resource.RLIM_INFINITY))
        moved = push.push_image(repo, "1", seed="2")
        deadline = time.monotonic() + 10
        while "nothing from this cycle was recorded" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        time.sleep(2)  # several cycles fail to record; none may alert or die
        assert daemon.poll() is None
        assert webhook.received == []
        resource.prlimit(
            daemon.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
        )
        webhook.wait_for(1, timeout=10)
        time.sleep(2.5)
        assert [m["title"] for m in webhook.received] == [
            f"[tagwatch] moved: {registry_anonymous.host}/{repo}:1"
        ]
        assert moved in webhook.received[0]["message"]
        text = log.read_text()
        assert "Traceback" not in text
        assert text.count("nothing from this cycle was recorded") == 1  # said once
        assert "recording works again" in text
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=15) == 0
    store = Store(str(tmp_path / "t.db"))
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.close()
    del os
