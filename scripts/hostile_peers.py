"""Hostile image publishers and registries, for real, on this machine: the outputs the README's
"Failure modes" rows quote (`.venv/bin/python scripts/hostile_peers.py`).

Starts the distribution registry on loopback with the fault proxy in front of it, and pushes:

* `app-a`, `app-b`: ordinary images that move from version 1.0 to 2.0;
* `deep`: a move to an image whose config blob is valid JSON nested 100,000 deep;
* `labelled`: a move to an image whose `org.opencontainers.image.version` label holds a
  newline and a forged `new: sha256:000…` line, a Markdown link and image, HTML, an OSC 8
  hyperlink, ANSI colours and a mention;
* `refused`: a tag whose HEAD carries no digest and whose GET is refused with a registry error
  whose message is that same text.

Then runs `tagwatch check -v` once and shows what a user sees: the exit status, the table,
the log lines, the alerts three json:// webhooks received (Markdown, HTML, text), and
`status` / `history`. Nothing leaves the machine.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import tempfile
from pathlib import Path

# The test helpers (registry harness, fault proxy, webhook sink) live in tests/support/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

from faultproxy import FaultProxy  # noqa: E402
from regharness import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Pusher, start_registry  # noqa: E402
from sinks import WebhookSink  # noqa: E402

HOSTILE = (
    "2.0\nnew: sha256:" + "0" * 64 + "\n**new:** [details](http://evil.example/x) "
    "![](http://evil.example/p.png) \x1b]8;;http://evil.example/\x1b\\click here\x1b]8;;\x1b\\ "
    "\x1b[31mRED\x1b[0m <b>bold</b> @everyone"
)
DEEP = b'{"architecture":"amd64","os":"linux","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def section(text: str) -> None:
    print(f"\n===== {text}", flush=True)


def push_config(pusher: Pusher, repo: str, tag: str, config: bytes) -> str:
    layer = gzip.compress(repo.encode(), mtime=0)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": pusher.push_blob(repo, config),
            "size": len(config),
        },
        "layers": [
            {"mediaType": OCI_LAYER, "digest": pusher.push_blob(repo, layer), "size": len(layer)}
        ],
    }
    return pusher.push_manifest(repo, tag, json.dumps(manifest).encode(), OCI_MANIFEST)


def tagwatch(config: Path, *args: str) -> None:
    print("$ tagwatch " + " ".join(args), flush=True)
    proc = subprocess.run(
        [sys.executable, "-m", "tagwatch", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    print(proc.stdout + proc.stderr + f"(exit status {proc.returncode})", flush=True)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tagwatch-hostile-") as tmp:
        work = Path(tmp)
        registry = start_registry(work / "registry", "anonymous")
        hooks = {fmt: WebhookSink() for fmt in ("markdown", "html", "text")}
        try:
            with Pusher(registry) as pusher, FaultProxy(registry.url) as proxy:
                version = "org.opencontainers.image.version"
                for repo in ("app-a", "app-b", "deep", "labelled"):
                    pusher.push_image(repo, "1", seed=repo, labels={version: "1.0"})
                pusher.push_image("refused", "1", seed="refused")
                config = work / "config.toml"
                config.write_text(
                    f'[tagwatch]\ndatabase = "{work}/tagwatch.db"\nerror_after = 1\n'
                    + "".join(
                        f'[[watch]]\nimage = "{proxy.host}/{repo}:1"\n'
                        for repo in ("app-a", "app-b", "deep", "labelled", "refused")
                    )
                    + "".join(
                        f'[[notify]]\nurl = "{hook.url}"\nformat = "{fmt}"\n'
                        for fmt, hook in hooks.items()
                    )
                )
                section("first check: every tag recorded")
                tagwatch(config, "check")

                for repo in ("app-a", "app-b"):
                    pusher.push_image(repo, "1", seed=repo + "2", labels={version: "2.0"})
                push_config(pusher, "deep", "1", DEEP)
                pusher.push_image("labelled", "1", seed="labelled2", labels={version: HOSTILE})
                proxy.set_fault("drop_digest", match=("HEAD", "/v2/refused/"))
                proxy.set_fault(
                    "status",
                    code=403,
                    match=("GET", "/v2/refused/"),
                    body=json.dumps({"errors": [{"code": "DENIED", "message": HOSTILE}]}).encode(),
                )
                section("second check: four moves (one to a 100,000-deep config), one refusal")
                tagwatch(config, "check", "-v")

                for fmt, hook in hooks.items():
                    for message in hook.received:
                        if "labelled" in message["title"] or "refused" in message["title"]:
                            section(f"{fmt} alert, as the json:// webhook received it")
                            print(message["title"])
                            print(message["message"])
                    if fmt == "text":
                        for message in hook.received:
                            if "/deep:" in message["title"]:
                                section("text alert of the move to the deep config")
                                print(message["title"])
                                print(message["message"])

                section("status and history")
                tagwatch(config, "status")
                tagwatch(config, "history", f"{proxy.host}/labelled:1")
        finally:
            for hook in hooks.values():
                hook.close()
            registry.close()


if __name__ == "__main__":
    main()
