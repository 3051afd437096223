"""[[source]]: references found in files are checked like configured ones, follow the files."""

from __future__ import annotations

from pathlib import Path

import pytest
from regharness import Pusher, Registry, unique_repo
from sinks import WebhookSink
from test_check_integration import Setup

pytestmark = pytest.mark.integration


def test_sources_follow_the_files(registry_anonymous: Registry, tmp_path: Path,
                                  webhook: WebhookSink) -> None:
    push = Pusher(registry_anonymous)
    app, base = unique_repo("src-app"), unique_repo("src-base")
    push.push_image(app, "1.2", seed="a")
    pinned = push.push_image(base, "3", seed="old")
    push.push_image(base, "3", seed="new")
    host = registry_anonymous.host
    repo = tmp_path / "repo"
    (repo / "svc").mkdir(parents=True)
    (repo / "Dockerfile").write_text(f"FROM {host}/{base}:3@{pinned} AS build\n"
                                     f"FROM {host}/{app}:1.2\n")
    (repo / "svc" / "compose.yaml").write_text(
        f"services:\n  web:\n    image: {host}/{app}:1.2\n  db:\n    image: ${{DB}}\n")
    (repo / "notes.yaml").write_text("just: yaml\n")
    setup = Setup(tmp_path)
    setup.add(f'[[source]]\npath = "{repo}"\nmax_age = "0s"\n').notify(webhook.url)
    run = setup("check", "--json")
    assert run.code == 0, run.out + run.err
    objects = {(o["kind"], o["image"], o["tag"]): o for o in run.json()}
    assert set(objects) == {("pin", f"{host}/{base}", "3"), ("watch", f"{host}/{app}", "1.2")}
    watch = objects[("watch", f"{host}/{app}", "1.2")]
    assert watch["source"] == f"{repo}/Dockerfile:2, {repo}/svc/compose.yaml:3"  # checked once
    webhook.wait_for(1)
    [stale] = webhook.received
    assert stale["title"] == f"[tagwatch] stale: {host}/{base}:3 ({repo}/Dockerfile:1)"
    assert f"source: {repo}/Dockerfile:1" in stale["message"]

    # The Dockerfile stops using the base image: the pin is no longer checked.
    (repo / "Dockerfile").write_text(f"FROM {host}/{app}:1.2\n")
    mark = registry_anonymous.mark()
    again = setup("check", "--json")
    assert again.code == 0
    assert [(o["kind"], o["image"]) for o in again.json()] == [("watch", f"{host}/{app}")]
    paths = {r.path for r in registry_anonymous.requests(
        since=mark, exclude_agent="tagwatch-test-pusher")}
    assert paths == {f"/v2/{app}/manifests/1.2"}
    status = setup("status", "--json").json()
    assert [o["source"] for o in status] == [f"{repo}/Dockerfile:1, {repo}/svc/compose.yaml:3"]


def test_missing_source_path_is_a_config_error(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    setup.add('[[source]]\npath = "nowhere"\n')
    run = setup("validate")
    assert run.code == 2 and "source[0].path:" in run.err and "does not exist" in run.err
