"""Offline checks of the Grafana dashboard grafana/tagwatch.json.

* it validates against grafana-foundation-sdk's dashboard JSON schema (draft-07), vendored
  in grafana/schema/dashboard.jsonschema.json from github.com/grafana/grafana-foundation-sdk
  jsonschema/dashboard.jsonschema.json (tests read nothing outside the repository); the
  `jsonschema` package is a test dependency;
* grafana/build_dashboard.py builds exactly the committed JSON (no drift);
* it works for provisioning and import alike: fixed uid, no `__inputs`, a `datasource`
  variable used by every panel and query, `job`/`instance` filters on every selector;
* it uses only metrics tagwatch exports (the daemon's metric list below), valid layouts.

Whether every query also parses and returns data is checked against a real Prometheus in
tests/test_grafana_prometheus.py.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
from dashboard_queries import DASHBOARD, iter_panels, load_dashboard, panel_exprs, panel_queries

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "grafana" / "schema" / "dashboard.jsonschema.json"
BUILDER = REPO / "grafana" / "build_dashboard.py"

DS = {"type": "prometheus", "uid": "${datasource}"}
PANEL_TYPES = {"stat", "timeseries", "table", "text"}

#: What `tagwatch run` exports (the daemon's metric list); histograms add _bucket/_sum/_count.
GAUGES_AND_COUNTERS = {
    "tagwatch_build_info",
    "tagwatch_targets",
    "tagwatch_interval_seconds",
    "tagwatch_tag_info",
    "tagwatch_tag_changed_timestamp_seconds",
    "tagwatch_tag_checked_timestamp_seconds",
    "tagwatch_tag_changes_total",
    "tagwatch_tag_check_success",
    "tagwatch_tag_present",
    "tagwatch_target_state",
    "tagwatch_target_consecutive_failures",
    "tagwatch_pin_stale",
    "tagwatch_pin_behind_seconds",
    "tagwatch_registry_requests_total",
    "tagwatch_registry_ratelimit_remaining",
    "tagwatch_registry_ratelimit_limit",
    "tagwatch_last_cycle_timestamp_seconds",
    "tagwatch_cycles_total",
    "tagwatch_events_total",
    "tagwatch_notifications_total",
}
HISTOGRAMS = {"tagwatch_registry_request_duration_seconds", "tagwatch_cycle_duration_seconds"}
KNOWN_METRICS = GAUGES_AND_COUNTERS | {
    h + suffix for h in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")
}


def known_metric(name: str) -> bool:
    return name in KNOWN_METRICS or name == "up" or name.startswith(("process_", "python_"))


# ----------------------------------------------------------------------- a PromQL scanner

_TOKEN = re.compile(
    r'(?P<string>"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`)'
    r'|(?P<braces>\{(?:[^}"]|"(?:[^"\\]|\\.)*")*\})'
    r"|(?P<range>\[[^\]]*\])"
    r"|(?P<duration>\d+(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*\b)"
    r"|(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)"
    r"|(?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)"
    r"|(?P<space>\s+)"
    r"|(?P<other>.)"
)
_KEYWORDS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
    "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "Inf", "NaN",
}
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}


def selectors(expr: str) -> list[tuple[str | None, str | None]]:
    """(metric name, `{...}` matchers or None) of every vector selector in `expr`; a bare
    `{...}` gives (None, matchers). Good enough for the dashboard's own queries."""
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(expr)]
    tokens = [t for t in tokens if t[0] != "space"]
    out: list[tuple[str | None, str | None]] = []
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else (None, "")
        if kind == "ident" and text in _LABEL_LISTS and nxt == ("other", "("):
            depth, i = 0, i + 1  # skip the label list
            while i < len(tokens):
                if tokens[i] == ("other", "("):
                    depth += 1
                elif tokens[i] == ("other", ")"):
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
        elif kind == "ident" and text not in _KEYWORDS and nxt != ("other", "("):
            if nxt[0] == "braces":
                out.append((text, nxt[1]))
                i += 1
            else:
                out.append((text, None))
        elif kind == "braces":
            out.append((None, text))
        i += 1
    return out


def test_selector_scanner() -> None:
    expr = ('histogram_quantile(0.95, sum by (registry, le) (rate(a_bucket{job=~"$job"}'
            '[$__rate_interval]))) > on (job) group_left (digest) b and c offset 5m')
    assert selectors(expr) == [("a_bucket", '{job=~"$job"}'), ("b", None), ("c", None)]
    assert selectors('{__name__="x", a="}"}') == [(None, '{__name__="x", a="}"}')]


# ------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = json.loads(SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tagwatch_build_dashboard", BUILDER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def schema_errors(validator: Any, document: Any) -> list[str]:
    def describe(error: Any) -> str:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        text = f"{where}: {error.message[:300]}"
        for sub in sorted(error.context or [], key=lambda e: len(list(e.absolute_path))):
            sub_where = "/".join(str(p) for p in sub.absolute_path)
            text += f"\n    {sub_where}: {sub.message[:200]}"
        return text

    return [describe(e) for e in validator.iter_errors(document)]


# --------------------------------------------------------------------------------- schema


def test_validates_against_the_foundation_sdk_schema(validator: Any,
                                                      dashboard: dict[str, Any]) -> None:
    errors = schema_errors(validator, dashboard)
    assert not errors, "grafana/tagwatch.json is not a valid dashboard:\n" + "\n".join(errors)


def test_the_schema_rejects_what_it_should(validator: Any, dashboard: dict[str, Any]) -> None:
    """The validation has teeth: the mistakes this dashboard avoids are caught."""
    with_inputs = copy.deepcopy(dashboard)
    with_inputs["__inputs"] = [{"name": "DS_PROMETHEUS", "type": "datasource",
                                "pluginId": "prometheus"}]
    assert schema_errors(validator, with_inputs)

    legacy_ds = copy.deepcopy(dashboard)
    legacy_ds["panels"][0]["datasource"] = "$datasource"
    assert schema_errors(validator, legacy_ds)

    no_version = copy.deepcopy(dashboard)
    del no_version["schemaVersion"]
    assert schema_errors(validator, no_version)


# ---------------------------------------------------------------------------------- drift


def test_builder_output_is_the_committed_json() -> None:
    builder = load_builder()
    built = builder.render()
    committed = DASHBOARD.read_text()
    assert built == committed, (
        "grafana/tagwatch.json is out of date: run python grafana/build_dashboard.py "
        "and commit the result")
    assert builder.render() == built, "build_dashboard.py output is not deterministic"


def test_builder_check_mode() -> None:
    assert load_builder().main(["--check"]) == 0


# ------------------------------------------------------------- provisioning and templating


def test_identity_and_portability(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "tagwatch-overview"
    assert dashboard["id"] is None
    assert dashboard["schemaVersion"] >= 39
    assert "__inputs" not in dashboard and "__requires" not in dashboard
    assert "DS_" not in json.dumps(dashboard), "leftover ${DS_...} import placeholder"
    assert dashboard["editable"] is False


def test_variables(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert len(variables) == len(dashboard["templating"]["list"]), "variable names repeat"
    assert list(variables) == ["datasource", "job", "instance"]

    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"

    job, instance = variables["job"], variables["instance"]
    assert job["query"] == "label_values(tagwatch_build_info, job)"
    assert instance["query"] == 'label_values(tagwatch_build_info{job=~"$job"}, instance)'
    for var in (job, instance):
        assert var["type"] == "query"
        assert var["datasource"] == DS
        assert var["includeAll"] and var["multi"]
        assert var["refresh"] == 2, "refresh on time range change"


def test_panels_use_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    for panel in iter_panels(dashboard):
        if panel["type"] == "text":
            continue
        assert panel.get("datasource") == DS, panel["title"]
        assert panel.get("targets"), f"{panel['title']}: no queries"
        for target in panel["targets"]:
            assert target.get("datasource") == DS, (panel["title"], target["refId"])


def test_panel_types_titles_and_ids(dashboard: dict[str, Any]) -> None:
    panels = list(iter_panels(dashboard))
    assert panels
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"panel ids repeat: {ids}"
    titles = [p["title"] for p in panels]
    assert len(titles) == len(set(titles)), "panel titles repeat (they name test results)"
    for panel in panels:
        assert panel["type"] in PANEL_TYPES, f"{panel['title']}: {panel['type']}"
        assert panel.get("description"), f"{panel['title']}: no description"
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), f"{panel['title']}: refIds repeat"


def test_table_queries_are_instant_tables(dashboard: dict[str, Any]) -> None:
    tables = [p for p in iter_panels(dashboard) if p["type"] == "table"]
    assert tables
    for panel in tables:
        for target in panel["targets"]:
            assert target["instant"] is True and target["range"] is False
            assert target["format"] == "table"
        ids = [t["id"] for t in panel.get("transformations", [])]
        if len(panel["targets"]) > 1:
            assert ids and ids[0] == "merge", f"{panel['title']}: queries are not merged"


def test_grid_positions_do_not_overlap(dashboard: dict[str, Any]) -> None:
    boxes = []
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["y"] >= 0 and g["w"] > 0 and g["h"] > 0
        assert g["x"] + g["w"] <= 24, f"{panel['title']} sticks out of the 24-column grid"
        boxes.append((panel["title"], g["x"], g["y"], g["x"] + g["w"], g["y"] + g["h"]))
    for i, (a, ax1, ay1, ax2, ay2) in enumerate(boxes):
        for b, bx1, by1, bx2, by2 in boxes[i + 1:]:
            overlap = ax1 < bx2 and bx1 < ax2 and ay1 < by2 and by1 < ay2
            assert not overlap, f"panels {a!r} and {b!r} overlap"


# ----------------------------------------------------------------------------------- PromQL


def test_every_selector_filters_job_and_instance(dashboard: dict[str, Any]) -> None:
    problems = []
    for title, expr in panel_exprs(dashboard):
        found = selectors(expr)
        if not found:
            problems.append(f"{title}: no selector in {expr!r}")
        for name, matchers in found:
            if (matchers is None or 'job=~"$job"' not in matchers
                    or 'instance=~"$instance"' not in matchers):
                problems.append(f"{title}: {name}{matchers or ''} lacks the $job/$instance "
                                "filters")
    assert not problems, "\n".join(problems)


def test_every_metric_is_one_tagwatch_exports(dashboard: dict[str, Any]) -> None:
    unknown = sorted({
        f"{title}: {name}"
        for title, expr in panel_exprs(dashboard)
        for name, _ in selectors(expr)
        if name is None or not known_metric(name)
    })
    assert not unknown, "metrics tagwatch does not export:\n" + "\n".join(unknown)


def test_panel_queries_substitute_every_variable(dashboard: dict[str, Any]) -> None:
    queries = panel_queries(dashboard)
    assert len(queries) == len(panel_exprs(dashboard))
    titles = {p["title"] for p in iter_panels(dashboard) if p.get("targets")}
    assert {t for t, _ in queries} == titles
    for title, expr in queries:
        assert "$" not in expr, f"{title}: unsubstituted variable in {expr!r}"
        assert 'job=~".*"' in expr and 'instance=~".*"' in expr, title
