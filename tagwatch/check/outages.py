"""Phase 7, outages: per registry, the pure `core.outage.decide_outage` over this cycle's
outcomes. A registry that is down gets one `error` (and later one `recovered`) of its own;
its targets' own `error` alerts for the same outage are held back (their state, failure
count and message stay: `status`, the metrics and the logs keep the per-target detail).

Runs with `record` under the store's `outage_lock`: two daemon jobs of one registry (two
intervals) never both decide that it went down."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from tagwatch.core.model import (
    DeliveryState,
    Event,
    EventKind,
    Outcome,
    PlannedEvent,
    Policy,
    Route,
    Target,
)
from tagwatch.core.outage import Outage, RegistrySeen, decide_outage, is_outage_failure

if TYPE_CHECKING:
    from tagwatch.notify import Notifier

__all__ = ["Outages", "registry_outages"]


@dataclass(slots=True)
class Outages:
    """What the outage phase decided: the targets' outcomes (with covered `error` alerts
    taken out), the registries' own events, and each registry whose state changed."""

    outcomes: list[Outcome]
    events: list[PlannedEvent] = field(default_factory=list)
    changes: dict[str, Outage | None] = field(default_factory=dict)


def registry_outages(
    configured: Sequence[Target],
    outcomes: Sequence[Outcome],
    before: Mapping[str, Outage],
    *,
    policy: Policy,
    now: datetime,
    notifier: Notifier | None,
) -> Outages:
    """`configured`: every target of the configuration (for how many a registry holds up);
    `outcomes`: this cycle's; `before`: the registries recorded as down."""
    by_host: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        if outcome.target.source_error is not None:
            continue  # its engine or cluster is down, not its registry: not asked this time
        by_host.setdefault(outcome.target.ref.registry, []).append(outcome)
    counts: dict[str, int] = {}
    for target in configured:
        counts[target.ref.registry] = counts.get(target.ref.registry, 0) + 1
    covered: set[str] = set()
    result = Outages(list(outcomes))
    for host, group in by_host.items():
        failing = [o for o in group if o.failed]
        seen = RegistrySeen(
            host=host,
            observations=list({o.target.tag_key: o.observation for o in group}.values()),
            fail_counts=[o.after.fail_count for o in failing],
            configured=counts.get(host, len(group)),
            held_up=list(dict.fromkeys(o.target.display for o in failing)),
        )
        decision = decide_outage(seen, before.get(host), policy=policy, now=now)
        if decision.covers:
            covered.add(host)
        if decision.outage != before.get(host):
            result.changes[host] = decision.outage
        for event in decision.events:
            result.events.append(PlannedEvent(event, _routes(notifier, event, group, now)))
    if covered:
        result.outcomes = [
            _without_own_error(o) if o.target.ref.registry in covered else o for o in outcomes
        ]
    return result


def _without_own_error(outcome: Outcome) -> Outcome:
    """A target held up by its registry's outage: no `error` alert of its own (nor, later, a
    `recovered`), but the failure is recorded as always."""
    if not is_outage_failure(outcome.observation):
        return outcome
    own = [p for p in outcome.events if p.event.kind is EventKind.ERROR]
    if not own:
        return outcome
    return replace(
        outcome,
        events=tuple(p for p in outcome.events if p.event.kind is not EventKind.ERROR),
        after=replace(outcome.after, error_alerted=outcome.before.error_alerted),
    )


def _routes(
    notifier: Notifier | None, event: Event, group: Sequence[Outcome], now: datetime
) -> tuple[Route, ...]:
    """A registry's alert goes to every notification target that would get an `error` of
    one of the watches and pins it holds up (their routing tags and event filters); held
    only when every one of those would be held (quiet windows)."""
    if notifier is None:
        return ()
    merged: dict[str, Route] = {}
    for outcome in group:
        for route in notifier.routes(event, outcome.target, now):
            known = merged.get(route.notify_id)
            if known is None or (
                known.state is DeliveryState.HELD and route.state is DeliveryState.PENDING
            ):
                merged[route.notify_id] = route
    return tuple(merged.values())
