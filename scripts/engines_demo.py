"""Engine and Kubernetes sources, for real, on this machine (the README's outputs come from
this script): `.venv/bin/python scripts/engines_demo.py`.

1. A registry on loopback and a real Podman serving the Docker Engine API; two containers on
   one image, one on an image built here. The tag moves: the containers' pin falls behind,
   then goes stale, and the alert names the container. The engine stops: its pin is `error`.
2. The Kubernetes source against the recorded Pod lists of tests/fixtures/kubernetes/ (no
   API server can run here), with their images in the same registry.
Nothing leaves the machine; everything is removed at the end.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUPPORT = Path(__file__).resolve().parent.parent / "tests" / "support"
sys.path.insert(0, str(SUPPORT))

from kubeapi import KubeAPI  # noqa: E402
from podman import Podman  # noqa: E402
from regharness import Pusher, start_registry  # noqa: E402
from sinks import WebhookSink  # noqa: E402


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def tagwatch(config: Path, *args: str) -> str:
    print("$ tagwatch " + " ".join(args) + " -c config.toml", flush=True)
    done = subprocess.run([sys.executable, "-m", "tagwatch", *args, "-c", str(config)],
                          capture_output=True, text=True, check=False)
    print(done.stdout + done.stderr, end="", flush=True)
    if done.returncode:
        print(f"(exit status {done.returncode})")
    return done.stdout


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tagwatch-engines-") as tmp, \
            WebhookSink() as hook, Podman() as podman:
        work = Path(tmp)
        registry = start_registry(work / "registry", "anonymous")
        try:
            host = registry.host
            push = Pusher(registry)
            push.push_image("shop/web", "1.4", seed="web 1.4 build 1")
            podman.start()
            step(f"Podman's Docker Engine API on {podman.address}; pull, create (starting "
                 "is refused in this sandbox: created containers are enough with stopped)")
            podman.run("pull", "--tls-verify=false", f"{host}/shop/web:1.4")
            for name in ("web-1", "web-2"):
                podman.run("create", "--network=none", "--name", name, f"{host}/shop/web:1.4",
                           "serve")
            (work / "Containerfile").write_text(f"FROM {host}/shop/web:1.4\nLABEL dev=1\n")
            podman.run("build", "--network=none", "-t", "localhost/web:dev", "-f",
                       str(work / "Containerfile"), str(work))
            podman.run("create", "--network=none", "--name", "web-dev", "localhost/web:dev",
                       "serve")
            print("$ podman ps -a")
            print(podman.run("ps", "-a", "--format", "{{.Names}}  {{.Image}}  {{.Status}}"))
            config = work / "config.toml"
            config.write_text(
                f'[tagwatch]\ndatabase = "{work / "tagwatch.db"}"\nerror_after = 1\n'
                f'[[source]]\nengine = "{podman.address}"\nstopped = true\nmax_age = "3s"\n'
                f'[[notify]]\nurl = "{hook.url}"\n')
            tagwatch(config, "check")

            step("shop/web:1.4 is rebuilt and pushed again: the containers run the old digest")
            push.push_image("shop/web", "1.4", seed="web 1.4 build 2")
            tagwatch(config, "check")
            time.sleep(3.5)
            step("behind for longer than max_age (3s here): stale, alerted")
            tagwatch(config, "check")
            for message in hook.wait_for(1):
                print(f"--- alert received by the webhook ---\n{message['title']}\n"
                      f"{message['message']}")
            tagwatch(config, "status")

            step("the engine stops: its containers' pin is an error, not a vanished tag")
            podman.stop()
            tagwatch(config, "check")
            time.sleep(0.5)
            print(f"--- alert received by the webhook ---\n{hook.received[-1]['title']}\n"
                  f"{hook.received[-1]['message']}")

            step("Kubernetes: recorded Pod lists (tests/fixtures/kubernetes/) over TLS, images "
                 "in the same registry")
            push.push_image("library/nginx", "1.25", seed="nginx")
            push.push_image("library/busybox", "1.36", seed="busybox")
            api = KubeAPI(work / "kube", registry=host)
            try:
                kubeconfig = api.write_kubeconfig(work / "kubeconfig")
                kconfig = work / "kube.toml"
                # Docker Hub's nginx comes from the loopback registry too, as a mirror.
                kconfig.write_text(
                    f'[tagwatch]\ndatabase = "{work / "kube.db"}"\n'
                    f'[[registry]]\nhost = "docker.io"\nendpoint = "http://{host}"\n'
                    f'[[source]]\nkubernetes = "{kubeconfig}"\n')
                tagwatch(kconfig, "check")
                print("$ tagwatch status --json -c config.toml | jq -r '.[] | .image + \":\" "
                      "+ .tag + \" <- \" + .source'")
                done = subprocess.run(
                    [sys.executable, "-m", "tagwatch", "status", "--json", "-c", str(kconfig)],
                    capture_output=True, text=True, check=True)
                for obj in json.loads(done.stdout):
                    print(f"{obj['image']}:{obj['tag']} <- {obj['source']}")
                print(f"({len(api.requests)} requests: "
                      + ", ".join(r["path"] + "?" + "&".join(
                          f"{k}={v[:8] + '…' if len(v) > 8 else v}" for k, v in r["query"].items())
                                  for r in api.requests) + ")")
            finally:
                api.close()
        finally:
            registry.close()


if __name__ == "__main__":
    main()
