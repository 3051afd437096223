"""SIGKILL at random moments: nothing recorded is lost, every alert arrives exactly once.

The daemon checks five tags every 200 ms while the test moves them and an alert target
that is down part of the time receives the alerts. The daemon is killed (SIGKILL) at random
points — mid-cycle, mid-write, mid-delivery — and started again, many times. Afterwards:
the database passes integrity_check, every move the daemon recorded is one the test made,
the last digest of every tag is the registry's, and every recorded event reached the
webhook exactly once — except that a delivery in flight at a kill may arrive twice (it was
sent, but the kill came before it was marked sent); there are at most as many of those as
kills.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from regharness import Pusher, Registry, unique_repo
from sinks import WebhookSink

pytestmark = pytest.mark.integration

KILLS = 25
TAGS = 5


def test_sigkill_loses_nothing_and_repeats_at_most_in_flight(
        registry_anonymous: Registry, tmp_path: Path, webhook: WebhookSink) -> None:
    rng = random.Random(20261125)
    push = Pusher(registry_anonymous)
    repo = unique_repo("crash")
    pushed: dict[str, list[str]] = {}
    for i in range(TAGS):
        pushed[f"t{i}"] = [push.push_image(repo, f"t{i}", seed=f"{repo}-{i}-0")]
    db = tmp_path / "tagwatch.db"
    config = tmp_path / "config.toml"
    config.write_text(
        f'[tagwatch]\ndatabase = "{db}"\ninterval = "200ms"\njitter = "0s"\ntimeout = "2s"\n'
        '[metrics]\nlisten = ""\n'
        + "".join(f'[[watch]]\nimage = "{registry_anonymous.host}/{repo}:t{i}"\n'
                  for i in range(TAGS))
        + f'[[notify]]\nurl = "{webhook.url}"\n')
    def start() -> subprocess.Popen[bytes]:
        with (tmp_path / "daemon.log").open("a") as log:  # the child keeps its own copy
            return subprocess.Popen([sys.executable, "-m", "tagwatch", "run", "-c", str(config)],
                                    stderr=log)

    moves = 0
    for _ in range(KILLS):
        webhook.set_failing(rng.random() < 0.3)  # the alert target is down part of the time
        daemon = start()
        deadline = time.monotonic() + rng.uniform(0.5, 2.0)
        while time.monotonic() < deadline:
            if rng.random() < 0.5:
                tag = f"t{rng.randrange(TAGS)}"
                pushed[tag].append(push.push_image(repo, tag, seed=f"{repo}-{tag}-{moves}"))
                moves += 1
            time.sleep(rng.uniform(0.05, 0.3))
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
    # Let a last, undisturbed daemon see the final state and deliver what is owed.
    webhook.set_failing(False)
    started = (tmp_path / "daemon.log").read_text().count("tagwatch started")
    daemon = start()
    try:
        while (tmp_path / "daemon.log").read_text().count("tagwatch started") == started:
            time.sleep(0.1)
        deadline = time.monotonic() + 30
        while True:
            time.sleep(0.5)
            con = sqlite3.connect(db)
            pending = con.execute(
                "SELECT count(*) FROM deliveries WHERE state != 'sent'").fetchone()[0]
            current = {row[0]: row[1] for row in con.execute("SELECT tag, digest FROM tags")}
            con.close()
            if not pending and all(current.get(t) == d[-1] for t, d in pushed.items()):
                break
            assert time.monotonic() < deadline, f"{pending} deliveries still pending"
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=15) == 0

    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    events = con.execute(
        "SELECT kind, tag, old_digest, new_digest FROM events ORDER BY id").fetchall()
    history = {tag: [r[0] for r in con.execute(
        "SELECT s.digest FROM stretches s JOIN tags t ON t.id = s.tag_id WHERE t.tag = ? "
        "ORDER BY s.id", [tag])] for tag in pushed}
    con.close()

    for tag, seen in history.items():
        # Recorded digests are the pushed ones, in order (some skipped while it was down).
        order = pushed[tag]
        assert set(seen) <= set(order) and seen[-1] == order[-1]
        assert [order.index(d) for d in seen] == sorted(order.index(d) for d in seen)
    assert {kind for kind, *_ in events} == {"moved"}
    assert len(events) == sum(len(h) - 1 for h in history.values()) >= KILLS // 2

    received = Counter()
    for message in webhook.received:
        title = message["title"]
        tag = title.rsplit(":", 1)[1]
        new = message["message"].split("new: ", 1)[1].split()[0]
        received[(tag, new)] += 1
    expected = Counter((tag, new) for _, tag, _, new in events)
    assert set(received) == set(expected), "an alert was lost or invented"
    repeats = sum(n - 1 for n in received.values())
    assert all(n <= 2 for n in received.values())
    assert repeats <= KILLS
    print(f"\n{KILLS} kills, {moves} pushes, {len(events)} moves recorded, "
          f"{len(webhook.received)} alerts received, {repeats} repeated (in flight at a kill)")
