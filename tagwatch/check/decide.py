"""Phase 5, decide: per target, the pure `core.drift.decide` on what was known and what was
observed, plus newer versions; then each event's routes, with a move inside the target's
grace period merged into the move whose alert still waits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from tagwatch.check.newer import with_newer
from tagwatch.check.recall import Known
from tagwatch.core.drift import PinFacts, decide
from tagwatch.core.model import (
    DeliveryState,
    Event,
    EventKind,
    Kind,
    Observation,
    Outcome,
    PlannedEvent,
    Policy,
    Resolved,
    Route,
    TagKey,
    Target,
)
from tagwatch.notify import Notifier
from tagwatch.store import Store

__all__ = ["decide_all", "merge_within_grace"]


def decide_all(
    targets: Sequence[Target],
    known: Known,
    observations: Mapping[TagKey, Observation],
    facts: Mapping[str, PinFacts],
    newer: Mapping[str, list[str]],
    *,
    policy: Policy,
    now: datetime,
    store: Store,
    notifier: Notifier | None,
) -> list[Outcome]:
    """One outcome per target, in target order."""
    return [
        _decide_one(target, known, observations, facts, newer, policy, now, store, notifier)
        for target in targets
    ]


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
    seen = observations[target.tag_key]
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
    merged = replace(event, old_digest=waiting[0][1], details=details)
    return merged, [event_id for event_id, _, _ in waiting]


def _moved_back(event: Event, routes: list[Route]) -> list[Route]:
    """Moved and back within the grace period: recorded, nothing to say."""
    if event.details.get("moves") and event.old_digest == event.new_digest:
        return [replace(r, state=DeliveryState.MERGED, due=None) for r in routes]
    return routes
