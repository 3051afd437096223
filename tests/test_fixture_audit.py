"""The fixture tree of tests/scan_fixtures as a [[source]], end to end against the real
registry: every registry the files name is served by the loopback registry through
`endpoint` (as a mirror would), tags move between cycles, then the audit."""

from __future__ import annotations

from pathlib import Path

import pytest
from regharness import Pusher, Registry
from test_check_integration import Setup

from tagwatch.core.scan import scan_paths

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent / "scan_fixtures"


def test_audit_of_the_fixture_tree(registry_anonymous: Registry, tmp_path: Path) -> None:
    found = [f for f in scan_paths([FIXTURES]) if f.ref is not None and f.ref.tag]
    registries = sorted({f.ref.registry for f in found if f.ref})
    push = Pusher(registry_anonymous)
    pushed = {}
    for item in found:
        assert item.ref is not None and item.ref.tag is not None
        key = (item.ref.repository, item.ref.tag)
        if key not in pushed:
            pushed[key] = push.push_image(*key, seed="/".join(key),
                                          labels={"org.opencontainers.image.vendor": "Fixture"})
    setup = Setup(tmp_path)
    for host in registries:
        setup.add(f'[[registry]]\nhost = "{host}"\nendpoint = "{registry_anonymous.url}"\n')
    setup.add(f'[[source]]\npath = "{FIXTURES}"\nmax_age = "1d"\nnewer = "minor"\n')
    first = setup("check")
    assert first.code == 0, first.out + first.err
    moved = ("library/redis", "7.4")
    push.push_image(*moved, seed="rebuilt")
    second = setup("check", "--json")
    assert second.code == 0
    events = {(o["image"], o["tag"]): [e["event"] for e in o.get("events", [])]
              for o in second.json()}
    assert events[("docker.io/library/redis", "7.4")] == ["moved"]

    audit = setup("audit")
    print("\n" + audit.out)
    assert audit.code == 0
    lines = audit.out.strip().splitlines()
    assert len(lines) == 1 + len({(f.ref.name, f.ref.tag, f.ref.digest) for f in found if f.ref})
    # Pins whose digests the registry never had: behind, and missing upstream.
    assert "pinned, behind" in audit.out and "Fixture" in audit.out
    rows = setup("audit", "--json").json()
    redis = next(r for r in rows if r["image"] == "docker.io/library/redis")
    assert redis["moves_90d"] == 1 and "compose.yaml:32" in redis["used_in"]
    api = next(r for r in rows if r["image"] == "ghcr.io/example/shop-api")
    # The fixture's pinned digest is not the tag's, and the registry never had it.
    assert api["findings"] == ["behind", "stale", "missing"]
    assert any(r["used_in"] and "compose.yaml" in r["used_in"] for r in rows)
    assert setup("audit", "--fail-on", "latest").code == 1  # busybox:latest in a Pod
