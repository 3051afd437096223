"""Phase 5, decide: per target, the pure `core.drift.decide` on what was known and what was
observed, plus newer versions; then each event's routes, with a move inside the target's
grace period merged into the move whose alert still waits.

Deciding is pure code on what the registry said; should it raise on some answer (a bug), that
tag fails for every target naming it, as a failed check: no digest is recorded for it and no
move is lost, and the other targets are decided as usual."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from tagwatch.check.newer import with_newer
from tagwatch.check.recall import Known
from tagwatch.check.resolve import observation_of
from tagwatch.core.drift import PinFacts, decide, merge_platform_digests
from tagwatch.core.model import (
    DeliveryState,
    Event,
    EventKind,
    Failed,
    Kind,
    Observation,
    Outcome,
    PlannedEvent,
    Policy,
    Resolved,
    Route,
    State,
    TagKey,
    Target,
)
from tagwatch.errors import describe_failure, raised_at
from tagwatch.store import Store

if TYPE_CHECKING:
    from tagwatch.notify import Notifier

__all__ = ["decide_all", "merge_within_grace"]

log = logging.getLogger("tagwatch.cycle")


def decide_all(
    targets: Sequence[Target],
    known: Known,
    observations: MutableMapping[TagKey, Observation],
    facts: Mapping[str, PinFacts],
    newer: Mapping[str, list[str]],
    *,
    policy: Policy,
    now: datetime,
    store: Store,
    notifier: Notifier | None,
) -> list[Outcome]:
    """One outcome per target, in target order.

    A tag whose decision raised for any of its targets is replaced in `observations` by a
    `Failed` one (so the cycle records no digest for it) and all its targets are decided on
    that."""

    def one(target: Target) -> Outcome:
        return _decide_one(target, known, observations, facts, newer, policy, now, store, notifier)

    outcomes: list[Outcome | None] = []
    broken: set[TagKey] = set()
    for target in targets:
        try:
            outcomes.append(one(target))
        except Exception as exc:  # noqa: BLE001 - one target's bug must not end the cycle
            what = describe_failure(exc)
            log.warning("%s: internal error while deciding: %s", target.display, what)
            log.debug("%s: raised at %s", target.display, raised_at(exc))
            observations[target.tag_key] = Failed(f"internal error: {what}", "internal")
            broken.add(target.tag_key)
            outcomes.append(None)
    if not broken:
        return outcomes  # type: ignore[return-value]
    return [
        _failed_again(target, known, observations, one)
        if outcome is None or target.tag_key in broken
        else outcome
        for target, outcome in zip(targets, outcomes, strict=True)
    ]


def _failed_again(
    target: Target,
    known: Known,
    observations: Mapping[TagKey, Observation],
    one: Callable[[Target], Outcome],
) -> Outcome:
    """A target of a tag whose decision raised, decided as a failed check; should even that
    raise, the target is in `error` with no event."""
    try:
        return one(target)
    except Exception:  # noqa: BLE001 - logged for the tag already
        view = known.target(target.key)
        after = replace(view, state=State.ERROR, fail_count=view.fail_count + 1)
        return Outcome(target, observations[target.tag_key], view, after)


def _decide_one(
    target: Target,
    known: Known,
    observations: Mapping[TagKey, Observation],
    facts: Mapping[str, PinFacts],
    newer: Mapping[str, list[str]],
    policy: Policy,
    now: datetime,
    store: Store,
    notifier: Notifier | None,
) -> Outcome:
    seen = observation_of(target, observations)
    before = known.tag(target.tag_key)
    view = known.target(target.key)
    moved = (
        isinstance(seen, Resolved)
        and before is not None
        and before.digest is not None
        and before.digest != seen.digest
    )
    decision = decide(
        target,
        before,
        view,
        seen,
        policy=policy,
        now=now,
        history=known.history(target.tag_key) if moved and target.kind is Kind.WATCH else (),
        pin=facts.get(target.key),
    )
    decision = with_newer(target, view, decision, newer.get(target.key), now)
    planned: list[PlannedEvent] = []
    superseded: list[int] = []
    for event in decision.events:
        event, merged = merge_within_grace(store, target, event, now)
        superseded.extend(merged)
        routes = notifier.routes(event, target, now) if notifier is not None else []
        planned.append(PlannedEvent(event, tuple(_moved_back(event, routes))))
    return Outcome(
        target, seen, view, decision.target, tuple(planned), decision.moved, tuple(superseded)
    )


def merge_within_grace(
    store: Store, target: Target, event: Event, now: datetime
) -> tuple[Event, list[int]]:
    """A move while an earlier move's alert still waits out the target's grace: one alert
    covers both (from the first old digest to the new one). Returns the event and the ids of
    the earlier moves it covers."""
    if not target.grace or event.kind not in (EventKind.MOVED, EventKind.REWRITTEN):
        return event, []
    waiting = store.waiting_moves(target.key, now)
    if not waiting:
        return event, []
    details = {**event.details, "moves": len(waiting) + 1, "first_moved": waiting[0][2]}
    if "platform_digests" in event.details:
        moves = [d.get("platform_digests") or {} for _, _, _, d in waiting]
        details["platform_digests"] = merge_platform_digests(
            [*moves, event.details["platform_digests"]]
        )
    merged = replace(event, old_digest=waiting[0][1], details=details)
    return merged, [event_id for event_id, _, _, _ in waiting]


def _moved_back(event: Event, routes: list[Route]) -> list[Route]:
    """Moved and back within the grace period: recorded, nothing to say."""
    if event.details.get("moves") and event.old_digest == event.new_digest:
        return [replace(r, state=DeliveryState.MERGED, due=None) for r in routes]
    return routes
