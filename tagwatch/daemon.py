"""`tagwatch run`: the check cycle on a schedule, with metrics, reloads and systemd.

Threads and who owns what:

* The **main thread** loads the config, starts everything, then waits for signals: SIGHUP
  reloads, SIGTERM/SIGINT stop. It also sends systemd's watchdog pings, so a wedged main
  loop or a dead scheduler gets the service restarted.
* **APScheduler** (3.x, `BackgroundScheduler`) runs one job per registry and interval, or
  per registry and cron `schedule` (APScheduler's own CronTrigger, in [tagwatch] timezone;
  a first cycle at start all the same): the tags of one registry are checked together (one
  token per repository, one connection pool), and a slow registry only delays its own job.
  `max_instances=1` and `coalesce` mean a long cycle or a suspended host never piles runs
  up; a run that is late by up to one interval still runs. A tag is always in exactly one
  job (its targets' shortest interval wins, an interval over a schedule), so no tag is ever
  checked twice at once.
* Each job runs `check.run_cycle` over its targets, sharing the daemon's registry client
  (its token cache and connections outlive cycles; a registry's connections are closed when
  its cycle ends if the next is further away than IDLE_TIMEOUT), the store and `FairSlots`,
  which keeps `concurrency` global across jobs while a stuck registry holds only its share.
* The **web listener** (tagwatch.web: /metrics, /healthz, the status page and the
  read-only API) answers on a thread of its own with a small pool of workers, and reads
  state from the store at request time; its connections are bounded so that nothing on
  that port can starve the checks.

A reload builds the new configuration completely (config, secrets, client, notifier) before
anything changes; if any of it fails, the old configuration keeps running and the error is
logged. Recorded state is keyed by target, so it survives reloads and restarts.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

from tagwatch.check import CycleReport, run_cycle, utcnow
from tagwatch.config import Config, check_secrets, load_config
from tagwatch.core.durations import format_duration
from tagwatch.core.listen import parse_listen
from tagwatch.core.model import Kind, TagKey, Target
from tagwatch.core.times import format_time
from tagwatch.errors import TagwatchError
from tagwatch.metrics import Metrics, StateRow, state_rows
from tagwatch.notify import Notifier
from tagwatch.registry.client import RegistryClient, client_for
from tagwatch.registry.heads import IDLE_TIMEOUT
from tagwatch.registry.slots import FairSlots
from tagwatch.sdnotify import SystemdNotifier
from tagwatch.sources import read_sources
from tagwatch.store import Store
from tagwatch.timing import Cron, longest_gap, next_fire, zone
from tagwatch.web import Server, WebApp

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

__all__ = ["Daemon", "JobPlan", "plan_jobs"]

log = logging.getLogger("tagwatch.daemon")

STOP_GRACE = 5.0  # seconds a stopping daemon waits for running cycles before abandoning them


def give_back_free_memory() -> bool:
    """Return the C heap's free pages to the kernel (glibc's `malloc_trim(0)`); False where
    the C library has no such call (musl, macOS).

    A cycle that goes the long way (a registry down: 16 worker threads, errors, httpx) raises
    the heap's high-water mark, and glibc keeps the pages it freed. Measured in one process
    over 1,000 tags, a cycle with the registry down took RSS from 55.9 to 60.5 MB, flat for
    the next 30 cycles and after gc.collect(); malloc_trim(0) took it to 54.5 MB. It costs
    about 0.1 ms once there is little to give back. It trims every arena, but what a thread
    left in an arena of its own stays: see one_malloc_arena."""
    trim = _libc_function("malloc_trim")
    if trim is None:
        return False
    trim(0)
    return True


_M_ARENA_MAX = -8  # glibc's mallopt() parameter for MALLOC_ARENA_MAX


def one_malloc_arena(env: Mapping[str, str]) -> bool:
    """Make every thread allocate from the C heap's main arena (glibc's
    `mallopt(M_ARENA_MAX, 1)`), unless MALLOC_ARENA_MAX is set in `env` (glibc took it at
    start). False where nothing was changed: the variable is set, or the C library has no
    mallopt (musl, macOS). Call it before other threads start.

    glibc gives a thread that allocates while another holds an arena an arena of its own, up
    to 8 per CPU, and never frees one; what a later thread leaves there pins its pages. A
    registry restart sends resolve the long way (16 worker threads at once): in the endurance
    bench that made 11 new arenas, and what the next reload built on one of them held 0.75 MB
    of it. Over 500 tags and 400 cycles, RSS rose +0.9 MB at the restart and +0.7 at the
    reload with arenas per thread, +0.1 and +0.4 with one. Python threads allocate under the
    GIL, so they seldom wait for the arena's lock; the cycle's CPU time did not rise."""
    if "MALLOC_ARENA_MAX" in env:
        return False
    mallopt = _libc_function("mallopt")
    return mallopt is not None and mallopt(_M_ARENA_MAX, 1) == 1


@functools.cache
def _libc_function(name: str) -> Callable[..., int] | None:
    import ctypes

    try:
        return getattr(ctypes.CDLL(None), name, None)
    except OSError:
        return None


class _SkippedRunsFilter(logging.Filter):
    """Drops APScheduler's "skipped: maximum number of running instances reached", logged at
    every tick while a cycle runs long; the daemon says it once per stretch instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances" not in str(record.msg)


_SKIPPED_RUNS = _SkippedRunsFilter()


@dataclass(frozen=True, slots=True)
class JobPlan:
    id: str
    registry: str
    interval: float  # a cron job: the longest wait between two of its fires
    targets: tuple[Target, ...]
    cron: tuple[str, ...] = ()  # cron expressions: fires at any of them instead of `interval`
    timezone: str = "UTC"  # the cron expressions' zone

    def crons(self) -> list[Cron]:
        return [Cron(expression, self.timezone) for expression in self.cron]


def plan_jobs(config: Config, now: datetime | None = None) -> dict[str, JobPlan]:
    """One job per registry and interval, or per registry and cron schedule. A tag named by
    several targets is checked in one job: at the shortest of their intervals when any of
    them has one (an interval wins over a schedule: checked at least as often as each asks),
    else at every time any of their schedules names."""
    default = config.settings.interval
    zone_name = config.settings.timezone
    tag_interval: dict[TagKey, float] = {}
    tag_crons: dict[TagKey, set[str]] = {}
    for target in config.targets:
        if target.schedule is not None:
            tag_crons.setdefault(target.tag_key, set()).add(target.schedule)
            continue
        interval = target.interval or default
        tag_interval[target.tag_key] = min(interval, tag_interval.get(target.tag_key, interval))
    groups: dict[tuple[str, float | tuple[str, ...]], list[Target]] = {}
    for target in config.targets:
        key = target.tag_key
        when = tag_interval[key] if key in tag_interval else tuple(sorted(tag_crons[key]))
        groups.setdefault((target.ref.registry, when), []).append(target)
    plans = {}
    for (registry, when), targets in groups.items():
        if isinstance(when, tuple):
            zone_note = "" if zone_name == "UTC" else f" ({zone_name})"
            job_id = f"{registry} at {' | '.join(when)}{zone_note}"
            crons = [Cron(expression, zone_name) for expression in when]
            gap = longest_gap(crons, now or datetime.now(UTC))
            plans[job_id] = JobPlan(job_id, registry, gap, tuple(targets), when, zone_name)
        else:
            job_id = f"{registry} every {format_duration(when)}"
            plans[job_id] = JobPlan(job_id, registry, when, tuple(targets))
    return plans


def _registries(jobs: Mapping[str, JobPlan]) -> set[str]:
    return {plan.registry for plan in jobs.values()}


@dataclass
class _Runtime:
    """Everything built from one configuration. Replaced whole on reload; the old one is
    closed once the cycles still using it are done."""

    config: Config
    client: RegistryClient
    notifier: Notifier | None
    jobs: dict[str, JobPlan]
    users: int = 0
    retired: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acquire(self) -> None:
        with self.lock:
            self.users += 1

    def release(self) -> None:
        with self.lock:
            self.users -= 1
            done = self.retired and self.users == 0
        if done:
            self.client.close()

    def retire(self) -> None:
        with self.lock:
            self.retired = True
            done = self.users == 0
        if done:
            self.client.close()


class Daemon:
    def __init__(
        self,
        config_path: str,
        *,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config_path = config_path
        self.env = os.environ if env is None else env
        self.clock = clock
        self.systemd = SystemdNotifier(self.env)
        self._wake = threading.Event()
        self._signals: deque[int] = deque()
        self._abort = threading.Event()
        self._in_flight: set[TagKey] = set()
        self._flight_lock = threading.Lock()
        self._running_jobs = 0
        self._idle = threading.Condition()
        self._done: dict[str, float] = {}  # job id -> monotonic end of its last cycle
        # One more at each new set of targets (a reload, a source), always just after it is
        # in place: a scrape in between reads the new targets under the old version (made
        # again at the next scrape), never old targets under the new one.
        self._targets_version = 0
        self._since: dict[str, float] = {}  # job id -> monotonic time it was scheduled
        self._started: dict[str, float] = {}  # job id -> monotonic start of its running cycle
        self._overrun: set[str] = set()  # jobs whose skipped runs were logged
        # job id -> (targets failing, end) of its last cycle: the status line's two figures,
        # not the whole report (100,000 results, held beside the next cycle's).
        self._last_report: dict[str, tuple[int, datetime | None]] = {}
        self._last_error: dict[str, str] = {}
        self._notes: set[str] = set()  # containers of [[source]] engines that are not pins
        self.server: Server | None = None
        self.stuck = 0  # cycles still blocked in a request after the stop: see cli.cmd_run
        # Built by run() from the configuration (read there, so that its errors are exit
        # status 2 and nothing starts half-way):
        self.base_config: Config  # the file as read, before its [[source]] files are scanned
        self.store: Store
        self.metrics: Metrics
        self.runtime: _Runtime  # config, client, notifier and jobs; replaced whole on reload
        self.slots: FairSlots  # `concurrency`, shared fairly by every job's cycle
        self.scheduler: BackgroundScheduler

    # --- start and stop ---------------------------------------------------------------------

    def run(self) -> int:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        config = self._load()  # a ConfigError here is exit status 2
        self.store = Store(config.settings.database)
        self.metrics = Metrics(
            rows=self._state_rows, pending=self._pending_alerts, version=self._state_version
        )
        config = self._expand(config)
        self.runtime = self._build(config)
        self._targets_version += 1
        self.metrics.interval.set(
            max((p.interval for p in self.runtime.jobs.values()), default=config.settings.interval)
        )
        self.slots = FairSlots(config.settings.concurrency, _registries(self.runtime.jobs))
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(max_workers=64)},
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES

        self.scheduler.add_listener(self._skipped, EVENT_JOB_MAX_INSTANCES)
        logging.getLogger("apscheduler.scheduler").addFilter(_SKIPPED_RUNS)
        self._schedule({}, self.runtime.jobs, config)
        self._schedule_sources(config)
        if config.metrics_listen:
            listen = parse_listen(config.metrics_listen)  # checked by the configuration
            try:
                self.server = Server(
                    listen.host,
                    listen.port,
                    WebApp(
                        self.metrics,
                        self.health,
                        config=lambda: self.runtime.config,
                        store=self.store,
                        clock=self.clock,
                    ),
                    on_drop=self.metrics.observe_dropped_connection,
                )
            except OSError as exc:
                raise TagwatchError(
                    f"{config.path}: metrics.listen: cannot listen on {config.metrics_listen}: "
                    f"{exc.strerror or exc}"
                ) from None
            self.server.address = listen.with_port(self.server.port)
            if listen.any_port:
                log.info(
                    "metrics: listen %s asks for any free port: listening on %s",
                    config.metrics_listen,
                    self.server.address,
                )
            self.server.start()
        previous = self._install_signals()
        self.scheduler.start()
        watches = sum(1 for t in config.targets if t.kind is Kind.WATCH)
        log.info(
            "tagwatch started: %d watches, %d pins, %d jobs, every %s; metrics %s; database %s",
            watches,
            len(config.targets) - watches,
            len(self.runtime.jobs),
            format_duration(config.settings.interval),
            f"http://{self.server.address}/metrics" if self.server else "off",
            config.settings.database,
        )
        self._log_jobs(self.runtime.jobs)
        self.systemd.ready(self.status_line())
        # This frame lives as long as the daemon: holding the first configuration here would
        # keep its targets alive beside the one each reload makes (a whole second set).
        del config
        try:
            self._loop()
        finally:
            self._shutdown(previous)
        return 0

    def _loop(self) -> None:
        watchdog = self.systemd.watchdog_interval
        while True:
            self._wake.wait(watchdog if watchdog else None)
            self._wake.clear()
            while self._signals:
                signum = self._signals.popleft()
                if signum == signal.SIGHUP:
                    self.reload()
                else:
                    log.info("%s: stopping", signal.Signals(signum).name)
                    return
            if watchdog and self.scheduler.running:
                self.systemd.watchdog()

    def _install_signals(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}
        for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)
        self._wake.set()

    def _skipped(self, event: Any) -> None:
        """A job's run is skipped because its last cycle still runs (a registry that hangs):
        said once per stretch, not at every tick (APScheduler's own line is filtered)."""
        job_id = str(event.job_id)
        if job_id in self._overrun:
            return
        self._overrun.add(job_id)
        started = self._started.get(job_id)
        how_long = f" after {format_duration(time.monotonic() - started)}" if started else ""
        log.warning(
            "cycle %s still running%s: its next runs are skipped until it ends", job_id, how_long
        )

    def _shutdown(self, previous: Mapping[int, Any]) -> None:
        self.systemd.stopping()
        self.scheduler.shutdown(wait=False)
        logging.getLogger("apscheduler.scheduler").removeFilter(_SKIPPED_RUNS)
        deadline = time.monotonic() + STOP_GRACE
        with self._idle:
            while self._running_jobs and time.monotonic() < deadline:
                self._idle.wait(deadline - time.monotonic())
            running = self._running_jobs
        if running:
            log.warning("abandoning %d running cycle(s); nothing from them is recorded", running)
            self._abort.set()
            self.runtime.client.close()  # idle connections go; a blocked read may not
            with self._idle:
                self._idle.wait_for(lambda: self._running_jobs == 0, timeout=1.0)
                self.stuck = self._running_jobs
        if self.server is not None:
            self.server.close()
        self.runtime.retire()
        self.store.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        log.info("tagwatch stopped")

    # --- configuration ----------------------------------------------------------------------

    def _load(self) -> Config:
        """The configuration file as written (its [[source]] targets come from _expand)."""
        config = load_config(self.config_path, self.env)
        check_secrets(config, self.env)
        self.base_config = config
        return config

    def _expand(self, config: Config) -> Config:
        """Read every [[source]] (files, engines, clusters): the config with their targets.
        A source that cannot be read is logged, and its last reading stands in."""
        expansion = read_sources(config, self.store, now=self.clock())
        notes = set(expansion.notes)
        for note in sorted(notes - self._notes):
            log.info("not checked: %s", note)
        self._notes = notes
        for status in expansion.statuses:
            if status.error:
                log.warning("%s (%s): %s", status.source.where, status.source.label, status.error)
        self.metrics.observe_sources(
            (s.source.label, s.ok, s.targets) for s in expansion.statuses
        )
        return expansion.config

    def refresh_sources(self) -> None:
        """Read the [[source]] entries again; when the targets they yield changed (or a
        source went down or came back), apply it as a reload would (the registry client, its
        tokens and the notifier are kept)."""
        runtime = self.runtime
        config = self._expand(self.base_config)
        if set(config.targets) == set(runtime.config.targets):
            return
        before = {t.key for t in runtime.config.targets}
        jobs = plan_jobs(config, self.clock())
        old_jobs, runtime.jobs = runtime.jobs, jobs
        runtime.config = config
        self._targets_version += 1
        self.slots.set_groups(_registries(jobs))
        self._schedule(old_jobs, jobs, config)
        after = {t.key for t in config.targets}
        log.info(
            "sources changed: %d targets added, %d removed",
            len(after - before),
            len(before - after),
        )

    def _build(self, config: Config) -> _Runtime:
        notifier = (
            Notifier(config.notify, self.store, self.env, config.settings.timezone)
            if config.notify
            else None
        )
        client = client_for(config, observer=self.metrics.observe_request)
        return _Runtime(config, client, notifier, plan_jobs(config, self.clock()))

    def reload(self) -> bool:
        """Apply the config file again; on any error keep the running configuration."""
        self.systemd.reloading()
        old = self.runtime
        try:
            config = self._expand(self._load())
            new = self._build(config)
        except TagwatchError as exc:
            log.error("reload refused, still running the previous configuration: %s", exc)
            self.systemd.ready(self.status_line())
            return False
        for key, now_, before in (
            ("database", config.settings.database, old.config.settings.database),
            ("metrics.listen", config.metrics_listen, old.config.metrics_listen),
        ):
            if now_ != before:
                log.warning(
                    "%s changed (%s -> %s): takes effect at the next restart", key, before, now_
                )
        if config.settings.concurrency != old.config.settings.concurrency:
            self.slots = FairSlots(config.settings.concurrency, _registries(new.jobs))
        else:
            self.slots.set_groups(_registries(new.jobs))
        self.metrics.interval.set(
            max((p.interval for p in new.jobs.values()), default=config.settings.interval)
        )
        self.runtime = new
        self._targets_version += 1
        self._schedule(old.jobs, new.jobs, config, old.config)
        self._log_jobs({k: plan for k, plan in new.jobs.items() if k not in old.jobs})
        self._schedule_sources(config)
        old.retire()
        before_keys = {t.key for t in old.config.targets}
        after_keys = {t.key for t in config.targets}
        log.info(
            "reloaded %s: %d targets (%d added, %d removed), %d jobs",
            self.config_path,
            len(after_keys),
            len(after_keys - before_keys),
            len(before_keys - after_keys),
            len(new.jobs),
        )
        self.systemd.ready(self.status_line())
        return True

    def _schedule(
        self,
        old: Mapping[str, JobPlan],
        new: Mapping[str, JobPlan],
        config: Config,
        old_config: Config | None = None,
    ) -> None:
        from apscheduler.triggers.combining import OrTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        jitter = config.settings.jitter
        jitter_changed = old_config is not None and old_config.settings.jitter != jitter
        now = datetime.now(UTC)
        for job_id in old.keys() - new.keys():
            self.scheduler.remove_job(job_id)
            self._done.pop(job_id, None)
            self._since.pop(job_id, None)
        for job_id, plan in new.items():
            trigger: Any
            if plan.cron:  # at the times it names, in its zone (no jitter: "at 9:00" is 9:00)
                triggers = [cron.trigger() for cron in plan.crons()]
                trigger = triggers[0] if len(triggers) == 1 else OrTrigger(triggers)
            else:
                trigger = IntervalTrigger(
                    seconds=plan.interval, jitter=jitter or None, timezone=UTC
                )
            if job_id not in old:
                self.scheduler.add_job(
                    self._run_job,
                    trigger,
                    args=[job_id],
                    id=job_id,
                    name=job_id,
                    next_run_time=now,  # a first cycle at start, and at once for new jobs
                    misfire_grace_time=max(1, int(plan.interval)),
                )
                self._since[job_id] = time.monotonic()
            elif jitter_changed and not plan.cron:
                self.scheduler.reschedule_job(job_id, trigger=trigger)

    def _log_jobs(self, jobs: Mapping[str, JobPlan]) -> None:
        """One line per job a cron schedule runs: its targets and its next time, in UTC and
        in its zone (so a wrong `timezone` shows at start, not at the first missed check)."""
        for job_id, plan in jobs.items():
            if not plan.cron:
                continue
            upcoming = next_fire(plan.crons(), self.clock())
            log.info(
                "job %s: %d targets; a check now, then at %s (%s %s)",
                job_id,
                len(plan.targets),
                format_time(upcoming),
                upcoming.astimezone(zone(plan.timezone)).strftime("%a %H:%M"),
                plan.timezone,
            )

    def _schedule_sources(self, config: Config) -> None:
        """Rescan [[source]] files every interval (at start they were scanned by _load)."""
        from apscheduler.triggers.interval import IntervalTrigger

        job_id = "[[source]] scan"
        if not config.sources:
            if self.scheduler.get_job(job_id) is not None:
                self.scheduler.remove_job(job_id)
            return
        trigger = IntervalTrigger(seconds=config.settings.interval, timezone=UTC)
        if self.scheduler.get_job(job_id) is not None:
            self.scheduler.reschedule_job(job_id, trigger=trigger)
            return
        self.scheduler.add_job(
            self._guarded_refresh,
            trigger,
            id=job_id,
            name=job_id,
            misfire_grace_time=max(1, int(config.settings.interval)),
        )

    def _guarded_refresh(self) -> None:
        try:
            self.refresh_sources()
        except Exception:  # noqa: BLE001 - a scan bug must not stop the daemon
            log.exception("scanning [[source]] files failed")

    # --- one scheduled cycle ----------------------------------------------------------------

    def _run_job(self, job_id: str) -> None:
        runtime = self.runtime
        plan = runtime.jobs.get(job_id)
        if plan is None or self._abort.is_set():
            return
        with self._flight_lock:
            # A reload may have moved a tag to another job that is running right now.
            mine = {t.tag_key for t in plan.targets} - self._in_flight
            self._in_flight |= mine
        with self._idle:
            self._running_jobs += 1
        runtime.acquire()
        started = self._started[job_id] = time.monotonic()
        try:
            report = run_cycle(
                runtime.config,
                self.store,
                runtime.client,
                runtime.notifier,
                clock=self.clock,
                targets=[t for t in plan.targets if t.tag_key in mine],
                slots=self.slots.group(plan.registry),
                abort=self._abort,
            )
            self._finished(job_id, report, time.monotonic() - started)
            del report  # the cycle's objects go before the metrics' are made
            self.metrics.warm()  # the next scrape's text, made now rather than while it waits
        except Exception:  # noqa: BLE001 - a bug in one cycle must not stop the daemon
            log.exception("cycle %s failed unexpectedly", job_id)
        finally:
            if plan.interval > IDLE_TIMEOUT:
                # Its next cycle is further away than a connection is worth keeping.
                runtime.client.close_idle(plan.registry)
            runtime.release()
            self._started.pop(job_id, None)
            if job_id in self._overrun:
                self._overrun.discard(job_id)
                log.info(
                    "cycle %s ended after %s", job_id, format_duration(time.monotonic() - started)
                )
            with self._flight_lock:
                self._in_flight -= mine
            with self._idle:
                self._running_jobs -= 1
                self._idle.notify_all()
            give_back_free_memory()  # what the cycle (or a reload before it) freed

    def _finished(self, job_id: str, report: CycleReport, seconds: float) -> None:
        if report.abandoned:
            return
        self._last_report[job_id] = (sum(1 for r in report.results if r.failed), report.finished)
        self._done[job_id] = time.monotonic()
        events = [e.kind.value for r in report.results for e in r.events]
        events += [e.kind.value for e in report.registry_events]
        finished = (report.finished or report.started).timestamp()
        self.metrics.observe_cycle(seconds, report.failed, events, finished)
        for _ in range(report.sent):
            self.metrics.observe_delivery(True)
        for _ in range(report.send_failures):
            self.metrics.observe_delivery(False)
        if report.error:  # nothing was recorded: say so once, not every cycle
            if report.error != self._last_error.get(job_id):
                log.error("cycle %s: %s", job_id, report.error)
            self._last_error[job_id] = report.error
            self.systemd.status(self.status_line())
            return
        if self._last_error.pop(job_id, None):
            log.info("cycle %s: recording works again", job_id)
        failed = 0
        for result in report.results:
            if result.failed:
                failed += 1
                if result.view.fail_count == 1:  # said once when it starts, not every cycle
                    log.warning(
                        "%s: check failed: %s",
                        result.target.display,
                        getattr(result.observation, "message", "?"),
                    )
        summary = (
            f"cycle {job_id}: {len(report.results)} checked, "
            f"{sum(1 for r in report.results if r.moved)} moved, {failed} failed, "
            f"{len(events)} events, {report.sent} alerts sent in {seconds:.2f}s"
        )
        if failed or events or report.send_failures:
            log.info("%s", summary)
        else:
            log.debug("%s", summary)
        self.systemd.status(self.status_line())

    # --- what the outside sees ----------------------------------------------------------------

    def _pending_alerts(self) -> dict[str, int]:
        """Alerts due and not delivered, per configured notification target (0 included)."""
        notifier = self.runtime.notifier
        if notifier is None:
            return {}
        names = {channel.id: channel.where for channel in notifier.channels}
        counts = dict.fromkeys(names.values(), 0)
        for item in self.store.undelivered(datetime.now(UTC)):
            name = names.get(item.notify_id)
            if name is not None:
                counts[name] += 1
        return counts

    def _state_rows(self) -> list[StateRow]:
        return state_rows(self.runtime.config.targets, self.store.status_rows())

    def _state_version(self) -> tuple[int, tuple[int, int]]:
        """Changes whenever `_state_rows` may: the targets (a reload, a [[source]]'s new
        reading) or the database."""
        return self._targets_version, self.store.version()

    def health(self) -> tuple[bool, str]:
        """Healthy while every job completed a cycle within twice its interval (counted from
        its scheduling until the first cycle completes); a cron job, before the second time
        its schedule names after its last cycle (plus a minute)."""
        now = time.monotonic()
        late = []
        for job_id, plan in self.runtime.jobs.items():
            last = self._done.get(job_id, self._since.get(job_id, now))
            if plan.cron:
                wall = self.clock()
                then = wall - timedelta(seconds=now - last)
                crons = plan.crons()
                overdue = wall > next_fire(crons, next_fire(crons, then)) + timedelta(seconds=60)
            else:
                overdue = now - last > 2 * plan.interval + self.runtime.config.settings.jitter
            if overdue:
                late.append(f"{job_id} (last cycle {format_duration(now - last)} ago)")
        if late:
            return False, "no completed cycle within twice the interval: " + ", ".join(late)
        return True, "ok: " + self.status_line()

    def status_line(self) -> str:
        config = self.runtime.config
        reports = list(self._last_report.values())
        failing = sum(failed for failed, _ in reports)
        last = max((finished for _, finished in reports if finished), default=None)
        when = format_time(last) if last else "none yet"
        return (
            f"{len(config.targets)} targets on {len({t.ref.registry for t in config.targets})} "
            f"registries; last cycle {when}; {failing} failing"
        )
