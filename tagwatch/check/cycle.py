"""One check cycle, phase by phase (each phase is a module of this package):

    recall → resolve → pin facts → newer → decide → describe → outages → record → deliver

`run_cycle` is what `tagwatch check` runs once and the daemon runs on a schedule."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from tagwatch.check.decide import decide_all
from tagwatch.check.deliver import deliver
from tagwatch.check.describe import describe_moves
from tagwatch.check.newer import find_newer
from tagwatch.check.outages import registry_outages
from tagwatch.check.pinfacts import pin_facts
from tagwatch.check.recall import recall
from tagwatch.check.record import record
from tagwatch.check.report import CycleReport, TargetResult
from tagwatch.check.resolve import resolve
from tagwatch.check.workers import Workers
from tagwatch.config import Config
from tagwatch.core.model import Policy, Target
from tagwatch.errors import StoreError
from tagwatch.notify import Notifier
from tagwatch.registry.client import RegistryClient
from tagwatch.store import Store

__all__ = ["run_cycle", "utcnow"]


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
    slots: threading.Semaphore | None = None,
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
    observations = resolve(targets, known, client, workers, abort)
    facts = pin_facts(targets, known, observations, client, workers, now)
    ttl = timedelta(seconds=0 if refresh_tags else settings.tag_list_ttl)
    newer = find_newer(targets, observations, store, client, workers, now, ttl)
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
    if settings.describe_moves:
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
            record(store, now, observations, decided, hold=hold_alerts)
    except StoreError as exc:
        return _finish(report, clock, error=f"{exc}; nothing from this cycle was recorded")
    if notifier is not None and not hold_alerts:
        try:
            report.sent, report.send_failures = deliver(notifier, clock)
        except StoreError as exc:
            report.error = str(exc)
    return _finish(report, clock)


def _finish(
    report: CycleReport, clock: Callable[[], datetime], error: str | None = None
) -> CycleReport:
    if error is not None:
        report.error = error
    report.finished = clock()
    return report
