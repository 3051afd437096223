"""Phase 8, record: the whole cycle in one transaction (tags, targets, events and their
deliveries), then each event logged, once it is a fact."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from tagwatch.check.outages import Outages
from tagwatch.core.model import Event, Observation, TagKey
from tagwatch.store import Store

__all__ = ["record"]

log = logging.getLogger("tagwatch.cycle")


def record(
    store: Store,
    now: datetime,
    observations: Mapping[TagKey, Observation],
    decided: Outages,
    *,
    hold: bool = False,
) -> None:
    """Raises StoreError, with nothing of the cycle recorded, when the database refuses."""
    store.record(
        now,
        observations,
        decided.outcomes,
        hold=hold,
        registry_events=decided.events,
        outages=decided.changes,
    )
    for outcome in decided.outcomes:
        for planned in outcome.events:
            _log(planned.event)
    for planned in decided.events:
        _log(planned.event)


def _log(event: Event) -> None:
    if event.registry_wide:
        count = event.details.get("targets")
        if event.kind.value == "error":
            what = f"down, {count} watches and pins held up: {event.details.get('error')}"
        else:
            what = f"answers again ({count} watches and pins)"
        log.info("%s %s: %s", event.kind.value, event.subject, what)
        return
    what = (
        f"{event.old_digest} -> {event.new_digest}"
        if event.old_digest and event.new_digest and event.old_digest != event.new_digest
        else event.new_digest or event.details.get("error") or ""
    )
    if event.details.get("summary"):
        what += f" ({event.details['summary']})"
    log.info("%s %s: %s", event.kind.value, event.subject, what)
