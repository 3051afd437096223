"""A registry that is down is one alert, not one per target.

When every tag a cycle checks on one registry fails the way an unreachable registry fails
(refused or reset connections, timeouts, 5xx: `RegistryUnavailable`), the registry is down:
its targets' own `error` alerts are held back, and once every one of them has failed
`error_after` times in a row ONE `error` alert goes out naming the registry and how many
watches and pins it holds up. The first cycle in which the registry answers again (any
answer: a digest, "no such tag", even a refusal) sends ONE `recovered`. A registry seen
down stays down in the database (`Outage`, from the first cycle that saw it so: its
`since`), across restarts, until it answers.

A target failing alone on a registry that answers for other tags is no outage: it gets its
own `error`, as always. One tag is not enough evidence either: a registry is judged down
only from at least two distinct tags failing in one cycle (a registry already alerted down
stays down, whatever one tag says, until one answers).

Pure: what was recorded, what this cycle saw and `now` in; the new state and events out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tagwatch.core.model import REGISTRY_TARGET, Event, EventKind, Failed, Observation, Policy

__all__ = [
    "MIN_TAGS",
    "OUTAGE_REASONS",
    "Outage",
    "OutageDecision",
    "RegistrySeen",
    "decide_outage",
    "is_outage_failure",
    "registry_event_target",
]

#: Failure reasons that mean "the registry did not answer" (errors.RegistryUnavailable).
OUTAGE_REASONS = frozenset({"unavailable"})
#: Failure reasons that are an answer from the registry: it is up, whatever it said.
ANSWER_REASONS = frozenset({"auth", "not_found", "rate_limited", "bad_response"})
#: Distinct tags that must fail in one cycle before a registry is judged down.
MIN_TAGS = 2


def registry_event_target(host: str) -> str:
    """The `Event.target` of a registry's own events (a watch or pin has `kind:ref`)."""
    return REGISTRY_TARGET + host


def is_outage_failure(obs: Observation) -> bool:
    return isinstance(obs, Failed) and obs.reason in OUTAGE_REASONS


def _answered(obs: Observation) -> bool:
    return not isinstance(obs, Failed) or obs.reason in ANSWER_REASONS


@dataclass(frozen=True, slots=True)
class Outage:
    """A registry seen down: since the first cycle that saw it so, why, how many targets it
    holds up, and whether its `error` went out (not yet: waiting for `error_after`)."""

    since: datetime
    message: str
    targets: int
    alerted: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": _iso(self.since),
            "message": self.message,
            "targets": self.targets,
            "alerted": self.alerted,
        }


@dataclass(frozen=True, slots=True)
class RegistrySeen:
    """One registry as one cycle saw it."""

    host: str
    observations: Sequence[Observation]  # one per distinct tag checked on it
    fail_counts: Sequence[int]  # each failing target's failed checks in a row, this one included
    configured: int  # watches and pins on the registry in the configuration
    held_up: Sequence[str] = ()  # `image:tag` of the targets failing, for the alert


@dataclass(frozen=True, slots=True)
class OutageDecision:
    outage: Outage | None  # the registry's state after this cycle (None: not alerted down)
    events: tuple[Event, ...] = ()
    covers: bool = False  # its targets' outage failures are the registry's: no own `error`


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def decide_outage(
    seen: RegistrySeen, before: Outage | None, *, policy: Policy, now: datetime
) -> OutageDecision:
    """The registry's outage state after this cycle, and its `error`/`recovered` alerts."""
    observations = list(seen.observations)
    answered = any(_answered(obs) for obs in observations)
    if before is not None and answered:
        if not before.alerted:  # back before anyone was told: nothing to say
            return OutageDecision(None)
        recovered = _event(
            seen,
            EventKind.RECOVERED,
            now,
            {
                "down_since": _iso(before.since),
                "down_seconds": max(0.0, (now - before.since).total_seconds()),
            },
        )
        return OutageDecision(None, (recovered,), covers=False)
    down = len(observations) >= MIN_TAGS and all(is_outage_failure(o) for o in observations)
    if before is not None and (before.alerted or not down):
        return OutageDecision(before, (), covers=True)  # still down, as far as one can tell
    if not down:
        return OutageDecision(None)
    first = next(o for o in observations if isinstance(o, Failed))
    since = before.since if before is not None else now
    failures = min(seen.fail_counts, default=0)
    if failures < policy.error_after:
        return OutageDecision(
            Outage(since, first.message, seen.configured, alerted=False), covers=True
        )
    outage = Outage(since, first.message, seen.configured)
    error = _event(
        seen,
        EventKind.ERROR,
        now,
        {
            "error": first.message,
            "reason": first.reason,
            "failures": failures,
            "down_since": _iso(since),
            "down_seconds": max(0.0, (now - since).total_seconds()),
        },
    )
    return OutageDecision(outage, (error,), covers=True)


def _event(seen: RegistrySeen, kind: EventKind, now: datetime, details: dict[str, Any]) -> Event:
    """A registry's own event: `image` is the registry host and `tag` is empty."""
    held = list(seen.held_up)
    return Event(
        kind=kind,
        target=registry_event_target(seen.host),
        image=seen.host,
        tag="",
        at=now,
        details={
            "registry": seen.host,
            "targets": seen.configured,
            **({"held_up": held} if held and kind is EventKind.ERROR else {}),
            **details,
        },
    )
