"""[[source]]: the images a team uses become watches and pins, re-read at every cycle.

One module per kind of source, one table (`READERS`) dispatching them:

* `files` (`path = …`): the references in Dockerfiles, compose files and Kubernetes
  manifests — a pin when it carries a digest, else a watch — named `file:line`.
* `engine` (`engine = …`): the containers of a Docker Engine API (Docker, Podman).
* `kubernetes` (`kubernetes = …`): the containers of a cluster's Pods.

A running container is a pin nobody wrote down: its reference's tag plus the digest it runs
(tagwatch.core.running), named `container web-1 on unix:///var/run/docker.sock` or
`pod shop/web-7d9 container app`. Several containers on one image are one target naming all
of them. A reference already configured by hand keeps its configuration; one that is no
longer used simply is not a target any more (its recorded history stays in the database),
so a container that stops or goes away raises no alert.

What an engine or a cluster answered is recorded (`Store.save_reading`): when it cannot be
read, its containers stay targets carrying `source_error`, and the check reports them as
failures (`error`, alerted after `error_after` cycles) — never as moves or vanished tags.
Containers whose digest is not known (an image built locally or loaded from a tar, a pod
still pulling) are not pins: `Expansion.notes` says so, and they are never guessed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tagwatch.config import Config, SourceConfig
from tagwatch.core.model import Kind, Target
from tagwatch.core.refs import ImageRef
from tagwatch.errors import SourceError, StoreError
from tagwatch.store import Store

if TYPE_CHECKING:
    from tagwatch.core.running import Running

__all__ = ["READERS", "Expansion", "SourceStatus", "expand", "read_sources"]

log = logging.getLogger("tagwatch.sources")

MAX_LISTED = 5  # places named in `source`; the rest are counted


def _read_engine(source: SourceConfig, timeout: float) -> list[Running]:
    from tagwatch.sources.engine import read

    return read(source, timeout)


def _read_kubernetes(source: SourceConfig, timeout: float) -> list[Running]:
    from tagwatch.sources.kubernetes import read

    return read(source, timeout)


# What runs, by source kind (`SourceConfig.kind`); files are read by tagwatch.sources.files.
# Imported lazily: httpx loads only when a source needs it.
READERS: dict[str, Callable[[SourceConfig, float], list[Running]]] = {
    "engine": _read_engine,
    "kubernetes": _read_kubernetes,
}


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """How reading one source went, for logs, `check` and the metrics."""

    source: SourceConfig
    ok: bool
    targets: int = 0
    error: str | None = None
    recorded: datetime | None = None  # the reading used, when an earlier one stood in


@dataclass(slots=True)
class Expansion:
    config: Config  # with the sources' targets added
    notes: list[str] = field(default_factory=list)  # containers that are not pins, and why
    statuses: list[SourceStatus] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        """Sources that could not be read now (their last reading, if any, stood in)."""
        return [f"{s.source.where}: {s.error}" for s in self.statuses if s.error]


def _runtime(
    source: SourceConfig, store: Store | None, live: bool, now: datetime, timeout: float
) -> tuple[list[Running], str | None, datetime | None]:
    """(what runs, why it could not be read now or None, when the reading used was made
    if it is an earlier one)."""
    label = source.label
    error = None
    if live:
        try:
            items = READERS[source.kind](source, timeout)
        except SourceError as exc:
            error = str(exc)
        else:
            if store is not None:
                try:
                    store.save_reading(label, now, [i.as_dict() for i in items])
                except StoreError as exc:
                    log.warning("%s", exc)
            return items, None, None
        if store is not None:
            try:
                store.reading_failed(label, now, error)
            except StoreError as exc:
                log.warning("%s", exc)
    stored = None
    if store is not None:
        try:
            stored = store.reading(label)
        except StoreError as exc:
            log.warning("%s", exc)
    if stored is None:
        return [], error, None
    from tagwatch.core.running import Running

    items = [r for r in (Running.from_dict(i) for i in stored.items) if r is not None]
    return items, error if live else stored.error, stored.read_at


def read_sources(
    config: Config,
    store: Store | None = None,
    *,
    live: bool = True,
    now: datetime | None = None,
) -> Expansion:
    """Add the targets every [[source]] yields to `config`.

    `live`: read engines and clusters now, and record what they answered in `store`; else
    (`status`) use what was recorded last. Files are always scanned."""
    if not config.sources:
        return Expansion(config)
    now = now or datetime.now(UTC).replace(microsecond=0)
    timeout = config.settings.timeout
    configured = {t.key for t in config.targets}
    found: dict[str, tuple[Target, list[str], list[str | None]]] = {}
    expansion = Expansion(config)

    def add(source: SourceConfig, ref: ImageRef, place: str, error: str | None) -> bool:
        kind = Kind.PIN if ref.digest else Kind.WATCH
        target = Target(
            kind=kind,
            ref=ref,
            notify=source.notify,
            newer=source.newer,
            newer_include=source.newer_include,
            newer_exclude=source.newer_exclude,
        )
        if kind is Kind.PIN:
            target = replace(target, max_age=source.max_age, renotify=source.renotify)
        if target.key in configured:
            return False
        entry = found.setdefault(target.key, (target, [], []))
        if place not in entry[1]:
            entry[1].append(place)
            entry[2].append(error)
        return True

    for source in config.sources:
        if source.kind == "files":
            from tagwatch.sources import files

            try:
                refs = files.read(source)
            except SourceError as exc:
                log.warning("%s", exc)
                expansion.statuses.append(SourceStatus(source, False, error=str(exc)))
                continue
            added = sum(add(source, ref, place, None) for ref, place in refs)
            expansion.statuses.append(SourceStatus(source, True, added))
            continue
        items, error, recorded = _runtime(source, store, live, now, timeout)
        added = 0
        # Engines list containers newest first: named in a stable order instead.
        for running in sorted(items, key=lambda r: r.place):
            ref = running.ref()
            if ref is None:
                expansion.notes.append(f"{running.place}: {running.image}: {running.problem}")
                continue
            added += add(source, ref, running.place, error)
        expansion.statuses.append(SourceStatus(source, error is None, added, error, recorded))

    added_targets = []
    for target, places, errors in found.values():
        shown = ", ".join(places[:MAX_LISTED])
        if len(places) > MAX_LISTED:
            shown += f" and {len(places) - MAX_LISTED} more"
        target = replace(target, source=shown)
        if all(e is not None for e in errors):  # known only from sources that are down
            target = replace(target, source_error=errors[0])
        added_targets.append(target)
    added_targets.sort(key=lambda t: t.key)
    expansion.config = replace(config, targets=config.targets + tuple(added_targets))
    return expansion


def expand(config: Config, store: Store | None = None, *, live: bool = True) -> Config:
    """`config` with the targets of its [[source]] entries (see `read_sources`)."""
    return read_sources(config, store, live=live).config
