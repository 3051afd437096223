"""`tagwatch scan` on the fixture tree: table, JSON and a config snippet that loads."""

from __future__ import annotations

from pathlib import Path

from test_check_integration import tagwatch

from tagwatch.config import load_config

FIXTURES = Path(__file__).parent / "scan_fixtures"


def test_scan_json_contract() -> None:
    run = tagwatch("scan", str(FIXTURES), "--json")
    assert run.code == 0, run.err
    rows = run.json()
    assert rows and all({"file", "line", "image", "tag", "digest", "kind"} <= set(r) for r in rows)
    pins = [r for r in rows if r["kind"] == "pin"]
    assert all(r["digest"].startswith("sha256:") for r in pins)
    api = next(r for r in rows if r["file"] == "deploy/shop.yaml" and r["line"] == 21)
    assert (api["image"], api["tag"], api["kind"]) == ("ghcr.io/example/shop-api", "2.4.0", "pin")
    unresolved = [r for r in rows if r["problem"]]
    assert any("unresolved variable ${REGISTRY}" in r["problem"] for r in unresolved)
    assert all(r["kind"] is None for r in unresolved)


def test_scan_table_and_filters() -> None:
    run = tagwatch("scan", str(FIXTURES), "--include", "*.yaml", "--exclude", "broken.yaml")
    assert run.code == 0
    assert "deploy/shop.yaml:21" in run.out and "Dockerfile" not in run.out
    assert "broken.yaml" not in run.out
    assert run.out.strip().splitlines()[-1].endswith("unresolved")


def test_config_snippet_is_a_valid_config(tmp_path: Path) -> None:
    run = tagwatch("scan", str(FIXTURES), "--config-snippet")
    assert run.code == 0 and "[[watch]]" in run.out and "[[pin]]" in run.out
    path = tmp_path / "config.toml"
    path.write_text(run.out)
    config = load_config(path)
    assert any(t.pinned for t in config.targets)
    assert any(t.source and "deploy/shop.yaml:21" in t.source for t in config.targets)


def test_missing_path_is_a_usage_error() -> None:
    run = tagwatch("scan", "/nonexistent/dir")
    assert run.code == 2 and "/nonexistent/dir: no such file or directory" in run.err
