#!/usr/bin/env python3
"""Build grafana/tagwatch.json, the tagwatch Grafana dashboard, from plain dicts.

    python grafana/build_dashboard.py          # (re)write grafana/tagwatch.json
    python grafana/build_dashboard.py --check  # exit 1 if the committed JSON is out of date
    python grafana/build_dashboard.py --stdout # print it instead

The committed JSON is the artifact: Grafana provisions it (grafana/provisioning/) and users
import it. This script only exists so changes stay reviewable; edit it, rerun it, commit both
(tests/test_grafana_dashboard.py fails when they drift apart).

Conventions (classic dashboard model, works for file provisioning and for UI import):
* fixed `uid`, no `__inputs`: a `datasource` variable selects the Prometheus data source and
  every panel uses `{"type": "prometheus", "uid": "${datasource}"}`;
* `job` and `instance` variables, and every query filters on both;
* stat, timeseries and table panels only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "tagwatch.json"

UID = "tagwatch-overview"
TITLE = "tagwatch"
SCHEMA_VERSION = 39  # Grafana 10.4+/11; newer Grafana migrates it on load

DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'job=~"$job", instance=~"$instance"'

Json = dict[str, Any]


def sel(extra: str = "") -> str:
    """The label selector of every query: `{job=~"$job", instance=~"$instance"[, extra]}`."""
    return "{" + SEL + (", " + extra if extra else "") + "}"


# ---------------------------------------------------------------------------------- targets


def range_target(ref: str, expr: str, legend: str) -> Json:
    return {
        "datasource": DS,
        "editorMode": "code",
        "expr": expr,
        "format": "time_series",
        "instant": False,
        "legendFormat": legend,
        "range": True,
        "refId": ref,
    }


def instant_target(ref: str, expr: str, *, table: bool = False, legend: str = "") -> Json:
    return {
        "datasource": DS,
        "editorMode": "code",
        "expr": expr,
        "format": "table" if table else "time_series",
        "instant": True,
        "legendFormat": legend,
        "range": False,
        "refId": ref,
    }


# ----------------------------------------------------------------------------------- panels


def thresholds(*steps: tuple[float | None, str]) -> Json:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


def stat(
    title: str,
    description: str,
    targets: list[Json],
    *,
    unit: str = "short",
    steps: tuple[tuple[float | None, str], ...] = ((None, "text"),),
    decimals: int | None = 0,
    fields: str = "",
    text_mode: str = "value",
) -> Json:
    defaults: Json = {
        "color": {"mode": "thresholds"},
        "mappings": [],
        "thresholds": thresholds(*steps),
        "unit": unit,
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": fields, "values": False},
            "showPercentChange": False,
            "textMode": text_mode,
            "wideLayout": True,
        },
    }


def timeseries(
    title: str,
    description: str,
    targets: list[Json],
    *,
    unit: str = "short",
    draw: str = "line",
    stack: bool = False,
    overrides: list[Json] | None = None,
    decimals: int | None = None,
) -> Json:
    defaults: Json = {
        "color": {"mode": "palette-classic"},
        "custom": {
            "axisBorderShow": False,
            "axisPlacement": "auto",
            "drawStyle": draw,
            "fillOpacity": 60 if draw == "bars" else 10,
            "gradientMode": "none",
            "lineInterpolation": "linear",
            "lineWidth": 1,
            "pointSize": 4,
            "showPoints": "auto",
            "spanNulls": True,
            "stacking": {"group": "A", "mode": "normal" if stack else "none"},
        },
        "mappings": [],
        "min": 0,
        "thresholds": thresholds((None, "green")),
        "unit": unit,
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": {
            "legend": {"calcs": [], "displayMode": "list", "placement": "bottom",
                       "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def fixed_color(name: str, color: str) -> Json:
    """An override giving the series named `name` a fixed color. (`byNames` rather than the
    usual `byName`: the foundation-sdk schema wants matcher options to be an object.)"""
    return {
        "matcher": {"id": "byNames", "options": {"mode": "include", "names": [name]}},
        "properties": [{"id": "color", "value": {"fixedColor": color, "mode": "fixed"}}],
    }


STATE_COLORS = {"ok": "green", "stale": "orange", "vanished": "purple", "error": "red"}


def targets_table() -> Json:
    """Every watch and pin, one row each: the state series joined (Grafana's merge
    transformation, on the labels the queries share) with the tag's digest and timestamps."""
    # Aggregating drops __name__ (which differs between the queries and would keep merge
    # from joining the rows) and job, and fixes the columns each query contributes.
    targets = [
        instant_target(
            "A", "max by (instance, kind, image, tag, pinned, state) "
            f"(tagwatch_target_state{sel()})", table=True),
        instant_target(
            "B", f"max by (instance, image, tag, digest) (tagwatch_tag_info{sel()})",
            table=True),
        instant_target(
            "C", "max by (instance, image, tag) "
            f"(tagwatch_tag_changed_timestamp_seconds{sel()}) * 1000", table=True),
        instant_target(
            "D", "max by (instance, image, tag) "
            f"(tagwatch_tag_checked_timestamp_seconds{sel()}) * 1000", table=True),
    ]
    order = ["kind", "image", "tag", "state", "digest", "pinned", "Value #C", "Value #D",
             "instance"]
    return {
        "type": "table",
        "title": "Targets",
        "description": (
            "Every watch and pin: its state (ok, stale, vanished, error), the digest the tag "
            "resolves to now, the pinned digest (pins), when the tag last moved (first sight "
            "if never) and when it was last checked successfully."
        ),
        "datasource": DS,
        "targets": targets,
        "transformations": [
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True, "Value #A": True, "Value #B": True},
                    "includeByName": {},
                    "indexByName": {name: i for i, name in enumerate(order)},
                    "renameByName": {
                        "Value #C": "last change",
                        "Value #D": "last check",
                    },
                },
            },
            {"id": "sortBy", "options": {"fields": {}, "sort": [{"field": "image"}]}},
        ],
        "fieldConfig": {
            "defaults": {
                # The only numeric columns left visible are the two timestamps (ms).
                "unit": "dateTimeAsIso",
                "color": {"mode": "thresholds"},
                "thresholds": thresholds((None, "text")),
                "mappings": [
                    {
                        "type": "value",
                        "options": {
                            state: {"color": color, "index": i, "text": state}
                            for i, (state, color) in enumerate(STATE_COLORS.items())
                        },
                    }
                ],
                "custom": {
                    "align": "auto",
                    "cellOptions": {"type": "color-text"},
                    "filterable": True,
                    "inspect": False,
                },
            },
            "overrides": [],
        },
        "options": {
            "cellHeight": "sm",
            "footer": {"countRows": False, "fields": "", "reducer": ["sum"], "show": False},
            "showHeader": True,
            "sortBy": [{"desc": False, "displayName": "image"}],
        },
    }


def overview_stats() -> list[Json]:
    ok_warn = ((None, "green"), (1, "orange"))
    ok_bad = ((None, "green"), (1, "red"))
    return [
        stat("Watches", "Configured watches: tags whose digest is followed.",
             [instant_target("A", "sum(tagwatch_targets" + sel('kind="watch"') + ")")]),
        stat("Pins", "Configured pins: a tag plus the digest a build pinned.",
             [instant_target("A", "sum(tagwatch_targets" + sel('kind="pin"') + ")")]),
        stat("Moves (24h)", "Tag moves seen in the last 24 hours, all tags together.",
             [instant_target("A", f"sum(increase(tagwatch_tag_changes_total{sel()}[24h]))")],
             steps=((None, "text"), (1, "blue"))),
        stat("Stale pins", "Pins that have been behind their tag for longer than max_age.",
             [instant_target("A", f"sum(tagwatch_pin_stale{sel()})")], steps=ok_warn),
        stat("Failing checks", "Tags whose last check failed (network, auth, rate limit, "
             "bad response).",
             [instant_target("A", f"sum(1 - tagwatch_tag_check_success{sel()})")],
             steps=ok_bad),
        # The condition of the TagwatchTagVanished rule: only a registry's "does not exist"
        # (a tag never resolved has no tagwatch_tag_present series at all).
        stat("Vanished tags", "Tags the registry says no longer exist (never-resolved tags "
             "are failing checks, not vanished).",
             [instant_target("A", f"count(tagwatch_tag_present{sel()} == 0) or vector(0)")],
             steps=ok_warn),
        stat("Last cycle", "When the last check cycle completed.",
             [instant_target("A", f"max(tagwatch_last_cycle_timestamp_seconds{sel()}) * 1000")],
             unit="dateTimeFromNow", decimals=None),
        stat("Version", "The tagwatch version running (several if instances differ).",
             [instant_target("A", f"tagwatch_build_info{sel()}", table=True)],
             fields="/^version$/", decimals=None),
    ]


def graphs() -> list[Json]:
    by_tag = "{{image}}:{{tag}}"
    return [
        timeseries(
            "Tag moves (per hour)",
            "Moves seen per tag in a sliding one-hour window; tags that did not move are "
            "not shown.",
            [range_target(
                "A",
                f"sum by (image, tag) (increase(tagwatch_tag_changes_total{sel()}[1h])) > 0",
                by_tag)],
            draw="bars", decimals=0),
        timeseries(
            "Events (per hour)",
            "Events decided per type in a sliding one-hour window: moved, rewritten, "
            "vanished, returned, stale, current, pin_missing, error, recovered.",
            [range_target(
                "A", f"sum by (event) (increase(tagwatch_events_total{sel()}[1h]))",
                "{{event}}")],
            decimals=0),
        timeseries(
            "Pin lag",
            "How long each pin has been behind its tag (0 while current).",
            [range_target("A", f"tagwatch_pin_behind_seconds{sel()}", by_tag)],
            unit="s"),
        timeseries(
            "Targets by state",
            "Watches and pins per state.",
            [range_target("A", f"sum by (state) (tagwatch_target_state{sel()})", "{{state}}")],
            stack=True, decimals=0,
            overrides=[fixed_color(s, c) for s, c in STATE_COLORS.items()]),
        timeseries(
            "Registry requests by code",
            "HTTP requests to registries per second, by registry and status code "
            '("error": no response).',
            [range_target(
                "A",
                "sum by (registry, code) "
                f"(rate(tagwatch_registry_requests_total{sel()}[$__rate_interval]))",
                "{{registry}} {{code}}")],
            unit="reqps"),
        timeseries(
            "Registry request latency",
            "Median and 95th percentile of registry request durations, per registry.",
            [
                range_target(
                    "A",
                    "histogram_quantile(0.5, sum by (registry, le) "
                    f"(rate(tagwatch_registry_request_duration_seconds_bucket{sel()}"
                    "[$__rate_interval])))",
                    "{{registry}} p50"),
                range_target(
                    "B",
                    "histogram_quantile(0.95, sum by (registry, le) "
                    f"(rate(tagwatch_registry_request_duration_seconds_bucket{sel()}"
                    "[$__rate_interval])))",
                    "{{registry}} p95"),
            ],
            unit="s"),
        timeseries(
            "Registry rate limit remaining",
            "Requests left in the registry's rate-limit window (ratelimit-remaining) and "
            "the limit (ratelimit-limit); only registries that send these headers, such as "
            "Docker Hub.",
            [
                range_target("A", f"tagwatch_registry_ratelimit_remaining{sel()}",
                             "{{registry}} remaining"),
                range_target("B", f"tagwatch_registry_ratelimit_limit{sel()}",
                             "{{registry}} limit"),
            ]),
        timeseries(
            "Cycle duration",
            "Median and 95th percentile of whole check cycles over the last hour, per "
            "instance (gaps: no cycle ended in that hour).",
            [
                range_target(
                    "A",
                    "histogram_quantile(0.5, sum by (instance, le) "
                    f"(rate(tagwatch_cycle_duration_seconds_bucket{sel()}[1h])))",
                    "{{instance}} p50"),
                range_target(
                    "B",
                    "histogram_quantile(0.95, sum by (instance, le) "
                    f"(rate(tagwatch_cycle_duration_seconds_bucket{sel()}[1h])))",
                    "{{instance}} p95"),
            ],
            unit="s"),
        timeseries(
            "Cycles (per hour)",
            'Check cycles completed in a sliding one-hour window: "ok" (every check worked) '
            'or "failed" (one or more checks failed).',
            [range_target(
                "A", f"sum by (result) (increase(tagwatch_cycles_total{sel()}[1h]))",
                "{{result}}")],
            decimals=0,
            overrides=[fixed_color("ok", "green"), fixed_color("failed", "red")]),
        timeseries(
            "Notifications (per hour)",
            "Alert deliveries in a sliding one-hour window: sent, or failed (failed ones "
            "are retried).",
            [range_target(
                "A", f"sum by (result) (increase(tagwatch_notifications_total{sel()}[1h]))",
                "{{result}}")],
            decimals=0,
            overrides=[fixed_color("sent", "green"), fixed_color("failed", "red")]),
    ]


def layout(panel_list: list[Json]) -> list[Json]:
    """Place panels left to right, top to bottom: 8 stats of width 3 in one row, the table
    across the whole width, then graphs two per row. Assigns ids in order."""
    y = 0
    x = 0
    row_h = 0
    for i, panel in enumerate(panel_list, start=1):
        w, h = {"stat": (3, 4), "table": (24, 10), "timeseries": (12, 8)}[panel["type"]]
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        panel["id"] = i
        panel["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        x += w
        row_h = max(row_h, h)
    return panel_list


def variables() -> list[Json]:
    def query_var(name: str, query: str) -> Json:
        return {
            "type": "query",
            "name": name,
            "label": name,
            "datasource": DS,
            "definition": query,
            "query": query,
            "refresh": 2,
            "regex": "",
            "sort": 1,
            "includeAll": True,
            "allValue": ".+",
            "multi": True,
            "hide": 0,
        }

    return [
        {
            "type": "datasource",
            "name": "datasource",
            "label": "Data source",
            "query": "prometheus",
            "refresh": 1,
            "regex": "",
            "includeAll": False,
            "multi": False,
            "hide": 0,
        },
        query_var("job", "label_values(tagwatch_build_info, job)"),
        query_var("instance", 'label_values(tagwatch_build_info{job=~"$job"}, instance)'),
    ]


def build() -> Json:
    return {
        "annotations": {"list": [{
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }]},
        "description": "tagwatch: watched tags, pinned digests, registry traffic and the "
                       "daemon's own health.",
        "editable": False,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "panels": layout([*overview_stats(), targets_table(), *graphs()]),
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["tagwatch", "containers", "prometheus"],
        "templating": {"list": variables()},
        "time": {"from": "now-24h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": TITLE,
        "uid": UID,
        "version": 1,
        "weekStart": "",
    }


def render() -> str:
    """The dashboard as committed: sorted keys, two-space indent, trailing newline."""
    return json.dumps(build(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help=f"exit 1 if {OUTPUT.name} differs from what this script builds")
    mode.add_argument("--stdout", action="store_true", help="print the JSON instead")
    args = parser.parse_args(argv)
    text = render()
    if args.stdout:
        sys.stdout.write(text)
        return 0
    if args.check:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is out of date: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
