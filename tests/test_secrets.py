"""Known secrets never reach logs, output, metrics or the database.

One run with everything secret at once — a registry password (basic auth), bearer tokens
(token auth), an apprise URL with a password and a token in its query — through every
command and the daemon at the most verbose log level, then a grep of everything it wrote."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from regharness import Pusher, Registry, free_port, unique_repo
from sinks import WebhookSink

pytestmark = pytest.mark.integration


def run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "tagwatch", *args, "-vvv"], env=env,
                          capture_output=True, text=True, timeout=60)
    return done.stdout + done.stderr


def test_secrets_appear_nowhere(registry_basic: Registry, registry_token: Registry,
                                tmp_path: Path, webhook: WebhookSink) -> None:
    basic_repo, token_repo = unique_repo("secret"), unique_repo("secret")
    Pusher(registry_basic).push_image(basic_repo, "1", seed="s1")
    Pusher(registry_token).push_image(token_repo, "1", seed="s2")
    hook_password, hook_token = "hookpass-5f1e9c", "qtoken-77a0b3"
    url = webhook.url.replace("json://", f"json://bot:{hook_password}@") + f"?token={hook_token}"
    (tmp_path / "hook-url").write_text(url)
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(textwrap.dedent(f"""\
        [tagwatch]
        database = "{tmp_path / 'tagwatch.db'}"
        interval = "1s"
        jitter = "0s"
        [metrics]
        listen = "127.0.0.1:{port}"
        [[registry]]
        host = "{registry_basic.host}"
        username = "{registry_basic.username}"
        password_env = "BASIC_PASSWORD"
        [[registry]]
        host = "{registry_token.host}"
        username = "{registry_token.username}"
        password_file = "{tmp_path / 'token-password'}"
        [[watch]]
        image = "{registry_basic.host}/{basic_repo}:1"
        [[watch]]
        image = "{registry_token.host}/{token_repo}:1"
        [[notify]]
        url_file = "{tmp_path / 'hook-url'}"
        """))
    (tmp_path / "token-password").write_text(registry_token.password)
    env = dict(os.environ, BASIC_PASSWORD=registry_basic.password)
    out = []
    out.append(run(["validate", "-c", str(config)], env))
    out.append(run(["check", "-c", str(config)], env))
    Pusher(registry_basic).push_image(basic_repo, "1", seed="moved")
    out.append(run(["check", "--json", "-c", str(config)], env))
    out.append(run(["status", "--json", "-c", str(config)], env))
    out.append(run(["history", f"{registry_basic.host}/{basic_repo}:1", "-c", str(config)], env))
    out.append(run(["notify-test", "-c", str(config)], env))
    out.append(run(["resolve", f"{registry_basic.host}/{basic_repo}:1"], env))
    webhook.set_failing(True)  # a failed delivery's reason is logged too
    Pusher(registry_basic).push_image(basic_repo, "1", seed="moved again")
    out.append(run(["check", "-c", str(config)], env))
    webhook.set_failing(False)

    daemon = subprocess.Popen([sys.executable, "-m", "tagwatch", "run", "-vvv", "-c",
                               str(config)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        # Until its first cycle is done (/healthz 200), however loaded the machine is.
        deadline = time.monotonic() + 60
        health = ""
        while time.monotonic() < deadline and daemon.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            except httpx.TransportError:
                answer = None
            if answer is not None and answer.status_code == 200:
                health = answer.text
                break
            time.sleep(0.1)
        assert health, "the daemon never answered /healthz with 200"
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, daemon_log = daemon.communicate(timeout=20)
    assert registry_token.token_server is not None
    tokens = list(registry_token.token_server.issued)
    assert tokens, "the token registry handed out no token: the run did not use it"
    secrets = [registry_basic.password, registry_token.password, hook_password, hook_token,
               url, *tokens]
    database = b"".join(p.read_bytes() for p in tmp_path.glob("tagwatch.db*"))
    everything = {"command output": "\n".join(out), "daemon log": daemon_log,
                  "metrics": metrics, "healthz": health,
                  "database": database.decode("latin-1")}
    assert "moved" in everything["command output"]  # the run did real work
    assert len(webhook.received) >= 2
    for where, text in everything.items():
        for secret in secrets:
            assert secret not in text, f"a secret leaked into the {where}"
