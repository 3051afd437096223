"""Phase 7, record: the whole cycle in one transaction (tags, targets, events and their
deliveries), then each event logged, once it is a fact."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime

from tagwatch.core.model import Event, Observation, Outcome, TagKey
from tagwatch.store import Store

__all__ = ["record"]

log = logging.getLogger("tagwatch.cycle")


def record(
    store: Store,
    now: datetime,
    observations: Mapping[TagKey, Observation],
    outcomes: Sequence[Outcome],
    *,
    hold: bool = False,
) -> None:
    """Raises StoreError, with nothing of the cycle recorded, when the database refuses."""
    store.record(now, observations, outcomes, hold=hold)
    for outcome in outcomes:
        for planned in outcome.events:
            _log(planned.event)


def _log(event: Event) -> None:
    what = (
        f"{event.old_digest} -> {event.new_digest}"
        if event.old_digest and event.new_digest and event.old_digest != event.new_digest
        else event.new_digest or event.details.get("error") or ""
    )
    if event.details.get("summary"):
        what += f" ({event.details['summary']})"
    log.info("%s %s:%s: %s", event.kind.value, event.image, event.tag, what)
