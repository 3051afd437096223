"""What `status` and `history` show, as JSON-ready objects: built here once for the command
line (`status --json`, `check --json`, `history --json`) and for the daemon's read-only API
(`/api/v1/targets`, `/api/v1/targets/{image}:{tag}/history`) and status page, so that the two
can never disagree. Reads the store; prints nothing. Every string in them is one clean line
(`core.markup.clean_data`): error messages, what changed and platform names come from
registries and image publishers.

The shape of both is part of the contract (../shared/contract.md, "Command line").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from tagwatch.config import Config
from tagwatch.core.markup import clean_data
from tagwatch.core.model import REGISTRY_TARGET, TagKey
from tagwatch.core.times import format_time
from tagwatch.store import Store, Undelivered

__all__ = ["history_objects", "status_objects"]


def status_objects(
    config: Config,
    store: Store,
    waiting: Sequence[Undelivered] | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """One object per configured watch and pin, in config order, with what was recorded
    and the alerts about it still waiting for delivery (`waiting`: else read at `now`)."""
    rows = {row.key: row for row in store.status_rows()}
    if waiting is None:
        waiting = store.undelivered(now or datetime.now(UTC))
    undelivered: dict[str, list[dict[str, Any]]] = {}
    for item in waiting:
        entry = {
            "event": item.kind,
            "at": format_time(item.at),
            "notify": item.notify_name,
            "attempts": item.attempts,
            "error": item.error,
        }
        if item.target.startswith(REGISTRY_TARGET):
            entry["registry"] = item.target[len(REGISTRY_TARGET) :]
        undelivered.setdefault(item.target, []).append(entry)
    out = []
    for target in config.targets:
        row = rows.get(target.key)
        obj: dict[str, Any] = {
            "image": target.ref.name,
            "tag": target.tag,
            "kind": target.kind.value,
            "digest": None,
            "state": None,
            "pinned": target.pinned,
            "platforms": {},
            "changed_at": None,
            "checked_at": None,
            "error": None,
            "behind_since": None,
            "source": target.source,
        }
        if row is not None:
            state = row.state.value if row.state else None
            error = row.error
            if target.source_error is not None:
                error = target.source_error
            obj.update(
                digest=row.current_digest,
                state=state,
                platforms=dict(row.platforms) if row.present else {},
                changed_at=format_time(row.last_changed),
                checked_at=format_time(row.checked_at),
                error=error if state == "error" else None,
                behind_since=format_time(row.behind_since),
                changes=row.changes,
            )
            if row.behind_since:
                obj["behind_evidence"] = row.behind_evidence
            if row.pin_missing:
                obj["pin_missing"] = True
            if target.newer:
                obj["newer"] = list(row.newer)
        # alerts about it (or about its registry) still waiting for delivery, and why
        obj["undelivered"] = [
            *undelivered.get(target.key, ()),
            *undelivered.get(REGISTRY_TARGET + target.ref.registry, ()),
        ]
        out.append(obj)
    cleaned: list[dict[str, Any]] = clean_data(out)
    return cleaned


def history_objects(store: Store, key: TagKey) -> list[dict[str, Any]]:
    """Every stretch of time the tag pointed at one digest, newest first (A -> B -> A is
    three), with what changed at each recorded move; [] when nothing is recorded."""
    registry, repository, tag = key
    stretches = store.history(key)
    if not stretches:
        return []
    moves = store.move_details(f"{registry}/{repository}", tag)
    objects = []
    for s in stretches:
        obj: dict[str, Any] = {
            "digest": s.digest,
            "first_seen": format_time(s.first_seen),
            "last_seen": format_time(s.last_seen),
            "platforms": dict(s.platforms),
        }
        details = moves.get((s.digest, obj["first_seen"]))
        if details and details.get("summary"):
            obj["change"] = details.get("change")
            obj["summary"] = details["summary"]
            obj["what_changed"] = details.get("what_changed", {})
        if details and details.get("platform_digests"):
            obj["platform_digests"] = details["platform_digests"]
            if details.get("platforms_watched"):
                obj["platforms_watched"] = details["platforms_watched"]
        objects.append(obj)
    cleaned: list[dict[str, Any]] = clean_data(objects)
    return cleaned
