"""Phase 6, describe moves: what changed between the image a watch followed before and the
one it follows now (manifests and configs, read by digest), into each move's details. Never
fails the check: what cannot be read, whatever the reading raised, is `unknown`, and the move
is recorded and alerted without it."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial

from tagwatch.check.recall import Known
from tagwatch.check.workers import Job, Workers
from tagwatch.core.changes import Change, compare
from tagwatch.core.markup import clean_data
from tagwatch.core.model import (
    Event,
    EventKind,
    Observation,
    Outcome,
    PlannedEvent,
    Resolved,
    TagKey,
    TagView,
    Target,
)
from tagwatch.core.text import clean
from tagwatch.errors import BadResponse, RegistryError, describe_failure
from tagwatch.registry.client import RegistryClient

__all__ = ["describe_moves"]

log = logging.getLogger("tagwatch.cycle")

MOVES = (EventKind.MOVED, EventKind.REWRITTEN)
UNKNOWN = Change("unknown", "details unknown")


def describe_moves(
    outcomes: Sequence[Outcome],
    known: Known,
    observations: Mapping[TagKey, Observation],
    client: RegistryClient,
    workers: Workers,
) -> list[Outcome]:
    """The outcomes with every move's details completed by what changed."""
    where: list[tuple[int, int]] = []  # (outcome, event) of each move
    names: list[str] = []
    jobs: list[Job[Change]] = []
    for o, outcome in enumerate(outcomes):
        for e, planned in enumerate(outcome.events):
            if planned.event.kind not in MOVES:
                continue
            target = outcome.target
            seen = observations[target.tag_key]
            assert isinstance(seen, Resolved)
            where.append((o, e))
            names.append(target.display)
            job = partial(
                _describe, client, target, known.tag(target.tag_key), seen, planned.event.old_digest
            )
            jobs.append((target.ref.registry, job))
    if not jobs:
        return list(outcomes)

    def unknown(index: int, exc: BaseException) -> Change:
        log.warning("%s: what changed is unknown: %s", names[index], describe_failure(exc))
        return UNKNOWN

    changes = dict(zip(where, workers.run(jobs, unknown), strict=True))
    return [
        replace(outcome, events=tuple(_described(o, outcome.events, changes)))
        for o, outcome in enumerate(outcomes)
    ]


def _described(
    o: int, events: Sequence[PlannedEvent], changes: Mapping[tuple[int, int], Change]
) -> list[PlannedEvent]:
    return [
        replace(p, event=_with_change(p.event, changes[o, e])) if (o, e) in changes else p
        for e, p in enumerate(events)
    ]


def _with_change(event: Event, change: Change) -> Event:
    """The move's details with what changed. Its text is the image publisher's (labels,
    created times): it is stored, shown and sent as clean one-line strings."""
    details = {**event.details, "change": change.kind, "summary": clean(change.summary, 500)}
    if change.details:
        details["what_changed"] = clean_data(change.details)
    return replace(event, details=details)


def _describe(
    client: RegistryClient,
    target: Target,
    before: TagView | None,
    seen: Resolved,
    old_digest: str | None = None,
) -> Change:
    """Compare the image a watch followed before with the one it follows now."""
    ref = target.ref.without_digest()
    prefer = target.platforms
    new = old = None
    try:
        new = client.image_facts(ref, seen.digest, seen.platforms, prefer)
        old_digest = old_digest or (before.digest if before else None)
        if old_digest:
            known = before.platforms if before and before.digest == old_digest else None
            old = client.image_facts(ref, old_digest, known, prefer)
    except RegistryError as exc:
        # An answer that cannot be read (a hostile or broken document) is worth a warning;
        # a registry that is down or refuses is already told by the check itself.
        level = logging.WARNING if isinstance(exc, BadResponse) else logging.INFO
        log.log(level, "%s: what changed is unknown: %s", target.display, exc)
    return compare(old, new, before.platforms if before else None, seen.platforms)
