"""What one cycle tells its caller (`tagwatch check`'s table, the daemon's metrics and log):
per target, what was seen and decided; for the cycle, what was sent and what failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tagwatch.core.model import Event, Failed, Observation, Outcome, State, Target, TargetView

__all__ = ["CycleReport", "TargetResult"]


@dataclass(frozen=True, slots=True)
class TargetResult:
    target: Target
    observation: Observation
    view: TargetView  # after this check
    events: tuple[Event, ...]
    moved: bool = False

    @classmethod
    def of(cls, outcome: Outcome) -> TargetResult:
        events = tuple(planned.event for planned in outcome.events)
        return cls(outcome.target, outcome.observation, outcome.after, events, outcome.moved)

    @property
    def state(self) -> State:
        return self.view.state or State.ERROR

    @property
    def failed(self) -> bool:
        return isinstance(self.observation, Failed)


@dataclass(slots=True)
class CycleReport:
    started: datetime
    finished: datetime | None = None
    results: list[TargetResult] = field(default_factory=list)
    registry_events: list[Event] = field(default_factory=list)  # a registry down, or back
    sent: int = 0
    send_failures: int = 0
    error: str | None = None  # a cycle-level failure (the database), not a target's
    abandoned: bool = False  # stopped half-way by a shutdown: nothing was recorded

    @property
    def failed(self) -> bool:
        return self.error is not None or any(r.failed for r in self.results)
