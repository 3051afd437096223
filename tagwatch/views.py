"""What `status` and `history` show, as JSON-ready objects: built here once for the command
line (`status --json`, `check --json`, `history --json`) and for the daemon's read-only API
(`/api/v1/targets`, `/api/v1/targets/{image}:{tag}/history`) and status page, so that the two
can never disagree. Reads the store; prints nothing. Every string in them is one clean line
(`core.markup.clean_data`): error messages, what changed and platform names come from
registries and image publishers.

The shape of both is part of the contract (../shared/contract.md, "Command line").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from tagwatch.config import Config
from tagwatch.core.markup import clean_data
from tagwatch.core.model import REGISTRY_TARGET, State, TagKey
from tagwatch.core.text import clean
from tagwatch.core.times import format_time, parse_time
from tagwatch.store import Store, Undelivered

__all__ = ["history_objects", "status_objects", "to_json"]


def to_json(value: Any) -> bytes:
    """The JSON text of `value` as `--json` prints it and the API answers it, byte for byte:
    indented by two spaces, UTF-8, a newline at the end (orjson: at 100,000 watches
    `json.dumps(indent=2)` alone took longer than the rest of `status --json`)."""
    import orjson

    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


# What status_objects reads of each row (Store.status_records), in this order.
_COLUMNS = (
    "g.key",
    "g.state",
    "g.changes",
    "g.behind_since",
    "g.behind_evidence",
    "g.pin_missing",
    "g.newer",
    "t.digest",
    "t.platforms",
    "t.present",
    "t.first_seen",
    "t.changed_at",
    "t.checked_at",
    "t.error",
)


def status_objects(
    config: Config,
    store: Store,
    waiting: Sequence[Undelivered] | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """One object per configured watch and pin, in config order, with what was recorded
    and the alerts about it still waiting for delivery (`waiting`: else read at `now`).

    Made from the database's own rows (`Store.status_records`), each distinct string cleaned
    once (a few hundred distinct names, digests, times and platform sets cover 100,000
    watches): the objects are what `status --json` prints, so at that size the cost of this
    function is the cost of the command."""
    records = {r[0]: r for r in store.status_records(_COLUMNS)}
    if waiting is None:
        waiting = store.undelivered(now or datetime.now(UTC))
    undelivered = _undelivered(waiting)
    one = _Once()
    line, time_text, data = one.line, one.time, one.data
    out = []
    for target in config.targets:
        ref = target.ref
        image = line(ref.name)
        obj: dict[str, Any] = {
            "image": image,
            "tag": line(ref.tag),
            "kind": target.kind.value,
            "digest": None,
            "state": None,
            "pinned": line(target.pinned),
            "platforms": {},
            "changed_at": None,
            "checked_at": None,
            "error": None,
            "behind_since": None,
            "source": line(target.source),
        }
        r = records.get(target.key)
        if r is not None:
            (_, state, changes, behind, evidence, pin_missing, newer) = r[:7]
            (digest, platforms, present, first_seen, changed_at, checked_at, error) = r[7:]
            state = one.state(state)
            if target.source_error is not None:
                error = target.source_error
            obj["digest"] = line(digest) if present else None
            obj["state"] = state
            obj["platforms"] = dict(data(platforms) or {}) if present else {}
            obj["changed_at"] = time_text(changed_at or first_seen) if digest else None
            obj["checked_at"] = time_text(checked_at)
            obj["error"] = one.clean(error) if state == "error" else None
            obj["behind_since"] = behind_since = time_text(behind)
            obj["changes"] = changes or 0
            if behind_since:
                obj["behind_evidence"] = one.clean(evidence)
            if pin_missing:
                obj["pin_missing"] = True
            if target.newer:
                obj["newer"] = list(data(newer) or ())
        # alerts about it (or about its registry) still waiting for delivery, and why
        obj["undelivered"] = [
            *undelivered.get(target.key, ()),
            *undelivered.get(REGISTRY_TARGET + ref.registry, ()),
        ]
        out.append(obj)
    return out


def _undelivered(waiting: Sequence[Undelivered]) -> dict[str, list[dict[str, Any]]]:
    """The alerts waiting for delivery, cleaned, by their event's target."""
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
        undelivered.setdefault(item.target, []).append(clean_data(entry))
    return undelivered


class _Once:
    """Each distinct stored string made ready for the objects once: cleaned (`clean_data`'s
    one line of at most its limit), a stored time in tagwatch's one format, stored JSON
    parsed and cleaned (shared: the caller copies what it hands out)."""

    def __init__(self) -> None:
        self._lines: dict[str | None, str | None] = {None: None}
        self._times: dict[str | None, str | None] = {None: None}
        self._data: dict[str | None, Any] = {None: None}
        self._states: dict[str | None, str | None] = {None: None, "": None}

    def line(self, text: str | None) -> str | None:
        lines = self._lines
        if text in lines:
            return lines[text]
        cleaned: str = clean_data(text)
        lines[text] = cleaned
        return cleaned

    def clean(self, text: str | None) -> str | None:
        """An error message: usually one of a kind, so not kept."""
        return None if text is None else clean(text)

    def time(self, text: str | None) -> str | None:
        times = self._times
        if text in times:
            return times[text]
        made = times[text] = format_time(parse_time(text))
        return made

    def data(self, text: str | None) -> Any:
        data = self._data
        if text in data:
            return data[text]
        made = data[text] = clean_data(json.loads(text)) if text else None
        return made

    def state(self, value: str | None) -> str | None:
        """A stored state, as `State` reads it (an unknown one raises, as it always did)."""
        states = self._states
        if value in states:
            return states[value]
        made = states[value] = State(str(value)).value
        return made


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
