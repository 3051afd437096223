"""What changed when a tag moved: two images' facts in, a classified summary out. Pure.

The facts come from the manifest and the config blob of each side (for an index: the
platform image a watch cares about, else linux/amd64, else the first). The summary reads like

    3.12.7 → 3.12.8, rebuilt 2026-11-20, 2 of 5 layers changed, +1.2 MB

and the kind is one of:

* ``new_version``: the `org.opencontainers.image.version` label changed;
* ``rebuild``: new content under the same version (or without version labels);
* ``index_only``: the index moved but the image that matters did not (another platform or an
  attestation changed);
* ``unknown``: the facts could not be read (the old image may be gone).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Change", "ImageFacts", "compare", "format_size"]

VERSION = "org.opencontainers.image.version"
REVISION = "org.opencontainers.image.revision"
SOURCE = "org.opencontainers.image.source"
BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"


@dataclass(frozen=True, slots=True)
class ImageFacts:
    digest: str  # the image manifest's digest (a platform image for an index)
    platform: str | None = None
    created: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    layers: tuple[tuple[str, int], ...] = ()

    def label(self, key: str) -> str | None:
        return self.labels.get(key) or self.annotations.get(key)

    @property
    def size(self) -> int:
        return sum(size for _, size in self.layers)


@dataclass(frozen=True, slots=True)
class Change:
    kind: str
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)


def format_size(delta: int) -> str:
    """+1.2 MB, -340 kB, +0 B (decimal units, as registries and docker show sizes)."""
    sign = "+" if delta >= 0 else "-"
    value = float(abs(delta))
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            text = f"{value:.0f}" if unit in ("B", "kB") else f"{value:.1f}"
            return f"{sign}{text} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def compare(
    old: ImageFacts | None,
    new: ImageFacts | None,
    old_platforms: Mapping[str, str] | None = None,
    new_platforms: Mapping[str, str] | None = None,
) -> Change:
    """Classify a move from `old` to `new` and say it in one line."""
    details: dict[str, Any] = {}
    platforms = _platforms(old_platforms, new_platforms, details)
    if old is None or new is None:
        known = "details unknown (the old image could not be read)" if new is not None else None
        notes = [known or "details unknown"]
        if platforms:
            notes.append(f"platforms {platforms}")
        return Change("unknown", ", ".join(notes), details)
    if old.digest == new.digest:
        notes = ["index changed, image unchanged"]
        if platforms:
            notes.append(f"platforms {platforms}")
        return Change("index_only", ", ".join(notes), details)
    kind, parts = _version(old, new, details)
    if new.created and new.created != old.created:
        built = "rebuilt" if kind == "rebuild" and not new.label(VERSION) else "built"
        parts.append(f"{built} {new.created[:10]}")
    details["created"] = {"old": old.created, "new": new.created}
    parts += _provenance(old, new, details)
    parts += _layers(old, new, details)
    if platforms:
        parts.append(f"platforms {platforms}")
    return Change(kind, ", ".join(parts) if parts else "rebuilt", details)


def _platforms(
    old: Mapping[str, str] | None, new: Mapping[str, str] | None, details: dict[str, Any]
) -> str:
    """Platforms added and removed (into `details`), as `+linux/arm64, -linux/s390x`."""
    old_set, new_set = set(old or {}), set(new or {})
    added, removed = sorted(new_set - old_set), sorted(old_set - new_set)
    if added:
        details["platforms_added"] = added
    if removed:
        details["platforms_removed"] = removed
    return ", ".join([f"+{p}" for p in added] + [f"-{p}" for p in removed])


def _version(old: ImageFacts, new: ImageFacts, details: dict[str, Any]) -> tuple[str, list[str]]:
    """`new_version` when the version label changed, else `rebuild`; and how to say it."""
    old_version, new_version = old.label(VERSION), new.label(VERSION)
    if new_version:
        details["version"] = {"old": old_version, "new": new_version}
    if old_version != new_version and new_version:
        return "new_version", [f"{old_version or '?'} → {new_version}"]
    if new_version:
        return "rebuild", [f"{new_version} rebuilt"]
    return "rebuild", []


def _provenance(old: ImageFacts, new: ImageFacts, details: dict[str, Any]) -> list[str]:
    """Revision, source and base image labels (into `details`); a new base image is said."""
    for key, name in (
        (REVISION, "revision"),
        (SOURCE, "source"),
        (BASE_NAME, "base_name"),
        (BASE_DIGEST, "base_digest"),
    ):
        a, b = old.label(key), new.label(key)
        if a or b:
            details[name] = {"old": a, "new": b}
    old_base, new_base = old.label(BASE_DIGEST), new.label(BASE_DIGEST)
    return ["new base image"] if old_base and new_base and old_base != new_base else []


def _layers(old: ImageFacts, new: ImageFacts, details: dict[str, Any]) -> list[str]:
    """How many of the new image's layers the old one did not have, and the size change."""
    if not new.layers:
        return []
    old_layers = {d for d, _ in old.layers}
    changed = sum(1 for d, _ in new.layers if d not in old_layers)
    details["layers"] = {
        "total": len(new.layers),
        "changed": changed,
        "shared": len(new.layers) - changed,
    }
    delta = new.size - old.size
    details["size"] = {"old": old.size, "new": new.size, "delta": delta}
    return [f"{changed} of {len(new.layers)} layers changed", format_size(delta)]
