"""Phase 4, newer versions: for targets with a `newer` policy, the version tags above theirs
in their track (narrowed or chosen by `newer_include`/`newer_exclude`). A repository's tag
list is read at most once per `[tagwatch] tag_list_ttl` (cached in the store; `check
--refresh-tags` reads it anew), shared by every target of that repository."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial

from tagwatch.check.workers import Job, Workers
from tagwatch.core.drift import Decision, make_event
from tagwatch.core.model import EventKind, Observation, Resolved, TagKey, Target, TargetView
from tagwatch.core.refs import ImageRef
from tagwatch.core.versions import newer_versions, parse_version
from tagwatch.errors import BadResponse, RegistryError, StoreError, describe_failure
from tagwatch.registry.client import RegistryClient
from tagwatch.store import Store

__all__ = ["TAG_LIST_TTL", "find_newer", "with_newer"]

log = logging.getLogger("tagwatch.cycle")

TAG_LIST_TTL = timedelta(hours=6)  # the default of [tagwatch] tag_list_ttl

Repository = tuple[str, str]  # (registry, repository)
TagList = tuple[list[str], bool]  # (tags, complete)


def find_newer(
    targets: Sequence[Target],
    observations: Mapping[TagKey, Observation],
    store: Store,
    client: RegistryClient,
    workers: Workers,
    now: datetime,
    ttl: timedelta = TAG_LIST_TTL,
) -> dict[str, list[str]]:
    """Target key -> newer version tags in its track, for targets with a `newer` policy whose
    tag resolved in this check. A cached tag list younger than `ttl` is used (`ttl` 0: every
    list is read anew)."""
    wanted = [
        t
        for t in targets
        if t.newer and parse_version(t.tag) and isinstance(observations.get(t.tag_key), Resolved)
    ]
    if not wanted:
        return {}
    lists: dict[Repository, list[str]] = {}
    fetch: dict[Repository, ImageRef] = {}
    for target in wanted:
        key = (target.ref.registry, target.ref.repository)
        if key in lists or key in fetch:
            continue
        cached = store.tag_list(*key)
        if cached is not None and now - cached[1] < ttl:
            lists[key] = cached[0]
        else:
            fetch[key] = target.ref.without_digest()
    jobs: list[Job[TagList | None]] = [
        (ref.registry, partial(_fetch_tags, client, ref)) for ref in fetch.values()
    ]
    refs = list(fetch.values())

    def unlisted(index: int, exc: BaseException) -> TagList | None:
        log.warning(
            "%s: cannot list tags for newer versions: %s", refs[index].name, describe_failure(exc)
        )
        return None

    for key, result in zip(fetch, workers.run(jobs, unlisted), strict=True):
        if result is not None:
            lists[key] = result[0]
            try:
                store.save_tag_list(*key, result[0], result[1], now)
            except StoreError as exc:
                log.warning("%s", exc)
    out = {}
    for target in wanted:
        found = lists.get((target.ref.registry, target.ref.repository))
        if found is None:
            continue
        assert target.newer is not None
        try:
            out[target.key] = newer_versions(
                target.tag, found, target.newer, target.newer_include, target.newer_exclude
            )
        except Exception as exc:  # noqa: BLE001 - a tag list is the registry's text: a bug
            # on one list costs that target its newer versions, not the cycle
            log.warning("%s: newer versions unknown: %s", target.display, describe_failure(exc))
    return out


def _fetch_tags(client: RegistryClient, ref: ImageRef) -> TagList | None:
    try:
        return client.list_tags(ref)
    except RegistryError as exc:
        level = logging.WARNING if isinstance(exc, BadResponse) else logging.INFO
        log.log(level, "%s: cannot list tags for newer versions: %s", ref.name, exc)
        return None


def with_newer(
    target: Target, view: TargetView, decision: Decision, found: list[str] | None, now: datetime
) -> Decision:
    """Keep the reported newer versions in the target's state; a version not reported before
    is a `newer` event (once)."""
    if found is None:
        if decision.target.newer == view.newer:
            return decision
        return replace(decision, target=replace(decision.target, newer=view.newer))
    fresh = [v for v in found if v not in view.newer]
    events = decision.events
    if fresh:
        events = (
            *events,
            make_event(
                target,
                EventKind.NEWER,
                now,
                details={"newer": fresh, "newest": found[-1], "policy": target.newer},
            ),
        )
    return replace(decision, target=replace(decision.target, newer=tuple(found)), events=events)
