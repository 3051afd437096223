"""prometheus/tagwatch-alerts.yml passes `promtool check rules` and its unit tests
(prometheus/tagwatch-alerts.test.yml) pass `promtool test rules`.

promtool comes with the Debian package `prometheus`. Without it the tests skip, or fail when
CI or TAGWATCH_REQUIRE_INTEGRATION=1 is set (as `./dev test` does)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "prometheus" / "tagwatch-alerts.yml"
RULE_TESTS = REPO / "prometheus" / "tagwatch-alerts.test.yml"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        message = ("promtool not found: install the Debian package prometheus "
                   "(apt-get install prometheus, or run ./dev test)")
        if os.environ.get("CI") or os.environ.get("TAGWATCH_REQUIRE_INTEGRATION") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO)


def explain(proc: subprocess.CompletedProcess[str]) -> str:
    return (f"{' '.join(proc.args)} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}--- stderr\n{proc.stderr}")


def test_check_rules() -> None:
    proc = run_promtool("check", "rules", str(RULES))
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 0, explain(proc)
    assert "SUCCESS" in proc.stdout + proc.stderr, explain(proc)


def test_rule_unit_tests() -> None:
    proc = run_promtool("test", "rules", str(RULE_TESTS))
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 0, explain(proc)
    assert "SUCCESS" in proc.stdout + proc.stderr, explain(proc)


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    """Each rule in the rules file appears in the unit tests both with expected alerts and
    with none (a case where it must not fire)."""
    rules = re.findall(r"^\s*- alert: (\w+)\s*$", RULES.read_text(), flags=re.M)
    assert rules, "no alerts found"
    text = RULE_TESTS.read_text()
    # alert_rule_test entries: "alertname: X" followed (before the next entry) by exp_alerts
    entries = re.split(r"^\s*- eval_time:", text, flags=re.M)[1:]
    firing, quiet = set(), set()
    for entry in entries:
        m = re.search(r"alertname: (\w+)", entry)
        assert m, entry
        body = entry.split("\n  - name:")[0]  # stop at the next test group
        (firing if "exp_alerts:" in body else quiet).add(m.group(1))
    assert not set(rules) - firing, f"no firing test for {sorted(set(rules) - firing)}"
    assert not set(rules) - quiet, f"no quiet test for {sorted(set(rules) - quiet)}"
    assert not (firing | quiet) - set(rules), "tests name alerts that do not exist"
