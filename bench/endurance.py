#!/usr/bin/env python3
"""tagwatch endurance benchmark (issue 17): a month of cycles in an hour, flat.

    python bench/endurance.py            3,600 cycles at 1 s over 1,000 tags (about an hour)
    python bench/endurance.py --quick    90 cycles over 100 tags (CI; about two minutes)
    python bench/endurance.py --cycles 300 --tags 200 --src DIR   another tagwatch's code

One `tagwatch run` daemon checks every tag every second against the real registry (Debian's
`docker-registry`, through tests/support/regharness.py) behind a TCP proxy on loopback that
counts the connections tagwatch opens (bench/proxy.py, no delay). Mixed in: a tag moves every
`--move-every` cycles (each move is a `moved` alert delivered to a local webhook), the
registry is restarted half-way and the daemon gets a SIGHUP at three quarters.

Every second the process is sampled from /proc (RSS, file descriptors, threads), its CPU-time
clock, the registry's and the counting proxy's thread's (the proxy forwards the same requests
every cycle: a hint of the machine's share in a rise), the proxy (connections opened,
requests: cycles are HEADs ÷ tags) and the database's logical size (page_count × page_size,
read-only). The series is printed per window of cycles; after the warm-up the goals are
checked: RSS growth, file descriptors and threads flat, connections opened per cycle in steady
state (windows without the restart or the reload), database growth only with changes, CPU per
cycle flat (the median of the last three quiet windows over the first three's; the proxy's and
the registry's beside it). Exit status 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))
sys.path.insert(0, str(HERE))

from proxy import DelayProxy  # noqa: E402
from regharness import Registry, start_registry  # noqa: E402
from run import TAGWATCH, images, machine, push_tags, tag_refs  # noqa: E402
from sinks import WebhookSink  # noqa: E402


@dataclass(frozen=True)
class Plan:
    cycles: int
    tags: int
    interval: float
    warmup: int  # cycles before the goals are measured
    window: int  # cycles per row of the series
    move_every: int  # cycles between two moves
    relax: float  # goals multiplied by this (quick mode)


FULL = Plan(cycles=3600, tags=1000, interval=1.0, warmup=300, window=150, move_every=30, relax=1)
QUICK = Plan(cycles=90, tags=100, interval=1.0, warmup=20, window=10, move_every=10, relax=2)

RSS_GROWTH_MB = 2.0
FLAT = 2  # file descriptors and threads: largest minus smallest window
TCP_PER_CYCLE = 0.01
DB_BYTES_PER_CHANGE = 8192
CPU_DRIFT = 1.25  # CPU per cycle, the last windows' median over the first windows'
DRIFT_WINDOWS = 3  # windows in each median: one window is a sample of the machine's moment


@dataclass
class Sample:
    at: float
    cycle: float
    rss_kb: int
    fds: int
    # The fewest and most seen since the last sample (read 20 times a second); None when the
    # sampler, late on a loaded machine, read none in that second.
    threads: int | None
    threads_max: int | None
    cpu_ns: int
    registry_cpu_ns: int  # the registry's processes, summed over its restarts
    proxy_cpu_ns: int  # the counting proxy's thread: the same forwarding every cycle
    opened: int
    db_bytes: int
    alerts: int


@dataclass
class Window:
    first: int
    last: int
    samples: list[Sample] = field(default_factory=list)
    events: set[str] = field(default_factory=set)
    moves: int = 0

    def threads(self) -> tuple[int, int] | None:
        """The fewest and the most threads seen in the window."""
        seen = [s for s in self.samples if s.threads is not None and s.threads_max is not None]
        if not seen:
            return None
        return min(s.threads for s in seen if s.threads is not None), max(
            s.threads_max for s in seen if s.threads_max is not None
        )

    def value(self, name: str) -> float:
        return statistics.median(getattr(s, name) for s in self.samples)


class Watched:
    """The daemon as the outside sees it."""

    def __init__(self, pid: int, db: Path) -> None:
        self.pid = pid
        self.db = db

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise KeyError("VmRSS")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/task"))

    def cpu_ns(self) -> int:
        return process_cpu_ns(self.pid)

    def db_bytes(self) -> int:
        try:
            conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=1)
        except sqlite3.Error:
            return 0
        try:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            free = conn.execute("PRAGMA freelist_count").fetchone()[0]
            size = conn.execute("PRAGMA page_size").fetchone()[0]
            return int((pages - free) * size)
        except sqlite3.Error:
            return 0
        finally:
            conn.close()


def process_cpu_ns(pid: int) -> int:
    """CPU time used so far by process `pid`, from its CPU-time clock (Linux's
    CPUCLOCK_SCHED for a pid)."""
    return time.clock_gettime_ns(((~pid) << 3) | 2)


class ProcessCpu:
    """CPU time of the registry, summed over its processes (a restart starts a new one):
    the other half of the load on the machine, read beside the daemon's."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.pid: int | None = None
        self.ended = 0  # ns used by the processes that have exited
        self.last = 0  # ns used so far by the current one

    def ns(self) -> int:
        pid = self.registry.pid
        if pid != self.pid:
            self.ended += self.last
            self.pid, self.last = pid, 0
        if pid is not None:
            with contextlib.suppress(OSError):
                self.last = process_cpu_ns(pid)
        return self.ended + self.last


def write_config(path: Path, db: Path, targets: list[str], webhook: str, interval: float) -> None:
    lines = [
        "[tagwatch]",
        f'database = "{db}"',
        "concurrency = 16",
        'timeout = "5s"',
        f'interval = "{interval:g}s"',
        'jitter = "0s"',
        "[metrics]",
        'listen = ""',
        "[[notify]]",
        f'url = "{webhook}"',
    ]
    for image in targets:
        lines += ["[[watch]]", f'image = "{image}"']
    path.write_text("\n".join(lines) + "\n")


def run(plan: Plan, work: Path, src: str | None) -> tuple[list[Window], dict[str, float], str]:
    registry = start_registry(work / "registry", "anonymous")
    try:
        t = time.monotonic()
        push_tags(registry, plan.tags)
        print(f"pushed {plan.tags} tags in {time.monotonic() - t:.1f}s", flush=True)
        host, port = registry.host.rsplit(":", 1)
        with DelayProxy(host, int(port), delay=0.0) as proxy, WebhookSink() as sink:
            return _run(plan, work, src, registry, proxy, sink)
    finally:
        registry.close()


def _run(
    plan: Plan,
    work: Path,
    src: str | None,
    registry: Registry,
    proxy: DelayProxy,
    sink: WebhookSink,
) -> tuple[list[Window], dict[str, float], str]:
    refs = tag_refs(plan.tags)
    db = work / "tagwatch.db"
    config = work / "config.toml"
    write_config(config, db, images(proxy.host, refs), sink.url, plan.interval)
    env = dict(os.environ)
    argv = [TAGWATCH, "run", "-c", str(config), "-v", "--log-format", "text"]
    if src is not None:  # another checkout's code, e.g. the one before a change
        env["PYTHONPATH"] = src
        argv = [sys.executable, "-m", "tagwatch", *argv[1:]]
    log = work / "daemon.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, cwd=src or work
        )
    watched = Watched(proc.pid, db)
    registry_cpu = ProcessCpu(registry)
    windows: list[Window] = []
    moves = 0
    events_at: dict[int, str] = {
        plan.cycles // 2: "registry restart",
        (plan.cycles * 3) // 4: "SIGHUP",
    }
    try:
        started = time.monotonic()
        next_move = plan.warmup // 2
        deadline = started + plan.cycles * plan.interval * 3 + 60
        tick = 0
        while True:
            tick += 1  # one sample a second; the thread count 20 times a second
            seen: list[int] = []
            while time.monotonic() < started + tick:
                with contextlib.suppress(OSError):
                    seen.append(watched.threads())
                time.sleep(min(0.05, max(0.0, started + tick - time.monotonic())))
            if proc.poll() is not None:
                raise RuntimeError(
                    f"tagwatch run exited {proc.returncode}:\n"
                    f"{log.read_text(errors='replace')[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError("the daemon fell too far behind its schedule")
            cycle = proxy.requests / plan.tags
            sample = Sample(
                time.monotonic() - started,
                cycle,
                watched.rss_kb(),
                watched.fds(),
                min(seen, default=None),
                max(seen, default=None),
                watched.cpu_ns(),
                registry_cpu.ns(),
                proxy.cpu_ns(),
                proxy.connections,
                watched.db_bytes(),
                len(sink.received),
            )
            index = int(cycle) // plan.window
            while len(windows) <= index:
                first = len(windows) * plan.window
                windows.append(Window(first, first + plan.window - 1))
            windows[index].samples.append(sample)
            for at, what in list(events_at.items()):
                if cycle >= at:
                    del events_at[at]
                    windows[index].events.add(what)
                    if what == "registry restart":
                        registry.stop()
                        registry.start()
                    else:
                        proc.send_signal(signal.SIGHUP)
                    print(f"  cycle {cycle:.0f}: {what}", flush=True)
            if cycle >= next_move and cycle < plan.cycles - plan.move_every / 2:
                repo, tag = refs[(moves * 37) % len(refs)]
                registry.pusher.push_image(repo, tag, seed=f"move-{moves}")
                moves += 1
                next_move += plan.move_every
                windows[index].events.add("move")
                windows[index].moves += 1
            if cycle >= plan.cycles:
                break
        # Every move's alert delivered before the stop (the last one may be a cycle away).
        wait = time.monotonic() + 15
        while len(sink.received) < moves and time.monotonic() < wait:
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    counts = {"moves": moves, "alerts": len(sink.received), "exit": float(proc.returncode)}
    return [w for w in windows if w.samples], counts, log.read_text(errors="replace")


def report(plan: Plan, windows: list[Window], counts: dict[str, float]) -> tuple[str, bool]:
    lines = [
        f"{'cycles':>11}  {'RSS MB':>7}  {'fds':>4}  {'thr':>5}  {'TCP new':>7}  "
        f"{'CPU ms/cycle':>12}  {'registry':>8}  {'proxy':>5}  {'÷ proxy':>7}  {'db KB':>7}  "
        f"{'alerts':>6}  events",
    ]
    previous: Sample | None = None
    per_cycle_cpu: dict[int, float] = {}
    registry_cpu: dict[int, float] = {}
    proxy_cpu: dict[int, float] = {}
    over_proxy: dict[int, float] = {}  # the daemon's CPU per cycle ÷ the proxy's
    opened: dict[int, float] = {}
    for i, w in enumerate(windows):
        last = w.samples[-1]
        base = previous or w.samples[0]
        cycles = max(last.cycle - base.cycle, 1e-9)
        per_cycle_cpu[i] = (last.cpu_ns - base.cpu_ns) / 1e6 / cycles
        registry_cpu[i] = (last.registry_cpu_ns - base.registry_cpu_ns) / 1e6 / cycles
        proxy_cpu[i] = (last.proxy_cpu_ns - base.proxy_cpu_ns) / 1e6 / cycles
        over_proxy[i] = per_cycle_cpu[i] / max(proxy_cpu[i], 1e-9)
        opened[i] = last.opened - base.opened
        seen = w.threads()
        thr = f"{seen[0]:>2}-{seen[1]:<2}" if seen else "    ?"
        happened = sorted(f"move ×{w.moves}" if e == "move" else e for e in w.events)
        lines.append(
            f"{w.first:>5}-{w.last:<5}  {w.value('rss_kb') / 1024:>7.1f}  "
            f"{max(s.fds for s in w.samples):>4}  "
            f"{thr}  "
            f"{opened[i]:>7.0f}  {per_cycle_cpu[i]:>12.1f}  {registry_cpu[i]:>8.1f}  "
            f"{proxy_cpu[i]:>5.1f}  {over_proxy[i]:>7.2f}  "
            f"{last.db_bytes / 1024:>7.0f}  "
            f"{last.alerts:>6}  {', '.join(happened)}"
        )
        previous = last
    # Whole windows after the warm-up (a last one cut short by the end is shown, not judged).
    steady = [
        i
        for i, w in enumerate(windows)
        if w.first >= plan.warmup and w.samples[-1].cycle - w.samples[0].cycle >= plan.window / 2
    ]
    if len(steady) < 2:
        return "\n".join([*lines, "not enough cycles after the warm-up"]), False
    first, last = windows[steady[0]], windows[steady[-1]]
    # Steady state: no restart or reload in the window, nor in the one before (the first
    # request after one may open a connection, e.g. the first GET of a new client).
    events = {"registry restart", "SIGHUP"}
    quiet = [
        i
        for i in steady
        if not (events & windows[i].events or (i and events & windows[i - 1].events))
    ]
    if not quiet:  # e.g. windows so long that each holds the restart or the reload
        return "\n".join([*lines, "no window after the warm-up without a restart or reload"]), False
    rss_growth = (last.value("rss_kb") - first.value("rss_kb")) / 1024
    fds = [max(s.fds for s in windows[i].samples) for i in quiet]
    # Threads between cycles (the fewest seen in a window): a cycle's workers come and go.
    threads = [seen[0] for i in quiet if (seen := windows[i].threads()) is not None]
    steady_cycles = (
        sum(windows[i].samples[-1].cycle - windows[i].samples[0].cycle for i in quiet) or 1
    )
    # A move's GETs (manifests, configs) go over the registry client's own pool, whose
    # connections close after 30 s idle: with moves further apart, each may open one. HEADs
    # (every tag, every cycle) must open none.
    tcp = sum(max(0.0, opened[i] - windows[i].moves) for i in quiet) / steady_cycles
    per_move = sum(opened[i] for i in quiet) / max(1, sum(windows[i].moves for i in quiet))
    changes = max(1, int(counts["moves"]))
    db_growth = windows[steady[-1]].samples[-1].db_bytes - first.samples[0].db_bytes
    no_move_growth = sum(
        w.samples[-1].db_bytes - w.samples[0].db_bytes
        for i in steady
        for w in [windows[i]]
        if not w.events
    )
    # CPU per cycle, with two figures beside it to tell the daemon's work from the machine's:
    # the registry's, and the counting proxy thread's (it forwards the same 1 HEAD per tag per
    # cycle whatever the daemon holds). The daemon's CPU per cycle follows the machine: its HEAD
    # loop's wake-ups, like the proxy's, find fewer answers ready each when the registry answers
    # slower. The full hour on 3f89379 (this whole process then, the proxy most of it): the
    # daemon's 152..252 ms per window, this process's 133..229, their ratio 1.07..1.15. The
    # ratio is shown, not judged: over shorter runs the proxy's own CPU per cycle stepped by a
    # fifth at the registry restart while the daemon's did not.
    # The first and the last few quiet windows, each a median: one window of 150 cycles on a
    # shared machine can be a third above its neighbours with nothing changed in the daemon.
    ends = max(1, min(DRIFT_WINDOWS, len(quiet) // 2))

    def medians(series: list[float]) -> tuple[float, float]:
        return statistics.median(series[:ends]), statistics.median(series[-ends:])

    early, late = medians([per_cycle_cpu[i] for i in quiet])
    drift = late / early if early else 0.0
    ratio = medians([over_proxy[i] for i in quiet])
    control = medians([proxy_cpu[i] for i in quiet])
    registry = medians([registry_cpu[i] for i in quiet])
    r = plan.relax
    goals = [
        (
            "RSS growth after warm-up",
            f"≤ {RSS_GROWTH_MB * r:g} MB",
            f"{rss_growth:+.2f} MB",
            rss_growth <= RSS_GROWTH_MB * r,
        ),
        (
            "file descriptors (max per window)",
            f"flat (±{FLAT})",
            f"{min(fds)}..{max(fds)}",
            max(fds) - min(fds) <= FLAT,
        ),
        (
            "threads between cycles (min per window)",
            f"flat (±{FLAT})",
            f"{min(threads)}..{max(threads)}",
            max(threads) - min(threads) <= FLAT,
        ),
        (
            "TCP opened per cycle, steady, beyond 1/move",
            f"≤ {TCP_PER_CYCLE * r:g}",
            f"{tcp:.3f} ({per_move:.2f} per move)",
            tcp <= TCP_PER_CYCLE * r,
        ),
        (
            "database growth per change",
            f"≤ {DB_BYTES_PER_CHANGE * r / 1024:g} KB",
            f"{db_growth / changes / 1024:.1f} KB ({db_growth / 1024:.0f} KB, {changes} moves)",
            db_growth / changes <= DB_BYTES_PER_CHANGE * r,
        ),
        (
            "database growth in windows without changes",
            "0 KB",
            f"{no_move_growth / 1024:.0f} KB",
            no_move_growth <= 0,
        ),
        (
            f"CPU per cycle, last {ends} windows / first {ends}",
            f"≤ {CPU_DRIFT * r:g}",
            f"{drift:.2f} ({early:.1f} → {late:.1f} ms; ÷ proxy {ratio[0]:.2f} → {ratio[1]:.2f}, "
            f"proxy {control[0]:.0f} → {control[1]:.0f}, registry {registry[0]:.0f} → "
            f"{registry[1]:.0f})",
            0 < drift <= CPU_DRIFT * r,
        ),
        (
            "alerts delivered / moves",
            "= 1",
            f"{counts['alerts']:.0f} / {counts['moves']:.0f}",
            counts["alerts"] == counts["moves"],
        ),
        ("daemon exit status on SIGTERM", "0", f"{counts['exit']:.0f}", counts["exit"] == 0),
    ]
    lines += ["", f"{'after warm-up':<44}  {'goal':<12}  {'measured':<34}  result"]
    lines += [f"{a:<44}  {b:<12}  {c:<34}  {'pass' if ok else 'FAIL'}" for a, b, c, ok in goals]
    return "\n".join(lines), all(ok for *_, ok in goals)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="90 cycles over 100 tags (CI)")
    parser.add_argument("--cycles", type=int, help="cycles to run")
    parser.add_argument("--tags", type=int, help="tags to watch (100 per repository)")
    parser.add_argument("--warmup", type=int, help="cycles before the goals are measured")
    parser.add_argument("--window", type=int, help="cycles per row of the series")
    parser.add_argument("--src", help="run the tagwatch package found in this directory")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    # Killed (CI's timeout, `kill`): unwind as on Ctrl-C, so that the daemon and the registry
    # it started are stopped and the work directory removed, not left running.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    plan = QUICK if args.quick else FULL
    changes = {
        k: getattr(args, k)
        for k in ("cycles", "tags", "warmup", "window")
        if getattr(args, k) is not None
    }
    if changes:
        plan = Plan(**{**plan.__dict__, **changes})
    print(machine(), flush=True)
    print(
        f"endurance: {plan.cycles} cycles every {plan.interval:g}s over {plan.tags} tags, "
        f"a move every {plan.move_every} cycles, warm-up {plan.warmup}"
        + (f"; code from {args.src}" if args.src else ""),
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="tagwatch-endurance-"))
    try:
        windows, counts, _ = run(plan, work, os.path.abspath(args.src) if args.src else None)
        text, ok = report(plan, windows, counts)
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            subprocess.run(["rm", "-rf", str(work)], check=False)
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
