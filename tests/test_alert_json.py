"""Structured alerts (`[[notify]] format = "json"`): every event kind, one at a time and in
summaries and digests, is valid against the JSON Schema shipped in the package, and carries
what a script needs. In-process over the replayed registry for every kind; through a real
`tagwatch check` against the distribution registry to the local json:// webhook; and as the
whole payload of a raw-body target (MQTT, a real broker)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from checkworld import CheckWorld
from regharness import Pusher, Registry, require_binaries, unique_repo
from sinks import MqttSink, WebhookSink
from test_check_integration import Setup

from tagwatch.core.model import EventKind
from tagwatch.core.payload import SCHEMA_VERSION

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")


def schema() -> dict[str, Any]:
    """The schema as installed with the package (package data, not the repository path)."""
    text = resources.files("tagwatch.ops").joinpath("alert.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(loaded)
    return loaded


def validate(obj: Any) -> None:
    jsonschema.Draft202012Validator(schema()).validate(obj)


def objects(sink: WebhookSink) -> list[dict[str, Any]]:
    """The JSON alerts a json:// webhook received: each is the message text of apprise's
    envelope, and parses as one JSON object."""
    out = []
    for envelope in sink.received:
        assert set(envelope) >= {"version", "title", "message", "type"}
        obj = json.loads(envelope["message"])
        assert isinstance(obj, dict)
        out.append(obj)
    return out


@pytest.fixture
def world(tmp_path: Path) -> Iterator[CheckWorld]:
    w = CheckWorld(tmp_path)
    yield w
    w.close()


def test_every_event_kind_validates(world: CheckWorld) -> None:
    h, fake = world.host, world.fake
    summary, digest = WebhookSink("/summary"), WebhookSink("/digest")
    try:
        a = fake.put_image("app", "stable", "a")
        fake.put_image("tool", "1.4.2", "t0")
        fake.put_index("multi", "3", "m0")
        fake.put_image("lib", "2.1", "l0")
        fake.tag("lib", "2.2", fake.put_image("lib", None, "l1"))
        old = fake.put_image("base", "3.20", "old")
        gone = "sha256:" + "0" * 64
        world.configure(
            f'[[watch]]\nimage = "{h}/app:stable"\ngrace = "0s"\n'
            f'[[watch]]\nimage = "{h}/tool:1.4.2"\n'
            f'[[watch]]\nimage = "{h}/multi:3"\nplatforms = ["linux/arm64"]\n'
            f'[[watch]]\nimage = "{h}/lib:2.1"\nnewer = "minor"\n'
            f'[[pin]]\nimage = "{h}/base:3.20@{old}"\nmax_age = "0s"\n'
            'source = "services/api/Dockerfile"\n'
            f'[[pin]]\nimage = "{h}/base:3.20@{gone}"\nmax_age = "30d"\n'
            f'[[notify]]\nurl = "{summary.url}"\nformat = "json"\nmode = "summary"\n'
            f'[[notify]]\nurl = "{digest.url}"\nformat = "json"\nmode = "digest"\n'
            'schedule = ["09:30"]\n',
            settings="first_check_notify = true\nerror_after = 1",
            notify='format = "json"',
        )
        world.cycle(T0)  # first_seen ×4, newer, stale, pin_missing
        b = fake.put_image("app", "stable", "b")
        fake.put_image("tool", "1.4.2", "t1")  # rewritten
        fake.put_index("multi", "3", "m1")
        fake.put_image("base", "3.20", "newer")
        world.cycle(T0 + timedelta(hours=1))
        fake.tag("app", "stable", a)  # moved back
        world.cycle(T0 + timedelta(hours=2))
        fake.delete_tag("app", "stable")
        world.cycle(T0 + timedelta(hours=3))  # vanished
        fake.tag("app", "stable", b)
        world.cycle(T0 + timedelta(hours=4))  # returned
        down = httpx.Response(503, text="down\x1b[2J\nnew: sha256:0")
        fake.override = lambda request: down if "/app/" in request.url.path else None
        world.cycle(T0 + timedelta(hours=5))  # error (one target)
        fake.override = None
        fake.tag("base", "3.20", old)
        world.cycle(T0 + timedelta(hours=6))  # recovered, current
        fake.override = lambda request: down
        world.cycle(T0 + timedelta(hours=7))  # the whole registry: one error
        fake.override = None
        world.cycle(T0 + timedelta(hours=8))  # and one recovered
        assert world.notifier is not None
        world.notifier.test(T0 + timedelta(hours=9))

        each = objects(world.webhook)
        kinds = {o["event"] for o in each}
        assert kinds == {k.value for k in EventKind}, kinds ^ {k.value for k in EventKind}
        for obj in each:
            validate(obj)
            assert obj["schema"] == SCHEMA_VERSION == 1
        received = objects(summary) + objects(digest.wait_for(2) and digest)
        for obj in received:  # the batches, and notify-test's own test alert to each
            validate(obj)
        batches = [o for o in received if "events" in o]
        assert sorted(o["event"] for o in received if "events" not in o) == ["test", "test"]
        assert {b["mode"] for b in batches} == {"summary", "digest"}
        for batch in batches:
            assert batch["count"] == len(batch["events"]) == sum(batch["counts"].values())
        in_summaries = {e["event"] for b in batches if b["mode"] == "summary" for e in b["events"]}
        assert in_summaries | {"test"} == kinds
    finally:
        summary.close()
        digest.close()

    by_kind: dict[str, list[dict[str, Any]]] = {}
    for obj in each:
        by_kind.setdefault(obj["event"], []).append(obj)
    moved = next(o for o in by_kind["moved"] if o["tag"] == "stable" and not o.get("back_to"))
    assert moved["image"] == f"{h}/app" and moved["reference"] == f"{h}/app:stable"
    assert (moved["kind"], moved["previous"], moved["digest"]) == ("watch", a, b)
    assert moved["seen"] == "2026-11-20T10:00:00Z" and moved["pinned"] is None
    assert moved["title"] == f"[tagwatch] moved: {h}/app:stable"
    assert moved["change"]["kind"] in ("rebuild", "new_version", "unknown")
    back = next(o for o in by_kind["moved"] if o.get("back_to"))
    assert back["back_to"] == "2026-11-20T09:00:00Z"
    [multi] = [o for o in by_kind["moved"] if o["tag"] == "3"]
    assert set(multi["platforms"]) == {"linux/amd64", "linux/arm64"}
    for change in multi["platforms"].values():
        assert DIGEST.match(change["previous"]) and DIGEST.match(change["digest"])
        assert change["previous"] != change["digest"]
    [rewritten] = by_kind["rewritten"]
    assert rewritten["severity"] == "failure"
    [newer] = by_kind["newer"]
    assert (newer["newer"], newer["newest"], newer["policy"]) == (["2.2"], "2.2", "minor")
    stale = next(o for o in by_kind["stale"] if o["pinned"] == old)
    assert stale["kind"] == "pin" and stale["source"] == "services/api/Dockerfile"
    assert stale["reference"] == f"{h}/base:3.20@{old}"
    assert stale["title"] == f"[tagwatch] stale: {h}/base:3.20 (services/api/Dockerfile)"
    assert stale["behind_evidence"] and stale["max_age_seconds"] == 0
    [missing] = by_kind["pin_missing"]
    assert missing["pinned"] == gone
    target_error, registry_error = by_kind["error"]
    for error in (target_error, registry_error):
        # the registry's text is data: one clean line, no escape, no forged digest line
        assert "503" in error["error"] and "\x1b" not in error["error"]
        assert "\n" not in error["error"]
        assert error["failures"] == 1 and error["reason"]
    assert (target_error["kind"], target_error["reference"]) == ("watch", f"{h}/app:stable")
    assert (registry_error["kind"], registry_error["image"], registry_error["tag"]) == (
        "registry", h, "")
    assert registry_error["registry"] == h and registry_error["targets"] == 6
    assert len(registry_error["held_up"]) == 5 and f"{h}/app:stable" in registry_error["held_up"]
    recovered = [o for o in by_kind["recovered"] if o["kind"] == "registry"]
    assert len(recovered) == 1 and recovered[0]["down_seconds"] == 3600
    [test] = by_kind["test"]
    assert (test["kind"], test["image"], test["tag"]) == (None, "tagwatch", "test")


def test_json_format_refuses_a_body_template(tmp_path: Path) -> None:
    from tagwatch.config import load_config
    from tagwatch.errors import ConfigError

    path = tmp_path / "config.toml"
    path.write_text('[[notify]]\nurl = "json://x"\nformat = "json"\nbody = "$summary"\n')
    with pytest.raises(ConfigError, match=r":4: notify\[0\]\.body: format = \"json\" sends"):
        load_config(path, env={})
    path.write_text('[[notify]]\nurl = "json://x"\nformat = "yaml"\n')
    with pytest.raises(ConfigError, match=r"'yaml' \(text, markdown, html or json\)"):
        load_config(path, env={})


def test_a_title_template_still_titles_a_json_alert(world: CheckWorld) -> None:
    h, fake = world.host, world.fake
    fake.put_image("app", "t", "0")
    world.configure(f'[[watch]]\nimage = "{h}/app:t"\n',
                    notify='format = "json"\ntitle = "[$kind] $ref"')
    world.cycle(T0)
    fake.put_image("app", "t", "1")
    world.cycle(T0 + timedelta(minutes=5))
    [envelope] = world.webhook.received
    assert envelope["title"] == f"[moved] {h}/app:t"
    obj = json.loads(envelope["message"])
    assert obj["title"] == f"[moved] {h}/app:t"
    validate(obj)


# --- through the real command line and registry -------------------------------------------------


@pytest.mark.integration
def test_json_alerts_through_tagwatch_check(
    registry_anonymous: Registry, tmp_path: Path, webhook: WebhookSink
) -> None:
    push = Pusher(registry_anonymous)
    repo = unique_repo("python")
    image = f"{registry_anonymous.host}/{repo}"
    first, children = push.push_index(repo, "3.12-slim", ["linux/amd64", "linux/arm64"],
                                      seed="one")
    setup = Setup(tmp_path)
    setup.watch(f"{image}:3.12-slim", platforms=["linux/arm64"]).notify(webhook.url,
                                                                       format="json")
    with WebhookSink("/summary") as summary:
        setup.notify(summary.url, format="json", mode="summary")
        assert setup("check").code == 0
        second, now = push.push_index(repo, "3.12-slim", ["linux/amd64", "linux/arm64"],
                                      seed="two")
        assert setup("check").code == 0
        [obj] = objects(webhook.wait_for(1) and webhook)
        validate(obj)
        assert obj["event"] == "moved" and obj["kind"] == "watch"
        assert (obj["image"], obj["tag"]) == (image, "3.12-slim")
        assert obj["reference"] == f"{image}:3.12-slim"
        assert (obj["previous"], obj["digest"]) == (first, second)
        assert obj["platforms"]["linux/arm64"] == {"previous": children["linux/arm64"],
                                                   "digest": now["linux/arm64"]}
        assert set(obj["platforms"]) == {"linux/amd64", "linux/arm64"}
        assert obj["source"] is None and obj["seen"].endswith("Z")
        assert webhook.received[0]["title"] == f"[tagwatch] moved: {image}:3.12-slim"
        [batch] = objects(summary.wait_for(1) and summary)
        validate(batch)
        assert batch["mode"] == "summary" and batch["count"] == 1
        assert batch["events"][0] == obj
        notify_test = setup("notify-test")
        assert notify_test.code == 0
        validate(objects(webhook.wait_for(2) and webhook)[1])


@pytest.mark.integration
def test_a_raw_body_target_gets_the_object_as_its_whole_payload(
    registry_anonymous: Registry, tmp_path: Path
) -> None:
    """MQTT publishes apprise's body as the message: there the JSON object is all of it, with
    no title line in front (apprise puts the title into the body of title-less services)."""
    if not Path("/usr/sbin/mosquitto").exists():
        require_binaries("mosquitto")
    push = Pusher(registry_anonymous)
    repo = unique_repo("app")
    image = f"{registry_anonymous.host}/{repo}"
    first = push.push_image(repo, "1", seed="a")
    with MqttSink(tmp_path) as broker:
        setup = Setup(tmp_path)
        setup.watch(f"{image}:1").notify(broker.url, format="json")
        assert setup("check").code == 0
        second = push.push_image(repo, "1", seed="b")
        run = setup("check")
        assert run.code == 0 and "1 alerts sent" in run.out, run.out + run.err
        [payload] = broker.wait_for(1)
        obj = json.loads(payload)
        validate(obj)
        assert (obj["event"], obj["previous"], obj["digest"]) == ("moved", first, second)
        assert payload.startswith(b"{")
