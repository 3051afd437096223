#!/usr/bin/env python3
"""Build deploy/kubernetes/prometheusrule.yaml, a Prometheus Operator PrometheusRule, from the
alert rules shipped with tagwatch (tagwatch/ops/prometheus/tagwatch-alerts.yml, the one copy).

    python deploy/kubernetes/build_prometheusrule.py          # (re)write prometheusrule.yaml
    python deploy/kubernetes/build_prometheusrule.py --check  # exit 1 if it is out of date

The rule groups are copied as they are (expressions, `for`, labels, annotations); only the
Kubernetes envelope is added. tests/test_kubernetes_manifests.py fails when the two drift.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE.parent.parent / "tagwatch" / "ops" / "prometheus" / "tagwatch-alerts.yml"
OUTPUT = HERE / "prometheusrule.yaml"
HEADER = (
    "# Generated from tagwatch/ops/prometheus/tagwatch-alerts.yml by\n"
    "# deploy/kubernetes/build_prometheusrule.py: edit those rules, then run the script.\n"
)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL, descriptions) as literal blocks, as a person writes them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def build() -> dict[str, Any]:
    rules = yaml.safe_load(RULES.read_text())
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "tagwatch",
            "namespace": "tagwatch",
            "labels": {"app.kubernetes.io/name": "tagwatch"},
        },
        "spec": {"groups": rules["groups"]},
    }


def render() -> str:
    return HEADER + yaml.dump(build(), Dumper=_Dumper, sort_keys=False, width=10_000,
                              allow_unicode=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 if {OUTPUT.name} differs from what this script builds")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if (OUTPUT.read_text() if OUTPUT.exists() else "") != text:
            print(f"{OUTPUT} is out of date: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
