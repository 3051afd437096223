"""The dashboard and the alert rules against the real thing: a Prometheus server (Debian
`prometheus`) scraping a running `tagwatch run`, which watches a tag and a pin in a real
distribution registry (tests/support/regharness.py).

Every query of every dashboard panel (tests/support/dashboard_queries.py) must parse and return at
least one series, and the alert rules must load and evaluate cleanly, with the stale pin
alerting. The registry is configured to send Docker Hub style `ratelimit-*` headers, so the
rate-limit panel and alert have something to show.

Two more watches keep "vanished" honest: a tag the registry says does not exist (vanished:
the rule and the "Vanished tags" panel count it) and a tag on a registry that never answers
(connection refused from the start: a failing check, never a vanished tag, so it has no
`tagwatch_tag_present` series at all).

Needs `prometheus` and `docker-registry`: skips without them, fails under CI or
TAGWATCH_REQUIRE_INTEGRATION=1.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from dashboard_queries import load_dashboard, panel_queries
from regharness import Pusher, Registry, free_port, require_binaries, start_registry
from sinks import WebhookSink

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "prometheus" / "tagwatch-alerts.yml"
JOB = "tagwatch"

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float,
              diagnostics: Callable[[], str] = lambda: "", step: float = 0.25) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.TransportError):
            result = probe()
            if result:
                return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{diagnostics()}",
                        pytrace=False)
        time.sleep(step)


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path.name}: no output)"
    return f"--- {path.name} (last {lines} lines)\n" + "\n".join(text.splitlines()[-lines:])


class Prometheus:
    """The HTTP API of the Prometheus under test."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=10.0)
        weakref.finalize(self, self.client.close)  # closed when the test drops it

    def query(self, expr: str) -> dict[str, Any]:
        """The whole /api/v1/query answer (status, data or error), never raising on 4xx."""
        answer: dict[str, Any] = self.client.get("/api/v1/query", params={"query": expr}).json()
        return answer

    def series(self, expr: str) -> list[dict[str, Any]]:
        answer = self.query(expr)
        assert answer["status"] == "success", f"{expr}: {answer}"
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def rules(self) -> list[dict[str, Any]]:
        answer = self.client.get("/api/v1/rules").json()
        assert answer["status"] == "success", answer
        return [rule for group in answer["data"]["groups"] for rule in group["rules"]]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    require_binaries("docker-registry", "prometheus")
    reg = start_registry(tmp_path / "registry", "anonymous")
    try:
        # Answer like Docker Hub: `ratelimit-limit` / `ratelimit-remaining` on every response
        # (distribution adds `http.headers` to its API responses). 5 of 100 left: the
        # TagwatchRegistryRateLimitLow condition holds.
        config = json.loads(reg.config_path.read_text())
        config["http"]["headers"].update({
            "RateLimit-Limit": ["100;w=21600"],
            "RateLimit-Remaining": ["5;w=21600"],
        })
        reg.stop()
        reg.config_path.write_text(json.dumps(config, indent=2) + "\n")
        reg.start()
        yield reg
    finally:
        reg.close()


def test_dashboard_queries_and_alert_rules_on_a_real_prometheus(
        tmp_path: Path, registry: Registry) -> None:
    pusher = Pusher(registry)
    sink = WebhookSink()
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []

    def diagnostics() -> str:
        return "\n".join(tail(p) for p in logs)

    try:
        # -- the registry: a watched tag, and a pin that is behind from the start
        host = registry.host
        check = httpx.get(f"{registry.url}/v2/", timeout=5)
        assert check.headers.get("ratelimit-remaining") == "5;w=21600", (
            "the registry does not send the configured ratelimit headers: "
            f"{dict(check.headers)}")
        pusher.push_image("app", "1", seed="app-v1")
        old = pusher.push_image("base", "3", seed="base-old")
        pusher.push_image("base", "3", seed="base-new")

        # -- tagwatch
        metrics_port = free_port()
        nobody = f"127.0.0.1:{free_port()}"  # nothing listens there: never resolved
        config = tmp_path / "tagwatch.toml"
        config.write_text(
            "[tagwatch]\n"
            f'database = "{tmp_path / "tagwatch.db"}"\n'
            'interval = "2s"\n'
            'jitter = "0s"\n'
            "[metrics]\n"
            f'listen = "127.0.0.1:{metrics_port}"\n'
            "[[watch]]\n"
            f'image = "{host}/app:1"\n'
            "[[watch]]\n"
            f'image = "{host}/app:nope"\n'  # the registry says: no such tag
            "[[watch]]\n"
            f'image = "{nobody}/down:1"\n'
            "[[pin]]\n"
            f'image = "{host}/base:3@{old}"\n'
            'max_age = "0s"\n'
            "[[notify]]\n"
            f'url = "{sink.url}"\n'
        )
        tagwatch_log = tmp_path / "tagwatch.log"
        logs.append(tagwatch_log)
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
        with tagwatch_log.open("wb") as out:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "tagwatch", "run", "-c", str(config), "-v"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=tmp_path, env=env))
        tagwatch_url = f"http://127.0.0.1:{metrics_port}"

        def healthy() -> bool:
            if procs[0].poll() is not None:
                pytest.fail(f"tagwatch run exited with {procs[0].returncode}\n{diagnostics()}",
                            pytrace=False)
            return httpx.get(f"{tagwatch_url}/healthz", timeout=2).status_code == 200

        wait_for("tagwatch /healthz to answer 200", healthy, 30, diagnostics)

        # -- Prometheus, scraping tagwatch every second and evaluating our rules
        prom_port = free_port()
        prom_config = tmp_path / "prometheus.yml"
        prom_config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                       "scrape_timeout": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{
                "job_name": JOB,
                "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}],
            }],
        }, indent=2))
        prom_log = tmp_path / "prometheus.log"
        logs.append(prom_log)
        binary = shutil.which("prometheus")
        assert binary is not None
        with prom_log.open("wb") as out:
            procs.append(subprocess.Popen(
                [binary,
                 f"--config.file={prom_config}",
                 f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                 f"--web.listen-address=127.0.0.1:{prom_port}",
                 "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=tmp_path))
        prom_url = f"http://127.0.0.1:{prom_port}"
        wait_for("Prometheus to be ready",
                 lambda: httpx.get(f"{prom_url}/-/ready", timeout=2).status_code == 200,
                 30, diagnostics)
        prom = Prometheus(prom_url)

        # Scraped, with both targets checked and the watched tag not yet moved.
        wait_for("Prometheus to scrape tagwatch's first check",
                 lambda: prom.series(f'tagwatch_tag_changes_total{{job="{JOB}", tag="1"}} == 0'),
                 30, diagnostics)
        time.sleep(3)  # a few scrapes before the move, so increase() sees it

        # -- move the watched tag
        pusher.push_image("app", "1", seed="app-v2")
        wait_for("Prometheus to see the move of app:1",
                 lambda: prom.series(f'tagwatch_tag_changes_total{{job="{JOB}", tag="1"}} == 1'),
                 30, diagnostics)
        time.sleep(3)  # a few scrapes after it

        # -- every dashboard query parses and returns data (some need a little more time)
        queries = panel_queries(load_dashboard())
        errors: dict[str, str] = {}
        results: dict[tuple[str, str], int] = {}
        deadline = time.monotonic() + 20
        while True:
            errors.clear()
            for title, expr in queries:
                if results.get((title, expr)):
                    continue
                answer = prom.query(expr)
                if answer.get("status") != "success":
                    errors[f"{title}: {expr}"] = f"{answer.get('errorType')}: {answer.get('error')}"
                    continue
                results[(title, expr)] = len(answer["data"]["result"])
            empty = [key for key, n in results.items() if n == 0]
            if errors or not empty or time.monotonic() > deadline:
                break
            time.sleep(1)

        panels = list(dict.fromkeys(title for title, _ in queries))
        with_data = [p for p in panels
                     if all(results.get((t, e)) for t, e in queries if t == p)]
        print("\npanels returning data:", ", ".join(with_data))
        print("panels without data:", ", ".join(p for p in panels if p not in with_data) or "-")
        assert not errors, "queries Prometheus rejected:\n" + "\n".join(
            f"{k}\n    {v}" for k, v in errors.items())
        empty = [f"{t}: {e}" for (t, e), n in results.items() if n == 0]
        assert not empty, "queries without any series:\n" + "\n".join(empty)

        # -- the alert rules: loaded, evaluating cleanly, and alerting where they should
        rules = prom.rules()
        names = {r["name"] for r in rules}
        expected = set(re.findall(r"^\s*- alert: (\w+)\s*$", RULES.read_text(), flags=re.M))
        assert names == expected, f"loaded rules {sorted(names)}, file has {sorted(expected)}"

        def states() -> dict[str, str] | None:
            current = {r["name"]: r for r in prom.rules()}
            bad = {n: r.get("lastError") for n, r in current.items() if r["health"] != "ok"}
            if bad or any(r["health"] == "unknown" for r in current.values()):
                return None
            return {n: r["state"] for n, r in current.items()}

        def rule_details() -> str:
            return json.dumps(prom.rules(), indent=1)[:6000]

        got = wait_for("every rule to be evaluated with health ok", states, 15, rule_details)
        wait_for("TagwatchPinStale to be pending or firing",
                 lambda: (states() or {}).get("TagwatchPinStale") in ("pending", "firing"),
                 15, rule_details)
        wait_for("TagwatchTagMoved to fire after the move",
                 lambda: (states() or {}).get("TagwatchTagMoved") == "firing", 15, rule_details)
        wait_for("TagwatchRegistryRateLimitLow to be pending (5 of 100 left)",
                 lambda: (states() or {}).get("TagwatchRegistryRateLimitLow")
                 in ("pending", "firing"), 15, rule_details)
        wait_for("TagwatchTagVanished to be pending or firing (app:nope)",
                 lambda: (states() or {}).get("TagwatchTagVanished") in ("pending", "firing"),
                 15, rule_details)
        wait_for("TagwatchChecksFailing to be pending (the registry that never answers)",
                 lambda: (states() or {}).get("TagwatchChecksFailing") in ("pending", "firing"),
                 15, rule_details)
        got = states() or got
        print("alert states:", ", ".join(f"{n}={s}" for n, s in sorted(got.items())))
        quiet = ["TagwatchDown", "TagwatchMetricsAbsent", "TagwatchNotCompletingCycles",
                 "TagwatchNotificationsFailing"]
        assert {n: got[n] for n in quiet} == dict.fromkeys(quiet, "inactive"), got

        # -- only the registry's "does not exist" is a vanish: the tag that never resolved
        # has no presence series, is not in the rule's alerts nor in the panel's count.
        def alerting(rule: str) -> list[str]:
            current = {r["name"]: r for r in prom.rules()}
            return sorted(f"{a['labels']['image']}:{a['labels']['tag']}"
                          for a in current[rule].get("alerts", []))

        assert alerting("TagwatchTagVanished") == [f"{host}/app:nope"], rule_details()
        assert alerting("TagwatchChecksFailing") == [f"{nobody}/down:1"], rule_details()
        present = {f"{s['metric']['image']}:{s['metric']['tag']}": s["value"][1]
                   for s in prom.series(f'tagwatch_tag_present{{job="{JOB}"}}')}
        assert present == {f"{host}/app:1": "1", f"{host}/app:nope": "0",
                           f"{host}/base:3": "1"}, present
        assert prom.series(f'tagwatch_tag_check_success{{job="{JOB}", tag="1", '
                           f'image="{nobody}/down"}} == 0'), "the failing tag is not failing"
        vanished_panel = [e for t, e in queries if t == "Vanished tags"]
        assert len(vanished_panel) == 1, vanished_panel
        expr = vanished_panel[0].replace("$job", JOB).replace("$instance", ".*")
        counted = [s["value"][1] for s in prom.series(expr)]
        assert counted == ["1"], f"{expr}: {counted}"
    finally:
        for proc in reversed(procs):
            stop(proc)
        pusher.close()
        sink.close()
