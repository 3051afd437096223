"""[[source]]: the images a team's files use become watches and pins, at every cycle.

`expand(config)` scans each source (tagwatch.core.scan) and adds one target per distinct
reference — a pin when it carries a digest, else a watch — whose `source` names every file
and line it came from. A reference already configured by hand keeps its configuration; one
that disappears from the files simply is not a target any more (its recorded history stays
in the database). Unresolvable references are logged, never guessed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace

from tagwatch.config import Config
from tagwatch.core.model import Kind, Target

__all__ = ["expand"]

log = logging.getLogger("tagwatch.sources")

MAX_LISTED = 5  # places named in `source`; the rest are counted


def expand(config: Config) -> Config:
    if not config.sources:
        return config
    from tagwatch.core.scan import scan_paths  # PyYAML loads only when there are sources
    configured = {t.key for t in config.targets}
    found: dict[str, tuple[Target, list[str]]] = {}
    for source in config.sources:
        try:
            items = scan_paths([source.path], include=source.include, exclude=source.exclude)
        except (FileNotFoundError, OSError) as exc:
            log.warning("%s: cannot scan %s: %s", source.where, source.path, exc)
            continue
        base = source.path if os.path.isdir(source.path) else os.path.dirname(source.path)
        for item in items:
            where = os.path.join(base, item.file) if os.path.isdir(source.path) else item.file
            place = f"{where}:{item.line}"
            ref = item.ref
            if ref is None:
                log.debug("%s: %s: %s", source.where, place, item.problem)
                continue
            if ref.tag is None:  # pinned by digest alone: there is no tag to follow
                log.debug("%s: %s: %s has no tag; skipped", source.where, place, ref)
                continue
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
                continue
            entry = found.setdefault(target.key, (target, []))
            if place not in entry[1]:
                entry[1].append(place)
    added = []
    for target, places in found.values():
        shown = ", ".join(places[:MAX_LISTED])
        if len(places) > MAX_LISTED:
            shown += f" and {len(places) - MAX_LISTED} more"
        added.append(replace(target, source=shown))
    added.sort(key=lambda t: t.key)
    return replace(config, targets=config.targets + tuple(added))
