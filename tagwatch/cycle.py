"""One check cycle, end to end: config → resolve → decide → record → alert.

    1. recall   what the store knows about every tag and target (two queries)
    2. resolve  every distinct tag once, concurrently, under the global and per-registry
                caps (worker threads do HTTP only)
    3. facts    for pins that are behind: whether the pinned digest still exists, and since
                when the pin is behind (history, else the image's created time)
    4. decide   per target, with the pure `core.drift.decide`
    5. record   the whole cycle in one transaction: tags, targets, events and their deliveries
    6. deliver  every pending delivery (this cycle's and earlier failures)

`run_cycle` is what `tagwatch check` runs once and the daemon runs on a schedule.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar

from tagwatch.config import Config
from tagwatch.core.changes import Change, compare
from tagwatch.core.drift import Decision, PinFacts, decide, make_event, pin_needs_facts
from tagwatch.core.model import (
    Event,
    EventKind,
    Failed,
    Kind,
    Missing,
    Observation,
    Policy,
    Resolved,
    State,
    Stretch,
    TagView,
    Target,
    TargetView,
)
from tagwatch.core.refs import ImageRef
from tagwatch.core.versions import newer_versions, parse_version
from tagwatch.errors import NotFound, RegistryError, StoreError
from tagwatch.notify import Notifier
from tagwatch.registry.client import RegistryClient
from tagwatch.store import Store, TagKey

__all__ = ["CycleReport", "TargetResult", "run_bounded", "run_cycle"]

log = logging.getLogger("tagwatch.cycle")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TargetResult:
    target: Target
    observation: Observation
    view: TargetView  # after this check
    events: tuple[Event, ...]
    moved: bool = False

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
    sent: int = 0
    send_failures: int = 0
    error: str | None = None  # a cycle-level failure (the database), not a target's
    abandoned: bool = False  # stopped half-way by a shutdown: nothing was recorded

    @property
    def failed(self) -> bool:
        return self.error is not None or any(r.failed for r in self.results)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _fact(key: str, what: str, fn: Callable[..., object], *args: object) -> tuple[str, str, object]:
    return key, what, fn(*args)


TAG_LIST_TTL = timedelta(hours=6)


def _fetch_tags(
    client: RegistryClient, ref: ImageRef, key: tuple[str, str]
) -> tuple[tuple[str, str], tuple[list[str], bool] | None]:
    try:
        return key, client.list_tags(ref)
    except RegistryError as exc:
        log.info("%s: cannot list tags for newer versions: %s", ref.name, exc)
        return key, None


def _newer_versions(
    store: Store,
    client: RegistryClient,
    targets: Sequence[Target],
    observations: Mapping[TagKey, Observation],
    now: datetime,
    limit: int,
    caps: Mapping[str, int],
    slots: threading.Semaphore | None,
) -> dict[str, list[str]]:
    """Target key -> newer version tags in its track, for targets with a `newer` policy.
    A repository's tag list is read at most once per TAG_LIST_TTL, shared by its targets."""
    wanted = [
        t
        for t in targets
        if t.newer and parse_version(t.tag) and isinstance(observations[t.tag_key], Resolved)
    ]
    if not wanted:
        return {}
    lists: dict[tuple[str, str], list[str]] = {}
    fetch: list[tuple[tuple[str, str], ImageRef]] = []
    seen: set[tuple[str, str]] = set()
    for target in wanted:
        key = (target.ref.registry, target.ref.repository)
        if key in seen:
            continue
        seen.add(key)
        cached = store.tag_list(*key)
        if cached is not None and now - cached[1] < TAG_LIST_TTL:
            lists[key] = cached[0]
        else:
            fetch.append((key, target.ref.without_digest()))
    jobs = [(ref.registry, partial(_fetch_tags, client, ref, key)) for key, ref in fetch]
    for key, result in run_bounded(jobs, limit, caps, slots=slots):
        if result is not None:
            lists[key] = result[0]
            try:
                store.save_tag_list(*key, result[0], result[1], now)
            except StoreError as exc:
                log.warning("%s", exc)
    out = {}
    for target in wanted:
        found = lists.get((target.ref.registry, target.ref.repository))
        if found is not None:
            assert target.newer is not None
            out[target.key] = newer_versions(target.tag, found, target.newer)
    return out


def _with_newer(
    target: Target, view: TargetView, decision: Decision, found: list[str] | None, now: datetime
) -> Decision:
    """Keep the reported newer versions in the target's state; a version not reported before
    is a `newer` event (once)."""
    if found is None:
        if decision.target.newer == view.newer:
            return decision
        return replace(decision, target=replace(decision.target, newer=view.newer))
    fresh = [v for v in found if v not in view.newer]
    events = decision.events
    if fresh:
        events = (
            *events,
            make_event(
                target,
                EventKind.NEWER,
                now,
                details={"newer": fresh, "newest": found[-1], "policy": target.newer},
            ),
        )
    return replace(decision, target=replace(decision.target, newer=tuple(found)), events=events)


def _merge_within_grace(
    store: Store, target: Target, event: Event, now: datetime, superseded: list[int]
) -> Event:
    """A move while an earlier move's alert still waits out the target's grace: one alert
    covers both (from the first old digest to the new one); the earlier ones are merged."""
    if not target.grace or event.kind not in (EventKind.MOVED, EventKind.REWRITTEN):
        return event
    waiting = store.waiting_moves(target.key, now)
    if not waiting:
        return event
    superseded.extend(event_id for event_id, _, _ in waiting)
    details = {**event.details, "moves": len(waiting) + 1, "first_moved": waiting[0][2]}
    return replace(event, old_digest=waiting[0][1], details=details)


def _describe(
    client: RegistryClient,
    target: Target,
    before: TagView | None,
    seen: Resolved,
    index: int,
    old_digest: str | None = None,
) -> tuple[int, Change]:
    """Compare the image a watch followed before with the one it follows now. Never fails
    the check: what cannot be read is `unknown`."""
    ref = target.ref.without_digest()
    prefer = target.platforms
    new = old = None
    try:
        new = client.image_facts(ref, seen.digest, seen.platforms, prefer)
        old_digest = old_digest or (before.digest if before else None)
        if old_digest:
            known = before.platforms if before and before.digest == old_digest else None
            old = client.image_facts(ref, old_digest, known, prefer)
    except RegistryError as exc:
        log.info("%s: what changed is unknown: %s", target.display, exc)
    return index, compare(old, new, before.platforms if before else None, seen.platforms)


def _holding(slots: threading.Semaphore, job: Callable[[], T]) -> T:
    with slots:
        return job()


def registry_caps(config: Config) -> dict[str, int]:
    """Requests in flight per registry: its own `concurrency`, else half the global limit
    when several registries are checked (so one slow registry cannot take every slot from
    the others), else the global limit."""
    limit = config.settings.concurrency
    hosts = {target.ref.registry for target in config.targets}
    default = max(1, (limit + 1) // 2) if len(hosts) > 1 else limit
    caps = dict.fromkeys(hosts, default)
    for host, registry in config.registries.items():
        if registry.concurrency is not None:
            caps[host] = min(registry.concurrency, limit)
    return caps


def run_bounded(
    jobs: Sequence[tuple[str, Callable[[], T]]],
    limit: int,
    caps: Mapping[str, int],
    slots: threading.Semaphore | None = None,
) -> list[T]:
    """Run `(group, job)` pairs with at most `limit` running at once and at most
    `caps[group]` per group; returns results in job order. A group at its cap waits in its
    own queue and never holds a slot that another group could use.

    `limit` long-lived worker threads pull the next job themselves (round-robin over the
    groups below their cap) instead of a coordinator handing out one future per job: at a
    few thousand tags per cycle, waking a coordinator per completed request cost about a
    fifth of the cycle's CPU."""
    if not jobs:
        return []
    queues: dict[str, deque[int]] = {}
    for index, (group, _) in enumerate(jobs):
        queues.setdefault(group, deque()).append(index)
    running: dict[str, int] = dict.fromkeys(queues, 0)
    order = deque(queues)
    results: list[T | None] = [None] * len(jobs)
    errors: list[BaseException] = []
    lock = threading.Condition()

    def take() -> tuple[str, int] | None:
        """The next job whose group is below its cap; None when every job is taken."""
        with lock:
            while True:
                if errors or not queues:
                    return None
                for _ in range(len(order)):
                    group = order[0]
                    order.rotate(-1)
                    if running[group] < caps.get(group, limit):
                        queue = queues[group]
                        index = queue.popleft()
                        if not queue:
                            del queues[group]
                            order.remove(group)
                        running[group] += 1
                        return group, index
                lock.wait()  # every group with work left is at its cap

    def work() -> None:
        while (item := take()) is not None:
            group, index = item
            try:
                job = jobs[index][1]
                results[index] = _holding(slots, job) if slots is not None else job()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                with lock:
                    errors.append(exc)
            finally:
                with lock:
                    running[group] -= 1
                    lock.notify_all()

    workers = [
        threading.Thread(target=work, name=f"check-{n}", daemon=True)
        for n in range(max(1, min(limit, len(jobs))))
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return results  # type: ignore[return-value]


def _observe(
    client: RegistryClient, ref: ImageRef, known: Resolved | None, abort: threading.Event | None
) -> Observation:
    if abort is not None and abort.is_set():
        return Failed("abandoned: tagwatch is stopping", "abandoned")
    try:
        return client.resolve(ref, known)
    except NotFound as exc:
        return Missing(str(exc))
    except RegistryError as exc:
        return Failed(str(exc), exc.reason)
    except Exception as exc:  # noqa: BLE001 - one target's bug must not end the cycle
        log.exception("internal error checking %s", ref)
        return Failed(f"internal error: {type(exc).__name__}: {exc}", "internal")


def _known(view: TagView | None) -> Resolved | None:
    if view is None or view.digest is None or not view.present:
        return None
    return Resolved(view.digest, "", view.platforms)


def _evidence_from_history(
    pinned: str, history: Sequence[Stretch], now: datetime
) -> datetime | None:
    """When the tag moved away from the pinned digest, if the history saw it move."""
    for i, stretch in enumerate(history):  # newest first
        if stretch.digest == pinned or pinned in stretch.platforms.values():
            return now if i == 0 else history[i - 1].first_seen
    return None


class _Lookups:
    """The pin facts that cost HTTP, fetched on worker threads."""

    def __init__(self, client: RegistryClient) -> None:
        self.client = client

    def exists(self, ref: ImageRef, digest: str) -> bool | None:
        try:
            return self.client.exists(ref, digest)
        except RegistryError as exc:
            log.warning(
                "%s: could not check that pinned %s still exists: %s", ref.name, digest, exc
            )
            return None

    def created(self, ref: ImageRef, seen: Resolved) -> datetime | None:
        try:
            return self.client.image_created(ref, seen)
        except RegistryError as exc:
            log.info("%s: no created time for the current image: %s", ref.name, exc)
            return None


def run_cycle(
    config: Config,
    store: Store,
    client: RegistryClient,
    notifier: Notifier | None = None,
    *,
    clock: Callable[[], datetime] = utcnow,
    hold_alerts: bool = False,
    targets: Sequence[Target] | None = None,
    slots: threading.Semaphore | None = None,
    abort: threading.Event | None = None,
) -> CycleReport:
    """Check every target once (or `targets`), record, and deliver alerts.

    `slots` is shared by cycles that run at the same time (the daemon's per-registry jobs), so
    that `concurrency` bounds the requests in flight across all of them. Once `abort` is set
    (the daemon is stopping) no new request starts and nothing of the cycle is recorded."""
    settings = config.settings
    policy = Policy(settings.first_check_notify, settings.error_after)
    targets = list(config.targets if targets is None else targets)
    report = CycleReport(started=clock())
    now = report.started
    try:
        tags = store.tag_views()
        views = store.target_views()
    except StoreError as exc:
        report.error = str(exc)
        report.finished = clock()
        return report

    # 2. resolve each distinct tag once, however many watches and pins name it.
    refs: dict[TagKey, ImageRef] = {}
    for target in targets:
        refs.setdefault(target.tag_key, target.ref.without_digest())
    caps = registry_caps(config)
    keys = list(refs)
    observed = run_bounded(
        [
            (refs[k].registry, partial(_observe, client, refs[k], _known(tags.get(k)), abort))
            for k in keys
        ],
        settings.concurrency,
        caps,
        slots=slots,
    )
    observations: dict[TagKey, Observation] = dict(zip(keys, observed, strict=True))

    # 3. facts for pins that are behind (and history for tags that moved).
    histories: dict[TagKey, list[Stretch]] = {}

    def history(key: TagKey) -> list[Stretch]:
        if key not in histories:
            histories[key] = store.history(key) if key in tags else []
        return histories[key]

    lookups = _Lookups(client)
    fact_jobs: list[tuple[str, Callable[[], tuple[str, str, object]]]] = []
    facts: dict[str, PinFacts] = {}
    for target in targets:
        obs = observations[target.tag_key]
        view = views.get(target.key, TargetView())
        if not pin_needs_facts(target, view, obs):
            continue
        assert isinstance(obs, Resolved) and target.pinned is not None
        ref, pinned = target.ref, target.pinned
        facts[target.key] = PinFacts()
        fact_jobs.append(
            (
                ref.registry,
                partial(_fact, target.key, "exists", lookups.exists, ref.without_digest(), pinned),
            )
        )
        if view.behind_since is None:
            since = _evidence_from_history(pinned, history(target.tag_key), now)
            if since is not None:
                facts[target.key] = PinFacts(evidence=(since, "history"))
            else:
                fact_jobs.append(
                    (
                        ref.registry,
                        partial(
                            _fact,
                            target.key,
                            "created",
                            lookups.created,
                            ref.without_digest(),
                            obs,
                        ),
                    )
                )
    for key, what, value in run_bounded(fact_jobs, settings.concurrency, caps, slots=slots):
        current = facts[key]
        if what == "exists":
            facts[key] = PinFacts(current.evidence, value if isinstance(value, bool) else None)
        elif isinstance(value, datetime) and current.evidence is None:
            facts[key] = PinFacts((min(value, now), "image created"), current.pinned_exists)

    # 3c. newer versions, for targets that ask: the repository's tag list (cached for hours).
    newer = _newer_versions(
        store, client, targets, observations, now, settings.concurrency, caps, slots
    )

    # 4. decide, per target.
    events: list[Event] = []
    routes: dict[int, list[tuple[str, str, str, str | None]]] = {}
    superseded: list[int] = []
    changes: dict[str, tuple[TagKey, str, str | None, TargetView, TargetView]] = {}
    decided: list[tuple[Target, Observation, Decision, int, int]] = []
    for target in targets:
        obs = observations[target.tag_key]
        before = tags.get(target.tag_key)
        view = views.get(target.key, TargetView())
        moved = (
            isinstance(obs, Resolved)
            and before is not None
            and before.digest is not None
            and before.digest != obs.digest
        )
        decision = decide(
            target,
            before,
            view,
            obs,
            policy=policy,
            now=now,
            history=history(target.tag_key) if moved and target.kind is Kind.WATCH else (),
            pin=facts.get(target.key),
        )
        decision = _with_newer(target, view, decision, newer.get(target.key), now)
        for event in decision.events:
            event = _merge_within_grace(store, target, event, now, superseded)
            if notifier is not None:
                routes[len(events)] = notifier.routes(event, target, now)
                if event.details.get("moves") and event.old_digest == event.new_digest:
                    # moved and back within the grace period: recorded, nothing to say
                    routes[len(events)] = [
                        (r[0], r[1], "merged", None) for r in routes[len(events)]
                    ]
            events.append(event)
        changes[target.key] = (
            target.tag_key,
            target.kind.value,
            target.pinned,
            view,
            decision.target,
        )
        decided.append((target, obs, decision, len(events) - len(decision.events), len(events)))

    # 4b. what changed, for moves only: the old and the new image's manifest and config.
    describe = [
        (i, e)
        for i, e in enumerate(events)
        if e.kind in (EventKind.MOVED, EventKind.REWRITTEN) and settings.describe_moves
    ]
    if describe:
        by_key = {t.key: t for t in targets}
        jobs = []
        for index, event in describe:
            target = by_key[event.target]
            before = tags.get(target.tag_key)
            obs = observations[target.tag_key]
            assert isinstance(obs, Resolved)
            jobs.append(
                (
                    target.ref.registry,
                    partial(_describe, client, target, before, obs, index, event.old_digest),
                )
            )
        for index, found in run_bounded(jobs, settings.concurrency, caps, slots=slots):
            event = events[index]
            details = {**event.details, "change": found.kind, "summary": found.summary}
            if found.details:
                details["what_changed"] = dict(found.details)
            events[index] = replace(event, details=details)

    for target, obs, decision, start, end in decided:
        report.results.append(
            TargetResult(target, obs, decision.target, tuple(events[start:end]), decision.moved)
        )

    # 5. record everything in one transaction, unless the cycle was abandoned half-way: a
    #    request cut short by a shutdown is not a failed check.
    if abort is not None and abort.is_set():
        report.abandoned = True
        report.finished = clock()
        return report
    try:
        store.record(
            now, observations, changes, events, routes, hold=hold_alerts, superseded=superseded
        )
    except StoreError as exc:
        report.error = f"{exc}; nothing from this cycle was recorded"
        report.finished = clock()
        return report
    for event in events:  # logged once they are facts, i.e. recorded
        what = (
            f"{event.old_digest} -> {event.new_digest}"
            if event.old_digest and event.new_digest and event.old_digest != event.new_digest
            else event.new_digest or event.details.get("error") or ""
        )
        if event.details.get("summary"):
            what += f" ({event.details['summary']})"
        log.info("%s %s:%s: %s", event.kind.value, event.image, event.tag, what)

    # 6. deliver (this cycle's alerts and any that failed before).
    if notifier is not None and not hold_alerts:
        try:
            report.sent, report.send_failures = notifier.deliver(clock)
        except StoreError as exc:
            report.error = str(exc)
    report.finished = clock()
    return report
