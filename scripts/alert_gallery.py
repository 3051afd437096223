"""Every kind of alert, for real: `./dev gallery` (or `python scripts/alert_gallery.py`).

Starts the distribution registry on loopback, drives watches and pins through every event
with in-process check cycles on a fake clock, and prints each alert exactly as a local
json:// webhook received it. The README's "Example alerts" come from this."""

from __future__ import annotations

import gzip
import json
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

# The test helpers (the registry harness, the webhook sink) live in tests/support/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

from faultproxy import FaultProxy  # noqa: E402
from regharness import OCI_MANIFEST, Pusher, digest_of, start_registry  # noqa: E402
from sinks import WebhookSink  # noqa: E402

from tagwatch.check import run_cycle  # noqa: E402
from tagwatch.config import load_config  # noqa: E402
from tagwatch.notify import Notifier  # noqa: E402
from tagwatch.registry.client import client_for  # noqa: E402
from tagwatch.store import Store  # noqa: E402

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def layered(push: Pusher, repo: str, tag: str, layers: list[bytes], version: str,
            created: str) -> str:
    blobs = [gzip.compress(raw, mtime=0) for raw in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": created,
                         "config": {"Labels": {"org.opencontainers.image.version": version}},
                         "rootfs": {"type": "layers",
                                    "diff_ids": [digest_of(r) for r in layers]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": push.push_blob(repo, config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": push.push_blob(repo, b), "size": len(b)} for b in blobs],
    }).encode()
    return push.push_manifest(repo, tag, manifest, OCI_MANIFEST)


def gallery() -> dict[str, list[dict[str, str]]]:
    """Every kind of alert: what each of the three webhooks (`each`, `summary`, `digest`)
    received, in order."""
    work = Path(tempfile.mkdtemp(prefix="tagwatch-gallery-"))
    registry = start_registry(work / "registry", "anonymous")
    proxy = FaultProxy(registry.url)
    hook = WebhookSink()
    summary = WebhookSink("/summary")
    digest = WebhookSink("/digest")
    try:
        push = Pusher(registry)
        base = [bytes([i]) * 300_000 for i in range(4)]
        layered(push, "python", "3.12", [*base, b"7" * 1000], "3.12.7", "2026-10-01T00:00:00Z")
        push.push_image("tool", "1.4.2", seed="a")
        push.tag("tool", "1.4", push.push_image("tool", None, seed="1.4"))
        push.push_image("app", "stable", seed="a")
        old_base = push.push_image("alpine", "3.20", seed="old")
        push.push_image("alpine", "3.20", seed="new")
        platforms = ["linux/amd64", "linux/arm64"]
        _, images = push.push_index("node", "22", platforms, seed="node-1", attestation=False)
        host = proxy.host
        (work / "config.toml").write_text(f"""
[tagwatch]
database = "{work / 'tagwatch.db'}"
[[watch]]
image = "{host}/python:3.12"
[[watch]]
image = "{host}/tool:1.4.2"
[[watch]]
image = "{host}/tool:1.4"
newer = "minor"
[[watch]]
image = "{host}/app:stable"
[[watch]]
image = "{host}/node:22"
platforms = ["linux/amd64"]
[[pin]]
image = "{host}/alpine:3.20@{old_base}"
max_age = "7d"
source = "services/api/Dockerfile"
[[pin]]
image = "{host}/alpine:3.20@sha256:{'0' * 64}"
max_age = "0s"
source = "services/legacy/Dockerfile"
[[notify]]
url = "{hook.url}"
[[notify]]
url = "{summary.url}"
mode = "summary"
events = ["moved", "rewritten", "vanished", "newer"]
[[notify]]
url = "{digest.url}"
mode = "digest"
schedule = ["09:30"]
events = ["moved", "rewritten", "vanished", "returned", "newer"]
""")
        config = load_config(work / "config.toml")
        store = Store(config.settings.database)
        notifier = Notifier(config.notify, store)
        client = client_for(config)
        client.retries = 0

        def cycle(at: datetime) -> None:
            run_cycle(config, store, client, notifier, clock=lambda: at)

        cycle(T0 - timedelta(days=10))
        layered(push, "python", "3.12", [*base[:3], b"8" * 400_000, b"8" * 1000], "3.12.8",
                "2026-11-20T08:00:00Z")
        push.push_image("tool", "1.4.2", seed="tampered")
        push.delete_tag("app", "stable")
        push.tag("tool", "1.5", push.push_image("tool", None, seed="1.5"))
        # node:22's amd64 image is rebuilt, arm64 stays: the watch follows amd64 only
        amd64 = push.push_image("node", None, platform=("linux", "amd64", None), seed="node-2")
        push.put_index("node", "22", {"linux/amd64": amd64, "linux/arm64": images["linux/arm64"]})
        cycle(T0)
        push.push_image("app", "stable", seed="b")
        cycle(T0 + timedelta(hours=1))
        # one tag fails on a registry that answers for the others: its own error
        fault = proxy.set_fault("status", code=503, match="/v2/python/")
        for hour in (2, 3, 4):
            cycle(T0 + timedelta(hours=hour))
        fault.remove()
        cycle(T0 + timedelta(hours=5))
        push.tag("alpine", "3.20", old_base)
        cycle(T0 + timedelta(hours=6))
        # the whole registry answers 503: one error for all its watches and pins
        proxy.set_fault("status", code=503)
        for hour in (7, 8, 9):
            cycle(T0 + timedelta(hours=hour))
        proxy.clear()
        cycle(T0 + timedelta(hours=10))
        received = {"each": hook.received, "summary": summary.received,
                    "digest": digest.received}
        client.close()
        store.close()
        return received
    finally:
        hook.close()
        summary.close()
        digest.close()
        proxy.close()
        registry.close()


def main() -> None:
    for name, messages in gallery().items():
        for message in messages:
            print(f"--- {name} type={message['type']}")
            print(message["title"])
            print(message["message"])


if __name__ == "__main__":
    main()
