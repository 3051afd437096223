"""Configuration errors as the user meets them: through the `tagwatch` command (`validate`,
`check`, `run`), exit status 2 and one line naming the file, line and key, never a traceback
and never a secret's value."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def tagwatch(*args: str, env: dict[str, str] | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tagwatch", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The command failed as a configuration error: exit 2, one line, no traceback."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("tagwatch: error: "), lines[0]
    return lines[0]


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[tagwatch]\ndatabase = "{tmp_path / "t.db"}"\n' + body)
    return path


# --- [metrics] listen ----------------------------------------------------------------------

@pytest.mark.parametrize(("listen", "expected"), [
    ("localhost:99999", "port 99999 is out of range (1-65535, or 0 for any free port)"),
    ("garbage", "'garbage' is not HOST:PORT"),
    ("127.0.0.1:http", "port 'http' is not a number"),
    ("::1:9479", "write an IPv6 address in brackets, e.g. [::1]:9479"),
    ("[1.2.3.4]:9479", "[1.2.3.4] is not an IPv6 address"),
    ("300.1.2.3:9479", "300.1.2.3 is not an IPv4 address"),
    ("my_host:9479", "'my_host' is not a host name or IP address"),
])
@pytest.mark.parametrize("command", ["validate", "check", "run"])
def test_a_bad_listen_address_is_a_configuration_error(
        tmp_path: Path, listen: str, expected: str, command: str) -> None:
    config = write(tmp_path, f'[metrics]\nlisten = "{listen}"\n')
    line = one_line_error(tagwatch(command, "-c", str(config), timeout=20))
    assert f"{config}:4: metrics.listen: " in line
    assert expected in line


@pytest.mark.parametrize("listen", ["127.0.0.1:9479", "[::1]:9479", ":9479", "0.0.0.0:9479",
                                    "localhost:9479", "127.0.0.1:0", ""])
def test_good_listen_addresses_validate(tmp_path: Path, listen: str) -> None:
    done = tagwatch("validate", "-c", str(write(tmp_path, f'[metrics]\nlisten = "{listen}"\n')))
    assert done.returncode == 0, done.stderr
    assert ": OK: " in done.stdout


def test_port_0_listens_on_any_free_port_and_logs_it_once(tmp_path: Path) -> None:
    config = write(tmp_path, '[metrics]\nlisten = "127.0.0.1:0"\n')
    log = tmp_path / "run.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tagwatch", "run", "-c", str(config)],
                                stdout=out, stderr=subprocess.STDOUT, text=True,
                                env={k: v for k, v in os.environ.items()
                                     if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")})
    try:
        deadline = time.monotonic() + 20
        found = None
        while found is None and time.monotonic() < deadline and proc.poll() is None:
            found = re.search(r"listening on 127\.0\.0\.1:(\d+)", log.read_text())
            time.sleep(0.1)
        assert found, log.read_text()
        port = int(found.group(1))
        assert port != 0
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        started = [line for line in log.read_text().splitlines() if "tagwatch started" in line]
        assert started and f"metrics http://127.0.0.1:{port}/metrics" in started[0], started
        # healthcheck cannot know the port: a configuration error that says so
        line = one_line_error(tagwatch("healthcheck", "-c", str(config)))
        assert "any free port" in line and "set a fixed port" in line
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    text = log.read_text()
    assert "Traceback" not in text
    assert len(re.findall(r"listening on 127\.0\.0\.1:\d+", text)) == 1, text
