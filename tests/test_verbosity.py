"""`-v` says what each step of `check` and `resolve` does; `-vv` adds every HTTP request
(method, URL, status, time) and never a header with credentials; without `-v` a check that
works prints nothing on stderr.

Through the `tagwatch` command against the real registry in htpasswd mode (so requests carry
credentials that must not show)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from regharness import Pusher, Registry, unique_repo

pytestmark = pytest.mark.integration

STEPS = ["recall:", "resolve:", "decide:", "record:"]


def tagwatch(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tagwatch", *args], capture_output=True,
                          text=True, timeout=120, env=env)


@pytest.fixture
def setup(registry_basic: Registry, tmp_path: Path) -> tuple[Path, str, dict[str, str]]:
    repo = unique_repo("verbose")
    Pusher(registry_basic).push_index(repo, "1", ["linux/amd64", "linux/arm64"], seed="v")
    config = tmp_path / "config.toml"
    config.write_text(
        f'[tagwatch]\ndatabase = "{tmp_path / "t.db"}"\n'
        f'[[registry]]\nhost = "{registry_basic.host}"\nusername = "{registry_basic.username}"\n'
        'password_env = "REGISTRY_PASSWORD"\n'
        f'[[watch]]\nimage = "{registry_basic.host}/{repo}:1"\n')
    env = dict(os.environ, REGISTRY_PASSWORD=registry_basic.password)
    return config, f"{registry_basic.host}/{repo}:1", env


def step_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " INFO " in line]


def test_check_is_quiet_by_default_and_says_each_step_with_v(
        setup: tuple[Path, str, dict[str, str]]) -> None:
    config, _, env = setup
    quiet = tagwatch("check", "-c", str(config), env=env)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    loud = tagwatch("check", "-c", str(config), "-v", env=env)
    assert loud.returncode == 0
    lines = step_lines(loud.stderr)
    for step in STEPS:
        assert any(f" INFO {step}" in line for line in lines), (step, loud.stderr)
    assert any(re.search(r"resolve: 1 tag in [\d.]+s: 1 unchanged, 0 moved", line)
               for line in lines), loud.stderr
    assert not re.search(r" DEBUG ", loud.stderr)  # requests only from -vv


def test_vv_logs_every_request_line_and_no_credentials(
        setup: tuple[Path, str, dict[str, str]], registry_basic: Registry) -> None:
    config, ref, env = setup
    for args in (["check", "-c", str(config)], ["resolve", ref, "-c", str(config)]):
        run = tagwatch(*args, "-vv", env=env)
        assert run.returncode == 0, run.stderr
        requests = re.findall(
            r" DEBUG (GET|HEAD) (https?://\S+) -> (\d{3}) in \d+ ms", run.stderr)
        assert requests, run.stderr
        assert any(url.endswith("/manifests/1") for _, url, _ in requests), requests
        assert any(code == "401" for _, _, code in requests), requests  # the challenge
        assert registry_basic.password not in run.stderr
        assert not re.search(r"(?i)authorization|basic [a-z0-9+/=]{8}", run.stderr), run.stderr


def test_resolve_says_what_it_asks_and_what_it_found_with_v(
        setup: tuple[Path, str, dict[str, str]]) -> None:
    config, ref, env = setup
    quiet = tagwatch("resolve", ref, "-c", str(config), env=env)
    assert quiet.returncode == 0 and quiet.stderr == ""
    digest = quiet.stdout.strip()
    loud = tagwatch("resolve", ref, "-c", str(config), "-v", env=env)
    assert loud.stdout.strip() == digest
    lines = step_lines(loud.stderr)
    assert any(f"resolve: asking {ref.split('/')[0]} for {ref}" in line for line in lines)
    assert any(f"resolve: {digest} is an index of 2 platforms (linux/amd64, linux/arm64)"
               in line for line in lines), loud.stderr
