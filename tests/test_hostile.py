"""Hostile registries and token services (issue 10), each through the `tagwatch` command or
the daemon, against the real distribution registry behind the fault proxy (tests/support/
faultproxy.py: redirect loops, false encodings, gzip bombs, endless and trickling answers,
markup in error messages) or the hostile registry (tests/support/hostile.py: an auth layer
and token service of its own). The deep config blob the real registry serves is in
test_containment.py.

What is asserted is what the user sees: exit status, what was recorded for the other tags,
the alerts, peak memory and elapsed time of the process, and what the hostile host was sent.
Every test prints its measurements (`-s` shows them).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from faultproxy import FaultProxy
from hostile import (
    HostileRegistry,
    Measured,
    daemon,
    run_measured,
    wait_until,
)
from regharness import PUSHER_AGENT, Pusher, Registry, unique_repo
from sinks import WebhookSink
from test_check_integration import Setup

from tagwatch.core.refs import parse_ref
from tagwatch.errors import RegistryUnavailable
from tagwatch.registry.client import RegistryClient

pytestmark = pytest.mark.integration

PEAK_MB = 120  # tagwatch check's own peak is ~45 MB; a hostile answer must not add 75


def measured(name: str, value: object) -> None:
    print(f"\nMEASURED {name}: {value}")


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    s = Setup(tmp_path)
    s.parts[0] = s.parts[0].replace('timeout = "3s"', 'timeout = "2s"')
    return s


@pytest.fixture
def proxy(registry_anonymous: Registry) -> Iterator[FaultProxy]:
    with FaultProxy(registry_anonymous.url) as p:
        yield p


def check(setup: Setup, what: str, *, timeout: float = 120.0,
          env: dict[str, str] | None = None) -> Measured:
    """`tagwatch check` as a child process, measured (and the measurement printed)."""
    run = run_measured("check", "-c", str(setup.write().path), timeout=timeout, env=env)
    tail = run.err.strip().splitlines()[-1:] if run.code != 0 else []
    measured(what, f"{run}{': ' + tail[0] if tail else ''}")
    assert "Traceback" not in run.err, run.err
    return run


# --- one image, one answer: that target alone ---------------------------------------------


ANSWERS = [
    # fault on the GET of the moved index by digest, its params, the error the target shows
    ("redirect", {}, "more than 20 redirects"),
    ("encoding", {}, "does not decode as its Content-Encoding gzip"),
    ("bomb", {}, "over 4194304 bytes"),
    ("endless", {}, "over 4194304 bytes"),
    ("trickle", {"part": "body", "interval": 0.2}, "read timeout after 2s"),
    ("trickle", {"part": "head", "interval": 0.2}, "read timeout after 2s"),
]


@pytest.mark.parametrize(("kind", "params", "error"), ANSWERS,
                         ids=[f"{a[0]}-{a[1].get('part', '')}".rstrip("-") for a in ANSWERS])
def test_hostile_answer_fails_its_target_alone(
        registry_anonymous: Registry, proxy: FaultProxy, setup: Setup, webhook: WebhookSink,
        kind: str, params: dict[str, object], error: str) -> None:
    push = Pusher(registry_anonymous)
    bad_repo, fine_repo = unique_repo("bad"), unique_repo("fine")
    old, _ = push.push_index(bad_repo, "v1", ["linux/amd64", "linux/arm64"], seed=bad_repo)
    push.push_image(fine_repo, "v1", seed=fine_repo)
    bad, fine = (f"{proxy.host}/{r}:v1" for r in (bad_repo, fine_repo))
    setup.watch(bad).watch(fine).notify(webhook.url)
    assert setup("check").code == 0
    new, _ = push.push_index(bad_repo, "v1", ["linux/amd64", "linux/arm64"], seed="moved")
    moved = push.push_image(fine_repo, "v1", seed="moved")
    proxy.reset_counts()
    proxy.set_fault(kind, match=("GET", f"/v2/{bad_repo}/manifests/sha256:"), **params)

    run = check(setup, f"{kind} {params}")
    assert run.code == 1, run.err
    assert run.peak_mb is not None and run.peak_mb < PEAK_MB
    assert run.seconds < 15
    status = setup.status()
    measured(f"{kind} error", status[f"watch:{bad}"]["error"])
    assert status[f"watch:{bad}"]["state"] == "error"
    assert error in status[f"watch:{bad}"]["error"], status[f"watch:{bad}"]["error"]
    assert status[f"watch:{bad}"]["digest"] == old  # a bad answer is never a move
    assert status[f"watch:{fine}"]["digest"] == moved and status[f"watch:{fine}"]["state"] == "ok"
    gets = proxy.filter("GET", f"/v2/{bad_repo}/manifests/sha256:")
    assert len(gets) <= (21 if kind == "redirect" else 3), gets
    webhook.wait_for(1)
    assert [m["title"] for m in webhook.received] == [f"[tagwatch] moved: {fine}"]

    proxy.clear()
    assert setup("check").code == 0  # the move shows once the answers are good again
    assert setup.status()[f"watch:{bad}"]["digest"] == new


def test_registry_error_text_is_data(registry_anonymous: Registry, proxy: FaultProxy,
                                     setup: Setup) -> None:
    push = Pusher(registry_anonymous)
    repo = unique_repo("markup")
    push.push_index(repo, "v1", ["linux/amd64"], seed=repo)
    target = f"{proxy.host}/{repo}:v1"
    setup.watch(target)
    assert setup("check").code == 0
    push.push_index(repo, "v1", ["linux/amd64"], seed="moved")
    message = ("denied\n**new:** sha256:" + "0" * 64 + "\r\n\x1b[2J\x1b]8;;http://evil.example/"
               "\x1b\\[details](http://evil.example/)\x1b]8;;\x1b\\\u202e" + "x" * 500)
    body = json.dumps({"errors": [{"code": "DENIED", "message": message}]})
    proxy.set_fault("status", code=403, body=body, match=("GET", "/manifests/sha256:"))
    assert check(setup, "registry error text").code == 1
    error = setup.status()[f"watch:{target}"]["error"]
    measured("registry error text", repr(error))
    assert "access denied (HTTP 403) (DENIED: denied **new:** sha256:" in error
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u202e]", error)
    assert "evil.example/\x1b" not in error and "8;;" not in error
    assert len(error) < 400


# --- token services -------------------------------------------------------------------------


TOKENS = [
    ("token-huge", "over 262144 bytes"),
    ("token-endless", "over 262144 bytes"),
    ("token-trickle", "read timeout after 2s"),
]


@pytest.mark.parametrize(("behaviour", "error"), TOKENS, ids=[t[0] for t in TOKENS])
def test_hostile_token_answer_is_bounded(registry_anonymous: Registry, setup: Setup,
                                         behaviour: str, error: str) -> None:
    push = Pusher(registry_anonymous)
    bad_repo, fine_repo = f"{behaviour}/{unique_repo('app')}", unique_repo("fine")
    push.push_image(bad_repo, "v1", seed=bad_repo)
    fine_digest = push.push_image(fine_repo, "v1", seed=fine_repo)
    with HostileRegistry(registry_anonymous, auth="bearer") as hostile:
        bad, fine = (f"{hostile.host}/{r}:v1" for r in (bad_repo, fine_repo))
        setup.watch(bad).watch(fine)
        run = check(setup, behaviour)
        assert run.code == 1, run.err
        assert run.peak_mb is not None and run.peak_mb < PEAK_MB
        assert run.seconds < 15
        status = setup.status()
        measured(f"{behaviour} error", status[f"watch:{bad}"]["error"])
        assert error in status[f"watch:{bad}"]["error"], status[f"watch:{bad}"]["error"]
        assert status[f"watch:{fine}"]["digest"] == fine_digest  # its token came at once
        asked = [r for r in hostile.token_requests if behaviour in unquote(r.path)]
        assert 1 <= len(asked) <= 3  # one per try


def test_token_expiry_that_is_not_a_number(registry_anonymous: Registry, setup: Setup,
                                           tmp_path: Path) -> None:
    """`expires_in` "soon", NaN, Infinity, -5: the token is used, kept for the default 60 s
    (one token request per repository over several daemon cycles), and the log says so."""
    push = Pusher(registry_anonymous)
    kinds = ("expires-soon", "expires-nan", "expires-inf", "expires-neg")
    repos = {kind: f"{kind}/{unique_repo('app')}" for kind in kinds}
    for repo in repos.values():
        push.push_image(repo, "v1", seed=repo)
    with HostileRegistry(registry_anonymous, auth="bearer") as hostile:
        for repo in repos.values():
            setup.watch(f"{hostile.host}/{repo}:v1")
        run = check(setup, "expires_in not a number")
        hostile.reset_counts()
        setup.parts[0] += 'interval = "1s"\njitter = "0s"\n[metrics]\nlisten = ""\n'
        log = tmp_path / "daemon.log"

        def five_cycles() -> bool:
            heads = [r.path for r in hostile.requests if r.method == "HEAD"]
            return all(sum(repo in p for p in heads) >= 5 for repo in repos.values())

        with daemon(setup.write().path, log):
            wait_until(five_cycles, 30, "five daemon cycles")
        per_repo = {kind: sum(repo in unquote(r.path) for r in hostile.token_requests)
                    for kind, repo in repos.items()}
        measured("token requests over 5 daemon cycles", per_repo)
        assert run.code == 0, run.err
        assert "sent no token" not in run.out + run.err
        assert per_repo == dict.fromkeys(kinds, 1), per_repo
        text = log.read_text()
        assert "not a number of seconds: its tokens are renewed after 60s" in text, text


# --- credentials stay home -----------------------------------------------------------------


def test_credentials_never_follow_a_redirect(registry_anonymous: Registry, setup: Setup) -> None:
    """A basic-auth registry redirects one repository's manifests to another host, whose 401
    names a token realm of its own: over two checks that host never sees the credentials, no
    token is asked of it, and the registry keeps getting basic auth."""
    push = Pusher(registry_anonymous)
    home_repo, away_repo = unique_repo("home"), unique_repo("away")
    push.push_image(home_repo, "v1", seed=home_repo)
    push.push_image(away_repo, "v1", seed=away_repo)
    with HostileRegistry(registry_anonymous, auth="bearer") as thief, \
            HostileRegistry(registry_anonymous, auth="basic") as home:
        user, password = home.credentials
        home.set_fault("redirect", match=f"/v2/{away_repo}/",
                       location=f"{thief.url}/v2/{away_repo}/manifests/v1")
        setup.add(f'[[registry]]\nhost = "{home.host}"\nusername = "{user}"\n'
                  f'password_env = "HOSTILE_PASSWORD"\n')
        setup.watch(f"{home.host}/{home_repo}:v1").watch(f"{home.host}/{away_repo}:v1")
        env = dict(os.environ, HOSTILE_PASSWORD=password)
        for attempt in (1, 2):
            assert check(setup, f"redirected credentials, check {attempt}", env=env).code == 1
        status = setup.status()
        assert status[f"watch:{home.host}/{home_repo}:v1"]["state"] == "ok"
        away = status[f"watch:{home.host}/{away_repo}:v1"]
        measured("away target", away["error"])
        assert away["state"] == "error"
        sent = [r.headers.get("authorization") for r in thief.requests]
        measured("Authorization headers the other host saw", sent)
        assert thief.requests and not any(sent)
        assert thief.token_requests == []
        second = [r for r in home.requests if home_repo in r.path][-1]
        assert second.headers.get("authorization", "").startswith("Basic ")


@pytest.mark.parametrize("realm", ["http://169.254.169.254/latest/api/token",
                                   "http://metadata.google.internal/computeMetadata/v1/token",
                                   "http://[fe80::1]/token"])
def test_token_realm_on_a_metadata_address_is_refused(registry_anonymous: Registry,
                                                      setup: Setup, realm: str) -> None:
    push = Pusher(registry_anonymous)
    repo = unique_repo("meta")
    push.push_image(repo, "v1", seed=repo)
    with HostileRegistry(registry_anonymous, auth="bearer", realm=realm) as hostile:
        setup.watch(f"{hostile.host}/{repo}:v1")
        run = check(setup, f"realm {realm}")
        assert run.code == 1
        error = setup.status()[f"watch:{hostile.host}/{repo}:v1"]["error"]
        measured("realm error", error)
        assert "link-local or cloud metadata address" in error, error
        assert run.seconds < 10


# --- the daemon: stuck registries hold only their own slots --------------------------------


def test_two_stuck_registries_do_not_stop_a_third(registry_anonymous: Registry, setup: Setup,
                                                  tmp_path: Path) -> None:
    """Two registries that never answer and a healthy one, `concurrency = 4`, checked every
    second: the healthy registry keeps its schedule while the others time out."""
    push = Pusher(registry_anonymous)
    repo = unique_repo("healthy")
    push.push_image(repo, "v1", seed=repo)
    with FaultProxy(registry_anonymous) as healthy, FaultProxy(registry_anonymous) as stuck1, \
            FaultProxy(registry_anonymous) as stuck2:
        for stuck in (stuck1, stuck2):
            stuck.set_fault("hang")
            for i in range(3):
                setup.watch(f"{stuck.host}/{repo}-{i}:v1")
        setup.watch(f"{healthy.host}/{repo}:v1")
        setup.parts[0] = setup.parts[0].replace("concurrency = 16", "concurrency = 4")
        setup.parts[0] += 'interval = "1s"\njitter = "0s"\n[metrics]\nlisten = ""\n'
        with daemon(setup.write().path, tmp_path / "daemon.log"):
            wait_until(lambda: len(stuck1.requests) >= 2 and len(stuck2.requests) >= 2, 20,
                       "both stuck registries to be asked")
            healthy.reset_counts()
            time.sleep(12)
            heads = [r.time for r in healthy.filter("HEAD")]
            stuck_sent = len(stuck1.requests) + len(stuck2.requests)
        gaps = [b - a for a, b in zip(heads, heads[1:], strict=False)]
        measured("healthy registry over 12 s beside two stuck ones",
                 f"{len(heads)} checks, longest gap {max(gaps, default=12):.1f} s; "
                 f"{stuck_sent} requests to the stuck ones")
        assert len(heads) >= 8, heads
        assert max(gaps) < 3.0, gaps
        log = (tmp_path / "daemon.log").read_text()
        overruns = [line for line in log.splitlines() if "still running" in line]
        measured("what the log says about it", "\n  " + "\n  ".join(overruns))
        assert "maximum number of running instances" not in log  # not a line a second
        assert 1 <= len(overruns) <= 4, overruns


def test_trickling_answer_on_a_kept_connection(registry_anonymous: Registry) -> None:
    """The steady-state HEAD, over a kept `http.client` connection, trickled one byte every
    0.2 s: it ends at `timeout` as a whole, not at `timeout` per byte."""
    push = Pusher(registry_anonymous)
    repo = unique_repo("slow")
    digest = push.push_image(repo, "v1", seed=repo)
    with FaultProxy(registry_anonymous) as proxy, RegistryClient(timeout=1, retries=0) as client:
        ref = parse_ref(f"{proxy.host}/{repo}:v1")
        assert client.resolve(ref).digest == digest  # learns: no auth; the next is the fast path
        assert client.resolve(ref).digest == digest
        proxy.set_fault("trickle", interval=0.2, part="head")
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable, match="read timeout after 1s"):
            client.resolve(ref)
        elapsed = time.monotonic() - started
        measured("trickled HEAD on a kept connection", f"failed after {elapsed:.2f} s")
        assert elapsed < 1.5
        assert [r.fault for r in proxy.requests] == [None, None, "trickle"]  # no fallback


# --- the request log --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["basic", "token"])
def test_request_log_at_debug(make_registry: Any, setup: Setup, mode: str) -> None:
    """`-vv`: one line per HTTP request on tagwatch.registry (method, URL, status, ms),
    token requests included, never a credential, a token or an account name."""
    registry = make_registry(mode)
    user, password = registry.credentials
    repo = unique_repo("logged")
    Pusher(registry).push_image(repo, "v1", seed=repo)
    setup.add(f'[[registry]]\nhost = "{registry.host}"\nusername = "{user}"\n'
              'password_env = "LOGGED_PASSWORD"\n')
    setup.watch(f"{registry.host}/{repo}:v1")
    mark = registry.mark()
    run = run_measured("check", "-c", str(setup.write().path), "-vv",
                       env=dict(os.environ, LOGGED_PASSWORD=password))
    assert run.code == 0, run.err
    lines = [line for line in run.err.splitlines() if " -> " in line and "tagwatch.registry" in line
             or re.search(r"(HEAD|GET|POST) http\S+ -> \d{3} in \d+ ms", line)]
    sent = registry.requests(since=mark, exclude_agent=PUSHER_AGENT)
    measured(f"request log ({mode})", "\n  " + "\n  ".join(lines))
    assert len([line for line in lines if f"http://{registry.host}/v2/" in line]) == len(sent)
    for method, path, status in sent:
        assert any(f"{method} http://{registry.host}{path} -> {status} in " in line
                   for line in lines), (method, path, lines)
    if mode == "token":
        [token] = [line for line in lines if "/token?" in line]
        assert "scope=repository:" in token and "account=…" in token
        assert f"account={user}" not in token
    for secret in (password, "Basic ", "Bearer ", "authorization", "Authorization"):
        assert secret not in run.err
