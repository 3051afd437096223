#!/usr/bin/env python3
"""tagwatch performance benchmark (issue 5): requests, client cost, latency hiding, memory and
idle CPU, disk growth, start-up, and skopeo as a peer. See bench/README.md.

    python bench/run.py            full sizes, the real goals
    python bench/run.py --quick    small sizes, goals relaxed (CI; < 90 s); exit 1 on a miss

Everything runs on loopback: a real CNCF distribution registry (Debian `docker-registry`,
through tests/support/regharness.py) in a temporary directory, a token-mode one for the token
target, and a delaying TCP proxy (bench/proxy.py). tagwatch is run as a user runs it: the
venv's `tagwatch` console script, one process per command.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))
sys.path.insert(0, str(HERE))

import httpx  # noqa: E402
from proxy import DelayProxy  # noqa: E402
from regharness import PUSHER_AGENT, Registry, start_registry  # noqa: E402

BIN = Path(sys.executable).parent
if not (BIN / "tagwatch").exists() and (ROOT / ".venv" / "bin" / "tagwatch").exists():
    BIN = ROOT / ".venv" / "bin"
TAGWATCH = str(BIN / "tagwatch")
# How the measured commands start tagwatch: the venv's console script until `install()` has
# made the installed-like one (main() does, before anything is measured).
TW = [TAGWATCH]
PYTHON = str(BIN / "python") if (BIN / "python").exists() else sys.executable
CLIENTS = str(HERE / "clients.py")
TAGS_PER_REPO = 100
# 2c in every mode: one start-up on a shared machine is a sample of the scheduler as much as
# of tagwatch (quick mode made one run, and a busy moment failed CI).
FIRST_REQUEST_RUNS = 3
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class Sizes:
    relax: float  # goals are multiplied (or divided) by this in --quick
    request_tags: int  # 1a: steady-state requests
    client_tags: int  # 2: client cost (spread over client_tags / 100 repositories)
    client_reps: int
    latency_tags: int  # 3
    memory_watches: int  # 4
    idle_seconds: float
    disk_tags: int  # 5
    disk_cycles: int
    startup_runs: int  # 6
    skopeo_tags: int  # 7
    client_baselines: tuple[str, ...] = (
        "aiohttp",
        "httpx-threads",
        "httpx-async",
        "http.client-threads",
    )
    token_repos: int = 10  # 1c
    token_tags: int = 50
    client_concurrency: int = 16
    latency_concurrency: int = 32
    latency_delay: float = 0.050


FULL = Sizes(
    relax=1.0,
    request_tags=1000,
    client_tags=2000,
    client_reps=3,
    latency_tags=1000,
    memory_watches=10_000,
    idle_seconds=20.0,
    disk_tags=1000,
    disk_cycles=100,
    startup_runs=9,
    skopeo_tags=100,
)
QUICK = Sizes(
    relax=2.0,
    request_tags=200,
    client_tags=2000,
    client_reps=1,
    client_baselines=("aiohttp", "httpx-threads"),
    latency_tags=500,
    memory_watches=1000,
    idle_seconds=5.0,
    disk_tags=100,
    disk_cycles=10,
    startup_runs=5,
    skopeo_tags=20,
)


# --------------------------------------------------------------------------------- results


@dataclass
class Row:
    target: str
    goal: str
    measured: str
    ratio: float | None = None  # measured / goal
    ok: bool | None = None  # None: for orientation only
    detail: str = ""  # printed as a note under the table


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    data: dict[str, object] = field(default_factory=dict)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        mark = {True: "PASS", False: "FAIL", None: "info"}[row.ok]
        note = f"; {row.detail}" if row.detail else ""
        print(f"  [{mark}] {row.target}: {row.measured} (goal {row.goal}){note}", flush=True)

    def at_most(
        self, target: str, value: float, goal: float, unit: str, fmt: str = ".3g", detail: str = ""
    ) -> None:
        measured = f"{value:{fmt}} {unit}".strip()
        self.add(
            Row(
                target,
                f"≤ {goal:{fmt}} {unit}".strip(),
                measured,
                value / goal if goal else None,
                value <= goal,
                detail,
            )
        )

    def at_least(
        self, target: str, value: float, goal: float, unit: str, fmt: str = ".3g", detail: str = ""
    ) -> None:
        measured = f"{value:{fmt}} {unit}".strip()
        self.add(
            Row(
                target,
                f"≥ {goal:{fmt}} {unit}".strip(),
                measured,
                value / goal if goal else None,
                value >= goal,
                detail,
            )
        )

    def info(self, target: str, measured: str, goal: str = "-", detail: str = "") -> None:
        self.add(Row(target, goal, measured, detail=detail))

    def table(self) -> str:
        header = ["target", "goal", "measured", "ratio", "result"]
        cells = [
            [
                r.target,
                r.goal,
                r.measured,
                "-" if r.ratio is None else f"{r.ratio:.2f}",
                {True: "pass", False: "FAIL", None: "info"}[r.ok],
            ]
            for r in self.rows
        ]
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
        line = "  ".join("-" * w for w in widths)
        out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), line]
        out += [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in cells
        ]
        notes = [f"  {r.target}: {r.detail}" for r in self.rows if r.detail]
        if notes:
            out += ["", "notes:", *notes]
        return "\n".join(out)


# ------------------------------------------------------------------------------ processes


@dataclass
class Proc:
    wall: float  # seconds
    cpu: float  # user + sys seconds of the process and its threads
    rc: int
    stdout: str
    stderr: str
    began: float = 0.0  # time.monotonic() just before the process was started


def measure(argv: Sequence[str], *, capture: bool = False, check: bool = True) -> Proc:
    """Run a command to completion; wall time around it, CPU from wait4's rusage (this
    process only: exact, and unaffected by the registry or other children)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        began = time.monotonic()
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out if capture else subprocess.DEVNULL,
            stderr=err,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        # (ru_maxrss is useless here: Linux carries the parent's high-water mark into a
        # forked child across exec.)
        result = Proc(
            wall,
            usage.ru_utime + usage.ru_stime,
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            began,
        )
    if check and result.rc != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.rc}:\n{result.stderr[-3000:]}")
    return result


def install(work: Path) -> list[str]:
    """tagwatch as a user's install runs it, for the measured commands: a venv of its own
    whose site-packages has one .pth naming the repository and the dev venv's site-packages
    (so no editable-install finder is loaded at every start, which costs ~15 ms), a console
    script as pip writes it, and the package's bytecode compiled first, as `pip install` and
    the Containerfile do (this environment sets PYTHONDONTWRITEBYTECODE, so without it every
    start would compile tagwatch from source). Returns the command that runs `tagwatch`."""
    venv = work / "venv"
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    paths = subprocess.run(
        [
            PYTHON,
            "-c",
            "import sysconfig; p = sysconfig.get_paths(); print(p['purelib']); print(p['platlib'])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    lines = [str(ROOT), *dict.fromkeys(paths)]
    (Path(site) / "tagwatch-bench.pth").write_text("\n".join(lines) + "\n")
    script = venv / "bin" / "tagwatch"
    script.write_text(
        f"#!{python}\nimport sys\nfrom tagwatch.cli import main\n"
        "if __name__ == '__main__':\n    sys.exit(main())\n"
    )
    script.chmod(0o755)
    subprocess.run([str(python), "-m", "compileall", "-q", str(ROOT / "tagwatch")], check=True)
    return [str(script)]


_CYCLE = re.compile(
    r"cycle \S+ every \S+: (\d+) checked, (\d+) moved, (\d+) failed, "
    r".* in ([\d.]+)s"
)


class Daemon:
    """`tagwatch run -vv` (the per-cycle summary is a debug line), stderr to a file; or with
    `verbose="-v"`, where each cycle's steps are the markers (`steps()`) and no line is
    written per request."""

    def __init__(self, config: Path, log: Path, verbose: str = "-vv") -> None:
        self.log = log
        with log.open("wb") as f:
            self.proc = subprocess.Popen(
                [*TW, "run", "-c", str(config), verbose, "--log-format", "text"],
                stdin=subprocess.DEVNULL,
                stdout=f,
                stderr=f,
            )
        self.pid = self.proc.pid

    def cycles(self) -> list[tuple[int, int, int, float]]:
        """(checked, moved, failed, seconds) of every completed cycle so far."""
        text = self.log.read_text(errors="replace")
        return [(int(a), int(b), int(c), float(d)) for a, b, c, d in _CYCLE.findall(text)]

    def wait_cycles(self, n: int, timeout: float) -> list[tuple[int, int, int, float]]:
        deadline = time.monotonic() + timeout
        while True:
            cycles = self.cycles()
            if len(cycles) >= n:
                return cycles
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"tagwatch run exited {self.proc.returncode}:\n"
                    f"{self.log.read_text(errors='replace')[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"tagwatch run: {len(cycles)} of {n} cycles within "
                    f"{timeout:.0f}s:\n{self.log.read_text(errors='replace')[-3000:]}"
                )
            time.sleep(0.05)

    def steps(
        self,
        n: int,
        timeout: float,
        poll: float = 0.01,
        ended: Callable[[int], None] = lambda cycle: None,
    ) -> list[tuple[float, float]]:
        """(start, end) in time.monotonic() of the first `n` cycles, seen as their `recall:`
        and `record:` step lines (`-v`) appear in the log, which is read every `poll` s;
        `ended(k)` is called as cycle k (from 1) is seen to end."""
        deadline = time.monotonic() + timeout
        seen: list[tuple[float, float]] = []
        started: float | None = None
        offset = 0
        with self.log.open("rb") as f:
            while len(seen) < n:
                f.seek(offset)
                chunk = f.read()
                lines = chunk.split(b"\n")
                offset += len(chunk) - len(lines[-1])
                now = time.monotonic()
                for line in lines[:-1]:
                    if b" INFO recall: " in line:
                        started = now
                    elif b" INFO record: " in line and started is not None:
                        seen.append((started, now))
                        started = None
                        ended(len(seen))
                if self.proc.poll() is not None:
                    raise RuntimeError(f"tagwatch run exited {self.proc.returncode}")
                if now > deadline:
                    raise RuntimeError(f"tagwatch run: {len(seen)} of {n} cycles in {timeout}s")
                time.sleep(poll)
        return seen

    def status(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])  # kB
        raise KeyError(key)

    def cpu_ticks(self) -> float:
        """utime + stime from /proc/PID/stat, seconds (10 ms resolution)."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def cpu_ns(self) -> int:
        """CPU time of the whole process, every thread including those that have exited, in
        nanoseconds: its CPU-time clock (what clock_getcpuclockid(pid) returns, built by
        hand as the kernel encodes it: CPUCLOCK_SCHED of the pid)."""
        return time.clock_gettime_ns(((~self.pid) << 3) | 2)

    def threads(self) -> int:
        return len(list(Path(f"/proc/{self.pid}/task").iterdir()))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


# ------------------------------------------------------------------------------ fixtures


def repo_name(i: int) -> str:
    return f"bench/r{i:03d}"


def tag_name(i: int) -> str:
    return f"t{i:03d}"


def tag_refs(n: int) -> list[tuple[str, str]]:
    """The first `n` (repository, tag) pairs, 100 tags per repository."""
    return [(repo_name(i // TAGS_PER_REPO), tag_name(i % TAGS_PER_REPO)) for i in range(n)]


def push_tags(registry: Registry, n: int, workers: int = 8) -> None:
    """One image per repository, then the same manifest PUT under its other tags."""
    pusher = registry.pusher
    repos = (n + TAGS_PER_REPO - 1) // TAGS_PER_REPO
    bodies = {}
    for r in range(repos):
        digest = pusher.push_image(repo_name(r), tag_name(0), seed=f"bench-{r}")
        body, media_type, _ = pusher.get_manifest(repo_name(r), digest)
        bodies[r] = (body, media_type.split(";")[0])
    jobs = [(repo, tag) for repo, tag in tag_refs(n) if tag != tag_name(0)]
    local = threading.local()

    def put(job: tuple[str, str]) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(
                base_url=registry.url, timeout=30, headers={"User-Agent": PUSHER_AGENT}
            )
        repo, tag = job
        body, media_type = bodies[int(repo[-3:])]
        response = local.client.put(
            f"/v2/{repo}/manifests/{tag}", content=body, headers={"Content-Type": media_type}
        )
        if response.status_code != 201:
            raise RuntimeError(f"PUT {repo}:{tag} -> {response.status_code} {response.text}")

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(put, jobs))


def write_config(
    path: Path,
    db: Path,
    images: Sequence[str],
    *,
    concurrency: int = 16,
    interval: str = "15m",
    timeout: str = "10s",
    settings: Sequence[str] = (),
) -> Path:
    lines = [
        "[tagwatch]",
        *settings,
        f'database = "{db}"',
        f"concurrency = {concurrency}",
        f'timeout = "{timeout}"',
        f'interval = "{interval}"',
        'jitter = "0s"',
        "[metrics]",
        'listen = ""',
    ]
    for image in images:
        lines += ["[[watch]]", f'image = "{image}"']
    path.write_text("\n".join(lines) + "\n")
    return path


def images(host: str, refs: Sequence[tuple[str, str]]) -> list[str]:
    return [f"{host}/{repo}:{tag}" for repo, tag in refs]


def check(config: Path, **kw: bool) -> Proc:
    return measure([*TW, "check", "-c", str(config)], **kw)


def db_size(db: Path) -> int:
    """Bytes of the database after a checkpoint (db + -wal + -shm as left on disk)."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists())


def describe_gets(paths: Sequence[str], repo: str) -> str:
    """'2 manifests by digest, 2 blobs' for the GET paths of the access log."""
    kinds: Counter[str] = Counter()
    for path in paths:
        rest = path.removeprefix(f"/v2/{repo}/")
        kind, _, ref = rest.partition("/")
        kinds[f"{kind} by {'digest' if ref.startswith('sha256:') else 'tag'}"] += 1
    return ", ".join(f"{v} {k}" for k, v in sorted(kinds.items())) or "none"


def ab_rate(ab: str, url: str, n: int, concurrency: int) -> float:
    """ApacheBench's requests per second: `n` keep-alive HEADs of one tag, `concurrency` at
    once, with tagwatch's Accept header (the registry's own ceiling: a C client that costs
    next to nothing). Every answer must be a 200."""
    from clients import ACCEPT

    out = measure(
        [
            ab,
            "-q",
            "-i",
            "-k",
            "-c",
            str(concurrency),
            "-n",
            str(n),
            "-H",
            f"Accept: {ACCEPT}",
            url,
        ],
        capture=True,
    ).stdout
    fields = dict(
        (k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in out.splitlines())
    )
    if fields.get("Complete requests") != str(n) or fields.get("Failed requests") != "0":
        raise RuntimeError(f"ab: not {n} complete requests:\n{out}")
    if "Non-2xx responses" in fields:
        raise RuntimeError(f"ab: answers other than 200:\n{out}")
    return float(fields["Requests per second"].split()[0])


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


# ------------------------------------------------------------------------------- targets


@dataclass
class Bench:
    sizes: Sizes
    work: Path
    results: Results
    registry: Registry | None = None

    @property
    def reg(self) -> Registry:
        assert self.registry is not None
        return self.registry

    def path(self, name: str) -> Path:
        return self.work / name

    # -- 1. requests --------------------------------------------------------------------

    def requests(self) -> None:
        s, reg = self.sizes, self.reg
        pusher = reg.pusher
        index_repo, index_tag = "bench/index", "moving"
        pusher.push_index(index_repo, index_tag, ["linux/amd64", "linux/arm64"], seed="a")
        refs = [*tag_refs(s.request_tags), (index_repo, index_tag)]
        config = write_config(
            self.path("requests.toml"), self.path("requests.db"), images(reg.host, refs)
        )
        n = len(refs)
        check(config)  # first sight: records
        mark = reg.mark()
        check(config)
        seen = reg.requests(since=mark, exclude_agent=PUSHER_AGENT)
        by_method = Counter(r.method for r in seen)
        bad = [r for r in seen if r.status != 200]
        per_tag = len(seen) / n
        detail = ", ".join(f"{v} {k}" for k, v in sorted(by_method.items()))
        self.results.add(
            Row(
                "1a steady-state requests per tag per cycle",
                "= 1 (HEAD only)",
                f"{per_tag:.3f}",
                per_tag,
                len(seen) == n and by_method["HEAD"] == n and not bad,
                f"{detail} for {n} tags in the 2nd check ({n - 1} single-image tags and an index), "
                f"{len(bad)} not 200",
            )
        )
        new_index, _ = pusher.push_index(
            index_repo, index_tag, ["linux/amd64", "linux/arm64"], seed="b"
        )
        # The protocol's floor: without 'what changed' (describe_moves = false).
        floor = write_config(
            self.path("requests-floor.toml"),
            self.path("requests.db"),
            images(reg.host, refs),
            settings=["describe_moves = false"],
        )
        mark = reg.mark()
        check(floor)
        seen = reg.requests(since=mark, exclude_agent=PUSHER_AGENT)
        by_method = Counter(r.method for r in seen)
        extra = len(seen) - n
        gets = [r.path for r in seen if r.method == "GET"]
        history = json.loads(
            measure(
                [
                    *TW,
                    "history",
                    "-c",
                    str(config),
                    "--json",
                    f"{reg.host}/{index_repo}:{index_tag}",
                ],
                capture=True,
            ).stdout
        )
        recorded = bool(history) and history[0]["digest"] == new_index
        self.results.add(
            Row(
                "1b moved index: requests beyond 1 HEAD per tag",
                "≤ 1 (a GET)",
                f"{extra}",
                extra / 1,
                extra <= 1 and by_method["HEAD"] == n and recorded,
                f"{', '.join(f'{v} {k}' for k, v in sorted(by_method.items()))} for {n} tags; "
                f"GETs: {describe_gets(gets, index_repo)}; "
                f"move {'recorded' if recorded else 'NOT recorded'} in history",
            )
        )
        pusher.push_index(index_repo, index_tag, ["linux/amd64", "linux/arm64"], seed="c")
        mark = reg.mark()
        check(config)
        seen = reg.requests(since=mark, exclude_agent=PUSHER_AGENT)
        described = [r.path for r in seen if r.method == "GET"]
        self.results.add(
            Row(
                "1b' same, with 'what changed' on (describe_moves, default)",
                "-",
                f"{len(seen) - n}",
                None,
                None,
                f"GETs: {describe_gets(described, index_repo)} (issue 7: the old and the new "
                "image's manifest and config, by digest, only on a move)",
            )
        )

    def tokens(self) -> None:
        s = self.sizes
        reg = start_registry(self.path("token-registry"), "token")
        try:
            pusher = reg.pusher
            per_repo = s.token_tags // s.token_repos
            refs = []
            for r in range(s.token_repos):
                repo = f"bench/tok{r:02d}"
                digest = pusher.push_image(repo, "t000", seed=f"tok-{r}")
                body, media_type, _ = pusher.get_manifest(repo, digest)
                for t in range(per_repo):
                    if t:
                        pusher.push_manifest(repo, tag_name(t), body, media_type.split(";")[0])
                    refs.append((repo, tag_name(t)))
            config = write_config(
                self.path("tokens.toml"),
                self.path("tokens.db"),
                images(reg.host, refs),
                interval="2s",
            )
            assert reg.token_server is not None
            reg.token_server.reset()
            mark = reg.mark()
            daemon = Daemon(config, self.path("tokens-daemon.log"))
            try:
                cycles = daemon.wait_cycles(2, timeout=60)
                tokens = len(reg.token_server.token_requests)
            finally:
                daemon.stop()
            seen = reg.requests(since=mark, exclude_agent=PUSHER_AGENT)
            by_status = Counter((r.method, r.status) for r in seen)
            goal = s.token_repos
            detail = (
                f"{s.token_tags} tags / {s.token_repos} repos, 2 cycles of one daemon "
                f"({cycles[0][0]}+{cycles[1][0]} checked); registry saw "
                + ", ".join(f"{v} {m} {st}" for (m, st), v in sorted(by_status.items()))
            )
            self.results.at_most(
                "1c token requests over 2 daemon cycles", tokens, goal, "", fmt="d", detail=detail
            )
        finally:
            reg.close()

    # -- 2. client cost -----------------------------------------------------------------

    def client_cost(self) -> dict[str, float]:
        s, reg = self.sizes, self.reg
        n, conc = s.client_tags, s.client_concurrency
        refs = tag_refs(n)
        config = write_config(
            self.path("client.toml"),
            self.path("client.db"),
            images(reg.host, refs),
            concurrency=conc,
        )
        urls = [f"{reg.url}/v2/{repo}/manifests/{tag}" for repo, tag in refs]
        urls_file = self.path("client-urls.json")
        urls_file.write_text(json.dumps(urls))
        check(config)  # first sight: records; every measured check below is steady state
        runs: dict[str, list[Proc]] = {}
        loops: dict[str, list[float]] = {}
        ceiling: list[float] = []

        def baseline(name: str) -> Callable[[], Proc]:
            return lambda: measure([PYTHON, CLIENTS, name, str(urls_file), str(conc)], capture=True)

        variants: list[tuple[str, Callable[[], Proc]]] = [
            ("tagwatch check", lambda: check(config)),
            *((name, baseline(name)) for name in s.client_baselines),
        ]
        ab = shutil.which("ab")
        for _ in range(s.client_reps):
            for name, run in variants:
                proc = run()
                runs.setdefault(name, []).append(proc)
                if name != "tagwatch check":
                    out = json.loads(proc.stdout)
                    if out["ok"] != n:
                        raise RuntimeError(f"{name}: {out['ok']} of {n} HEADs answered 200")
                    loops.setdefault(name, []).append(out["loop_seconds"])
            if ab is not None:
                ceiling.append(ab_rate(ab, urls[1], n, conc))
        wall = {k: median([p.wall for p in v]) for k, v in runs.items()}
        cpu = {k: median([p.cpu for p in v]) for k, v in runs.items()}
        loop = {k: median(v) for k, v in loops.items()}
        tw_rate = n / wall["tagwatch check"]
        aio_loop_rate = n / loop["aiohttp"]
        aio_proc_rate = n / wall["aiohttp"]
        reps = f"median of {s.client_reps}" if s.client_reps > 1 else "1 run"
        self.results.at_least(
            f"2a tagwatch check rate / aiohttp HEAD loop ({n} tags, c={conc})",
            tw_rate / aio_loop_rate,
            1.0 / s.relax,
            "x",
            fmt=".2f",
            detail=f"{tw_rate:.0f}/s whole process, start-up included, vs {aio_loop_rate:.0f}/s "
            f"loop only; {reps}, interleaved",
        )
        if ceiling:
            ab_median = median(ceiling)
            self.results.at_least(
                f"2b tagwatch check rate / ab ceiling (keep-alive HEAD of one tag, c={conc})",
                tw_rate / ab_median,
                0.9 / s.relax,
                "x",
                fmt=".2f",
                detail=f"ab -i -k -c {conc} -n {n}: {ab_median:.0f}/s (runs: "
                f"{', '.join(f'{r:.0f}' for r in ceiling)}); aiohttp loop / ab "
                f"{aio_loop_rate / ab_median:.2f}",
            )
        else:
            self.results.info("2b tagwatch check rate / ab ceiling", "skipped: ab not installed")
        first = self.first_request(refs)
        self.results.at_most(
            "2c tagwatch check start-up: until its first request",
            1000 * first,
            100 * s.relax,
            "ms",
            fmt=".0f",
            detail=f"from starting the process to the first request at a pass-through proxy, "
            f"{n} watches; median of {FIRST_REQUEST_RUNS}",
        )
        tw_cpu_ms = 1000 * cpu["tagwatch check"] / n
        self.results.at_most(
            "2d tagwatch check CPU per checked tag",
            tw_cpu_ms,
            0.25 * s.relax,
            "ms",
            fmt=".3f",
            detail=f"{cpu['tagwatch check']:.2f}s user+sys for {n} tags, start-up included",
        )
        daemon_cpu, daemon_rate = self.warm_cycles(refs)
        self.results.at_most(
            "2e tagwatch run: CPU per tag in a warm cycle",
            1000 * daemon_cpu,
            0.15 * s.relax,
            "ms",
            fmt=".3f",
            detail=f"the daemon's CPU clock over 3 cycles after the first, {n} tags, c={conc}; "
            f"cycle rate {daemon_rate:.0f}/s = {daemon_rate / aio_loop_rate:.2f}x the aiohttp loop",
        )
        self.results.info(
            "2f same, process vs whole aiohttp process",
            f"{tw_rate / aio_proc_rate:.2f}x",
            detail=f"tagwatch {tw_rate:.0f}/s vs aiohttp {aio_proc_rate:.0f}/s, both with start-up",
        )
        for name in ("tagwatch check", *s.client_baselines):
            loop_txt = f"; loop only {n / loop[name]:.0f}/s" if name in loop else ""
            self.results.info(
                f"2g {name}",
                f"{n / wall[name]:.0f}/s, {1000 * cpu[name] / n:.3f} ms CPU/tag",
                detail=f"process {wall[name]:.2f}s wall, {cpu[name]:.2f}s CPU{loop_txt}",
            )
        startup = [
            measure(
                [
                    *TW,
                    "check",
                    "-c",
                    str(write_config(self.path("empty.toml"), self.path("empty.db"), [])),
                ]
            )
            for _ in range(s.client_reps)
        ]
        self.results.info(
            "2h tagwatch check on 0 tags (start-up)",
            f"{median([p.wall for p in startup]):.3f}s wall, "
            f"{median([p.cpu for p in startup]):.3f}s CPU",
        )
        data = {
            "wall": wall,
            "cpu": cpu,
            "loop": loop,
            "tags": n,
            "ab": ceiling,
            "first_request": first,
            "daemon_cpu_per_tag": daemon_cpu,
            "daemon_rate": daemon_rate,
        }
        self.results.data["client_cost"] = data
        return {
            "wall_per_tag": wall["tagwatch check"] / n,
            "cpu_per_tag": cpu["tagwatch check"] / n,
            "rate": tw_rate,
            "aiohttp_loop_rate": aio_loop_rate,
        }

    def first_request(self, refs: Sequence[tuple[str, str]]) -> float:
        """Median seconds from starting `tagwatch check` over `refs` to its first request,
        seen at a pass-through proxy (no delay) in front of the registry."""
        s, reg = self.sizes, self.reg
        with DelayProxy("127.0.0.1", reg.port, 0.0) as proxy:
            config = write_config(
                self.path("first.toml"),
                self.path("first.db"),
                images(proxy.host, refs),
                concurrency=s.client_concurrency,
            )
            check(config)  # first sight
            firsts = []
            for _ in range(FIRST_REQUEST_RUNS):
                proxy.first = None
                proc = check(config)
                if proxy.first is None:
                    raise RuntimeError("tagwatch check sent no request through the proxy")
                firsts.append(proxy.first - proc.began)
        return median(firsts)

    def warm_cycles(self, refs: Sequence[tuple[str, str]], cycles: int = 3) -> tuple[float, float]:
        """A daemon over `refs` (already recorded), at `-v` as it runs in production plus one
        line per step of a cycle (no line per request, which -vv would add): its CPU seconds
        per tag over `cycles` cycles after its first, and the median cycle's rate (tags per
        second, from the first step line to the last)."""
        s, reg = self.sizes, self.reg
        config = write_config(
            self.path("warm.toml"),
            self.path("client.db"),
            images(reg.host, refs),
            concurrency=s.client_concurrency,
            interval="3s",
        )
        daemon = Daemon(config, self.path("warm-daemon.log"), verbose="-v")
        marks: dict[int, int] = {}
        try:
            done = daemon.steps(
                1 + cycles,
                timeout=120,
                ended=lambda cycle: marks.setdefault(cycle, daemon.cpu_ns()),
            )
            cpu = (marks[1 + cycles] - marks[1]) / 1e9
            log = self.path("warm-daemon.log").read_text(errors="replace")
        finally:
            daemon.stop()
        failures = [int(f) for f in re.findall(r"resolve: .* (\d+) failed", log)]
        if any(failures):
            raise RuntimeError(f"tagwatch run: failed checks in its cycles: {failures}")
        warm = done[1 : 1 + cycles]
        return cpu / (cycles * len(refs)), len(refs) / median([b - a for a, b in warm])

    # -- 3. latency hiding --------------------------------------------------------------

    def latency(self) -> None:
        s, reg = self.sizes, self.reg
        n, conc, delay = s.latency_tags, s.latency_concurrency, s.latency_delay
        with DelayProxy("127.0.0.1", reg.port, delay) as proxy:
            config = write_config(
                self.path("latency.toml"),
                self.path("latency.db"),
                images(proxy.host, tag_refs(n)),
                concurrency=conc,
                interval="4s",
            )
            daemon = Daemon(config, self.path("latency-daemon.log"))
            try:
                first = daemon.wait_cycles(1, timeout=120)[0]
                before = proxy.requests, proxy.chunks, proxy.connections
                cpu0 = daemon.cpu_ns()
                cycles = daemon.wait_cycles(2, timeout=120)
                after = proxy.requests, proxy.chunks, proxy.connections
                cycle_cpu = (daemon.cpu_ns() - cpu0) / 1e9
            finally:
                daemon.stop()
            urls_file = self.path("latency-urls.json")
            urls_file.write_text(
                json.dumps(
                    [f"http://{proxy.host}/v2/{repo}/manifests/{tag}" for repo, tag in tag_refs(n)]
                )
            )
            floor = json.loads(
                measure(
                    [PYTHON, CLIENTS, "aiohttp", str(urls_file), str(conc)], capture=True
                ).stdout
            )["loop_seconds"]
        checked, _, failed, seconds = cycles[1]
        ideal = n / conc * delay
        goal = ideal * 1.3 * s.relax
        reqs, chunks, conns = (a - b for a, b in zip(after, before, strict=True))
        self.results.at_most(
            f"3  cycle through +{delay * 1000:.0f} ms proxy ({n} tags, c={conc})",
            seconds,
            goal,
            "s",
            fmt=".2f",
            detail=f"{seconds / ideal:.2f}x ideal {ideal:.3f}s; warm 2nd cycle of a daemon, "
            f"{checked} checked {failed} failed, {reqs} requests in {chunks} chunks on {conns} "
            f"new connections; 1st cycle {first[3]:.2f}s; the daemon's CPU in the 2nd cycle "
            f"{cycle_cpu:.2f}s = {1000 * cycle_cpu / n:.2f} ms/tag",
        )
        self.results.info(
            "3  same proxy, tags and c: minimal aiohttp HEAD loop",
            f"{floor:.2f} s",
            detail=f"{floor / ideal:.2f}x ideal: what this machine allows (registry and proxy "
            "share its CPUs)",
        )

    # -- 4. memory and idle ---------------------------------------------------------------

    def memory(self) -> None:
        s, reg = self.sizes, self.reg
        n = s.memory_watches
        config = write_config(
            self.path("memory.toml"),
            self.path("memory.db"),
            images(reg.host, tag_refs(n)),
            interval="1h",
        )
        daemon = Daemon(config, self.path("memory-daemon.log"))
        try:
            cycle = daemon.wait_cycles(1, timeout=600)[0]
            time.sleep(1.0)  # let the cycle's job finish its bookkeeping
            hwm = daemon.status("VmHWM") / 1024
            rss = daemon.status("VmRSS") / 1024
            threads = daemon.threads()
            ns0, t0, w0 = daemon.cpu_ns(), daemon.cpu_ticks(), time.monotonic()
            so_far = daemon.cpu_ticks()
            time.sleep(s.idle_seconds)
            ns1, t1, w1 = daemon.cpu_ns(), daemon.cpu_ticks(), time.monotonic()
            alive = daemon.proc.poll() is None
        finally:
            daemon.stop()
        if not alive:
            raise RuntimeError("tagwatch run died during the idle window")
        goal_mb = 80 * s.relax
        self.results.at_most(
            f"4a peak RSS of tagwatch run, {n} watches, after a full cycle",
            hwm,
            goal_mb,
            "MB",
            fmt=".1f",
            detail=f"VmHWM; VmRSS {rss:.1f} MB after; cycle {cycle[3]:.1f}s, {cycle[0]} checked "
            f"{cycle[2]} failed; {threads} threads",
        )
        window = w1 - w0
        per_hour = (ns1 - ns0) / 1e9 / window * 3600
        ticks_per_hour = (t1 - t0) / window * 3600
        self.results.at_most(
            "4b idle CPU after the cycle, per hour",
            per_hour,
            1.0,
            "s",
            fmt=".3f",
            detail=f"{(ns1 - ns0) / 1e6:.2f} ms in {window:.0f}s (process CPU clock); "
            f"/proc/PID/stat: {t1 - t0:.2f}s -> {ticks_per_hour:.1f} s/h (the daemon had used "
            f"{so_far:.1f}s before the window)",
        )

    # -- 5. disk ----------------------------------------------------------------------------

    def disk(self) -> Path:
        s, reg = self.sizes, self.reg
        n = s.disk_tags
        db = self.path("disk.db")
        config = write_config(self.path("disk.toml"), db, images(reg.host, tag_refs(n)))
        check(config)
        size0 = db_size(db)
        walls = []
        for _ in range(s.disk_cycles):
            walls.append(check(config).wall)
        size1 = db_size(db)
        growth = (size1 - size0) / 1024
        self.results.at_most(
            f"5  database growth, {s.disk_cycles} cycles x {n} unchanged tags",
            growth,
            100 * s.relax,
            "KB",
            fmt=".1f",
            detail=f"{size0 / 1024:.0f} KB -> {size1 / 1024:.0f} KB after checkpoint; "
            f"check median {median(walls):.2f}s",
        )
        return config

    # -- 6. start-up --------------------------------------------------------------------

    def startup(self, status_config: Path, targets: int) -> None:
        s = self.sizes
        version = [measure([*TW, "--version"]) for _ in range(s.startup_runs)]
        status = [measure([*TW, "status", "-c", str(status_config)]) for _ in range(s.startup_runs)]
        v, st = median([p.wall for p in version]), median([p.wall for p in status])
        self.results.at_most(
            "6a tagwatch --version",
            1000 * v,
            150 * s.relax,
            "ms",
            fmt=".0f",
            detail=f"median of {s.startup_runs}; CPU "
            f"{1000 * median([p.cpu for p in version]):.0f} ms",
        )
        self.results.at_most(
            f"6b tagwatch status, {targets} targets",
            1000 * st,
            400 * s.relax,
            "ms",
            fmt=".0f",
            detail=f"median of {s.startup_runs}; CPU "
            f"{1000 * median([p.cpu for p in status]):.0f} ms",
        )

    # -- 7. peers -----------------------------------------------------------------------

    def peers(self, at_scale: dict[str, float] | None) -> None:
        s, reg = self.sizes, self.reg
        skopeo = shutil.which("skopeo")
        if skopeo is None:
            self.results.info("7  skopeo inspect", "skipped: skopeo is not installed")
            return
        pool = tag_refs(s.client_tags)
        step = max(1, len(pool) // s.skopeo_tags)
        sample = pool[::step][: s.skopeo_tags]
        n = len(sample)
        env_home = self.path("skopeo-home")
        env_home.mkdir(exist_ok=True)
        runs = [
            measure(
                [
                    skopeo,
                    "inspect",
                    "--raw",
                    "--tls-verify=false",
                    f"docker://{reg.host}/{repo}:{tag}",
                ],
                capture=True,
            )
            for repo, tag in sample
        ]
        sk_wall = sum(p.wall for p in runs) / n
        sk_cpu = sum(p.cpu for p in runs) / n
        config = write_config(
            self.path("peers.toml"), self.path("peers.db"), images(reg.host, sample)
        )
        check(config)
        tw = [check(config) for _ in range(3)]
        tw_wall = median([p.wall for p in tw]) / n
        tw_cpu = median([p.cpu for p in tw]) / n
        self.results.info(
            f"7a skopeo/tagwatch per tag, same {n} tags",
            f"wall {sk_wall / tw_wall:.1f}x, CPU {sk_cpu / tw_cpu:.1f}x",
            goal="report",
            detail=f"skopeo inspect --raw, one process per tag, sequential: "
            f"{1000 * sk_wall:.1f} ms wall, {1000 * sk_cpu:.1f} ms CPU per tag; one "
            f"tagwatch check over the {n}: {1000 * tw_wall:.2f} ms wall, {1000 * tw_cpu:.2f} ms "
            "CPU per tag (median of 3)",
        )
        if at_scale:
            self.results.info(
                f"7b skopeo per tag / tagwatch per tag at {s.client_tags} tags",
                f"wall {sk_wall / at_scale['wall_per_tag']:.0f}x, "
                f"CPU {sk_cpu / at_scale['cpu_per_tag']:.0f}x",
                goal="report",
                detail=f"tagwatch {1000 * at_scale['wall_per_tag']:.2f} ms wall, "
                f"{1000 * at_scale['cpu_per_tag']:.2f} ms CPU per tag (target 2)",
            )


# ---------------------------------------------------------------------------------- main


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    reg = subprocess.run(["docker-registry", "--version"], capture_output=True, text=True)
    version = subprocess.run([*TW, "--version"], capture_output=True, text=True)
    git = (
        subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        or "?"
    )
    return (
        f"machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {model}, "
        f"{mem}; Python {platform.python_version()}; {version.stdout.strip()} ({git}); "
        f"{reg.stdout.strip().replace('github.com/docker/distribution ', '')}"
    )


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="tagwatch-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


TARGETS = ("1", "2", "3", "4", "5", "6", "7", "8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and goals relaxed x2 (CI); exits 1 on a miss",
    )
    parser.add_argument(
        "--only",
        default=",".join(TARGETS),
        help="comma-separated targets to run (default: all: 1,2,3,4,5,6,7,8)",
    )
    parser.add_argument(
        "--scale",
        metavar="SIZES",
        help="target 8: watches per daemon, comma-separated (default: 1000,10000,100000; "
        "--quick: 1000)",
    )
    parser.add_argument(
        "--scale-cycles",
        type=int,
        metavar="N",
        help="target 8: unchanged cycles after the first, for the growth (default 10; --quick: 3)",
    )
    parser.add_argument(
        "--scale-registry",
        type=Path,
        metavar="DIR",
        help="target 8: run its own registry in DIR and keep it (its tags are made once)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (configs, databases, logs)"
    )
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    sizes = QUICK if args.quick else FULL
    # Target 8 lives in bench/scale.py, which imports this module as `run`: the same one.
    sys.modules.setdefault("run", sys.modules[__name__])
    import scale as scale_bench

    scale_sizes = (
        scale_bench.parse_sizes(args.scale)
        if args.scale
        else list(scale_bench.QUICK_SIZES if args.quick else scale_bench.FULL_SIZES)
    )

    from clients import ACCEPT

    from tagwatch.core.manifest import ACCEPT as TAGWATCH_ACCEPT

    if ACCEPT != TAGWATCH_ACCEPT:
        raise SystemExit("bench/clients.py ACCEPT differs from tagwatch.core.manifest.ACCEPT")

    started = time.monotonic()
    results = Results()
    with workdir(args.keep) as work:
        TW[:] = install(work)
        header = machine()
        load = Path("/proc/loadavg").read_text().split()[:3]
        print(header, flush=True)
        registry = start_registry(work / "registry", "anonymous")
        try:
            need = max(
                sizes.request_tags if "1" in only else 0,
                sizes.client_tags if only & {"2", "7", "8"} else 0,
                sizes.latency_tags if "3" in only else 0,
                sizes.memory_watches if "4" in only else 0,
                sizes.disk_tags if only & {"5", "6"} else 0,
            )
            t = time.monotonic()
            push_tags(registry, need)
            print(f"pushed {need} tags in {time.monotonic() - t:.1f}s", flush=True)
            bench = Bench(sizes, work, results, registry)
            steps: list[tuple[str, str, Callable[[], object]]] = [
                ("1", "requests", bench.requests),
                ("1", "token requests", bench.tokens),
            ]
            scale: dict[str, float] = {}
            disk_config: list[Path] = []
            steps += [
                ("2", "client cost", lambda: scale.update(bench.client_cost())),
                ("3", "latency hiding", bench.latency),
                ("4", "memory and idle", bench.memory),
                ("5", "disk", lambda: disk_config.append(bench.disk())),
            ]
            for key, title, step in steps:
                if key in only:
                    t = time.monotonic()
                    print(f"{key}. {title} ...", flush=True)
                    step()
                    print(f"   ({time.monotonic() - t:.1f}s)", flush=True)
            if "6" in only:
                t = time.monotonic()
                print("6. start-up ...", flush=True)
                if not disk_config:  # status needs a recorded database
                    config = write_config(
                        work / "status.toml",
                        work / "status.db",
                        images(registry.host, tag_refs(sizes.disk_tags)),
                    )
                    check(config)
                    disk_config.append(config)
                bench.startup(disk_config[0], sizes.disk_tags)
                print(f"   ({time.monotonic() - t:.1f}s)", flush=True)
            if "7" in only:
                t = time.monotonic()
                print("7. peers ...", flush=True)
                bench.peers(scale or None)
                print(f"   ({time.monotonic() - t:.1f}s)", flush=True)
            if "8" in only:
                t = time.monotonic()
                print("8. 100,000 tags on one host (bench/scale.py) ...", flush=True)
                scale_bench.scale_target(
                    bench,
                    scale_sizes,
                    scale.get("rate"),
                    cycles=args.scale_cycles or (3 if args.quick else 10),
                    registry_dir=args.scale_registry,
                )
                print(f"   ({time.monotonic() - t:.1f}s)", flush=True)
        finally:
            registry.close()
    elapsed = time.monotonic() - started
    load_end = Path("/proc/loadavg").read_text().split()[:3]
    mode = "quick (goals relaxed x2, smaller sizes)" if args.quick else "full"
    print()
    print(header)
    print(
        f"mode: {mode}; total {elapsed:.0f}s; load average {'/'.join(load)} at the start, "
        f"{'/'.join(load_end)} at the end"
    )
    print(results.table())
    failed = [r for r in results.rows if r.ok is False]
    # Not "N passed, N failed": CI runners read that line as a test count.
    print(f"goals: {sum(1 for r in results.rows if r.ok)} met, {len(failed)} missed")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "machine": header,
                    "mode": mode,
                    "seconds": elapsed,
                    "rows": [r.__dict__ for r in results.rows],
                    "data": results.data,
                },
                indent=2,
                default=str,
            )
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
