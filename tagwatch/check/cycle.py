"""One check cycle, phase by phase (each phase is a module of this package):

    recall → resolve → pin facts → newer → decide → describe → outages → record → deliver

`run_cycle` is what `tagwatch check` runs once and the daemon runs on a schedule. Each step
says what it did on the logger `tagwatch.steps` (INFO, shown with `-v`); the registry
client logs each HTTP request on `tagwatch.registry` (DEBUG, `-vv`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from tagwatch.check.recall import Known, recall
from tagwatch.check.report import CycleReport, TargetResult
from tagwatch.check.resolve import resolve
from tagwatch.check.workers import Slots, Workers
from tagwatch.core.model import (
    Event,
    Failed,
    Missing,
    Observation,
    Outcome,
    Policy,
    TagKey,
    Target,
)
from tagwatch.errors import StoreError

if TYPE_CHECKING:
    from tagwatch.check.outages import Outages
    from tagwatch.config import Config
    from tagwatch.core.drift import PinFacts
    from tagwatch.notify import Notifier
    from tagwatch.registry.client import RegistryClient
    from tagwatch.store import Store

__all__ = ["run_cycle", "utcnow"]

steps = logging.getLogger("tagwatch.steps")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def run_cycle(
    config: Config,
    store: Store,
    client: RegistryClient,
    notifier: Notifier | None = None,
    *,
    clock: Callable[[], datetime] = utcnow,
    hold_alerts: bool = False,
    refresh_tags: bool = False,
    targets: Sequence[Target] | None = None,
    slots: Slots | None = None,
    abort: threading.Event | None = None,
) -> CycleReport:
    """Check every target once (or `targets`), record, and deliver alerts.

    `slots` is shared by cycles that run at the same time (the daemon's per-registry jobs), so
    that `concurrency` bounds the requests in flight across all of them. `refresh_tags`: read
    tag lists for newer versions anew, whatever their age in the cache. Once `abort` is set
    (the daemon is stopping) no new request starts and nothing of the cycle is recorded."""
    settings = config.settings
    targets = list(config.targets if targets is None else targets)
    report = CycleReport(started=clock())
    now = report.started
    workers = Workers.for_config(config, slots)
    try:
        known = recall(store)
    except StoreError as exc:
        return _finish(report, clock, error=str(exc))
    _say_plan(known, targets, workers)
    began = time.monotonic()
    observations = resolve(targets, known, client, workers, abort)
    _say_resolved(observations, known, time.monotonic() - began)
    # The phases after the HEADs are loaded once these are answered: a `tagwatch check`'s
    # first request does not wait for modules it needs only later (issue 15: start-up).
    from tagwatch.check.decide import decide_all
    from tagwatch.check.describe import describe_moves
    from tagwatch.check.newer import find_newer
    from tagwatch.check.outages import registry_outages
    from tagwatch.check.pinfacts import pin_facts
    from tagwatch.check.record import record

    facts = pin_facts(targets, known, observations, client, workers, now)
    _say_facts(facts)
    ttl = timedelta(seconds=0 if refresh_tags else settings.tag_list_ttl)
    newer = find_newer(targets, observations, store, client, workers, now, ttl)
    _say_newer(targets, newer)
    policy = Policy(settings.first_check_notify, settings.error_after)
    outcomes = decide_all(
        targets,
        known,
        observations,
        facts,
        newer,
        policy=policy,
        now=now,
        store=store,
        notifier=notifier,
    )
    _say_decided(outcomes)
    if settings.describe_moves:
        _say_describing(outcomes)
        outcomes = describe_moves(outcomes, known, observations, client, workers)
    # A request cut short by a shutdown is not a failed check: record nothing.
    if abort is not None and abort.is_set():
        report.results = [TargetResult.of(outcome) for outcome in outcomes]
        report.abandoned = True
        return _finish(report, clock)
    try:
        with store.outage_lock:
            decided = registry_outages(
                config.targets,
                outcomes,
                store.registry_outages(),
                policy=policy,
                now=now,
                notifier=notifier,
            )
            report.results = [TargetResult.of(outcome) for outcome in decided.outcomes]
            report.registry_events = [planned.event for planned in decided.events]
            _say_outages(report.registry_events)
            record(store, now, observations, decided, hold=hold_alerts)
    except StoreError as exc:
        return _finish(report, clock, error=f"{exc}; nothing from this cycle was recorded")
    _say_recorded(observations, decided, hold_alerts)
    if notifier is not None and not hold_alerts:
        _deliver(report, notifier, clock)
    return _finish(report, clock)


def _deliver(report: CycleReport, notifier: Notifier, clock: Callable[[], datetime]) -> None:
    from tagwatch.check.deliver import deliver

    try:
        report.sent, report.send_failures = deliver(notifier, clock)
    except StoreError as exc:
        report.error = str(exc)
    else:
        steps.info(
            "deliver: %d sent, %d failed (a failed one is retried next time)",
            report.sent,
            report.send_failures,
        )


# What each step says on `tagwatch.steps` (-v): one function per step, so that run_cycle
# reads as the list of phases.


def _say_plan(known: Known, targets: Sequence[Target], workers: Workers) -> None:
    if not steps.isEnabledFor(logging.INFO):
        return  # its sets walk every target: at 100,000 watches, not for a line nobody sees
    steps.info(
        "recall: the database knows %s and %s",
        _n(len(known.tags), "tag"),
        _n(len(known.targets), "watch or pin", "watches and pins"),
    )
    tags = {t.tag_key for t in targets}
    registries = sorted({t.ref.registry for t in targets})
    steps.info(
        "resolve: %s of %s on %s (at most %d requests at once)",
        _n(len(tags), "tag"),
        _n(len(targets), "watch or pin", "watches and pins"),
        ", ".join(registries) or "no registry",
        workers.limit,
    )


def _say_facts(facts: Mapping[str, PinFacts]) -> None:
    if facts:
        steps.info(
            "pin facts: %s behind: when they fell behind, whether the pinned digest still exists",
            _n(len(facts), "pin"),
        )


def _say_newer(targets: Sequence[Target], newer: Mapping[str, list[str]]) -> None:
    if any(t.newer for t in targets):
        steps.info(
            "newer: %d of %d watches and pins with a `newer` policy have newer version tags",
            sum(1 for found in newer.values() if found),
            sum(1 for t in targets if t.newer),
        )


def _say_decided(outcomes: Sequence[Outcome]) -> None:
    decided_events = [p.event.kind.value for o in outcomes for p in o.events]
    steps.info("decide: %s", _counted(decided_events, "event") or "no events")


def _say_describing(outcomes: Sequence[Outcome]) -> None:
    moves = sum(1 for o in outcomes if o.moved)
    if moves:
        steps.info("describe: what changed in %s (the images' configs)", _n(moves, "move"))


def _say_outages(events: Sequence[Event]) -> None:
    for event in events:
        steps.info("outages: %s %s", event.kind.value, event.subject)


def _say_recorded(
    observations: Mapping[TagKey, Observation], decided: Outages, hold_alerts: bool
) -> None:
    routes = sum(len(p.routes) for o in decided.outcomes for p in o.events)
    routes += sum(len(p.routes) for p in decided.events)
    steps.info(
        "record: %s checked, %s queued%s",
        _n(len(observations), "tag"),
        _n(routes, "alert delivery", "alert deliveries"),
        " (held: --no-notify)" if hold_alerts else "",
    )


def _n(count: int, one: str, many: str | None = None) -> str:
    """`1 tag`, `2 tags`; `1 watch or pin`, `3 watches and pins`."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _counted(items: Sequence[str], noun: str) -> str:
    """`3 events (moved ×2, stale)`; "" for none."""
    if not items:
        return ""
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    what = ", ".join(f"{k} ×{n}" if n > 1 else k for k, n in counts.items())
    return f"{_n(len(items), noun)} ({what})"


def _say_resolved(observations: Mapping[TagKey, Observation], known: Known, took: float) -> None:
    if not steps.isEnabledFor(logging.INFO):
        return
    moved = unchanged = first = 0
    missing = failed = 0
    for key, obs in observations.items():
        if isinstance(obs, Failed):
            failed += 1
        elif isinstance(obs, Missing):
            missing += 1
        else:
            before = known.tag(key)
            if before is None or before.digest is None:
                first += 1
            elif before.digest == obs.digest and before.present:
                unchanged += 1
            else:
                moved += 1
    steps.info(
        "resolve: %s in %.2fs: %d unchanged, %d moved, %d first seen, %d missing, %d failed",
        _n(len(observations), "tag"),
        took,
        unchanged,
        moved,
        first,
        missing,
        failed,
    )


def _finish(
    report: CycleReport, clock: Callable[[], datetime], error: str | None = None
) -> CycleReport:
    if error is not None:
        report.error = error
    report.finished = clock()
    return report
