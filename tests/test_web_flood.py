"""Issue 10 item 5: nothing on the listener's port can starve the daemon.

A real `tagwatch run` with RLIMIT_NOFILE 128 watches tags on the real registry every second
while hundreds of idle and slow-loris connections, re-opened as soon as they are closed,
hammer its listener. Before the bounded listener, 253 such connections to a daemon limited
to 256 files failed its registry checks ("Too many open files"), timed /metrics and /healthz
out and spun the CPU at 100 %.
"""

from __future__ import annotations

import re
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from daemonproc import DaemonProcess
from flood import Flood, ProcessProbe
from regharness import PUSHER_AGENT, Registry, free_port, unique_repo

pytestmark = pytest.mark.integration

NOFILE = 128  # the listener takes at most NOFILE // 8 = 16 connections
IDLE, SLOWLORIS = 300, 100
FLOOD_SECONDS = 12.0
SCRAPE_BOUND = 2.0  # seconds: a scrape is answered at once, flood or not
CPU_SHARE_BOUND = 0.30  # of one core, over the flood (the unbounded listener spun at 1.0)


def _scrape(daemon: DaemonProcess, path: str) -> tuple[int | str, float]:
    started = time.monotonic()
    try:
        code: int | str = daemon.get(path, timeout=10).status_code
    except httpx.HTTPError as exc:
        code = type(exc).__name__
    return code, time.monotonic() - started


def _checks(registry: Registry, repo: str, since: int) -> int:
    return len([r for r in registry.requests(path_contains=repo, since=since,
                                             exclude_agent=PUSHER_AGENT)])


def test_flood_of_idle_and_slow_connections_starves_nothing(
        registry_anonymous: Registry, tmp_path: Path) -> None:
    registry = registry_anonymous
    repo = unique_repo("flood")
    for i in range(3):
        registry.pusher.push_image(f"{repo}/app{i}", "latest")
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(textwrap.dedent(f"""\
        [tagwatch]
        database = "{tmp_path / 'tagwatch.db'}"
        interval = "1s"
        jitter = "0s"
        timeout = "3s"
        [metrics]
        listen = "127.0.0.1:{port}"
        """) + "".join(f'[[watch]]\nimage = "{registry.host}/{repo}/app{i}:latest"\n'
                       for i in range(3)))
    daemon = DaemonProcess(config, port, nofile=NOFILE)
    try:
        daemon.wait_healthy()
        probe = ProcessProbe(daemon.proc.pid)
        time.sleep(1.5)  # the first cycles are done

        mark, cpu0, t0 = registry.mark(), probe.cpu_seconds(), time.monotonic()
        time.sleep(4)
        before_rate = _checks(registry, repo, mark) / (time.monotonic() - t0)
        before_cpu = (probe.cpu_seconds() - cpu0) / (time.monotonic() - t0)
        files_before = probe.open_files()

        scrapes: list[tuple[str, int | str, float]] = []
        files_max = held_max = 0
        mark, cpu0, t0 = registry.mark(), probe.cpu_seconds(), time.monotonic()
        with Flood("127.0.0.1", port, idle=IDLE, slowloris=SLOWLORIS) as flood:
            while time.monotonic() - t0 < FLOOD_SECONDS:
                for path in ("/metrics", "/healthz"):
                    scrapes.append((path, *_scrape(daemon, path)))
                files_max = max(files_max, probe.open_files())
                held_max = max(held_max, probe.connections_on_port(port))
                time.sleep(0.25)
            wall = time.monotonic() - t0
            cpu_share = (probe.cpu_seconds() - cpu0) / wall
            during_rate = _checks(registry, repo, mark) / wall
            opened, refused = flood.opened, flood.refused
        after = [_scrape(daemon, p) for p in ("/metrics", "/healthz")]
        metrics = daemon.get("/metrics").text
    finally:
        daemon.stop()
    log = daemon.log_text()

    latencies = [s[2] for s in scrapes]
    figures = (
        f"checks/s before {before_rate:.2f}, during {during_rate:.2f}; "
        f"CPU before {before_cpu:.1%}, during {cpu_share:.1%} of a core; "
        f"fds before {files_before}, max during {files_max} (limit {NOFILE}), "
        f"listener connections max {held_max}; "
        f"{len(scrapes)} scrapes during, slowest {max(latencies):.3f}s, "
        f"median {sorted(latencies)[len(latencies) // 2]:.3f}s; "
        f"flood connections opened {opened}, refused {refused}; after {after}")
    print(figures)
    assert opened > IDLE + SLOWLORIS, figures  # the flood was real: the server closed many
    failed = [s for s in scrapes if s[1] != 200 or s[2] > SCRAPE_BOUND]
    assert not failed, f"{failed}\n{figures}"
    assert all(code == 200 and took < SCRAPE_BOUND for code, took in after), figures
    assert during_rate >= 0.5 * before_rate > 0, figures
    assert cpu_share < CPU_SHARE_BOUND, figures
    # The listener holds at most its cap; the registry checks keep the rest of the budget.
    assert held_max <= NOFILE // 8, figures
    assert files_max < NOFILE // 2, figures
    assert "Too many open files" not in log, log
    assert "check failed" not in log, log
    dropped = re.search(r'^tagwatch_http_connections_dropped_total\{reason="evicted"\} (\S+)$',
                        metrics, re.M)
    timeouts = re.search(r'^tagwatch_http_connections_dropped_total\{reason="timeout"\} (\S+)$',
                         metrics, re.M)
    assert dropped and timeouts, metrics
    print(f"dropped: {dropped.group(1)} evicted, {timeouts.group(1)} timeout")
    # Every slow-loris connection was closed at least once (evicted or at its deadline).
    assert float(dropped.group(1)) + float(timeouts.group(1)) >= SLOWLORIS, metrics
    assert "web: connections closed unanswered" in log, log
