"""Table-driven tests of `decide`: every transition of a watch and a pin."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tagwatch.core.drift import PinFacts, changed_platforms, decide, pin_is_current
from tagwatch.core.model import (
    DAY,
    EventKind,
    Failed,
    Kind,
    Missing,
    Policy,
    Resolved,
    State,
    Stretch,
    TagView,
    Target,
    TargetView,
    looks_like_full_version,
)
from tagwatch.core.refs import parse_ref

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
A, B, C = ("sha256:" + c * 64 for c in "abc")
P1, P2, P3, P4 = ("sha256:" + c * 64 for c in "1234")
INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE = "application/vnd.oci.image.manifest.v1+json"

WATCH = Target(Kind.WATCH, parse_ref("python:3.12-slim"))
AMD_ONLY = replace(WATCH, platforms=("linux/amd64",))
VERSION = Target(Kind.WATCH, parse_ref("example.com/app:1.4.2"))
PIN = Target(
    Kind.PIN,
    parse_ref(f"python:3.12-slim@{A}"),
    max_age=7 * DAY,
    renotify=DAY,
    source="services/api/Dockerfile",
)
PIN_PLATFORM = Target(Kind.PIN, parse_ref(f"python:3.12-slim@{P1}"), max_age=0.0)
FRESH = TargetView()
OK = TargetView(state=State.OK)


def seen(digest: str, **platforms: str) -> Resolved:
    return Resolved(
        digest,
        INDEX if platforms else IMAGE,
        {k.replace("_", "/"): v for k, v in platforms.items()},
    )


def tag(digest: str | None, present: bool = True, **platforms: str) -> TagView:
    return TagView(
        digest,
        {k.replace("_", "/"): v for k, v in platforms.items()},
        present,
        NOW - timedelta(days=30),
    )


def kinds(decision) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.kind.value for e in decision.events]


# (name, target, tag before, target before, observation, policy, expected events, expected state)
WATCH_CASES = [
    ("first sight is silent", WATCH, None, FRESH, seen(A), Policy(), [], State.OK),
    (
        "first sight with first_check_notify",
        WATCH,
        None,
        FRESH,
        seen(A),
        Policy(first_check_notify=True),
        ["first_seen"],
        State.OK,
    ),
    ("unchanged", WATCH, tag(A), OK, seen(A), Policy(), [], State.OK),
    ("moved", WATCH, tag(A), OK, seen(B), Policy(), ["moved"], State.OK),
    ("vanished", WATCH, tag(A), OK, Missing(), Policy(), ["vanished"], State.VANISHED),
    (
        "still vanished",
        WATCH,
        tag(A, present=False),
        TargetView(state=State.VANISHED),
        Missing(),
        Policy(),
        [],
        State.VANISHED,
    ),
    (
        "returned",
        WATCH,
        tag(A, present=False),
        TargetView(state=State.VANISHED),
        seen(A),
        Policy(),
        ["returned"],
        State.OK,
    ),
    ("never existed: silent", WATCH, None, FRESH, Missing(), Policy(), [], State.VANISHED),
    (
        "never existed, first_check_notify",
        WATCH,
        None,
        FRESH,
        Missing(),
        Policy(first_check_notify=True),
        ["vanished"],
        State.VANISHED,
    ),
    (
        "first failure is no alert",
        WATCH,
        tag(A),
        OK,
        Failed("boom"),
        Policy(error_after=3),
        [],
        State.ERROR,
    ),
    (
        "third failure alerts",
        WATCH,
        tag(A),
        TargetView(state=State.ERROR, fail_count=2),
        Failed("boom"),
        Policy(error_after=3),
        ["error"],
        State.ERROR,
    ),
    (
        "failures after the alert stay quiet",
        WATCH,
        tag(A),
        TargetView(state=State.ERROR, fail_count=5, error_alerted=True),
        Failed("boom"),
        Policy(error_after=3),
        [],
        State.ERROR,
    ),
    (
        "recovered after an error alert",
        WATCH,
        tag(A),
        TargetView(state=State.ERROR, fail_count=5, error_alerted=True),
        seen(A),
        Policy(),
        ["recovered"],
        State.OK,
    ),
    (
        "recovered without an alert is quiet",
        WATCH,
        tag(A),
        TargetView(state=State.ERROR, fail_count=1),
        seen(A),
        Policy(),
        [],
        State.OK,
    ),
    (
        "recovered and moved",
        WATCH,
        tag(A),
        TargetView(state=State.ERROR, fail_count=5, error_alerted=True),
        seen(B),
        Policy(),
        ["recovered", "moved"],
        State.OK,
    ),
    (
        "a failure is never a vanish",
        WATCH,
        tag(A),
        OK,
        Failed("HTTP 503"),
        Policy(error_after=1),
        ["error"],
        State.ERROR,
    ),
    (
        "platform-filtered: other platform moved",
        AMD_ONLY,
        tag(A, linux_amd64=P1, linux_arm64=P2),
        OK,
        seen(B, linux_amd64=P1, linux_arm64=P3),
        Policy(),
        [],
        State.OK,
    ),
    (
        "platform-filtered: attestation-only index change",
        AMD_ONLY,
        tag(A, linux_amd64=P1, linux_arm64=P2),
        OK,
        seen(B, linux_amd64=P1, linux_arm64=P2),
        Policy(),
        [],
        State.OK,
    ),
    (
        "platform-filtered: watched platform moved",
        AMD_ONLY,
        tag(A, linux_amd64=P1, linux_arm64=P2),
        OK,
        seen(B, linux_amd64=P4, linux_arm64=P2),
        Policy(),
        ["moved"],
        State.OK,
    ),
    (
        "unfiltered watch alerts on any index change",
        WATCH,
        tag(A, linux_amd64=P1, linux_arm64=P2),
        OK,
        seen(B, linux_amd64=P1, linux_arm64=P3),
        Policy(),
        ["moved"],
        State.OK,
    ),
    (
        "version-like tag moved is rewritten",
        VERSION,
        tag(A),
        OK,
        seen(B),
        Policy(),
        ["rewritten"],
        State.OK,
    ),
    (
        "mutable version-like tag moved",
        replace(VERSION, mutable=True),
        tag(A),
        OK,
        seen(B),
        Policy(),
        ["moved"],
        State.OK,
    ),
]


@pytest.mark.parametrize(
    "target,before,view,obs,policy,expected,state",
    [case[1:] for case in WATCH_CASES],
    ids=[case[0] for case in WATCH_CASES],
)
def test_watch_transitions(target, before, view, obs, policy, expected, state):  # type: ignore[no-untyped-def]
    decision = decide(target, before, view, obs, policy=policy, now=NOW)
    assert kinds(decision) == expected
    assert decision.target.state is state


def test_move_names_digests_and_platforms() -> None:
    decision = decide(
        WATCH,
        tag(A, linux_amd64=P1, linux_arm64=P2),
        OK,
        seen(B, linux_amd64=P1, linux_arm64=P3),
        policy=Policy(),
        now=NOW,
    )
    (event,) = decision.events
    assert (event.old_digest, event.new_digest) == (A, B)
    assert event.platforms_changed == ("linux/arm64",)
    assert event.image == "docker.io/library/python" and event.tag == "3.12-slim"
    assert event.at == NOW
    assert decision.moved and decision.target.changes == 1


def test_move_back_to_an_earlier_digest_says_so() -> None:
    history = [
        Stretch(B, {}, NOW - timedelta(days=2), NOW - timedelta(hours=1)),
        Stretch(A, {}, NOW - timedelta(days=9), NOW - timedelta(days=2)),
    ]
    decision = decide(WATCH, tag(B), OK, seen(A), policy=Policy(), now=NOW, history=history)
    (event,) = decision.events
    assert event.kind is EventKind.MOVED
    assert event.details["back_to"] == "2026-11-15T12:00:00Z"


def test_platform_filtered_move_is_still_counted() -> None:
    decision = decide(
        AMD_ONLY,
        tag(A, linux_amd64=P1),
        OK,
        seen(B, linux_amd64=P1, linux_arm64=P3),
        policy=Policy(),
        now=NOW,
    )
    assert decision.events == ()
    assert decision.moved and decision.target.changes == 1


def test_error_event_carries_the_cause() -> None:
    decision = decide(
        WATCH,
        tag(A),
        TargetView(state=State.ERROR, fail_count=2),
        Failed("ghcr.io: HTTP 503", "unavailable"),
        policy=Policy(),
        now=NOW,
    )
    (event,) = decision.events
    assert event.details["error"] == "ghcr.io: HTTP 503"
    assert event.details["failures"] == 3


# --- pins ---------------------------------------------------------------------------------

BEHIND_SINCE = NOW - timedelta(days=3)
BEHIND = TargetView(state=State.OK, behind_since=BEHIND_SINCE, behind_evidence="history")
STALE = TargetView(
    state=State.STALE,
    behind_since=NOW - timedelta(days=8),
    behind_evidence="history",
    stale_alerted_at=NOW - timedelta(hours=2),
)

PIN_CASES = [
    ("current at first check", PIN, None, FRESH, seen(A), None, [], State.OK),
    (
        "current via a platform digest",
        PIN_PLATFORM,
        None,
        FRESH,
        seen(B, linux_amd64=P1, linux_arm64=P2),
        None,
        [],
        State.OK,
    ),
    (
        "stale at first check alerts even without first_check_notify",
        PIN,
        None,
        FRESH,
        seen(B),
        PinFacts(evidence=(NOW - timedelta(days=10), "image created")),
        ["stale"],
        State.STALE,
    ),
    (
        "behind at first check, not yet stale",
        PIN,
        None,
        FRESH,
        seen(B),
        PinFacts(evidence=(NOW - timedelta(days=1), "image created")),
        [],
        State.OK,
    ),
    (
        "behind with no evidence counts from the first check",
        PIN,
        None,
        FRESH,
        seen(B),
        None,
        [],
        State.OK,
    ),
    (
        "max_age 0s: stale as soon as behind",
        PIN_PLATFORM,
        None,
        FRESH,
        seen(B, linux_amd64=P3),
        None,
        ["stale"],
        State.STALE,
    ),
    (
        "tag moves away from a current pin: behind, not stale",
        PIN,
        tag(A),
        OK,
        seen(B),
        None,
        [],
        State.OK,
    ),
    (
        "behind becomes stale after max_age",
        PIN,
        tag(B),
        replace(BEHIND, behind_since=NOW - timedelta(days=7)),
        seen(B),
        None,
        ["stale"],
        State.STALE,
    ),
    ("stale is not repeated before renotify", PIN, tag(B), STALE, seen(B), None, [], State.STALE),
    (
        "stale repeats after renotify",
        PIN,
        tag(B),
        replace(STALE, stale_alerted_at=NOW - timedelta(hours=25)),
        seen(B),
        None,
        ["stale"],
        State.STALE,
    ),
    ("stale pin catches up: current", PIN, tag(B), STALE, seen(A), None, ["current"], State.OK),
    ("behind pin catches up before stale: quiet", PIN, tag(B), BEHIND, seen(A), None, [], State.OK),
    (
        "pinned digest gone upstream",
        PIN,
        tag(B),
        BEHIND,
        seen(B),
        PinFacts(pinned_exists=False),
        ["pin_missing"],
        State.OK,
    ),
    (
        "pinned digest gone: said once",
        PIN,
        tag(B),
        replace(BEHIND, pin_missing=True),
        seen(B),
        PinFacts(pinned_exists=False),
        [],
        State.OK,
    ),
    ("a pin's tag vanished", PIN, tag(B), BEHIND, Missing(), None, ["vanished"], State.VANISHED),
    (
        "a pin's tag missing at first check is said",
        PIN,
        None,
        FRESH,
        Missing(),
        None,
        ["vanished"],
        State.VANISHED,
    ),
    (
        "a failed check keeps a stale pin's episode",
        PIN,
        tag(B),
        STALE,
        Failed("timeout"),
        None,
        [],
        State.ERROR,
    ),
]


@pytest.mark.parametrize(
    "target,before,view,obs,facts,expected,state",
    [case[1:] for case in PIN_CASES],
    ids=[case[0] for case in PIN_CASES],
)
def test_pin_transitions(target, before, view, obs, facts, expected, state):  # type: ignore[no-untyped-def]
    decision = decide(target, before, view, obs, policy=Policy(), now=NOW, pin=facts)
    assert kinds(decision) == expected
    assert decision.target.state is state


def test_error_then_recovery_does_not_repeat_stale() -> None:
    failed = decide(PIN, tag(B), STALE, Failed("timeout"), policy=Policy(), now=NOW)
    back = decide(PIN, tag(B), failed.target, seen(B), policy=Policy(), now=NOW)
    assert kinds(back) == []
    assert back.target.state is State.STALE


def test_stale_event_says_since_when_and_how_it_is_known() -> None:
    decision = decide(
        PIN,
        None,
        FRESH,
        seen(B),
        policy=Policy(),
        now=NOW,
        pin=PinFacts(evidence=(NOW - timedelta(days=10), "image created")),
    )
    (event,) = decision.events
    assert event.details["behind_since"] == "2026-11-14T12:00:00Z"
    assert event.details["evidence"] == "image created"
    assert event.details["source"] == "services/api/Dockerfile"
    assert (event.pinned, event.old_digest, event.new_digest) == (A, A, B)
    assert decision.target.behind_since == NOW - timedelta(days=10)


def test_behind_since_is_kept_across_checks() -> None:
    decision = decide(
        PIN,
        tag(B),
        BEHIND,
        seen(C),
        policy=Policy(),
        now=NOW,
        pin=PinFacts(evidence=(NOW, "history")),
    )
    assert decision.target.behind_since == BEHIND_SINCE


def test_first_check_notify_never_silences_a_stale_pin() -> None:
    decision = decide(
        PIN,
        None,
        FRESH,
        seen(B),
        policy=Policy(first_check_notify=False),
        now=NOW,
        pin=PinFacts(evidence=(NOW - timedelta(days=30), "history")),
    )
    assert kinds(decision) == ["stale"]


@pytest.mark.parametrize(
    "tag_name,expected",
    [
        ("1.4.2", True),
        ("v2.0.1", True),
        ("1.4.2-rc.1", True),
        ("3.12", False),
        ("latest", False),
        ("3.12-slim", False),
        ("20.11.1-alpine3.20", True),
        ("1.2.3.4", False),
    ],
)
def test_looks_like_full_version(tag_name: str, expected: bool) -> None:
    assert looks_like_full_version(tag_name) is expected


def test_changed_platforms_lists_added_removed_and_changed() -> None:
    old = {"linux/amd64": P1, "linux/arm64": P2, "linux/s390x": P3}
    new = {"linux/amd64": P1, "linux/arm64": P4, "linux/riscv64": P3}
    assert changed_platforms(old, new) == ("linux/arm64", "linux/riscv64", "linux/s390x")


def test_pin_is_current() -> None:
    assert pin_is_current(A, seen(A))
    assert pin_is_current(P1, seen(B, linux_amd64=P1))
    assert not pin_is_current(A, seen(B, linux_amd64=P1))


def test_platform_digests_of_a_filtered_move_and_of_moves_merged_in_a_grace_period() -> None:
    from tagwatch.core.drift import merge_platform_digests, platform_moves

    a1, a2, a3, b1, b2 = ("sha256:" + c * 64 for c in "12345")
    assert platform_moves({"linux/amd64": a1, "linux/arm64": b1},
                          {"linux/amd64": a2, "linux/arm64": b2}, ["linux/amd64"]) == {
        "linux/amd64": {"previous": a1, "digest": a2}}
    assert platform_moves({}, {"linux/amd64": a2}, ["linux/amd64"]) == {
        "linux/amd64": {"previous": None, "digest": a2}}
    first = {"linux/amd64": {"previous": a1, "digest": a2}}
    second = {"linux/amd64": {"previous": a2, "digest": a3},
              "linux/arm64": {"previous": b1, "digest": b2}}
    assert merge_platform_digests([first, second]) == {
        "linux/amd64": {"previous": a1, "digest": a3},
        "linux/arm64": {"previous": b1, "digest": b2}}
    back = {"linux/amd64": {"previous": a2, "digest": a1}}
    assert merge_platform_digests([first, back]) == {}  # back where it started
