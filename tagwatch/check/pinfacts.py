"""Phase 3, pin facts: for pins that are behind, whether the pinned digest still exists and
since when the pin is behind (the tag's recorded history, else the current image's created
time). Only these cost HTTP, and only for pins that are behind."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import partial

from tagwatch.check.recall import Known
from tagwatch.check.resolve import observation_of
from tagwatch.check.workers import Job, Workers
from tagwatch.core.drift import PinFacts, pin_needs_facts
from tagwatch.core.model import Observation, Resolved, Stretch, TagKey, Target
from tagwatch.core.refs import ImageRef
from tagwatch.errors import RegistryError, describe_failure
from tagwatch.registry.client import RegistryClient

__all__ = ["evidence_from_history", "pin_facts"]

log = logging.getLogger("tagwatch.cycle")


def pin_facts(
    targets: Sequence[Target],
    known: Known,
    observations: Mapping[TagKey, Observation],
    client: RegistryClient,
    workers: Workers,
    now: datetime,
) -> dict[str, PinFacts]:
    """Target key -> the facts `decide` wants, for every pin that is behind."""
    facts: dict[str, PinFacts] = {}
    keys: list[str] = []
    names: list[str] = []
    jobs: list[Job[PinFacts]] = []

    def lookup(target: Target, fetch: Callable[[], PinFacts]) -> None:
        keys.append(target.key)
        names.append(target.display)
        jobs.append((target.ref.registry, fetch))

    def unknown(index: int, exc: BaseException) -> PinFacts:
        """A lookup that raised: the pin is judged without that fact, as after a
        registry error."""
        log.warning("%s: pin facts unknown: %s", names[index], describe_failure(exc))
        return PinFacts()

    for target in targets:
        seen = observation_of(target, observations)
        view = known.target(target.key)
        if not pin_needs_facts(target, view, seen):
            continue
        assert isinstance(seen, Resolved) and target.pinned is not None
        ref = target.ref.without_digest()
        facts[target.key] = PinFacts()
        lookup(target, partial(_exists, client, ref, target.pinned))
        if view.behind_since is None:
            since = evidence_from_history(target.pinned, known.history(target.tag_key), now)
            if since is not None:
                facts[target.key] = PinFacts(evidence=(since, "history"))
            else:
                lookup(target, partial(_created, client, ref, seen, now))
    for key, found in zip(keys, workers.run(jobs, unknown), strict=True):
        current = facts[key]
        facts[key] = PinFacts(
            current.evidence or found.evidence,
            found.pinned_exists if found.pinned_exists is not None else current.pinned_exists,
        )
    return facts


def evidence_from_history(
    pinned: str, history: Sequence[Stretch], now: datetime
) -> datetime | None:
    """When the tag moved away from the pinned digest, if the history saw it move."""
    for i, stretch in enumerate(history):  # newest first
        if stretch.digest == pinned or pinned in stretch.platforms.values():
            return now if i == 0 else history[i - 1].first_seen
    return None


def _exists(client: RegistryClient, ref: ImageRef, digest: str) -> PinFacts:
    try:
        return PinFacts(pinned_exists=client.exists(ref, digest))
    except RegistryError as exc:
        log.warning("%s: could not check that pinned %s still exists: %s", ref.name, digest, exc)
        return PinFacts()


def _created(client: RegistryClient, ref: ImageRef, seen: Resolved, now: datetime) -> PinFacts:
    try:
        created = client.image_created(ref, seen)
    except RegistryError as exc:
        log.info("%s: no created time for the current image: %s", ref.name, exc)
        return PinFacts()
    if created is None:
        return PinFacts()
    return PinFacts(evidence=(min(created, now), "image created"))
