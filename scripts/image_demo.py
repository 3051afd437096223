"""Run tagwatch's image for real (the README's outputs come from this script): a registry on
loopback with one image to watch, `tagwatch run` in the container (read-only root, non-root,
state in a named volume), its HEALTHCHECK, /metrics, and a clean stop.

    scripts/build_image.sh && .venv/bin/python scripts/image_demo.py [IMAGE]

Uses `podman` as configured (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF…) and, when set,
PODMAN_RUNTIME (e.g. runc where crun cannot start containers). Host networking: the container
reaches the loopback registry, and the host reaches its /metrics.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

import httpx  # noqa: E402
from regharness import Pusher, free_port, start_registry  # noqa: E402

PODMAN = ["podman"] + (["--runtime", os.environ["PODMAN_RUNTIME"]]
                       if os.environ.get("PODMAN_RUNTIME") else [])
NAME, VOLUME = "tagwatch-demo", "tagwatch-demo-state"


def podman(*args: str, show: str | None = None) -> subprocess.CompletedProcess[str]:
    print("$ podman " + (show or " ".join(args)), flush=True)
    done = subprocess.run([*PODMAN, *args], capture_output=True, text=True, check=False)
    # Podman's own complaints about the missing systemd (health-check timers) are noise here.
    lines = [ln for ln in (done.stdout + done.stderr).splitlines()
             if "/run/systemd/private" not in ln]
    if lines:
        print("\n".join(lines))
    if done.returncode:
        print(f"(exit status {done.returncode})")
    return done


def main() -> None:
    image = sys.argv[1] if len(sys.argv) > 1 else "tagwatch:0.1.0"
    with tempfile.TemporaryDirectory(prefix="tagwatch-image-") as tmp:
        work = Path(tmp)
        registry = start_registry(work / "registry", "anonymous")
        try:
            Pusher(registry).push_image("shop/web", "1.4", seed="image demo")
            port = free_port()
            config = work / "config.toml"
            config.write_text(f'[tagwatch]\ninterval = "1m"\n[metrics]\n'
                              f'listen = "127.0.0.1:{port}"\n[[watch]]\n'
                              f'image = "{registry.host}/shop/web:1.4"\n')
            config.chmod(0o644)
            podman("run", "-d", "--name", NAME, "--read-only", "--network", "host",
                   "-v", f"{VOLUME}:/var/lib/tagwatch",
                   "-v", f"{config}:/etc/tagwatch/config.toml:ro", image,
                   show=f"run -d --name {NAME} --read-only --network host "
                        f"-v {VOLUME}:/var/lib/tagwatch "
                        f"-v ./config.toml:/etc/tagwatch/config.toml:ro {image}")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # until the first cycle is done
                done = subprocess.run([*PODMAN, "exec", NAME, "tagwatch", "status", "--json"],
                                      capture_output=True, text=True, check=False)
                if '"checked_at": "' in done.stdout:
                    break
                time.sleep(0.5)
            podman("healthcheck", "run", NAME)
            podman("inspect", "--format", "{{.State.Health.Status}} user={{.Config.User}} "
                   "read-only={{.HostConfig.ReadonlyRootfs}}", NAME)
            podman("exec", NAME, "id")
            podman("exec", NAME, "tagwatch", "healthcheck")
            podman("exec", NAME, "tagwatch", "status")
            podman("exec", NAME, "ls", "-l", "/var/lib/tagwatch")
            podman("exec", NAME, "touch", "/opt/tagwatch/x")
            print(f"$ curl -s 127.0.0.1:{port}/metrics | grep ^tagwatch_tag_info")
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            print("\n".join(ln for ln in text.splitlines() if ln.startswith("tagwatch_tag_info")))
            podman("stop", "-t", "20", NAME)
            podman("inspect", "--format", "exit status {{.State.ExitCode}}", NAME)
            podman("logs", NAME)
            podman("run", "--rm", "--read-only", "--network", "host",
                   "-v", f"{config}:/etc/tagwatch/config.toml:ro", image, "healthcheck",
                   show=f"run --rm --read-only --network host "
                        f"-v ./config.toml:/etc/tagwatch/config.toml:ro {image} healthcheck")
        finally:
            subprocess.run([*PODMAN, "rm", "-f", NAME], capture_output=True, check=False)
            subprocess.run([*PODMAN, "volume", "rm", "-f", VOLUME], capture_output=True,
                           check=False)
            registry.close()


if __name__ == "__main__":
    main()
