"""Deciding what a check means: a pure function from what was known, what the registry said
now, the policy and the time, to events and the target's new state.

No I/O and no clock: the caller passes `now` and whatever facts it fetched (history of the
tag, when a pin fell behind, whether a pinned digest still exists).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from tagwatch.core.model import (
    Event,
    EventKind,
    Failed,
    Kind,
    Missing,
    Observation,
    Policy,
    Resolved,
    State,
    Stretch,
    TagView,
    Target,
    TargetView,
    looks_like_full_version,
)
from tagwatch.core.times import format_time

__all__ = [
    "Decision",
    "PinFacts",
    "changed_platforms",
    "decide",
    "merge_platform_digests",
    "pin_is_current",
    "pin_needs_facts",
    "platform_moves",
    "watched_platform_digests",
]


@dataclass(frozen=True, slots=True)
class PinFacts:
    """Facts about a pin that cost a lookup, fetched by the caller only when needed.

    `evidence`: when the tag moved away from the pinned digest, and how that is known
    ("history", "image created", "first check"); needed only when the pin falls behind
    without a recorded `behind_since`.
    `pinned_exists`: whether the registry still serves the pinned digest (checked only while
    the pin is behind); None when not checked.
    """

    evidence: tuple[datetime, str] | None = None
    pinned_exists: bool | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    events: tuple[Event, ...]
    target: TargetView
    moved: bool = False  # the tag's digest changed in this check


def changed_platforms(old: Mapping[str, str], new: Mapping[str, str]) -> tuple[str, ...]:
    """Platforms added, removed or pointing at another image, sorted."""
    return tuple(sorted(p for p in set(old) | set(new) if old.get(p) != new.get(p)))


def platform_moves(
    old: Mapping[str, str], new: Mapping[str, str], changed: Sequence[str]
) -> dict[str, dict[str, str | None]]:
    """For each changed platform, its image digest before and now (None: absent then/now),
    kept in a move's details as `platform_digests` for the alert."""
    return {p: {"previous": old.get(p), "digest": new.get(p)} for p in changed}


def watched_platform_digests(d: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Of a move's `platform_digests` (every platform that changed), those of the platforms a
    `platforms`-filtered watch follows; {} for a watch of the whole index."""
    watched = d.get("platforms_watched") or ()
    digests = d.get("platform_digests") or {}
    return {p: digests[p] for p in sorted(digests) if p in watched}


def merge_platform_digests(
    moves: Sequence[Mapping[str, Mapping[str, str | None]]],
) -> dict[str, dict[str, str | None]]:
    """Several moves' `platform_digests`, oldest first, as one move: each platform from its
    digest before the first move that changed it to its digest after the last; a platform
    back where it started is left out."""
    merged: dict[str, dict[str, str | None]] = {}
    for move in moves:
        for platform, change in move.items():
            first = merged.get(platform, change)
            merged[platform] = {"previous": first.get("previous"), "digest": change.get("digest")}
    return {p: c for p, c in sorted(merged.items()) if c["previous"] != c["digest"]}


def pin_is_current(pinned: str, seen: Resolved) -> bool:
    """A pin is current while the tag resolves to it: the tag's own digest (index or
    manifest) or one of the platform images inside the tag's index."""
    return pinned == seen.digest or pinned in seen.platforms.values()


def pin_needs_facts(target: Target, target_before: TargetView, obs: Observation) -> bool:
    """Whether `decide` will want `PinFacts` for this pin: only while it is behind."""
    return (
        target.kind is Kind.PIN
        and isinstance(obs, Resolved)
        and target.pinned is not None
        and not pin_is_current(target.pinned, obs)
    )


def make_event(target: Target, kind: EventKind, now: datetime, **kw: Any) -> Event:
    """An event about `target`, carrying its pinned digest and `source` (for the alert)."""
    details = dict(kw.pop("details", None) or {})
    if target.source:
        details.setdefault("source", target.source)
    return Event(
        kind=kind,
        target=target.key,
        image=target.ref.name,
        tag=target.tag,
        at=now,
        pinned=target.pinned,
        details=details,
        **kw,
    )


def decide(
    target: Target,
    before: TagView | None,
    target_before: TargetView,
    obs: Observation,
    *,
    policy: Policy,
    now: datetime,
    history: Sequence[Stretch] = (),
    pin: PinFacts | None = None,
) -> Decision:
    """Decide the events and the new target state for one check of one target.

    `before` is the tag as recorded before this check (None: never recorded); `history` the
    tag's earlier stretches, newest first (needed to tell a move back to an earlier digest).
    """
    events: list[Event] = []
    if isinstance(obs, Failed):
        return _failed(target, before, target_before, obs, policy, now)
    if target_before.error_alerted:
        new_digest = obs.digest if isinstance(obs, Resolved) else None
        events.append(make_event(target, EventKind.RECOVERED, now, new_digest=new_digest))
    after = target_before  # views are frozen: a steady check makes no new one (a cycle's
    if after.fail_count or after.error_alerted:  # thousands of targets, per check)
        after = replace(after, fail_count=0, error_alerted=False)
    if isinstance(obs, Missing):
        vanished = _vanished(target, before, target_before, obs, policy, now)
        return Decision((*events, *vanished), replace(after, state=State.VANISHED))
    seen, moved = _seen(target, before, obs, policy, now, history)
    events.extend(seen)
    if moved:
        after = replace(after, changes=after.changes + 1)
    if target.kind is Kind.WATCH or target.pinned is None:
        if after.state is not State.OK:
            after = replace(after, state=State.OK)
        return Decision(tuple(events), after, moved)
    return _decide_pin(target, after, target_before, obs, pin or PinFacts(), now, events, moved)


def _failed(
    target: Target,
    before: TagView | None,
    target_before: TargetView,
    obs: Failed,
    policy: Policy,
    now: datetime,
) -> Decision:
    """A failed check is never a move or a vanish: only the failure count changes, and an
    `error` alert goes out once the target has failed `error_after` times in a row."""
    failures = target_before.fail_count + 1
    alerted = target_before.error_alerted
    events: tuple[Event, ...] = ()
    if failures >= policy.error_after and not alerted:
        events = (
            make_event(
                target,
                EventKind.ERROR,
                now,
                old_digest=before.digest if before else None,
                details={"error": obs.message, "reason": obs.reason, "failures": failures},
            ),
        )
        alerted = True
    return Decision(
        events,
        replace(target_before, state=State.ERROR, fail_count=failures, error_alerted=alerted),
    )


def _vanished(
    target: Target,
    before: TagView | None,
    target_before: TargetView,
    obs: Missing,
    policy: Policy,
    now: datetime,
) -> tuple[Event, ...]:
    """The registry says the tag does not exist: an alert if it existed before, or on the
    first check of a pin (or of a watch with `first_check_notify`)."""
    was_present = before is not None and before.digest is not None and before.present
    first_sight = before is None or before.digest is None
    loud_first = policy.first_check_notify or target.kind is Kind.PIN
    if was_present or (first_sight and loud_first and target_before.state is None):
        return (
            make_event(
                target,
                EventKind.VANISHED,
                now,
                old_digest=before.digest if before else None,
                details={"message": obs.message},
            ),
        )
    return ()


def _seen(
    target: Target,
    before: TagView | None,
    obs: Resolved,
    policy: Policy,
    now: datetime,
    history: Sequence[Stretch],
) -> tuple[tuple[Event, ...], bool]:
    """The tag resolved: first sight, back after vanishing, a move, or nothing new. Returns
    the events and whether the tag's digest changed."""
    if before is None or before.digest is None:
        if target.kind is Kind.WATCH and policy.first_check_notify:
            return (make_event(target, EventKind.FIRST_SEEN, now, new_digest=obs.digest),), False
        return (), False
    if not before.present:
        moved = before.digest != obs.digest
        changed = changed_platforms(before.platforms, obs.platforms) if moved else ()
        returned = make_event(
            target,
            EventKind.RETURNED,
            now,
            old_digest=before.digest,
            new_digest=obs.digest,
            platforms_changed=changed,
            details=(
                {"platform_digests": platform_moves(before.platforms, obs.platforms, changed)}
                if changed
                else {}
            ),
        )
        return (returned,), moved
    if before.digest == obs.digest:
        return (), False
    if target.kind is not Kind.WATCH:
        return (), True  # a pin's tag moved: the pin part decides what it means
    move = _move(target, before, obs, now, history)
    return ((move,) if move is not None else ()), True


def _move(
    target: Target, before: TagView, obs: Resolved, now: datetime, history: Sequence[Stretch]
) -> Event | None:
    """A watched tag moved: `moved`, or `rewritten` for a fixed-looking version; None when
    only platforms the watch does not follow changed."""
    changed = changed_platforms(before.platforms, obs.platforms)
    filtered = bool(target.platforms and before.platforms and obs.platforms)
    if filtered and not any(p in target.platforms for p in changed):
        return None
    details: dict[str, Any] = {}
    if changed:
        details["platform_digests"] = platform_moves(before.platforms, obs.platforms, changed)
    if filtered:
        # the platforms whose image digests the alert names (what the user runs)
        details["platforms_watched"] = sorted(target.platforms)
    earlier = next((s for s in history if s.digest == obs.digest), None)
    if earlier is not None:
        details["back_to"] = format_time(earlier.first_seen)
    rewritten = looks_like_full_version(target.tag) and not target.mutable
    return make_event(
        target,
        EventKind.REWRITTEN if rewritten else EventKind.MOVED,
        now,
        old_digest=before.digest,
        new_digest=obs.digest,
        platforms_changed=changed,
        details=details,
    )


def _decide_pin(
    target: Target,
    after: TargetView,
    target_before: TargetView,
    seen: Resolved,
    facts: PinFacts,
    now: datetime,
    events: list[Event],
    moved: bool,
) -> Decision:
    pinned = target.pinned
    assert pinned is not None

    def event(kind: EventKind, details: dict[str, Any]) -> None:
        events.append(
            make_event(
                target, kind, now, old_digest=pinned, new_digest=seen.digest, details=details
            )
        )

    if pin_is_current(pinned, seen):
        if target_before.stale_alerted_at is not None:
            event(EventKind.CURRENT, {})
        return Decision(
            tuple(events),
            replace(
                after,
                state=State.OK,
                behind_since=None,
                behind_evidence=None,
                stale_alerted_at=None,
                pin_missing=False,
            ),
            moved,
        )

    if target_before.behind_since is not None:
        since, evidence = target_before.behind_since, target_before.behind_evidence or "history"
    elif facts.evidence is not None:
        since, evidence = facts.evidence
    else:
        since, evidence = now, "first check"
    behind = max(0.0, (now - since).total_seconds())
    stale = behind >= target.max_age
    stale_alerted_at = target_before.stale_alerted_at
    info = {
        "behind_since": format_time(since),
        "evidence": evidence,
        "behind_seconds": behind,
        "max_age_seconds": target.max_age,
    }
    if stale:
        if stale_alerted_at is None:
            event(EventKind.STALE, dict(info))
            stale_alerted_at = now
        elif (now - stale_alerted_at).total_seconds() >= target.renotify:
            event(EventKind.STALE, dict(info, repeat=True))
            stale_alerted_at = now
    missing = target_before.pin_missing
    if facts.pinned_exists is False and not missing:
        event(EventKind.PIN_MISSING, dict(info))
        missing = True
    elif facts.pinned_exists is True:
        missing = False
    return Decision(
        tuple(events),
        replace(
            after,
            state=State.STALE if stale else State.OK,
            behind_since=since,
            behind_evidence=evidence,
            stale_alerted_at=stale_alerted_at,
            pin_missing=missing,
        ),
        moved,
    )
