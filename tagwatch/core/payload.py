"""Structured alerts: an event as one JSON object, for `[[notify]] format = "json"`. Pure.

The object is plain data — strings, numbers, booleans, null, lists and objects — described by
the JSON Schema shipped as `tagwatch/ops/alert.schema.json` (`tagwatch ops-files` copies it
out). `schema` is bumped on any incompatible change; fields are only ever added. Every string
that comes from a registry, an image or a scanned file (error messages, labels, tag names,
sources) is one clean line before it is put in (`core.text.clean`: no escape sequence,
control or format character, no line break, cut to a length).

    {"schema": 1, "event": "moved", "title": "[tagwatch] moved: docker.io/library/python:3.12",
     "severity": "info", "kind": "watch", "image": "docker.io/library/python", "tag": "3.12",
     "reference": "docker.io/library/python:3.12", "digest": "sha256:…", "previous": "sha256:…",
     "pinned": null, "platforms": {"linux/amd64": {"previous": "sha256:…", "digest": "sha256:…"}},
     "source": null, "seen": "2026-11-29T09:00:00Z", "change": {…}}

A registry that is down is one event about the registry (`kind` "registry", `image` its host,
`tag` empty) naming the watches and pins it holds up, not one per target.

Several events at once (`mode = "summary"` or `"digest"`) are one object with `events`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from tagwatch.core.model import Event, EventKind
from tagwatch.core.text import clean
from tagwatch.core.times import format_time

__all__ = ["SCHEMA_VERSION", "batch_object", "event_object", "severity"]

SCHEMA_VERSION = 1

_LONG = 1000  # characters: a "what changed" summary or an error message, cut past this


def severity(kind: EventKind) -> str:
    """`info`, `success`, `warning` or `failure`: as apprise's notification types."""
    if kind in (EventKind.CURRENT, EventKind.RECOVERED, EventKind.RETURNED):
        return "success"
    if kind in (EventKind.ERROR, EventKind.PIN_MISSING, EventKind.REWRITTEN):
        return "failure"
    if kind in (EventKind.STALE, EventKind.VANISHED):
        return "warning"
    return "info"


def _text(value: Any, limit: int = 200) -> str | None:
    return None if value is None else clean(value, limit)


def _data(value: Any, depth: int = 0) -> Any:
    """A details value as plain JSON data with clean strings (bounded in depth and size)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth >= 4:
        return None
    if isinstance(value, Mapping):
        return {clean(k, 100): _data(v, depth + 1) for k, v in list(value.items())[:100]}
    if isinstance(value, list | tuple):
        return [_data(v, depth + 1) for v in list(value)[:100]]
    return clean(value, _LONG)


def event_object(event: Event, title: str | None = None) -> dict[str, Any]:
    """One event as the alert's JSON object; `title` is the text alert's title."""
    d: Mapping[str, Any] = event.details
    kind, _, reference = event.target.partition(":")
    if event.registry_wide:  # a registry down or answering again: `image` is its host
        kind, reference = "registry", event.image
    is_target = kind in ("watch", "pin", "registry") and bool(reference)
    platforms = d.get("platform_digests") or {
        p: {"previous": None, "digest": None} for p in event.platforms_changed
    }
    obj: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "event": event.kind.value,
        "title": _text(title, 500),
        "severity": severity(event.kind),
        "kind": kind if is_target else None,
        "image": _text(event.image),
        "tag": _text(event.tag),
        "reference": _text(reference if is_target else f"{event.image}:{event.tag}", 500),
        "digest": _text(event.new_digest),
        "previous": _text(event.old_digest),
        "pinned": _text(event.pinned),
        "platforms": {
            clean(p, 100): {
                "previous": _text(v.get("previous")),
                "digest": _text(v.get("digest")),
            }
            for p, v in platforms.items()
            if isinstance(v, Mapping)
        },
        "source": _text(d.get("source"), 500),
        "seen": format_time(event.at),
    }
    obj.update(_optional(event, d))
    return obj


def _optional(event: Event, d: Mapping[str, Any]) -> dict[str, Any]:
    """The fields only some events have: what changed, how long behind, newer versions,
    the error, the registry's word."""
    out: dict[str, Any] = {}
    if d.get("change") or d.get("summary"):
        out["change"] = {
            "kind": _text(d.get("change")),
            "summary": _text(d.get("summary"), _LONG),
            "details": _data(d.get("what_changed") or {}),
        }
    if d.get("back_to"):
        out["back_to"] = _text(d["back_to"])
    if d.get("moves"):
        out["moves"] = int(d["moves"])
        out["first_moved"] = _text(d.get("first_moved"))
    if "behind_since" in d:
        out["behind_since"] = _text(d["behind_since"])
        out["behind_seconds"] = float(d.get("behind_seconds") or 0)
        out["behind_evidence"] = _text(d.get("evidence"))
    if "max_age_seconds" in d:
        out["max_age_seconds"] = float(d["max_age_seconds"])
    if d.get("repeat"):
        out["repeat"] = True
    if event.kind is EventKind.NEWER:
        out["newer"] = [clean(v, 200) for v in d.get("newer") or []]
        out["newest"] = _text(d.get("newest"))
        out["policy"] = _text(d.get("policy"))
    if event.kind is EventKind.ERROR:
        out["error"] = _text(d.get("error"), _LONG)
        out["reason"] = _text(d.get("reason"))
        out["failures"] = int(d.get("failures") or 0)
    if event.kind is EventKind.VANISHED and d.get("message"):
        out["message"] = _text(d["message"], _LONG)
    if event.registry_wide:
        out["registry"] = _text(d.get("registry") or event.image)
        out["targets"] = int(d.get("targets") or 0)
        if d.get("held_up"):
            out["held_up"] = [clean(h, 500) for h in list(d["held_up"])[:1000]]
        if d.get("down_since"):
            out["down_since"] = _text(d["down_since"])
            out["down_seconds"] = float(d.get("down_seconds") or 0)
    return out


def batch_object(
    events: Sequence[Event], mode: str, at: datetime, titles: Sequence[str | None] = ()
) -> dict[str, Any]:
    """Several events as one object (`summary`: one cycle; `digest`: since the last one)."""
    counts: dict[str, int] = {}
    for event in events:
        counts[event.kind.value] = counts.get(event.kind.value, 0) + 1
    titles = list(titles) + [None] * (len(events) - len(titles))
    return {
        "schema": SCHEMA_VERSION,
        "mode": mode,
        "sent": format_time(at),
        "count": len(events),
        "counts": counts,
        "events": [event_object(e, t) for e, t in zip(events, titles, strict=True)],
    }
