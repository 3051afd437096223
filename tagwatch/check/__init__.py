"""The check: one cycle from what is known to the alerts that go out, one module per phase.

    recall     what the store knows about every tag and target (two queries)
    resolve    every distinct tag once, concurrently, under the global and per-registry caps
    pinfacts   for pins that are behind: does the pinned digest still exist, since when behind
    newer      newer version tags, for targets with a `newer` policy (tag lists cached)
    decide     per target, the pure `core.drift.decide`; grace merging; each alert's routes
    describe   for moves: what changed between the old and the new image
    outages    per registry, `core.outage.decide_outage`: a registry down is one alert
    record     the whole cycle in one transaction
    deliver    every due delivery of the outbox

`cycle.run_cycle` calls them in that order; `workers` runs every phase's HTTP under the
concurrency limits, `report` is what a cycle returns.
"""

from tagwatch.check.cycle import run_cycle, utcnow
from tagwatch.check.report import CycleReport, TargetResult
from tagwatch.check.workers import Workers, registry_caps, run_bounded

__all__ = [
    "CycleReport",
    "TargetResult",
    "Workers",
    "registry_caps",
    "run_bounded",
    "run_cycle",
    "utcnow",
]
