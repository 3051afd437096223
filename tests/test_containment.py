"""One target's bad answer fails that target alone, never the cycle (issue 10, containment).

The hostile content is served by the real distribution registry, which stores it as pushed: a
config blob that is valid JSON nested 100,000 deep, an index nested 9,000 deep (the registry's
own parser stops at 10,000), and, through the fault proxy in front of it, a tag list nested
100,000 deep. Each case runs the `tagwatch` command as a child process, as a user would, and
reads what the user sees: exit status, stderr, `status --json`, and the alerts a local
json:// webhook received.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from checkworld import CheckWorld
from faultproxy import FaultProxy
from regharness import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, Pusher, Registry
from sinks import WebhookSink

from tagwatch.check import decide as decide_phase
from tagwatch.core.model import Failed, State

pytestmark = pytest.mark.integration

DEEP_CONFIG = (
    b'{"architecture":"amd64","os":"linux","config":{"Labels":{}},"x":'
    + b"[" * 100_000
    + b"]" * 100_000
    + b"}"
)


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def tagwatch(config: Path, *argv: str) -> Run:
    """The real command in a child process: what a user sees, tracebacks included."""
    env = {**os.environ, "TAGWATCH_CONFIG": str(config)}
    env.pop("NOTIFY_SOCKET", None)
    proc = subprocess.run(
        [sys.executable, "-m", "tagwatch", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def push_config_image(pusher: Pusher, repo: str, tag: str, config: bytes) -> str:
    """An OCI image whose config blob is exactly `config` (the registry stores any blob)."""
    config_digest = pusher.push_blob(repo, config)
    layer = gzip.compress(repo.encode(), mtime=0)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [
            {"mediaType": OCI_LAYER, "digest": pusher.push_blob(repo, layer), "size": len(layer)}
        ],
    }
    return pusher.push_manifest(repo, tag, json.dumps(manifest).encode(), OCI_MANIFEST)


def push_deep_index(pusher: Pusher, repo: str, tag: str, child: str, depth: int) -> str:
    """An index whose one platform is `child`, with an extra member nested `depth` deep."""
    head = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": child,
                "size": 500,
                "platform": {"os": "linux", "architecture": "amd64"},
            }
        ],
    }
    body = json.dumps(head)[:-1].encode() + b', "x": ' + b"[" * depth + b"]" * depth + b"}"
    return pusher.push_manifest(repo, tag, body, OCI_INDEX)


class Setup:
    def __init__(self, tmp_path: Path, webhook: WebhookSink) -> None:
        self.path = tmp_path / "config.toml"
        self.db = tmp_path / "tagwatch.db"
        self.webhook = webhook
        self.targets: list[str] = []

    def add(self, text: str) -> None:
        self.targets.append(text)

    def __call__(self, *argv: str) -> Run:
        self.path.write_text(
            f'[tagwatch]\ndatabase = "{self.db}"\ntimeout = "5s"\n\n'
            + "\n".join(self.targets)
            + f'\n[[notify]]\nurl = "{self.webhook.url}"\n'
        )
        return tagwatch(self.path, *argv)

    def status(self) -> dict[str, dict[str, Any]]:
        run = self("status", "--json")
        assert run.code == 0, run.err
        return {f"{o['kind']}:{o['image'].rsplit('/', 1)[1]}:{o['tag']}": o for o in run.json()}


@pytest.fixture
def hub(registry_anonymous: Registry) -> Iterator[tuple[Registry, Pusher]]:
    with Pusher(registry_anonymous) as pusher:
        yield registry_anonymous, pusher


@pytest.fixture
def setup(tmp_path: Path, webhook: WebhookSink) -> Setup:
    return Setup(tmp_path, webhook)


def version(n: str) -> dict[str, str]:
    return {"org.opencontainers.image.version": n}


def alerts(sink: WebhookSink, start: int = 0) -> dict[str, str]:
    """Title -> message of every alert received since `start`."""
    return {m["title"]: m["message"] for m in sink.received[start:]}


def test_deep_config_blob_costs_only_what_changed(
    hub: tuple[Registry, Pusher], setup: Setup, webhook: WebhookSink, unique_repo: Any
) -> None:
    """A new image whose config blob nests 100,000 deep (before: RecursionError re-raised by
    the worker pool, traceback, nothing recorded or alerted for any tag of the registry)."""
    registry, pusher = hub
    a, b, deep = unique_repo("app-a"), unique_repo("app-b"), unique_repo("deep")
    for repo in (a, b, deep):
        pusher.push_image(repo, "1", seed=repo + "1", labels=version("1.0"))
        setup.add(f'[[watch]]\nimage = "{registry.host}/{repo}:1"\n')
    first = setup("check")
    assert first.code == 0, first.err

    new = {repo: pusher.push_image(repo, "1", seed=repo + "2", labels=version("2.0"))
           for repo in (a, b)}
    new[deep] = push_config_image(pusher, deep, "1", DEEP_CONFIG)
    run = setup("check")

    assert run.code == 0, run.err  # a move is a finding, not a failure
    assert "Traceback" not in run.err and "Traceback" not in run.out
    [warning] = run.err.splitlines()
    assert f"{deep}:1: what changed is unknown: " in warning, warning
    status = setup.status()
    for repo in (a, b, deep):
        assert status[f"watch:{repo}:1"]["digest"] == new[repo]
        assert status[f"watch:{repo}:1"]["state"] == "ok"
    got = alerts(webhook)
    assert set(got) == {f"[tagwatch] moved: {registry.host}/{r}:1" for r in (a, b, deep)}
    deep_alert = got[f"[tagwatch] moved: {registry.host}/{deep}:1"]
    assert "what changed: details unknown" in deep_alert
    assert f"new: {new[deep]}" in deep_alert
    assert "version: 1.0 → 2.0" in got[f"[tagwatch] moved: {registry.host}/{a}:1"]

    again = setup("check")  # recorded once: the next cycle has nothing to say
    assert again.code == 0 and len(webhook.received) == 3, (again.err, webhook.received)


def test_deep_index_fails_its_own_target_only(
    hub: tuple[Registry, Pusher], setup: Setup, webhook: WebhookSink, unique_repo: Any
) -> None:
    """The tag itself answers with an index nested 9,000 deep: that tag's check fails (exit
    1), the others are recorded and alerted; once the tag is sane again its move is alerted."""
    registry, pusher = hub
    good, deep = unique_repo("good"), unique_repo("deep-index")
    old_good = pusher.push_image(good, "1", seed=good + "1")
    old_deep = pusher.push_image(deep, "1", seed=deep + "1")
    setup.add(f'[[watch]]\nimage = "{registry.host}/{good}:1"\n')
    setup.add(f'[[watch]]\nimage = "{registry.host}/{deep}:1"\n')
    assert setup("check").code == 0

    new_good = pusher.push_image(good, "1", seed=good + "2")
    push_deep_index(pusher, deep, "1", old_deep, 9_000)
    run = setup("check")

    assert run.code == 1, run.err
    assert "Traceback" not in run.err + run.out
    status = setup.status()
    assert status[f"watch:{good}:1"]["digest"] == new_good != old_good
    assert status[f"watch:{deep}:1"]["state"] == "error"
    assert status[f"watch:{deep}:1"]["digest"] == old_deep  # nothing recorded from the bad answer
    assert status[f"watch:{deep}:1"]["error"]
    assert list(alerts(webhook)) == [f"[tagwatch] moved: {registry.host}/{good}:1"]

    fixed = pusher.push_image(deep, "1", seed=deep + "3")
    after = setup("check")
    assert after.code == 0, after.err
    assert setup.status()[f"watch:{deep}:1"]["digest"] == fixed
    assert f"[tagwatch] moved: {registry.host}/{deep}:1" in alerts(webhook, 1)


def test_pin_judged_when_the_current_image_cannot_be_read(
    hub: tuple[Registry, Pusher], setup: Setup, webhook: WebhookSink, unique_repo: Any
) -> None:
    """Pin facts: the tag moved to an image whose config nests 100,000 deep, so its created
    time (evidence of how long the pin is behind) cannot be read: the pin is judged without
    it, as behind since this first check."""
    registry, pusher = hub
    repo, other = unique_repo("pinned"), unique_repo("other")
    pinned = pusher.push_image(repo, "1", seed=repo + "1")
    now = push_config_image(pusher, repo, "1", DEEP_CONFIG)
    pusher.push_image(other, "1", seed=other)
    setup.add(f'[[pin]]\nimage = "{registry.host}/{repo}:1@{pinned}"\nmax_age = "0s"\n')
    setup.add(f'[[watch]]\nimage = "{registry.host}/{other}:1"\n')

    run = setup("check")

    assert run.code == 0, run.err
    assert "Traceback" not in run.err + run.out
    status = setup.status()
    assert status[f"pin:{repo}:1"]["state"] == "stale"
    assert status[f"pin:{repo}:1"]["digest"] == now
    assert status[f"watch:{other}:1"]["state"] == "ok"
    [(title, message)] = alerts(webhook).items()
    assert title == f"[tagwatch] stale: {registry.host}/{repo}:1"
    assert f"pinned:  {pinned}" in message and f"tag now: {now}" in message


def test_hostile_tag_list_costs_only_newer_versions(
    hub: tuple[Registry, Pusher], setup: Setup, webhook: WebhookSink, unique_repo: Any
) -> None:
    """The newer-versions tag list of one repository nests 100,000 deep (served by the fault
    proxy in front of the real registry): that target is checked as usual, without newer
    versions; another repository's newer version is still reported."""
    registry, pusher = hub
    bad, good = unique_repo("bad-list"), unique_repo("good-list")
    for repo in (bad, good):
        pusher.push_image(repo, "1.0.1", seed=repo + "1")
        pusher.push_image(repo, "1.0.2", seed=repo + "2")
    with FaultProxy(registry.url) as proxy:
        proxy.set_fault(
            "status",
            code=200,
            body=b'{"name": "x", "tags": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            match=(None, f"/v2/{bad}/tags/list"),
        )
        for repo in (bad, good):
            setup.add(f'[[watch]]\nimage = "{proxy.host}/{repo}:1.0.1"\nnewer = "patch"\n')
        run = setup("check")
        tag_lists = [r.path for r in proxy.requests if "/tags/list" in r.path]

    assert run.code == 0, run.err
    assert "Traceback" not in run.err + run.out
    assert any(bad in path for path in tag_lists)  # the hostile list was served
    status = setup.status()
    assert status[f"watch:{bad}:1.0.1"]["state"] == "ok"
    assert status[f"watch:{good}:1.0.1"]["state"] == "ok"
    assert list(alerts(webhook)) == [f"[tagwatch] newer: {proxy.host}/{good}:1.0.1"]
    assert f"{bad}: cannot list tags for newer versions" in run.err


def test_a_bug_deciding_one_tag_fails_that_tag_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deciding is pure code; should it raise on some answer (simulated here), that tag fails
    as a failed check — nothing recorded for it, its move decided again next cycle — and the
    other tags are recorded as usual."""
    world = CheckWorld(tmp_path)
    h, fake = world.host, world.fake
    fake.put_image("good", "1", "a")
    fake.put_image("bad", "1", "a")
    world.configure(f'[[watch]]\nimage = "{h}/good:1"\n[[watch]]\nimage = "{h}/bad:1"\n')
    t0 = datetime(2026, 11, 20, 12, tzinfo=UTC)
    world.cycle(t0)
    good = fake.put_image("good", "1", "b")
    bad = fake.put_image("bad", "1", "b")
    real = decide_phase.decide

    def buggy(target: Any, *args: Any, **kwargs: Any) -> Any:
        if target.ref.repository == "bad":
            raise KeyError("a bug")
        return real(target, *args, **kwargs)

    monkeypatch.setattr(decide_phase, "decide", buggy)
    report = world.cycle(t0.replace(hour=13))
    results = {r.target.ref.repository: r for r in report.results}
    assert results["good"].moved and results["good"].state is State.OK
    assert isinstance(results["bad"].observation, Failed)
    assert results["bad"].observation.message == "internal error: KeyError: 'a bug'"
    assert report.failed and report.error is None

    monkeypatch.setattr(decide_phase, "decide", real)
    report = world.cycle(t0.replace(hour=14))
    assert [r.target.ref.repository for r in report.results if r.moved] == ["bad"]
    assert [e["new_digest"] for e in world.events() if e["kind"] == "moved"] == [good, bad]
    world.close()


def test_an_unexpected_error_is_one_line_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The last resort of the command line: a bug anywhere is one line and exit status 1."""
    from tagwatch import cli

    config = tmp_path / "config.toml"
    config.write_text(f'[tagwatch]\ndatabase = "{tmp_path}/db"\n')

    def broken(args: Any) -> int:
        raise RecursionError("maximum recursion depth exceeded\nwhile doing something")

    monkeypatch.setattr(cli, "cmd_status", broken)
    assert cli.main(["status", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert err == (
        "tagwatch: error: internal error: RecursionError: maximum recursion depth exceeded "
        "while doing something (a bug in tagwatch; -vv logs where)\n"
    )


def test_audit_prints_no_traceback_for_hostile_images(
    hub: tuple[Registry, Pusher], setup: Setup, unique_repo: Any
) -> None:
    """`tagwatch audit` reads every image's config: one nests 100,000 deep, one says it was
    created at a time out of range once in UTC and carries labels with a newline, escapes
    and a Markdown link. Each costs its own row's details; the table, the Markdown and the
    JSON keep one row per image (before: no audit at all)."""
    registry, pusher = hub
    deep, odd, good = unique_repo("deep"), unique_repo("odd"), unique_repo("good")
    odd_config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "0001-01-01T00:00:00+14:00",
            "config": {
                "Labels": {
                    "org.opencontainers.image.vendor": "ACME\n| x | [site](http://evil.example)",
                    "org.opencontainers.image.authors": "\x1b[31mred\x1b[0m",
                }
            },
        }
    ).encode()
    push_config_image(pusher, deep, "1", DEEP_CONFIG)
    push_config_image(pusher, odd, "1", odd_config)
    pusher.push_image(good, "1", labels={"org.opencontainers.image.vendor": "Good Corp"})
    for repo in (deep, odd, good):
        setup.add(f'[[watch]]\nimage = "{registry.host}/{repo}:1"\n')
    assert setup("check").code == 0

    table = setup("audit")
    markdown = setup("audit", "--markdown")
    as_json = setup("audit", "--json")

    for run in (table, markdown, as_json):
        assert run.code == 0, run.err
        assert "Traceback" not in run.err + run.out and "\x1b" not in run.out
    assert len(table.out.splitlines()) == 1 + 3
    rows = markdown.out.splitlines()
    assert len(rows) == 2 + 3 and "](http" not in markdown.out
    assert {len(re.findall(r"(?<!\\)\|", row)) for row in rows} == {len(rows[0].split("|")) - 1}
    found = {row["image"].rsplit("/", 1)[1]: row for row in as_json.json()}
    assert found[deep]["note"].startswith("image details unknown: ")
    assert found[odd]["age_days"] is None and found[odd]["created"] == "0001-01-01T00:00:00+14:00"
    assert found[odd]["vendor"] == "ACME | x | [site](http://evil.example)"
    assert found[odd]["authors"] == "red"
    assert found[good]["vendor"] == "Good Corp"
