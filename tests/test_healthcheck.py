"""`tagwatch healthcheck`: 0 when the daemon of the same config answers /healthz with 200,
else 1 and why (not running, hung, unhealthy), within its timeout."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from regharness import Pusher, Registry, free_port, unique_repo

from tagwatch.healthcheck import probe_address


def healthcheck(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tagwatch", "healthcheck", "-c", str(config), *args],
        capture_output=True, text=True, timeout=30)


def write_config(tmp_path: Path, listen: str, extra: str = "") -> Path:
    config = tmp_path / "config.toml"
    config.write_text(f'[tagwatch]\ndatabase = "{tmp_path / "tw.db"}"\ninterval = "1h"\n'
                      f'[metrics]\nlisten = "{listen}"\n{extra}')
    return config


class _Fake:
    """An HTTP server answering /healthz with a fixed status and body (or never)."""

    def __init__(self, status: int, body: bytes, hang: bool = False) -> None:
        release = self.release = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if hang:
                    release.wait(30)
                    return
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[list[_Fake]]:
    made: list[_Fake] = []
    yield made
    for server in made:
        server.close()


def test_not_running(tmp_path: Path) -> None:
    port = free_port()
    done = healthcheck(write_config(tmp_path, f"127.0.0.1:{port}"))
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"tagwatch: not running: nothing listens on 127.0.0.1:{port} (connection refused)")


def test_unhealthy_says_why(tmp_path: Path, fake: list[_Fake]) -> None:
    server = _Fake(503, b"no completed cycle within twice the interval: ghcr.io every 15m\n")
    fake.append(server)
    done = healthcheck(write_config(tmp_path, f"0.0.0.0:{server.port}"))
    assert done.returncode == 1
    assert done.stderr.strip() == ("tagwatch: unhealthy: no completed cycle within twice the "
                                   "interval: ghcr.io every 15m")


def test_something_else_listening(tmp_path: Path, fake: list[_Fake]) -> None:
    server = _Fake(404, b"not found")
    fake.append(server)
    done = healthcheck(write_config(tmp_path, f"127.0.0.1:{server.port}"))
    assert done.returncode == 1
    assert "answered HTTP 404 (is another program listening" in done.stderr


def test_hung_daemon_times_out(tmp_path: Path, fake: list[_Fake]) -> None:
    server = _Fake(200, b"", hang=True)
    fake.append(server)
    started = time.monotonic()
    done = healthcheck(write_config(tmp_path, f"127.0.0.1:{server.port}"), "--timeout", "1s")
    took = time.monotonic() - started
    assert done.returncode == 1
    assert "not answering: no answer from" in done.stderr and "within 1s" in done.stderr
    assert took < 10  # interpreter start included; the probe itself gives up after 1s


def test_metrics_off_is_a_config_error(tmp_path: Path) -> None:
    done = healthcheck(write_config(tmp_path, ""))
    assert done.returncode == 2
    assert "metrics.listen is off" in done.stderr


def test_wildcard_addresses_are_probed_on_loopback() -> None:
    assert probe_address(":9479") == ("127.0.0.1", 9479)
    assert probe_address("0.0.0.0:9479") == ("127.0.0.1", 9479)
    assert probe_address("[::]:9479") == ("::1", 9479)
    assert probe_address("10.0.0.5:80") == ("10.0.0.5", 80)


@pytest.mark.integration
def test_running_daemon_is_healthy(tmp_path: Path, registry_anonymous: Registry) -> None:
    repo = unique_repo("health")
    Pusher(registry_anonymous).push_image(repo, "1", seed="h")
    port = free_port()
    config = write_config(tmp_path, f"127.0.0.1:{port}",
                          f'[[watch]]\nimage = "{registry_anonymous.host}/{repo}:1"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "INVOCATION_ID")}
    proc = subprocess.Popen([sys.executable, "-m", "tagwatch", "run", "-c", str(config)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        done = healthcheck(config)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("ok: 1 targets on 1 registries; last cycle ")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)  # reads and closes the pipe
        assert proc.returncode == 0, err
    done = healthcheck(config)
    assert done.returncode == 1 and "not running" in done.stderr
