"""What changed on a move: the pure comparison, and the alert against the real registry."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from regharness import OCI_MANIFEST, Pusher, Registry, digest_of, unique_repo
from sinks import WebhookSink
from test_check_integration import Setup

from tagwatch.core.changes import ImageFacts, compare, format_size

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
V = "org.opencontainers.image.version"


def facts(digest: str, version: str | None, created: str, layers: list[tuple[str, int]],
          base: str | None = None) -> ImageFacts:
    labels = {V: version} if version else {}
    if base:
        labels["org.opencontainers.image.base.digest"] = base
    return ImageFacts(digest, "linux/amd64", created, labels, {}, tuple(layers))


def test_new_version() -> None:
    old = facts(A, "3.12.7", "2026-10-01T00:00:00Z", [("l1", 1000), ("l2", 2000), ("l3", 500)])
    new = facts(B, "3.12.8", "2026-11-20T08:00:00Z",
                [("l1", 1000), ("l2", 2000), ("l4", 1_200_500)])
    change = compare(old, new)
    assert change.kind == "new_version"
    assert change.summary == "3.12.7 → 3.12.8, built 2026-11-20, 1 of 3 layers changed, +1.2 MB"
    assert change.details["layers"] == {"total": 3, "changed": 1, "shared": 2}


def test_rebuild_same_version_new_base() -> None:
    old = facts(A, "1.4", "2026-10-01T00:00:00Z", [("l1", 10), ("l2", 20)], base="sha256:b1")
    new = facts(B, "1.4", "2026-11-01T00:00:00Z", [("l9", 10), ("l8", 10)], base="sha256:b2")
    change = compare(old, new)
    assert change.kind == "rebuild"
    assert change.summary == "1.4 rebuilt, built 2026-11-01, new base image, 2 of 2 layers " \
        "changed, -10 B"


def test_rebuild_without_labels_and_platforms() -> None:
    old = facts(A, None, "2026-10-01T00:00:00Z", [("l1", 10)])
    new = facts(B, None, "2026-11-01T00:00:00Z", [("l2", 10)])
    change = compare(old, new, {"linux/amd64": A}, {"linux/amd64": B, "linux/arm64": B})
    assert change.kind == "rebuild"
    assert change.summary == "rebuilt 2026-11-01, 1 of 1 layers changed, +0 B, " \
        "platforms +linux/arm64"
    assert change.details["platforms_added"] == ["linux/arm64"]


def test_index_only_and_unknown() -> None:
    same = facts(A, "1", "2026-10-01T00:00:00Z", [("l1", 10)])
    assert compare(same, same, {"linux/amd64": A}, {"linux/amd64": A, "linux/s390x": B}).kind \
        == "index_only"
    assert compare(None, same).kind == "unknown"
    assert "could not be read" in compare(None, same).summary


def test_format_size() -> None:
    assert [format_size(n) for n in (0, 999, 1500, -340_000, 1_234_567, 5_000_000_000)] == [
        "+0 B", "+999 B", "+2 kB", "-340 kB", "+1.2 MB", "+5.0 GB"]


def push_layered(push: Pusher, repo: str, tag: str, layers: list[bytes], version: str,
                 created: str) -> str:
    """An image whose layers are exactly `layers`, so two images can share some."""
    blobs = [gzip.compress(raw, mtime=0) for raw in layers]
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": created,
        "config": {"Labels": {V: version}},
        "rootfs": {"type": "layers", "diff_ids": [digest_of(raw) for raw in layers]},
    }).encode()
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": push.push_blob(repo, config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": push.push_blob(repo, blob), "size": len(blob)} for blob in blobs],
    }
    body = json.dumps(manifest).encode()
    return push.push_manifest(repo, tag, body, OCI_MANIFEST)


def test_moved_alert_says_what_changed(registry_anonymous: Registry, tmp_path: Path,
                                       webhook: WebhookSink) -> None:
    push = Pusher(registry_anonymous)
    repo = unique_repo("what")
    base = [bytes([i]) * 4000 for i in range(4)]
    push_layered(push, repo, "3.12", [*base, b"app v7" * 100], "3.12.7", "2026-10-01T00:00:00Z")
    setup = Setup(tmp_path)
    setup.watch(f"{registry_anonymous.host}/{repo}:3.12").notify(webhook.url)
    assert setup("check").code == 0
    push_layered(push, repo, "3.12", [*base[:3], b"new base" * 900, b"app v8" * 100],
                 "3.12.8", "2026-11-20T08:00:00Z")
    mark = registry_anonymous.mark()
    run = setup("check", "--json")
    assert run.code == 0
    [event] = run.json()[0]["events"]
    assert event["change"] == "new_version"
    assert event["what_changed"]["version"] == {"old": "3.12.7", "new": "3.12.8"}
    webhook.wait_for(1)
    body = webhook.received[0]["message"]
    assert "what changed: 3.12.7 → 3.12.8, built 2026-11-20, 2 of 5 layers changed" in body
    assert "version: 3.12.7 → 3.12.8" in body
    # Only a move costs more than the HEAD: the two manifests and the two configs, by digest.
    gets = registry_anonymous.requests(since=mark, method="GET",
                                       exclude_agent="tagwatch-test-pusher")
    assert len(gets) == 4
    quiet = registry_anonymous.mark()
    assert setup("check").code == 0
    assert [r.method for r in registry_anonymous.requests(
        since=quiet, exclude_agent="tagwatch-test-pusher")] == ["HEAD"]
    history = setup("history", f"{registry_anonymous.host}/{repo}:3.12", "--json").json()
    assert history[0]["change"] == "new_version"
    assert history[0]["summary"].startswith("3.12.7 → 3.12.8, built 2026-11-20")
    assert "summary" not in history[1]  # first sight: nothing to compare with


def test_rewritten_version_tag(registry_anonymous: Registry, tmp_path: Path,
                               webhook: WebhookSink) -> None:
    push = Pusher(registry_anonymous)
    repo = unique_repo("rewrite")
    push.push_image(repo, "1.4.2", seed="a", labels={V: "1.4.2"})
    push.push_image(repo, "v2.0.1", seed="b")
    setup = Setup(tmp_path)
    setup.watch(f"{registry_anonymous.host}/{repo}:1.4.2").notify(webhook.url)
    setup.watch(f"{registry_anonymous.host}/{repo}:v2.0.1", mutable=True)
    assert setup("check").code == 0
    push.push_image(repo, "1.4.2", seed="tampered", labels={V: "1.4.2"})
    push.push_image(repo, "v2.0.1", seed="rebuilt")
    assert setup("check").code == 0
    webhook.wait_for(2)
    titles = sorted(m["title"] for m in webhook.received)
    host = registry_anonymous.host
    assert titles == [f"[tagwatch] moved: {host}/{repo}:v2.0.1",
                      f"[tagwatch] rewritten: {host}/{repo}:1.4.2"]
    body = next(m["message"] for m in webhook.received if "rewritten" in m["title"])
    assert "looks like a fixed version" in body and "1.4.2 rebuilt" in body
    assert next(m["type"] for m in webhook.received if "rewritten" in m["title"]) == "failure"


def test_platforms_added_to_an_index(registry_anonymous: Registry, tmp_path: Path,
                                     webhook: WebhookSink) -> None:
    push = Pusher(registry_anonymous)
    repo = unique_repo("plat")
    amd = push.push_image(repo, None, platform=("linux", "amd64", None), seed="amd")
    push.put_index(repo, "1", {"linux/amd64": amd})
    setup = Setup(tmp_path)
    setup.watch(f"{registry_anonymous.host}/{repo}:1").notify(webhook.url)
    assert setup("check").code == 0
    arm = push.push_image(repo, None, platform=("linux", "arm64", None), seed="arm")
    push.put_index(repo, "1", {"linux/amd64": amd, "linux/arm64": arm})
    run = setup("check", "--json")
    [event] = run.json()[0]["events"]
    assert event["change"] == "index_only"
    assert event["what_changed"]["platforms_added"] == ["linux/arm64"]
    webhook.wait_for(1)
    assert ("what changed: index changed, image unchanged, platforms +linux/arm64"
            in webhook.received[0]["message"])
