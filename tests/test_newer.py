"""Newer versions against the real registry: paginated tag lists, cached, one event each."""

from __future__ import annotations

from pathlib import Path

import pytest
from regharness import Pusher, Registry, unique_repo
from sinks import WebhookSink
from test_check_integration import Setup

pytestmark = pytest.mark.integration


def test_tag_list_follows_link_pagination_with_a_page_cap() -> None:
    """Distribution 2.8 answers the whole list at once; Docker Hub, GHCR and distribution 3
    page it with `n`, `last` and a `Link: <…>; rel="next"` header, replayed here."""
    import httpx

    from tagwatch.core.refs import parse_ref
    from tagwatch.registry import client as client_module
    from tagwatch.registry.client import RegistryClient

    names = sorted(f"1.{i}.0" for i in range(23))
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        n = int(request.url.params.get("n", "100"))
        last = request.url.params.get("last")
        start = names.index(last) + 1 if last else 0
        page = names[start : start + n]
        headers = {}
        if start + n < len(names):
            headers["Link"] = f'</v2/lib/app/tags/list?last={page[-1]}&n={n}>; rel="next"'
        return httpx.Response(200, json={"name": "lib/app", "tags": page}, headers=headers)

    client = RegistryClient(transport=httpx.MockTransport(handler))
    ref = parse_ref("ghcr.io/lib/app")
    tags, complete = client.list_tags(ref, 5)
    assert complete and tags == names and len(seen) == 5
    assert seen[1].endswith("/v2/lib/app/tags/list?last=1.12.0&n=5")
    seen.clear()
    cap = client_module.MAX_TAG_PAGES
    client_module.MAX_TAG_PAGES = 2
    try:
        tags, complete = client.list_tags(ref, 5)
    finally:
        client_module.MAX_TAG_PAGES = cap
    assert not complete and len(tags) == 10 and len(seen) == 2


def test_newer_versions_are_reported_once(
    registry_anonymous: Registry, tmp_path: Path, webhook: WebhookSink
) -> None:
    push = Pusher(registry_anonymous)
    repo = unique_repo("node")
    digest = push.push_image(repo, "20.11.1-alpine3.20", seed="n")
    for name in ("20.11.0-alpine3.20", "20.12.0-alpine3.21", "22.1.0-alpine3.20", "latest"):
        push.tag(repo, name, digest)
    setup = Setup(tmp_path)
    image = f"{registry_anonymous.host}/{repo}"
    setup.watch(f"{image}:20.11.1-alpine3.20", newer="major").notify(webhook.url)
    assert setup("check").code == 0
    webhook.wait_for(1)
    [message] = webhook.received
    assert message["title"] == f"[tagwatch] newer: {image}:20.11.1-alpine3.20"
    assert "newer: 22.1.0-alpine3.20" in message["message"]
    assert setup.status()[f"watch:{image}:20.11.1-alpine3.20"]["newer"] == ["22.1.0-alpine3.20"]

    push.tag(repo, "20.12.0-alpine3.20", digest)
    mark = registry_anonymous.mark()
    assert setup("check").code == 0  # the tag list is cached: not read again, no event
    assert (
        registry_anonymous.requests(
            since=mark, path_contains="/tags/list", exclude_agent="tagwatch-test-pusher"
        )
        == []
    )
    assert len(webhook.received) == 1

    import sqlite3  # six hours later: the cached list is read again

    con = sqlite3.connect(setup.db)
    con.execute("UPDATE tag_lists SET fetched_at = '2000-01-01T00:00:00Z'")
    con.commit()
    con.close()
    assert setup("check").code == 0
    webhook.wait_for(2)
    assert "newer: 20.12.0-alpine3.20" in webhook.received[1]["message"]
    assert "22.1.0" not in webhook.received[1]["message"].split("newest")[0]
    assert setup("check").code == 0
    assert len(webhook.received) == 2


def test_filters_ttl_and_refresh_through_check(
    registry_anonymous: Registry, tmp_path: Path, webhook: WebhookSink
) -> None:
    push = Pusher(registry_anonymous)
    repo, base = unique_repo("python"), unique_repo("base")
    image, base_image = (f"{registry_anonymous.host}/{r}" for r in (repo, base))
    digest = push.push_image(repo, "3.12", seed="p")
    for name in ("3.13", "3.13-slim", "3.14-rc1-slim", "3.12.1-slim", "4.0-slim"):
        push.tag(repo, name, digest)
    push.tag(base, "1.0-bookworm", push.push_image(base, "1.0-bookworm", seed="b"))
    push.tag(base, "1.1-trixie", push.push_image(base, "1.1-trixie", seed="c"))
    push.tag(base, "1.2-beta-trixie", push.push_image(base, "1.2-beta-trixie", seed="d"))
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "Dockerfile").write_text(f"FROM {base_image}:1.0-bookworm\n")
    setup = Setup(tmp_path)
    setup.watch(f"{image}:3.12", newer="minor", newer_include="-slim$",
                newer_exclude=["-rc"]).notify(webhook.url)
    setup.add('[[source]]\npath = "src"\nnewer = "minor"\nnewer_include = "-[a-z]+$"\n'
              'newer_exclude = "beta"\n')
    run = setup("check", "--json")
    assert run.code == 0, run.err
    found = {o["image"]: o["newer"] for o in run.json()}
    # only -slim, never -rc; two numbers like 3.12 (not 3.12.1-slim); minor: not 4.0-slim
    assert found == {image: ["3.13-slim"], base_image: ["1.1-trixie"]}
    webhook.wait_for(2)

    push.tag(repo, "3.15-slim", digest)
    mark = registry_anonymous.mark()
    assert setup("check").code == 0  # within tag_list_ttl (6h): the cached list, no request
    assert registry_anonymous.requests(since=mark, path_contains="/tags/list",
                                       exclude_agent="tagwatch-test-pusher") == []
    assert len(webhook.received) == 2

    refreshed = setup("check", "--refresh-tags", "--json")
    assert refreshed.code == 0
    listed = registry_anonymous.requests(since=mark, path_contains="/tags/list",
                                         exclude_agent="tagwatch-test-pusher")
    assert len(listed) == 2  # both repositories, once each
    assert {o["image"]: o["newer"] for o in refreshed.json()}[image] == ["3.13-slim", "3.15-slim"]
    webhook.wait_for(3)
    assert "newer: 3.15-slim" in webhook.received[2]["message"]

    # tag_list_ttl = "0s": every check reads the lists
    setup.parts[0] = setup.parts[0].replace("[tagwatch]\n", '[tagwatch]\ntag_list_ttl = "0s"\n')
    push.tag(repo, "3.16-slim", digest)
    assert setup("check").code == 0
    webhook.wait_for(4)
    assert "newer: 3.16-slim" in webhook.received[3]["message"]
