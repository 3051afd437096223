"""The PromQL of the Grafana dashboard (grafana/tagwatch.json), ready to send to a real
Prometheus: Grafana's template variables replaced by what Grafana would send.

* `$job`, `$instance` (the dashboard's "All" = any value) become `.*`;
* `$__rate_interval`, `$__interval` become 1m, `$__range` 1h (and `_s`/`_ms` forms).

Used by tests/test_grafana_dashboard.py (offline checks) and tests/test_grafana_prometheus.py
(every query against a Prometheus scraping a running `tagwatch run`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "grafana" / "tagwatch.json"

#: What each variable is replaced by (short windows: tests scrape every second).
SUBSTITUTIONS: Mapping[str, str] = {
    "job": ".*",
    "instance": ".*",
    "__rate_interval": "1m",
    "__interval": "1m",
    "__interval_ms": "60000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}

# $name, ${name} or ${name:format}; the longest name wins ($__range_s before $__range).
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def substitute(expr: str, values: Mapping[str, str] = SUBSTITUTIONS) -> str:
    """`expr` with every Grafana variable replaced; KeyError names an unknown one."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in values:
            raise KeyError(f"no substitution for ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(repl, expr)


def panel_exprs(dashboard: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(panel title, raw expr) of every query of every panel, in dashboard order."""
    out = []
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if expr:
                out.append((str(panel.get("title", "")), str(expr)))
    return out


def panel_queries(dashboard: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr with variables substituted) of every query of every panel."""
    return [(title, substitute(expr)) for title, expr in panel_exprs(dashboard)]
