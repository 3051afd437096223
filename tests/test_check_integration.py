"""`tagwatch check` end to end against the real distribution registry on loopback.

Every test pushes its own repositories over the registry's HTTP API, runs the real command
line (in-process, through `tagwatch.cli.main`), and reads what came out: exit status, the
table or JSON, the database through `status`/`history`, the alerts that reached a local
json:// webhook or a real SMTP server, and the registry's own access log.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from regharness import Pusher, Registry, unique_repo
from sinks import SmtpSink, WebhookSink

from tagwatch.cli import main

pytestmark = pytest.mark.integration


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def tagwatch(*argv: str) -> Run:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return Run(code, out.getvalue(), err.getvalue())


def toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


class Setup:
    """A config file for one test: a database, targets and notification targets."""

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "config.toml"
        self.db = tmp_path / "tagwatch.db"
        self.parts: list[str] = [
            f'[tagwatch]\ndatabase = "{self.db}"\ntimeout = "3s"\nconcurrency = 16\n'
        ]

    def add(self, text: str) -> Setup:
        self.parts.append(text)
        return self

    def watch(self, image: str, **keys: Any) -> Setup:
        return self.add(f'[[watch]]\nimage = "{image}"\n' + _keys(keys))

    def pin(self, image: str, **keys: Any) -> Setup:
        return self.add(f'[[pin]]\nimage = "{image}"\n' + _keys(keys))

    def notify(self, url: str, **keys: Any) -> Setup:
        return self.add(f'[[notify]]\nurl = "{url}"\n' + _keys(keys))

    def write(self) -> Setup:
        self.path.write_text("\n".join(self.parts))
        return self

    def __call__(self, command: str, *args: str) -> Run:
        self.write()
        if command == "resolve":
            return tagwatch(command, *args)
        return tagwatch(command, "-c", str(self.path), *args)

    def status(self) -> dict[str, dict[str, Any]]:
        run = self("status", "--json")
        assert run.code == 0, run.err
        return {f"{o['kind']}:{o['image']}:{o['tag']}": o for o in run.json()}


def _keys(keys: dict[str, Any]) -> str:
    lines = []
    for key, value in keys.items():
        if isinstance(value, list):
            lines.append(f"{key} = {toml_list(value)}")
        elif isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, int):
            lines.append(f"{key} = {value}")
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


@pytest.fixture
def hub(registry_anonymous: Registry) -> Iterator[tuple[Registry, Pusher]]:
    yield registry_anonymous, Pusher(registry_anonymous)


def events_of(sink: WebhookSink) -> list[tuple[str, str]]:
    """(title, message) of every alert the webhook received."""
    return [(m["title"], m["message"]) for m in sink.received]


# --- what a steady check loads ------------------------------------------------------------

# Loaded only where they are needed (issue 15: a check's first request should not wait for
# them): HTTP beyond the HEADs, alerting, scheduling and time zones, migrations, a
# credential helper, digests to verify, and the modules of error messages.
NOT_FOR_A_STEADY_CHECK = (
    "httpx",
    "apprise",
    "apscheduler",
    "sqlite_utils",
    "tagwatch.notify",
    "tagwatch.core.payload",
    "tagwatch.timing",
    "zoneinfo",
    "subprocess",
    "hashlib",
    "difflib",
    "html",
)


def test_a_steady_check_loads_only_what_it_uses(
    hub: tuple[Registry, Pusher], setup: Setup
) -> None:
    registry, push = hub
    repo = unique_repo("lean")
    push.push_image(repo, "1.0", seed="lean")
    setup.watch(f"{registry.host}/{repo}:1.0")
    assert setup("check").code == 0  # first sight
    code = (
        "import sys\n"
        "from tagwatch.cli import main\n"
        "status = main(['check', '-c', sys.argv[1]])\n"
        "print('MODULES', *sorted(sys.modules))\n"
        "sys.exit(status)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(setup.path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "0 moved, 0 failed" in done.stdout
    loaded = set(done.stdout.rsplit("MODULES ", 1)[1].split())
    assert "tagwatch.registry.heads" in loaded  # the HEADs went out
    assert [m for m in NOT_FOR_A_STEADY_CHECK if m in loaded] == []


# --- watches: move, move back, vanish, return ----------------------------------------------


def test_watch_lifecycle(hub: tuple[Registry, Pusher], setup: Setup, webhook: WebhookSink) -> None:
    registry, push = hub
    repo = unique_repo("app")
    image = f"{registry.host}/{repo}"
    a = push.push_image(repo, "1.4", seed="a")
    setup.watch(f"{image}:1.4").notify(webhook.url)

    first = setup("check")
    assert first.code == 0, first.err
    assert f"{image}:1.4" in first.out and "ok" in first.out
    assert webhook.received == []  # first sight is silent by default
    assert setup.status()[f"watch:{image}:1.4"]["digest"] == a

    quiet = setup("check")
    assert quiet.code == 0 and "0 moved" in quiet.out and "0 events" in quiet.out
    assert webhook.received == []

    b = push.push_image(repo, "1.4", seed="b")
    moved = setup("check", "--json")
    assert moved.code == 0
    [obj] = moved.json()
    assert obj["digest"] == b and [e["event"] for e in obj["events"]] == ["moved"]
    webhook.wait_for(1)
    [(title, body)] = events_of(webhook)
    assert title == f"[tagwatch] moved: {image}:1.4"
    assert a in body and b in body  # both digests in full

    push.tag(repo, "1.4", a)  # rolled back
    assert setup("check").code == 0
    webhook.wait_for(2)
    title, body = events_of(webhook)[1]
    assert title == f"[tagwatch] moved: {image}:1.4"
    assert f"back to {a}" in body or ("back" in body and a in body)

    push.delete_manifest(repo, a)  # the tag goes with its manifest
    gone = setup("check")
    assert gone.code == 0, "a vanished tag is a finding, not a failure"
    assert setup.status()[f"watch:{image}:1.4"]["state"] == "vanished"
    webhook.wait_for(3)
    assert events_of(webhook)[2][0] == f"[tagwatch] vanished: {image}:1.4"

    c = push.push_image(repo, "1.4", seed="c")
    assert setup("check").code == 0
    webhook.wait_for(4)
    title, body = events_of(webhook)[3]
    assert title == f"[tagwatch] returned: {image}:1.4" and c in body
    assert setup.status()[f"watch:{image}:1.4"]["state"] == "ok"

    history = setup("history", f"{image}:1.4", "--json")
    assert history.code == 0
    assert [h["digest"] for h in history.json()] == [c, a, b, a]
    assert all(h["first_seen"] <= h["last_seen"] for h in history.json())
    assert len(webhook.received) == 4  # nothing was sent twice


def test_first_check_notify(hub: tuple[Registry, Pusher], setup: Setup,
                            webhook: WebhookSink) -> None:
    registry, push = hub
    repo = unique_repo("first")
    push.push_image(repo, "latest", seed="x")
    setup.parts[0] += "first_check_notify = true\n"
    setup.watch(f"{registry.host}/{repo}").notify(webhook.url)
    assert setup("check").code == 0
    webhook.wait_for(1)
    assert events_of(webhook)[0][0] == f"[tagwatch] first_seen: {registry.host}/{repo}:latest"


# --- indexes, platforms and attestations --------------------------------------------------


def test_platform_filtered_watch(hub: tuple[Registry, Pusher], setup: Setup,
                                 webhook: WebhookSink) -> None:
    registry, push = hub
    repo = unique_repo("multi")
    image = f"{registry.host}/{repo}"
    index1, children1 = push.push_index(repo, "3", ["linux/amd64", "linux/arm64"], seed="1")
    setup.watch(f"{image}:3", platforms=["linux/amd64"]).notify(webhook.url)
    assert setup("check").code == 0
    got = setup.status()[f"watch:{image}:3"]
    assert got["digest"] == index1
    assert got["platforms"] == children1  # attestation skipped: only the two images
    assert set(got["platforms"]) == {"linux/amd64", "linux/arm64"}

    # Only arm64 is rebuilt: recorded, not alerted for an amd64 watch.
    arm = push.push_image(repo, None, platform=("linux", "arm64", None), seed="arm-2")
    index2 = push.put_index(repo, "3", {"linux/amd64": children1["linux/amd64"],
                                        "linux/arm64": arm})
    assert setup("check").code == 0
    assert setup.status()[f"watch:{image}:3"]["digest"] == index2
    assert webhook.received == []
    assert [h["digest"] for h in setup("history", f"{image}:3", "--json").json()] == [
        index2, index1]

    # Now amd64 changes: one alert, naming the platform and its old and new image digests
    # (what the user compares with what runs), in the alert, check --json and history.
    amd = push.push_image(repo, None, platform=("linux", "amd64", None), seed="amd-3")
    index3 = push.put_index(repo, "3", {"linux/amd64": amd, "linux/arm64": arm})
    run = setup("check", "--json")
    assert run.code == 0
    webhook.wait_for(1)
    [(title, body)] = events_of(webhook)
    assert title == f"[tagwatch] moved: {image}:3"
    assert "linux/amd64" in body and "linux/arm64" not in body.split("platforms changed")[-1]
    old_amd = children1["linux/amd64"]
    assert f"linux/amd64 old: {old_amd}\nlinux/amd64 new: {amd}\n" in body, body
    assert f"old: {index2}\nnew: {index3}\n" in body  # the index digests stay too
    expected = {"linux/amd64": {"previous": old_amd, "digest": amd}}
    [event] = run.json()[0]["events"]
    assert event["platform_digests"] == expected
    newest = setup("history", f"{image}:3", "--json").json()[0]
    assert newest["digest"] == index3 and newest["platform_digests"] == expected
    table = setup("history", f"{image}:3").out
    assert f"linux/amd64 {old_amd[:19]} -> {amd[:19]}" in table, table


def test_unchanged_index_costs_one_head_and_no_get(hub: tuple[Registry, Pusher],
                                                   setup: Setup) -> None:
    registry, push = hub
    repos = [unique_repo("steady") for _ in range(4)]
    targets = []
    for i, repo in enumerate(repos):
        for tag in ("a", "b", "c", "d", "e"):
            if i % 2:
                push.push_index(repo, tag, ["linux/amd64", "linux/arm64"], seed=f"{repo}{tag}")
            else:
                push.push_image(repo, tag, seed=f"{repo}{tag}")
            targets.append(f"{registry.host}/{repo}:{tag}")
    for target in targets:
        setup.watch(target)
    assert setup("check").code == 0
    mark = registry.mark()
    steady = setup("check")
    assert steady.code == 0 and "0 moved" in steady.out
    requests = registry.requests(since=mark, exclude_agent="tagwatch-test-pusher")
    assert len(requests) == len(targets) == 20
    assert {r.method for r in requests} == {"HEAD"}
    assert sorted(r.path for r in requests) == sorted(
        f"/v2/{t.split('/', 1)[1].replace(':', '/manifests/')}" for t in targets)


# --- pins ------------------------------------------------------------------------------------


def test_pins_stale_current_and_missing(hub: tuple[Registry, Pusher], setup: Setup,
                                        webhook: WebhookSink) -> None:
    registry, push = hub
    repo = unique_repo("base")
    image = f"{registry.host}/{repo}"
    old = push.push_image(repo, "3.20", seed="old")
    index, children = push.push_index(repo, "3.20", ["linux/amd64", "linux/arm64"], seed="new")
    gone = "sha256:" + "0" * 64
    setup.pin(f"{image}:3.20@{old}", max_age="0s", source="services/api/Dockerfile")
    setup.pin(f"{image}:3.20@{children['linux/arm64']}", source="services/arm/Dockerfile")
    setup.pin(f"{image}:3.20@{gone}", max_age="0s")
    setup.notify(webhook.url)

    run = setup("check")
    assert run.code == 0, run.err  # stale and missing are findings
    states = {o["pinned"]: o for o in setup("status", "--json").json()}
    assert states[old]["state"] == "stale"
    assert states[old]["digest"] == index
    assert states[children["linux/arm64"]]["state"] == "ok"  # a platform digest is current
    assert states[gone]["state"] == "stale"
    assert states[gone].get("pin_missing") is True
    webhook.wait_for(3)
    alerts = events_of(webhook)
    assert sorted(t for t, _ in alerts) == [
        f"[tagwatch] pin_missing: {image}:3.20",
        f"[tagwatch] stale: {image}:3.20",
        f"[tagwatch] stale: {image}:3.20 (services/api/Dockerfile)",
    ]
    stale_body = next(b for t, b in alerts if "stale" in t and old in b)
    assert "services/api/Dockerfile" in stale_body and index in stale_body
    assert any(t == f"[tagwatch] pin_missing: {image}:3.20" and gone in b
               for t, b in alerts)
    count = len(webhook.received)

    again = setup("check")  # within renotify: nothing repeats
    assert again.code == 0 and len(webhook.received) == count

    push.tag(repo, "3.20", old)  # the tag goes back to the pinned digest
    back = setup("check", "--json")
    assert back.code == 0, back.out + back.err
    webhook.wait_for(count + 1)
    titles = [t for t, _ in events_of(webhook)[count:]]
    assert f"[tagwatch] current: {image}:3.20 (services/api/Dockerfile)" in titles
    assert {o["pinned"]: o["state"] for o in setup("status", "--json").json()}[old] == "ok"


# --- failures --------------------------------------------------------------------------------


def test_stopped_registry_is_an_error_not_a_move(tmp_path: Path, setup: Setup,
                                                 webhook: WebhookSink) -> None:
    from regharness import start_registry

    registry = start_registry(tmp_path / "reg", "anonymous")
    try:
        push = Pusher(registry)
        push.push_image("lib/app", "1", seed="1")
        setup.watch(f"{registry.host}/lib/app:1").notify(webhook.url)
        assert setup("check").code == 0
        registry.stop()
        down = setup("check")
        assert down.code == 1
        assert "error" in down.out and registry.host in down.out
        status = setup.status()[f"watch:{registry.host}/lib/app:1"]
        assert status["state"] == "error" and status["error"]
        assert status["digest"] is not None  # what was recorded stays
        registry.start()
        back = setup("check")
        assert back.code == 0 and "0 moved" in back.out
        assert setup.status()[f"watch:{registry.host}/lib/app:1"]["state"] == "ok"
        assert webhook.received == []  # one failed check: no error alert, no recovered
    finally:
        registry.close()


def test_failed_delivery_is_retried_once(hub: tuple[Registry, Pusher], setup: Setup,
                                         webhook: WebhookSink) -> None:
    registry, push = hub
    repo = unique_repo("retry")
    push.push_image(repo, "x", seed="1")
    setup.watch(f"{registry.host}/{repo}:x").notify(webhook.url)
    assert setup("check").code == 0
    push.push_image(repo, "x", seed="2")
    webhook.set_failing(True)
    failed = setup("check")
    assert failed.code == 0  # the check worked; the alert is owed
    assert "1 alerts failed (will retry)" in failed.out
    webhook.set_failing(False)
    assert setup("check").code == 0
    webhook.wait_for(1)
    assert setup("check").code == 0
    assert [t for t, _ in events_of(webhook)] == [f"[tagwatch] moved: {registry.host}/{repo}:x"]


def test_no_notify_records_without_sending(hub: tuple[Registry, Pusher], setup: Setup,
                                           webhook: WebhookSink) -> None:
    registry, push = hub
    repo = unique_repo("held")
    push.push_image(repo, "x", seed="1")
    setup.watch(f"{registry.host}/{repo}:x").notify(webhook.url)
    assert setup("check").code == 0
    b = push.push_image(repo, "x", seed="2")
    held = setup("check", "--no-notify", "--json")
    assert [e["event"] for e in held.json()[0]["events"]] == ["moved"]
    assert setup("check").code == 0
    assert webhook.received == []
    assert setup.status()[f"watch:{registry.host}/{repo}:x"]["digest"] == b


def test_email_alert_to_real_smtp(hub: tuple[Registry, Pusher], setup: Setup,
                                  smtp: SmtpSink) -> None:
    registry, push = hub
    repo = unique_repo("mail")
    a = push.push_image(repo, "x", seed="1")
    setup.watch(f"{registry.host}/{repo}:x").notify(smtp.url())
    assert setup("check").code == 0
    b = push.push_image(repo, "x", seed="2")
    assert setup("check").code == 0
    smtp.wait_for(1)
    [message] = smtp.messages
    assert message["subject"] == f"[tagwatch] moved: {registry.host}/{repo}:x"
    text = message.text
    assert a in text and b in text
    assert message.html is not None  # e-mail gets HTML, with the plain text beside it
    assert f"<code>{b}</code>" in message.html and "<b>old:</b>" in message.html


# --- authentication ----------------------------------------------------------------------------


def test_basic_auth_and_wrong_password(registry_basic: Registry, setup: Setup,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    registry = registry_basic
    push = Pusher(registry)
    repo = unique_repo("private")
    digest = push.push_image(repo, "1", seed="p")
    secret = "not-the-password-4711"
    monkeypatch.setenv("REG_PASSWORD", secret)
    setup.add(f'[[registry]]\nhost = "{registry.host}"\nusername = "{registry.username}"\n'
              'password_env = "REG_PASSWORD"\n')
    setup.watch(f"{registry.host}/{repo}:1")
    wrong = setup("check")
    assert wrong.code == 1
    assert "refused" in wrong.out + wrong.err and registry.username in wrong.out + wrong.err
    assert secret not in wrong.out + wrong.err
    assert secret not in setup.db.read_bytes().decode("latin-1")
    monkeypatch.setenv("REG_PASSWORD", registry.password)
    right = setup("check")
    assert right.code == 0, right.out
    assert setup.status()[f"watch:{registry.host}/{repo}:1"]["digest"] == digest

    anonymous = tagwatch("resolve", f"{registry.host}/{repo}:1")
    assert anonymous.code == 1 and "401" in anonymous.err or "credentials" in anonymous.err


def test_docker_config_credentials(registry_basic: Registry, setup: Setup, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    registry = registry_basic
    repo = unique_repo("dockercfg")
    digest = Pusher(registry).push_image(repo, "1", seed="d")
    auth = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text(
        json.dumps({"auths": {registry.host: {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    setup.watch(f"{registry.host}/{repo}:1")
    run = setup("check")
    assert run.code == 0, run.out
    assert setup.status()[f"watch:{registry.host}/{repo}:1"]["digest"] == digest
    resolved = tagwatch("resolve", f"{registry.host}/{repo}:1")
    assert resolved.code == 0 and resolved.out.strip() == digest


def test_token_auth_one_token_per_repository(registry_token: Registry, setup: Setup,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    registry = registry_token
    push = Pusher(registry)
    repos = [unique_repo("tok") for _ in range(3)]
    for repo in repos:
        for tag in ("a", "b", "c", "d"):
            push.push_image(repo, tag, seed=f"{repo}{tag}")
            setup.watch(f"{registry.host}/{repo}:{tag}")
    monkeypatch.setenv("REG_PASSWORD", registry.password)
    setup.add(f'[[registry]]\nhost = "{registry.host}"\nusername = "{registry.username}"\n'
              'password_env = "REG_PASSWORD"\n')
    before = len(registry.token_server.requests)
    run = setup("check")
    assert run.code == 0, run.out
    mine = registry.token_server.requests[before:]
    assert len(mine) == 3  # one per repository, not one per tag (12)
    assert sorted(r.scopes[0] for r in mine) == sorted(f"repository:{r}:pull" for r in repos)
    assert all(r.account == registry.username for r in mine)


def test_token_auth_anonymous_pull(registry_token: Registry) -> None:
    repo = unique_repo("public")
    digest = Pusher(registry_token).push_image(repo, "1", seed="pub")
    run = tagwatch("resolve", f"{registry_token.host}/{repo}:1")
    assert run.code == 0, run.err
    assert run.out.strip() == digest


# --- resolve ---------------------------------------------------------------------------------


def test_resolve_index_and_platform(hub: tuple[Registry, Pusher]) -> None:
    registry, push = hub
    repo = unique_repo("res")
    index, children = push.push_index(repo, "1", ["linux/amd64", "linux/arm/v7"], seed="r")
    ref = f"{registry.host}/{repo}:1"
    assert tagwatch("resolve", ref).out.strip() == index
    arm = tagwatch("resolve", ref, "--platform", "linux/arm")
    assert arm.code == 0 and arm.out.strip() == children["linux/arm/v7"]
    missing = tagwatch("resolve", ref, "--platform", "linux/s390x")
    assert missing.code == 1 and "linux/s390x" in missing.err
    as_json = tagwatch("resolve", ref, "--json").json()
    assert as_json["digest"] == index and as_json["platforms"] == children
    absent = tagwatch("resolve", f"{registry.host}/{repo}:nope")
    assert absent.code == 1 and "not found" in absent.err



def test_tag_shared_by_watch_and_pins_is_resolved_once(hub: tuple[Registry, Pusher],
                                                       setup: Setup) -> None:
    registry, push = hub
    repo = unique_repo("shared")
    older = push.push_image(repo, None, seed="older")
    digest = push.push_image(repo, "1", seed="s")
    setup.watch(f"{registry.host}/{repo}:1")
    setup.pin(f"{registry.host}/{repo}:1@{digest}", source="a/Dockerfile")
    setup.pin(f"{registry.host}/{repo}:1@{older}", source="b/Dockerfile")
    mark = registry.mark()
    run = setup("check")
    assert run.code == 0, run.out + run.err
    requests = registry.requests(since=mark, exclude_agent="tagwatch-test-pusher")
    # One HEAD for the tag; the behind pin adds one HEAD to see that its digest still exists
    # (and one for the image's created time: a GET of the manifest and its config blob).
    heads = [(r.method, r.path) for r in requests if r.method == "HEAD"]
    assert heads.count(("HEAD", f"/v2/{repo}/manifests/1")) == 1
    assert heads.count(("HEAD", f"/v2/{repo}/manifests/{older}")) == 1
    assert len(heads) == 2


def test_notify_test_and_validate(setup: Setup, webhook: WebhookSink, smtp: SmtpSink) -> None:
    setup.watch("python:3.12")
    setup.notify(webhook.url, name="hook")
    setup.notify(smtp.url(), name="mail")
    setup.notify("json://user:hunter2secret@127.0.0.1:9/down", name="down")
    valid = setup("validate")
    assert valid.code == 0 and "1 watches, 0 pins, 3 notification targets" in valid.out
    run = setup("notify-test")
    assert run.code == 1  # one target is down
    assert "sent: hook" in run.out and "sent: mail" in run.out and "FAILED: down" in run.out
    assert "hunter2secret" not in run.out + run.err
    webhook.wait_for(1)
    smtp.wait_for(1)
    assert webhook.received[0]["title"] == "[tagwatch] test: tagwatch:test"
    assert smtp.messages[0].subject == "[tagwatch] test: tagwatch:test"
