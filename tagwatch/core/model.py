"""The values that flow through one check: targets, what the registry said, what was known
before, and the events a check decides on. Frozen dataclasses; no behaviour beyond naming."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from enum import StrEnum
from typing import Any

from tagwatch.core.refs import ImageRef

__all__ = [
    "DAY",
    "DeliveryState",
    "Event",
    "EventKind",
    "Failed",
    "Kind",
    "Missing",
    "Observation",
    "Outcome",
    "PlannedEvent",
    "Policy",
    "REGISTRY_TARGET",
    "Resolved",
    "Route",
    "State",
    "Stretch",
    "TagKey",
    "TagView",
    "Target",
    "TargetView",
    "looks_like_full_version",
]

DAY = 86400.0

#: A tag's identity, shared by every watch and pin that names it: (registry, repository, tag).
TagKey = tuple[str, str, str]


class Kind(StrEnum):
    WATCH = "watch"
    PIN = "pin"


class State(StrEnum):
    OK = "ok"
    STALE = "stale"
    VANISHED = "vanished"
    ERROR = "error"


class EventKind(StrEnum):
    FIRST_SEEN = "first_seen"  # only with first_check_notify
    MOVED = "moved"
    REWRITTEN = "rewritten"
    VANISHED = "vanished"
    RETURNED = "returned"
    STALE = "stale"
    CURRENT = "current"
    PIN_MISSING = "pin_missing"
    NEWER = "newer"
    ERROR = "error"
    RECOVERED = "recovered"
    TEST = "test"  # notify-test


@dataclass(frozen=True, slots=True)
class Target:
    """One watch or pin from the configuration."""

    kind: Kind
    ref: ImageRef  # tag always set; a pin's ref carries the pinned digest too
    platforms: tuple[str, ...] = ()
    notify: tuple[str, ...] = ()
    max_age: float = 7 * DAY
    renotify: float = DAY
    source: str | None = None
    mutable: bool = False  # a version-like tag that is expected to be rebuilt
    interval: float | None = None  # own check interval (daemon); None: the global one
    schedule: str | None = None  # cron: check at these times instead (daemon; [tagwatch] timezone)
    grace: float = 0.0  # seconds a move waits before it is alerted (a re-push merges)
    quiet: tuple[tuple[time, time], ...] = ()  # windows without alerts ([tagwatch] timezone)
    newer: str | None = None  # report newer version tags: patch | minor | major
    newer_include: tuple[str, ...] = ()  # regexes: only newer tags matching one of them
    newer_exclude: tuple[str, ...] = ()  # regexes: never newer tags matching one of them
    # Set when the [[source]] naming this target (a container engine, a cluster) could not
    # be read now: what it runs is unknown, so the check is a failure with this message,
    # never a move or a vanish.
    source_error: str | None = None
    #: Stable identity in the database: kind and full reference. Made once (a cycle asks
    #: each target for it about ten times), not a constructor argument.
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.kind}:{self.ref}")

    @property
    def tag(self) -> str:
        assert self.ref.tag is not None
        return self.ref.tag

    @property
    def tag_key(self) -> TagKey:
        return (self.ref.registry, self.ref.repository, self.tag)

    @property
    def pinned(self) -> str | None:
        return self.ref.digest if self.kind is Kind.PIN else None

    @property
    def display(self) -> str:
        """`image:tag`, as titles and tables show it."""
        return f"{self.ref.name}:{self.tag}"


# --- what the registry said about a tag in this check ---------------------------------------


@dataclass(frozen=True, slots=True)
class Resolved:
    digest: str
    media_type: str
    platforms: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Missing:
    """The registry answered that the tag does not exist."""

    message: str = "tag not found"


@dataclass(frozen=True, slots=True)
class Failed:
    """The check failed: network, auth, rate limit, bad answer. Never a move or a vanish."""

    message: str
    reason: str = "error"


Observation = Resolved | Missing | Failed


# --- what was recorded before -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TagView:
    """The recorded state of a tag (shared by every watch and pin of that tag)."""

    digest: str | None = None  # last digest seen; None if never resolved
    platforms: Mapping[str, str] = field(default_factory=dict)
    present: bool = True  # False while the tag is vanished
    first_seen: datetime | None = None


@dataclass(frozen=True, slots=True)
class Stretch:
    """A stretch of time during which the tag pointed at one digest."""

    digest: str
    platforms: Mapping[str, str]
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class TargetView:
    """The recorded state of one watch or pin. The default is 'never checked'."""

    state: State | None = None
    fail_count: int = 0
    error_alerted: bool = False
    behind_since: datetime | None = None  # pins: since when the tag is elsewhere
    behind_evidence: str | None = None  # how behind_since was established
    stale_alerted_at: datetime | None = None
    pin_missing: bool = False
    changes: int = 0  # moves seen (alerted or not)
    newer: tuple[str, ...] = ()  # newer versions available (all of them already reported)


@dataclass(frozen=True, slots=True)
class Policy:
    first_check_notify: bool = False
    error_after: int = 3


#: `Event.target` of a registry's own events (core.outage): `registry:HOST`.
REGISTRY_TARGET = "registry:"


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    target: str  # Target.key, or `registry:HOST` for a registry's own events
    image: str  # canonical repository (a registry's own events: the registry host)
    tag: str  # ("" for a registry's own events)
    at: datetime
    pinned: str | None = None
    old_digest: str | None = None
    new_digest: str | None = None
    platforms_changed: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def registry_wide(self) -> bool:
        """About a whole registry (down, answering again), not one watch or pin."""
        return self.target.startswith(REGISTRY_TARGET)

    @property
    def subject(self) -> str:
        """What the event is about, as titles and logs name it: `image:tag`, or
        `registry HOST`."""
        return f"registry {self.image}" if self.registry_wide else f"{self.image}:{self.tag}"


# --- what one check decided for one target, on its way to the store and the outbox ----------


class DeliveryState(StrEnum):
    """The state of one event's delivery to one notification target."""

    PENDING = "pending"  # to send once due
    HELD = "held"  # recorded, never sent: a quiet window, or `check --no-notify`
    MERGED = "merged"  # covered by a later event (a re-push within the grace period)
    SENT = "sent"


@dataclass(frozen=True, slots=True)
class Route:
    """One notification target an event goes to, and when."""

    notify_id: str  # the keyed hash of its URL (never the URL)
    notify_name: str  # its name or `notify[N]`, safe to print
    state: DeliveryState = DeliveryState.PENDING
    due: datetime | None = None  # not before (grace, digest schedule); None: at once


@dataclass(frozen=True, slots=True)
class PlannedEvent:
    """An event this check decided on, with the routes of its alert."""

    event: Event
    routes: tuple[Route, ...] = ()


@dataclass(frozen=True, slots=True)
class Outcome:
    """Everything one check decided for one target: what to record and what to send."""

    target: Target
    observation: Observation
    before: TargetView  # the target's recorded state before this check
    after: TargetView  # and after it
    events: tuple[PlannedEvent, ...] = ()
    moved: bool = False  # the tag's digest changed in this check
    superseded: tuple[int, ...] = ()  # earlier events whose pending alerts this one covers

    @property
    def failed(self) -> bool:
        return isinstance(self.observation, Failed)


_FULL_VERSION = re.compile(r"v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z][0-9A-Za-z.-]*)?")


def looks_like_full_version(tag: str) -> bool:
    """`1.4.2`, `v2.0.1`, `1.4.2-rc.1`: tags that by convention never move."""
    return _FULL_VERSION.fullmatch(tag) is not None
