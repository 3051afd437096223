"""`tagwatch audit` against the real registry: policy, pin lag, moves, age, labels, exit."""

from __future__ import annotations

from pathlib import Path

import pytest
from regharness import Pusher, Registry, unique_repo
from test_check_integration import Setup

pytestmark = pytest.mark.integration

LABELS = {"org.opencontainers.image.vendor": "Example Corp",
          "org.opencontainers.image.source": "https://github.com/example/app",
          "org.opencontainers.image.version": "1.4.2"}


def test_audit_report(registry_anonymous: Registry, tmp_path: Path) -> None:
    push = Pusher(registry_anonymous)
    app, base = unique_repo("aud-app"), unique_repo("aud-base")
    host = registry_anonymous.host
    push.push_image(app, "latest", seed="l", labels=LABELS, created="2026-11-01T00:00:00Z")
    push.push_image(app, "1.4", seed="a", labels=LABELS, created="2026-11-01T00:00:00Z")
    push.tag(app, "1.5", push.push_image(app, None, seed="x"))
    old = push.push_image(base, "3", seed="old")
    push.push_image(base, "3", seed="new", created="2026-10-01T00:00:00Z")
    setup = Setup(tmp_path)
    setup.watch(f"{host}/{app}:latest")
    setup.watch(f"{host}/{app}:1.4", newer="minor")
    setup.pin(f"{host}/{base}:3@{old}", max_age="0s", source="services/api/Dockerfile")
    assert setup("check").code == 0
    for seed in ("b", "c"):  # 1.4 moves twice
        push.push_image(app, "1.4", seed=seed, labels=LABELS, created="2026-11-20T00:00:00Z")
        assert setup("check").code == 0

    run = setup("audit", "--json")
    assert run.code == 0, run.err
    rows = {f"{r['image']}:{r['tag']}": r for r in run.json()}
    latest = rows[f"{host}/{app}:latest"]
    assert latest["findings"] == ["latest", "unpinned"]
    assert latest["vendor"] == "Example Corp"
    assert latest["source"] == "https://github.com/example/app"
    assert latest["created"] == "2026-11-01T00:00:00Z" and latest["age_days"] >= 24
    moving = rows[f"{host}/{app}:1.4"]
    assert moving["moves_90d"] == 2 and moving["newer"] == ["1.5"]
    assert moving["findings"] == ["unpinned", "newer"]
    pin = rows[f"{host}/{base}:3"]
    assert pin["findings"] == ["behind", "stale"] and pin["used_in"] == "services/api/Dockerfile"
    assert pin["behind_since"] == "2026-10-01T00:00:00Z"

    table = setup("audit")
    assert "pinned, behind" in table.out and "(stale)" in table.out
    markdown = setup("audit", "--markdown")
    assert markdown.out.startswith("| Image | Used In | Tag Policy |")
    assert f"| {host}/{app}:latest |" in markdown.out

    failing = setup("audit", "--fail-on", "stale,latest")
    assert failing.code == 1 and "2 of 3 images have latest, stale findings" in failing.err
    assert setup("audit", "--fail-on", "vanished").code == 0
    bad = setup("audit", "--fail-on", "ugly")
    assert bad.code == 2 and "unknown finding ugly" in bad.err
