"""A daemon with something to show on its status page, for the browser test and the README.

`StatusWorld(workdir, registry).build()` sets up, against the real registry:

* `app:1.0`, a watch whose tag moved (checked, rebuilt and pushed, checked again);
* `base:3.12@sha256:…`, a pin (`source = "services/api/Dockerfile"`, `max_age = "0s"`)
  whose tag has moved on: stale;
* `evil/app:1`, a watch on a hostile registry (a small HTTP server here) that refuses every
  request with an error message full of markup (`<script>`, `<img>`, a Markdown link, a
  forged `new:` line): a failing target whose error text must be shown, never interpreted;

with a `[[registry]]` password and an apprise URL with credentials (a local webhook, which
receives the alerts) in the config: neither may ever show. Recorded by two `tagwatch check`
runs; then `start()` runs `tagwatch run` on that database with a one-hour interval, so that
nothing changes while it is looked at.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from daemonproc import DaemonProcess
from regharness import Registry, free_port
from sinks import WebhookSink

__all__ = ["HOSTILE_MESSAGE", "SECRETS", "HostileRegistry", "StatusWorld"]

HOSTILE_MESSAGE = (
    "<script>alert(1)</script><img src=x onerror=alert(2)> [details](http://evil.example/)"
    "\nnew: sha256:0000000000000000000000000000000000000000000000000000000000000000"
)
REGISTRY_PASSWORD = "hunter2-registry-secret-7f3a"
NOTIFY_PASSWORD = "notify-secret-91c4"
SECRETS = (REGISTRY_PASSWORD, NOTIFY_PASSWORD)


class HostileRegistry:
    """Refuses HEAD (405: tagwatch falls back to GET) and answers every GET 403 with a
    registry error whose message is markup."""

    def __init__(self) -> None:
        body = json.dumps({"errors": [{"code": "DENIED", "message": HOSTILE_MESSAGE}]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:  # noqa: N802 - the http.server API
                self.send_response(405)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802
                self.send_response(403)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class StatusWorld:
    def __init__(self, workdir: Path, registry: Registry, *, repo: str = "web") -> None:
        self.work = Path(workdir)
        self.registry = registry
        self.repo = repo
        self.hostile = HostileRegistry()
        self.webhook = WebhookSink()
        self.port = free_port()
        self.config = self.work / "config.toml"
        self.env = dict(os.environ, TAGWATCH_TEST_REGISTRY_PASSWORD=REGISTRY_PASSWORD)
        self.daemon: DaemonProcess | None = None
        self.app = f"{registry.host}/{repo}/app:1.0"
        self.base = f"{registry.host}/{repo}/base:3.12"
        self.evil = f"{self.hostile.host}/evil/app:1"

    def tagwatch(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tagwatch", *args, "-c", str(self.config)],
            env=self.env, capture_output=True, text=True, timeout=60)

    def build(self) -> StatusWorld:
        push = self.registry.pusher
        push.push_image(f"{self.repo}/app", "1.0", seed="app first build",
                        labels={"org.opencontainers.image.version": "1.0.0"})
        pinned = push.push_image(f"{self.repo}/base", "3.12", seed="base first build")
        push.push_image(f"{self.repo}/base", "3.12", seed="base rebuild")
        self.config.write_text(textwrap.dedent(f"""\
            [tagwatch]
            database = "{self.work / 'tagwatch.db'}"
            interval = "1h"
            jitter = "0s"
            timeout = "3s"

            [metrics]
            listen = "127.0.0.1:{self.port}"

            [[registry]]
            host = "{self.hostile.host}"
            username = "bot"
            password_env = "TAGWATCH_TEST_REGISTRY_PASSWORD"

            [[watch]]
            image = "{self.app}"

            [[pin]]
            image = "{self.base}@{pinned}"
            max_age = "0s"
            source = "services/api/Dockerfile"

            [[watch]]
            image = "{self.evil}"

            [[notify]]
            url = "json://bot:{NOTIFY_PASSWORD}@127.0.0.1:{self.webhook.port}/hook"
            """))
        first = self.tagwatch("check")
        assert first.returncode == 1, first  # the hostile registry's target fails
        push.push_image(f"{self.repo}/app", "1.0", seed="app rebuild",
                        labels={"org.opencontainers.image.version": "1.0.1"})
        second = self.tagwatch("check")
        assert second.returncode == 1 and "moved" in second.stdout, second
        return self

    def start(self) -> DaemonProcess:
        self.daemon = DaemonProcess(self.config, self.port, env=self.env)
        self.daemon.wait_healthy()
        # The daemon's first cycle (one job per registry) runs at start; wait for both to
        # end, so that nothing changes while the page and the API are compared.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = self.daemon.get("/metrics").text
            done = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                       if line.startswith("tagwatch_cycles_total{"))
            if done >= 2:
                return self.daemon
            time.sleep(0.1)
        raise AssertionError(f"the daemon's first cycles never ended:\n{self.daemon.log_text()}")

    def close(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
        self.hostile.close()
        self.webhook.close()
