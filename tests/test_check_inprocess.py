"""The whole check, in-process, over the replayed registry (tests/support/fakeregistry.py) and
an in-memory store (tests/support/checkworld.py): every phase from recall to delivery, on a
fake clock, without the registry binary. It pins what a cycle records, reports and sends,
so the phases can be reshaped (or tested one by one) without changing behaviour.

The same flows run against the real distribution registry in test_check_integration.py,
test_noise.py and test_newer.py; this module is their fast, exhaustive twin."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from checkworld import CheckWorld
from fakeregistry import OCI_MANIFEST

from tagwatch.check.decide import decide_all
from tagwatch.check.describe import describe_moves
from tagwatch.check.pinfacts import pin_facts
from tagwatch.check.recall import recall
from tagwatch.check.resolve import resolve
from tagwatch.check.workers import Workers
from tagwatch.core.drift import PinFacts
from tagwatch.core.model import DeliveryState, EventKind, Missing, Policy, Resolved, State
from tagwatch.errors import StoreError

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
VERSION = "org.opencontainers.image.version"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[CheckWorld]:
    w = CheckWorld(tmp_path)
    yield w
    w.close()


def summary(report: object) -> dict[str, tuple[str, tuple[str, ...], bool]]:
    """target key -> (state, event kinds, moved) of one cycle's report."""
    return {
        r.target.key: (r.state.value, tuple(e.kind.value for e in r.events), r.moved)
        for r in report.results  # type: ignore[attr-defined]
    }


# --- watches -------------------------------------------------------------------------------


def test_watch_moves_back_vanishes_returns(world: CheckWorld) -> None:
    h, fake = world.host, world.fake
    a = fake.put_index("app", "stable", "a")[0]
    world.configure(f'[[watch]]\nimage = "{h}/app:stable"\n')
    key = f"watch:{h}/app:stable"

    first = world.cycle(T0)
    assert summary(first) == {key: ("ok", (), False)}
    assert not first.failed and first.sent == 0 and world.events() == []

    b, _ = fake.put_index("app", "stable", "b", platforms=("linux/amd64",))
    moved = world.cycle(T0 + timedelta(hours=1))
    assert summary(moved) == {key: ("ok", ("moved",), True)}
    assert moved.sent == 1
    [event] = world.events()
    assert (event["kind"], event["old_digest"], event["new_digest"]) == ("moved", a, b)
    # The amd64 image was rebuilt too (another seed), arm64 dropped.
    assert event["platforms_changed"] == '["linux/amd64","linux/arm64"]'
    assert event["details"]["change"] == "rebuild"
    assert event["details"]["summary"] == "platforms -linux/arm64"
    assert event["details"]["what_changed"]["platforms_removed"] == ["linux/arm64"]
    assert world.titles() == [f"[tagwatch] moved: {h}/app:stable"]

    fake.tag("app", "stable", a)  # back to the first digest
    back = world.cycle(T0 + timedelta(hours=2))
    assert summary(back) == {key: ("ok", ("moved",), True)}
    assert world.events()[-1]["details"]["back_to"] == "2026-11-20T09:00:00Z"
    assert "back to a digest first seen 2026-11-20T09:00:00Z" in world.webhook.received[-1][
        "message"
    ]

    fake.delete_tag("app", "stable")
    gone = world.cycle(T0 + timedelta(hours=3))
    assert summary(gone) == {key: ("vanished", ("vanished",), False)}
    assert not gone.failed  # a vanished tag is a finding, not a failed check
    assert world.cycle(T0 + timedelta(hours=4)).results[0].events == ()

    fake.tag("app", "stable", b)
    returned = world.cycle(T0 + timedelta(hours=5))
    assert summary(returned) == {key: ("ok", ("returned",), True)}
    assert [e["kind"] for e in world.events()] == ["moved", "moved", "vanished", "returned"]
    assert world.titles()[-2:] == [
        f"[tagwatch] vanished: {h}/app:stable",
        f"[tagwatch] returned: {h}/app:stable",
    ]
    [row] = world.store.status_rows()
    assert (row.state, row.digest, row.changes, row.present) == (State.OK, b, 3, True)
    stretches = world.rows("SELECT digest, first_seen, last_seen FROM stretches ORDER BY id")
    assert [(s["digest"], s["first_seen"], s["last_seen"]) for s in stretches] == [
        (a, "2026-11-20T09:00:00Z", "2026-11-20T09:00:00Z"),
        (b, "2026-11-20T10:00:00Z", "2026-11-20T10:00:00Z"),
        (a, "2026-11-20T11:00:00Z", "2026-11-20T11:00:00Z"),
        (b, "2026-11-20T14:00:00Z", None),
    ]


def test_fixed_version_rewritten_and_what_changed(world: CheckWorld) -> None:
    h, fake = world.host, world.fake
    a = fake.put_image(
        "tool", "1.4.2", "a", labels={VERSION: "1.4.2"}, layers=(b"base", b"app-1")
    )
    world.configure(
        f'[[watch]]\nimage = "{h}/tool:1.4.2"\n'
        f'[[watch]]\nimage = "{h}/tool:1.4.2-x"\nmutable = true\n'
    )
    fake.tag("tool", "1.4.2-x", a)
    world.cycle(T0)
    b = fake.put_image(
        "tool",
        "1.4.2",
        "b",
        created="2026-11-21T08:00:00Z",
        labels={VERSION: "1.4.3"},
        layers=(b"base", b"app-22"),
    )
    fake.tag("tool", "1.4.2-x", b)
    report = world.cycle(T0 + timedelta(days=1))
    assert summary(report) == {
        f"watch:{h}/tool:1.4.2": ("ok", ("rewritten",), True),
        f"watch:{h}/tool:1.4.2-x": ("ok", ("moved",), True),  # mutable: an expected rebuild
    }
    for event in world.events():
        assert (event["old_digest"], event["new_digest"]) == (a, b)
        assert event["details"]["change"] == "new_version"
        assert event["details"]["summary"] == (
            "1.4.2 → 1.4.3, built 2026-11-21, 1 of 2 layers changed, +1 B"
        )
        what = event["details"]["what_changed"]
        assert what["layers"] == {"total": 2, "changed": 1, "shared": 1}
        assert what["created"] == {"old": "2026-11-20T10:00:00Z", "new": "2026-11-21T08:00:00Z"}
    rewritten = world.webhook.received[0]
    assert rewritten["type"] == "failure"
    assert "version: 1.4.2 → 1.4.3" in rewritten["message"]


def test_describe_moves_off_reads_no_blobs(world: CheckWorld) -> None:
    h, fake = world.host, world.fake
    fake.put_image("app", "1", "a")
    world.configure(f'[[watch]]\nimage = "{h}/app:1"\n', settings="describe_moves = false")
    world.cycle(T0)
    fake.put_image("app", "1", "b")
    world.cycle(T0 + timedelta(hours=1))
    [event] = world.events()
    assert event["kind"] == "moved" and "change" not in event["details"]
    assert fake.requests("GET") == []  # HEADs only


def test_failures_alert_after_error_after_and_recover(world: CheckWorld) -> None:
    h, fake = world.host, world.fake
    a = fake.put_image("app", "1", "a")
    world.configure(f'[[watch]]\nimage = "{h}/app:1"\n', settings="error_after = 2")
    key = f"watch:{h}/app:1"
    world.cycle(T0)
    fake.override = lambda request: httpx.Response(503, text="down")
    one = world.cycle(T0 + timedelta(hours=1))
    assert one.failed and summary(one) == {key: ("error", (), False)}
    assert "503" in str(one.results[0].observation)
    two = world.cycle(T0 + timedelta(hours=2))
    assert summary(two) == {key: ("error", ("error",), False)}
    assert world.cycle(T0 + timedelta(hours=3)).results[0].events == ()  # once
    [error] = world.events()
    assert error["old_digest"] == a and error["details"]["failures"] == 2
    [row] = world.store.status_rows()
    assert row.digest == a and row.fail_count == 3 and "503" in (row.error or "")
    fake.override = None
    back = world.cycle(T0 + timedelta(hours=4))
    assert not back.failed and summary(back) == {key: ("ok", ("recovered",), False)}
    assert world.titles() == [f"[tagwatch] error: {h}/app:1", f"[tagwatch] recovered: {h}/app:1"]
    assert world.store.status_rows()[0].error is None


# --- pins ------------------------------------------------------------------------------------


def test_pin_behind_stale_reminded_missing_and_current(world: CheckWorld) -> None:
    h, fake = world.host, world.fake
    old = fake.put_image("alpine", "3.20", "old")
    new = fake.put_image("alpine", "3.20", "new", created="2026-11-15T09:00:00Z")
    gone = "sha256:" + "0" * 64
    world.configure(
        f'[[pin]]\nimage = "{h}/alpine:3.20@{old}"\nmax_age = "7d"\nrenotify = "1d"\n'
        'source = "services/api/Dockerfile"\n'
        f'[[pin]]\nimage = "{h}/alpine:3.20@{gone}"\nmax_age = "30d"\n'
    )
    pin, lost = f"pin:{h}/alpine:3.20@{old}", f"pin:{h}/alpine:3.20@{gone}"

    first = world.cycle(T0)
    # Behind since the current image was built (5 days): not stale yet; the lost pin's digest
    # does not exist upstream.
    assert summary(first) == {pin: ("ok", (), False), lost: ("ok", ("pin_missing",), False)}
    targets = {r["key"]: r for r in world.rows("SELECT * FROM targets")}
    assert targets[pin]["behind_since"] == "2026-11-15T09:00:00Z"
    assert targets[pin]["behind_evidence"] == "image created"
    assert targets[lost]["pin_missing"] == 1

    stale = world.cycle(T0 + timedelta(days=2))
    assert summary(stale)[pin] == ("stale", ("stale",), False)
    assert summary(stale)[lost] == ("ok", (), False)  # missing is said once
    [event] = [e for e in world.events() if e["kind"] == "stale"]
    assert event["details"]["behind_since"] == "2026-11-15T09:00:00Z"
    assert event["details"]["evidence"] == "image created"
    assert event["details"]["source"] == "services/api/Dockerfile"
    assert event["pinned"] == old and event["new_digest"] == new

    assert summary(world.cycle(T0 + timedelta(days=2, hours=12)))[pin] == ("stale", (), False)
    reminder = world.cycle(T0 + timedelta(days=3, hours=1))
    assert summary(reminder)[pin] == ("stale", ("stale",), False)
    assert world.events()[-1]["details"]["repeat"] is True

    fake.tag("alpine", "3.20", old)
    current = world.cycle(T0 + timedelta(days=4))
    assert summary(current)[pin] == ("ok", ("current",), True)
    assert [e["kind"] for e in world.events()] == ["pin_missing", "stale", "stale", "current"]
    assert world.titles() == [
        f"[tagwatch] pin_missing: {h}/alpine:3.20",
        f"[tagwatch] stale: {h}/alpine:3.20 (services/api/Dockerfile)",
        f"[tagwatch] stale: {h}/alpine:3.20 (services/api/Dockerfile)",
        f"[tagwatch] current: {h}/alpine:3.20 (services/api/Dockerfile)",
    ]


def test_pin_behind_since_the_recorded_move(world: CheckWorld) -> None:
    """A pin added after its tag moved (the tag's history saw the move) is behind since the
    move, from history; no created-time lookup."""
    h, fake = world.host, world.fake
    old = fake.put_image("base", "1", "old")
    world.configure(f'[[watch]]\nimage = "{h}/base:1"\n')
    world.cycle(T0)
    new = fake.put_image("base", "1", "new")
    world.cycle(T0 + timedelta(days=1))
    world.configure(
        f'[[watch]]\nimage = "{h}/base:1"\n[[pin]]\nimage = "{h}/base:1@{old}"\nmax_age = "1d"\n'
    )
    blobs_before = len(fake.requests("GET"))
    report = world.cycle(T0 + timedelta(days=3))
    pin = f"pin:{h}/base:1@{old}"
    assert summary(report)[pin] == ("stale", ("stale",), False)
    [stale] = [e for e in world.events() if e["kind"] == "stale"]
    assert stale["details"]["evidence"] == "history"
    assert stale["details"]["behind_since"] == "2026-11-21T09:00:00Z"
    assert stale["new_digest"] == new
    assert len(fake.requests("GET")) == blobs_before  # history was enough


# --- newer versions --------------------------------------------------------------------------


def test_newer_versions_reported_once_each(world: CheckWorld) -> None:
    h, fake = world.host, world.fake
    for tag in ("1.4", "1.5", "2.0", "1.4-alpine", "latest"):
        fake.put_image("tool", tag, tag)
    world.configure(
        f'[[watch]]\nimage = "{h}/tool:1.4"\nnewer = "minor"\n'
        f'[[watch]]\nimage = "{h}/tool:latest"\nnewer = "major"\n'
    )
    key = f"watch:{h}/tool:1.4"
    first = world.cycle(T0)
    assert summary(first) == {
        key: ("ok", ("newer",), False),
        f"watch:{h}/tool:latest": ("ok", (), False),  # not a version: no track to follow
    }
    [event] = world.events()
    assert event["details"] == {"newer": ["1.5"], "newest": "1.5", "policy": "minor"}
    assert len(fake.requests(host=h)) - len(fake.requests("HEAD")) == 1  # one tag list
    assert world.cycle(T0 + timedelta(hours=1)).results[0].events == ()  # cached, said once
    assert sum(1 for s in fake.seen if s.path.endswith("/tags/list")) == 1
    fake.put_image("tool", "1.6", "1.6")
    assert world.cycle(T0 + timedelta(hours=2)).results[0].events == ()  # still cached
    later = world.cycle(T0 + timedelta(hours=7))  # the cached list is older than 6 hours
    assert summary(later)[key] == ("ok", ("newer",), False)
    assert world.events()[-1]["details"] == {
        "newer": ["1.6"],
        "newest": "1.6",
        "policy": "minor",
    }
    rows = {r.key: r for r in world.store.status_rows()}
    assert rows[key].newer == ("1.5", "1.6") and rows[f"watch:{h}/tool:latest"].newer == ()


# --- noise control: grace, quiet windows, digests, --no-notify --------------------------------


def test_grace_merges_re_pushes_and_a_move_back_says_nothing(world: CheckWorld) -> None:
    h, fake = world.host, world.fake
    first = fake.put_image("app", "t", "0")
    world.configure(f'[[watch]]\nimage = "{h}/app:t"\ngrace = "10m"\n')
    world.cycle(T0)
    fake.put_image("app", "t", "1")
    assert world.cycle(T0 + timedelta(minutes=1)).sent == 0
    final = fake.put_image("app", "t", "2")
    assert world.cycle(T0 + timedelta(minutes=4)).sent == 0
    assert world.deliveries() == [
        ("moved", "merged", "2026-11-20T09:11:00Z"),
        ("moved", "pending", "2026-11-20T09:14:00Z"),
    ]
    assert world.cycle(T0 + timedelta(minutes=13)).sent == 0
    assert world.cycle(T0 + timedelta(minutes=15)).sent == 1
    [message] = world.webhook.received
    assert f"old: {first}" in message["message"] and f"new: {final}" in message["message"]
    assert "moves: 2 within the grace period, the first at 2026-11-20T09:01:00Z" in message[
        "message"
    ]
    merged = world.events()[-1]["details"]
    assert (merged["moves"], merged["first_moved"]) == (2, "2026-11-20T09:01:00Z")

    fake.put_image("app", "t", "3")
    world.cycle(T0 + timedelta(hours=1))
    fake.tag("app", "t", final)
    world.cycle(T0 + timedelta(hours=1, minutes=2))  # and back, within the grace
    assert world.cycle(T0 + timedelta(hours=2)).sent == 0
    assert world.deliveries()[-2:] == [
        ("moved", "merged", "2026-11-20T10:10:00Z"),
        ("moved", "merged", None),
    ]
    assert len(world.webhook.received) == 1


def test_quiet_window_holds(world: CheckWorld) -> None:
    h, fake = world.host, world.fake
    fake.put_image("app", "t", "0")
    world.configure(f'[[watch]]\nimage = "{h}/app:t"\nquiet = ["22:00-07:00"]\n')
    world.cycle(T0.replace(hour=21))
    fake.put_image("app", "t", "1")
    assert world.cycle(T0.replace(hour=23)).sent == 0
    assert world.cycle(T0 + timedelta(days=1)).sent == 0  # held: never sent later
    assert world.deliveries() == [("moved", "held", None)]
    fake.put_image("app", "t", "2")
    assert world.cycle(T0 + timedelta(days=1, hours=3)).sent == 1


def test_digest_channel_is_due_at_its_schedule(world: CheckWorld) -> None:
    h, fake = world.host, world.fake
    fake.put_image("app", "a", "a0")
    fake.put_image("app", "b", "b0")
    world.configure(
        f'[[watch]]\nimage = "{h}/app:a"\n[[watch]]\nimage = "{h}/app:b"\n',
        notify='mode = "digest"\nschedule = ["09:30"]',
    )
    world.cycle(T0)
    fake.put_image("app", "a", "a1")
    fake.put_image("app", "b", "b1")
    assert world.cycle(T0 + timedelta(minutes=5)).sent == 0
    assert world.deliveries() == [
        ("moved", "pending", "2026-11-20T09:30:00Z"),
        ("moved", "pending", "2026-11-20T09:30:00Z"),
    ]
    assert world.cycle(T0 + timedelta(minutes=31)).sent == 1
    assert world.titles() == ["[tagwatch] digest: 2 events (moved ×2)"]


def test_hold_alerts_records_without_sending(world: CheckWorld) -> None:
    h, fake = world.host, world.fake
    fake.put_image("app", "t", "0")
    world.configure(f'[[watch]]\nimage = "{h}/app:t"\n')
    world.cycle(T0)
    fake.put_image("app", "t", "1")
    report = world.cycle(T0 + timedelta(hours=1), hold_alerts=True)
    assert report.sent == 0 and summary(report)[f"watch:{h}/app:t"][1] == ("moved",)
    assert world.deliveries() == [("moved", "held", None)]
    assert world.cycle(T0 + timedelta(hours=2)).sent == 0


# --- the cycle as a whole: shared tags, subsets, failures of the store, shutdown -------------


def test_one_request_per_distinct_tag_and_a_subset(world: CheckWorld) -> None:
    h, fake = world.host, world.fake
    current = fake.put_image("app", "1", "a")
    world.configure(
        f'[[watch]]\nimage = "{h}/app:1"\n[[pin]]\nimage = "{h}/app:1@{current}"\n'
        f'[[watch]]\nimage = "{h}/other:1"\n'
    )
    fake.put_image("other", "1", "o")
    report = world.cycle(T0)
    assert len(report.results) == 3
    assert sorted(s.path for s in fake.requests("HEAD")) == [
        "/v2/app/manifests/1",
        "/v2/other/manifests/1",
    ]
    assert world.config is not None
    only = [t for t in world.config.targets if t.ref.repository == "other"]
    subset = world.cycle(T0 + timedelta(hours=1), targets=only)
    assert [r.target.key for r in subset.results] == [f"watch:{h}/other:1"]
    rows = world.rows("SELECT repository, checked_at FROM tags ORDER BY repository")
    assert [(r["repository"], r["checked_at"]) for r in rows] == [
        ("app", "2026-11-20T09:00:00Z"),
        ("other", "2026-11-20T10:00:00Z"),
    ]


def test_a_store_that_cannot_record_loses_nothing(world: CheckWorld) -> None:
    h, fake = world.host, world.fake
    a = fake.put_image("app", "t", "0")
    world.configure(f'[[watch]]\nimage = "{h}/app:t"\n')
    world.cycle(T0)
    fake.put_image("app", "t", "1")
    world.store.db.execute("PRAGMA query_only = ON")
    report = world.cycle(T0 + timedelta(hours=1))
    assert report.failed and report.error is not None
    assert report.error.endswith("nothing from this cycle was recorded")
    assert world.events() == [] and world.webhook.received == []
    world.store.db.execute("PRAGMA query_only = OFF")
    assert world.store.tag_views()[(h, "app", "t")].digest == a
    assert world.cycle(T0 + timedelta(hours=2)).sent == 1


def test_a_store_that_cannot_be_read_is_a_cycle_error(
    world: CheckWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    h, fake = world.host, world.fake
    fake.put_image("app", "t", "0")
    world.configure(f'[[watch]]\nimage = "{h}/app:t"\n')

    def broken() -> None:
        raise StoreError("database :memory:: reading tags: disk I/O error")

    monkeypatch.setattr(world.store, "tag_views", broken)
    report = world.cycle(T0)
    assert report.error == "database :memory:: reading tags: disk I/O error"
    assert report.results == [] and fake.seen == []


def test_an_abandoned_cycle_records_nothing(world: CheckWorld) -> None:
    h, fake = world.host, world.fake
    fake.put_image("app", "t", "0")
    world.configure(f'[[watch]]\nimage = "{h}/app:t"\n')
    stop = threading.Event()
    stop.set()
    report = world.cycle(T0, abort=stop)
    assert report.abandoned and fake.seen == []
    assert [str(r.observation) for r in report.results] == [
        "Failed(message='abandoned: tagwatch is stopping', reason='abandoned')"
    ]
    assert world.rows("SELECT * FROM tags") == [] and world.rows("SELECT * FROM targets") == []


def test_a_bug_in_one_resolve_fails_that_target_only(
    world: CheckWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    h, fake = world.host, world.fake
    fake.put_image("app", "ok", "0")
    fake.put_image("app", "bug", "1")
    world.configure(f'[[watch]]\nimage = "{h}/app:ok"\n[[watch]]\nimage = "{h}/app:bug"\n')
    real = world.client.resolve

    def resolve(ref, known=None):  # type: ignore[no-untyped-def]
        if ref.tag == "bug":
            raise KeyError("boom")
        return real(ref, known)

    monkeypatch.setattr(world.client, "resolve", resolve)
    report = world.cycle(T0)
    states = {r.target.tag: (r.state, r.failed) for r in report.results}
    assert states == {"ok": (State.OK, False), "bug": (State.ERROR, True)}
    assert "internal error: KeyError" in report.results[1].observation.message  # type: ignore[union-attr]


# --- one phase at a time ---------------------------------------------------------------------


def test_the_phases_one_by_one(world: CheckWorld) -> None:
    """recall → resolve → pin facts → decide → describe, called directly: each phase's output
    is a plain record the next one takes."""
    h, fake = world.host, world.fake
    old = fake.put_image("app", "1", "a")
    new = fake.put_image("app", "1", "b", created="2026-11-19T09:00:00Z")
    config = world.configure(
        f'[[watch]]\nimage = "{h}/app:1"\n[[pin]]\nimage = "{h}/app:1@{old}"\n'
        f'[[watch]]\nimage = "{h}/app:gone"\n'
    )
    targets = list(config.targets)  # watches first, then pins
    watch, gone, pin = targets
    assert pin.pinned == old and gone.tag == "gone"
    workers = Workers(4, {})

    known = recall(world.store)
    assert known.tags == {} and known.target(watch.key).state is None

    observations = resolve(targets, known, world.client, workers)
    assert observations[watch.tag_key] == Resolved(new, OCI_MANIFEST)
    assert isinstance(observations[(h, "app", "gone")], Missing)
    assert len(fake.requests("HEAD")) == 2  # the watch and the pin share one request

    facts = pin_facts(targets, known, observations, world.client, workers, T0)
    assert facts == {
        pin.key: PinFacts(
            evidence=(datetime(2026, 11, 19, 9, 0, tzinfo=UTC), "image created"),
            pinned_exists=True,
        )
    }

    outcomes = decide_all(
        targets,
        known,
        observations,
        facts,
        {},
        policy=Policy(),
        now=T0,
        store=world.store,
        notifier=world.notifier,
    )
    assert [(o.after.state, [p.event.kind for p in o.events]) for o in outcomes] == [
        (State.OK, []),
        (State.VANISHED, []),  # first sight of a missing tag: quiet for a watch
        (State.OK, []),  # behind for a day, max_age is 7
    ]
    assert outcomes[2].after.behind_evidence == "image created"

    # A move, decided against a recorded state, with its route and its description.
    world.cycle(T0)
    fake.put_image("app", "1", "c")
    known = recall(world.store)
    observations = resolve([watch], known, world.client, workers)
    [moved] = decide_all(
        [watch],
        known,
        observations,
        {},
        {},
        policy=Policy(),
        now=T0 + timedelta(hours=1),
        store=world.store,
        notifier=world.notifier,
    )
    [planned] = moved.events
    assert planned.event.kind is EventKind.MOVED and moved.moved
    [route] = planned.routes
    assert (route.notify_name, route.state, route.due) == (
        "notify[0]",
        DeliveryState.PENDING,
        None,
    )
    [described] = describe_moves([moved], known, observations, world.client, workers)
    assert described.events[0].event.details["change"] == "rebuild"
    assert "change" not in planned.event.details  # records are values: nothing mutated


def test_an_image_created_time_without_offset_is_utc(
    world: CheckWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An image config's `created` without an offset is read as UTC, whatever the host's
    zone, by the pin's evidence and by `audit` alike (audit used to fail on it)."""
    import time

    from tagwatch.audit import audit

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        h, fake = world.host, world.fake
        old = fake.put_image("base", "1", "old")
        fake.put_image("base", "1", "new", created="2026-11-15T09:00:00")
        config = world.configure(f'[[pin]]\nimage = "{h}/base:1@{old}"\n')
        world.cycle(T0)
        [target] = world.rows("SELECT behind_since, behind_evidence FROM targets")
        assert target == {
            "behind_since": "2026-11-15T09:00:00Z",
            "behind_evidence": "image created",
        }
        [row] = audit(config, world.store, world.client, T0)
        assert row.created == "2026-11-15T09:00:00" and row.age_days == 5
        assert row.behind_since == "2026-11-15T09:00:00Z" and row.behind_for == "5d"
    finally:
        monkeypatch.undo()
        time.tzset()
