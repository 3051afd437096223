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


# --- routing tags and unknown keys -----------------------------------------------------------

NOTIFY_OPS = '[[notify]]\nurl = "json://127.0.0.1:9/hook"\ntags = ["ops"]\n'


@pytest.mark.parametrize(("body", "where"), [
    ('[[watch]]\nimage = "python:3.12"\nnotify = ["opz"]\n', ":5: watch[0].notify:"),
    ('[[pin]]\nimage = "python:3.12@sha256:' + "a" * 64 + '"\nnotify = ["ops", "opz"]\n',
     ":5: pin[0].notify:"),
    ('[[source]]\npath = "."\nnotify = ["opz"]\n', ":5: source[0].notify:"),
])
@pytest.mark.parametrize("command", ["validate", "check", "run"])
def test_a_routing_tag_no_target_carries_is_a_configuration_error(
        tmp_path: Path, body: str, where: str, command: str) -> None:
    config = write(tmp_path, body + NOTIFY_OPS)
    line = one_line_error(tagwatch(command, "-c", str(config), timeout=20))
    assert f"{config}{where} no [[notify]] target carries the routing tag 'opz' " \
           "(did you mean 'ops'? tags carried: ops)" in line


@pytest.mark.parametrize(("notify", "why"), [
    ("", "there is no [[notify]] target"),
    ('[[notify]]\nurl = "json://127.0.0.1:9/hook"\n', "no [[notify]] target has tags"),
    ('[[notify]]\nurl = "json://127.0.0.1:9/hook"\ntags = ["dev", "security"]\n',
     "tags carried: dev, security"),
])
def test_the_routing_error_says_which_tags_exist(tmp_path: Path, notify: str, why: str) -> None:
    config = write(tmp_path, '[[watch]]\nimage = "python:3.12"\nnotify = ["ops"]\n' + notify)
    line = one_line_error(tagwatch("validate", "-c", str(config)))
    assert line.endswith(f"watch[0].notify: no [[notify]] target carries the routing tag 'ops' "
                         f"({why})"), line


def test_routing_tags_that_a_target_carries_validate(tmp_path: Path) -> None:
    config = write(tmp_path, '[[watch]]\nimage = "python:3.12"\nnotify = ["ops"]\n' + NOTIFY_OPS)
    done = tagwatch("validate", "-c", str(config))
    assert done.returncode == 0 and ": OK: 1 watches" in done.stdout, done.stderr


@pytest.mark.parametrize(("body", "expected"), [
    # the typo hides `image`: the typo is what is reported, not the missing key
    ('[[watch]]\nimgae = "python:3.12"\n', ":4: watch[0].imgae: unknown key 'imgae' "
     "(did you mean 'image'?)"),
    ('[[pin]]\nimage = "python:3.12@sha256:' + "a" * 64 + '"\nmax_agee = "7d"\n',
     ":5: pin[0].max_agee: unknown key 'max_agee' (did you mean 'max_age'?)"),
    ('[[watch]]\nimage = "python:3.12"\nmax_age = "7d"\n',
     ":5: watch[0].max_age: unknown key 'max_age': a key of [[pin]] and [[source]], not of "
     "[[watch]] (known keys: image, platforms, notify, mutable, interval, schedule, grace, "
     "quiet, newer, newer_include, newer_exclude)"),
    ('[[registry]]\nhots = "ghcr.io"\n', ":4: registry[0].hots: unknown key 'hots' "
     "(did you mean 'host'?)"),
    ('[[notify]]\nulr = "json://x"\n', ":4: notify[0].ulr: unknown key 'ulr' "
     "(did you mean 'url'?)"),
    ('[[watches]]\nimage = "python:3.12"\n', ":3: watches: unknown key 'watches' "
     "(did you mean 'watch'?)"),
    # an unknown key in a later table is still reported before a missing key in an earlier one
    ('[[registry]]\nusername = "bot"\n[[watch]]\nimage = "python"\ncolour = "red"\n',
     ":7: watch[0].colour: unknown key 'colour' (known keys:"),
])
def test_unknown_keys_come_before_missing_ones_with_the_nearest_known_key(
        tmp_path: Path, body: str, expected: str) -> None:
    config = write(tmp_path, body)
    line = one_line_error(tagwatch("validate", "-c", str(config)))
    assert f"{config}{expected}" in line, line


# --- secrets ---------------------------------------------------------------------------------

SECRET = "hunter2-7f3a"


@pytest.mark.parametrize("command", ["validate", "check", "run", "audit"])
def test_a_secret_file_that_is_not_utf8_is_a_configuration_error_naming_it(
        tmp_path: Path, command: str) -> None:
    token = tmp_path / "ghcr.token"
    token.write_bytes(b"\xff\xfe-not-utf8-" + SECRET.encode())
    config = write(tmp_path, '[[registry]]\nhost = "ghcr.io"\nusername = "bot"\n'
                             f'password_file = "{token}"\n'
                             '[[notify]]\nurl = "json://127.0.0.1:9/hook"\n')
    line = one_line_error(tagwatch(command, "-c", str(config), timeout=20))
    assert line.endswith(f"config.toml:6: registry[0].password_file: {token} is not UTF-8 text "
                         "(byte 0)"), line
    assert SECRET not in line


def test_an_apprise_url_file_that_is_not_utf8_is_a_configuration_error(tmp_path: Path) -> None:
    url_file = tmp_path / "hook-url"
    url_file.write_bytes(b"json://bot:" + SECRET.encode() + b"@127.0.0.1/\xe9")
    config = write(tmp_path, f'[[notify]]\nurl_file = "{url_file}"\n')
    line = one_line_error(tagwatch("validate", "-c", str(config)))
    assert f"notify[0].url_file: {url_file} is not UTF-8 text" in line
    assert SECRET not in line


@pytest.mark.parametrize("value", [
    f'["json://bot:{SECRET}@127.0.0.1/hook"]',
    f'{{ url = "json://bot:{SECRET}@127.0.0.1/hook" }}',
    f'[["json://bot:{SECRET}@127.0.0.1/hook", 1]]',
    "7777777",
    "true",
])
def test_no_message_quotes_the_value_of_a_secret_key_whatever_its_type(
        tmp_path: Path, value: str) -> None:
    config = write(tmp_path, f"[[notify]]\nurl = {value}\n")
    line = one_line_error(tagwatch("validate", "-c", str(config)))
    assert line.endswith("notify[0].url: must be a string (the value given is not shown: it "
                         "may hold a secret)"), line
    for part in (SECRET, "json://", "7777777", "true"):
        assert part not in line.split("notify[0].url:")[1], line


def test_a_notify_table_written_once_is_named_without_its_url(tmp_path: Path) -> None:
    config = write(tmp_path, f'[notify]\nurl = "json://bot:{SECRET}@127.0.0.1/hook"\n')
    line = one_line_error(tagwatch("validate", "-c", str(config)))
    assert line.endswith(":3: [notify] is a single table: write [[notify]] (double brackets), "
                         "one [[notify]] per entry"), line
    assert SECRET not in line


def test_an_environment_secret_that_is_not_utf8_is_a_configuration_error(tmp_path: Path) -> None:
    config = write(tmp_path, '[[notify]]\nurl_env = "HOOK_URL"\n')
    env = dict(os.environ)
    env_bytes = {k.encode(): v.encode("utf-8", "surrogateescape") for k, v in env.items()}
    env_bytes[b"HOOK_URL"] = b"json://bot:\xff@127.0.0.1/hook"
    done = subprocess.run([sys.executable, "-m", "tagwatch", "validate", "-c", str(config)],
                          capture_output=True, text=True, timeout=60,
                          env=env_bytes)  # type: ignore[arg-type]
    line = one_line_error(done)
    assert line.endswith("notify[0].url_env: environment variable HOOK_URL is not UTF-8 text"), \
        line
