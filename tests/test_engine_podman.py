"""`[[source]] engine` against a real Podman serving the Docker Engine API
(`podman system service`), with images pushed to the real distribution registry and pulled
by Podman: containers become pins, fall behind when their tag moves, go stale, and an engine
that is down is an error — never a vanish."""

from __future__ import annotations

import platform
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from podman import Podman, require_podman
from regharness import Pusher, Registry, unique_repo
from sinks import WebhookSink
from test_check_integration import Setup
from tlsca import CA, TLSForwarder

from tagwatch.config import load_config
from tagwatch.sources import read_sources

pytestmark = pytest.mark.integration

HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
OTHER_ARCH = "arm64" if HOST_ARCH != "arm64" else "amd64"


@pytest.fixture
def podman() -> Iterator[Podman]:
    require_podman()
    with Podman() as world:
        world.start()
        yield world


def engine_source(podman: Podman, **keys: str) -> str:
    extra = "".join(f"{k} = {v}\n" for k, v in keys.items())
    return f'[[source]]\nengine = "{podman.address}"\nstopped = true\n{extra}'


def test_containers_are_pins_that_fall_behind_and_go_stale(
        podman: Podman, registry_anonymous: Registry, tmp_path: Path,
        webhook: WebhookSink) -> None:
    push = Pusher(registry_anonymous)
    host = registry_anonymous.host
    app, multi = unique_repo("eng-app"), unique_repo("eng-multi")
    running = push.push_image(app, "1.0", seed="app-old")
    index, children = push.push_index(multi, "latest", [f"linux/{HOST_ARCH}",
                                                        f"linux/{OTHER_ARCH}"], seed="m1")
    for ref in (f"{host}/{app}:1.0", f"{host}/{multi}:latest"):
        podman.run("pull", "--tls-verify=false", ref)
    # Two containers on one image, one on a multi-arch index pulled by tag, one on an image
    # built here (no registry digest).
    podman.run("create", "--network=none", "--name", "web-1", f"{host}/{app}:1.0", "serve")
    podman.run("create", "--network=none", "--name", "web-2", f"{host}/{app}:1.0", "serve")
    podman.run("create", "--network=none", "--name", "multi-1", f"{host}/{multi}:latest", "x")
    (tmp_path / "Containerfile").write_text(f"FROM {host}/{app}:1.0\nLABEL built=here\n")
    podman.run("build", "--network=none", "-t", "localhost/built:dev", "-f",
               str(tmp_path / "Containerfile"), str(tmp_path))
    podman.run("create", "--network=none", "--name", "built-1", "localhost/built:dev", "x")

    setup = Setup(tmp_path)
    setup.add(engine_source(podman, max_age='"2s"')).notify(webhook.url)
    engine = podman.address
    run = setup("check", "--json")
    assert run.code == 0, run.out + run.err
    pins = {o["image"]: o for o in run.json()}
    assert set(pins) == {f"{host}/{app}", f"{host}/{multi}"}
    web = pins[f"{host}/{app}"]
    assert (web["kind"], web["tag"], web["pinned"], web["state"]) == ("pin", "1.0", running, "ok")
    assert web["source"] == f"container web-1 on {engine}, container web-2 on {engine}"
    # The index pulled by tag: the pin is the platform image the container runs.
    assert pins[f"{host}/{multi}"]["pinned"] == children[f"linux/{HOST_ARCH}"]
    assert pins[f"{host}/{multi}"]["digest"] == index
    assert pins[f"{host}/{multi}"]["source"] == f"container multi-1 on {engine}"
    assert (f"not checked: container built-1 on {engine}: localhost/built:dev: its image has "
            "no registry digest for localhost/built (built locally, or loaded from a tar)"
            ) in run.err
    assert webhook.received == []

    # A removed container is simply no longer named; nothing is alerted.
    podman.run("rm", "web-2")
    run = setup("check", "--json")
    assert {o["image"]: o["source"] for o in run.json()}[f"{host}/{app}"] == (
        f"container web-1 on {engine}")

    # The tag moves: web-1 is behind. The index changes for the other platform only: the
    # image multi-1 runs is still the tag's, so that pin stays current.
    moved = push.push_image(app, "1.0", seed="app-new")
    other = push.push_image(multi, None, platform=f"linux/{OTHER_ARCH}", seed="m2-other")
    push.put_index(multi, "latest", {f"linux/{HOST_ARCH}": children[f"linux/{HOST_ARCH}"],
                                     f"linux/{OTHER_ARCH}": other})
    run = setup("check", "--json")
    assert run.code == 0, run.err
    pins = {o["image"]: o for o in run.json()}
    web = pins[f"{host}/{app}"]
    assert (web["state"], web["digest"], web["pinned"]) == ("ok", moved, running)
    assert web["behind_since"] is not None
    assert pins[f"{host}/{multi}"]["state"] == "ok"
    assert pins[f"{host}/{multi}"]["behind_since"] is None

    # ...and once behind for max_age (2s), stale, with the alert naming the container.
    deadline = time.monotonic() + 30
    while setup.status()[f"pin:{host}/{app}:1.0"]["state"] != "stale":
        assert time.monotonic() < deadline, "the pin never went stale"
        time.sleep(0.25)
        assert setup("check").code == 0
    [stale] = webhook.wait_for(1)
    assert stale["title"] == f"[tagwatch] stale: {host}/{app}:1.0 (container web-1 on {engine})"
    assert f"source: container web-1 on {engine}" in stale["message"]
    assert running in stale["message"] and moved in stale["message"]
    status = setup("status")
    line = next(ln for ln in status.out.splitlines() if ln.startswith(f"{host}/{app}:1.0"))
    assert line.split()[1:3] == ["pin", "stale"]

    # The last container of an image goes away: its pin is gone, without an alert.
    podman.run("rm", "multi-1")
    run = setup("check", "--json")
    assert [o["image"] for o in run.json()] == [f"{host}/{app}"]
    assert len(webhook.received) == 1


def test_engine_down_is_an_error_never_a_vanish(
        podman: Podman, registry_anonymous: Registry, tmp_path: Path,
        webhook: WebhookSink) -> None:
    push = Pusher(registry_anonymous)
    host = registry_anonymous.host
    app = unique_repo("eng-down")
    push.push_image(app, "2", seed="down")
    podman.run("pull", "--tls-verify=false", f"{host}/{app}:2")
    podman.run("create", "--network=none", "--name", "api", f"{host}/{app}:2", "x")
    setup = Setup(tmp_path)
    setup.parts[0] += "error_after = 2\n"
    setup.add(engine_source(podman)).notify(webhook.url)
    assert setup("check").code == 0
    key = f"pin:{host}/{app}:2"
    assert setup.status()[key]["state"] == "ok"

    podman.stop()
    engine = podman.address
    for attempt in (1, 2):
        run = setup("check", "--json")
        assert run.code == 1
        [pin] = run.json()
        assert pin["state"] == "error"
        assert pin["error"].startswith(f"engine {engine}: cannot connect: ")
        assert pin["source"] == f"container api on {engine}"
        assert f"tagwatch: source[0]: engine {engine}: cannot connect" in run.err
        assert len(webhook.received) == attempt - 1  # error_after = 2
    [error] = webhook.wait_for(1)
    whose = f"(container api on {engine})"
    assert error["title"] == f"[tagwatch] error: {host}/{app}:2 {whose}"
    assert f"engine {engine}: cannot connect" in error["message"]
    assert f"source: container api on {engine}" in error["message"]
    status = setup.status()[key]
    assert status["state"] == "error" and status["error"].startswith(f"engine {engine}")

    podman.start()
    run = setup("check", "--json")
    assert run.code == 0, run.err
    assert run.json()[0]["state"] == "ok"
    titles = [m["title"] for m in webhook.wait_for(2)]
    assert titles == [f"[tagwatch] error: {host}/{app}:2 {whose}",
                      f"[tagwatch] recovered: {host}/{app}:2 {whose}"]
    assert not any("vanished" in t for t in titles)


def test_created_containers_only_with_stopped(podman: Podman, registry_anonymous: Registry,
                                              tmp_path: Path) -> None:
    push = Pusher(registry_anonymous)
    host = registry_anonymous.host
    app = unique_repo("eng-stopped")
    push.push_image(app, "1", seed="s")
    podman.run("pull", "--tls-verify=false", f"{host}/{app}:1")
    podman.run("create", "--network=none", "--name", "idle", f"{host}/{app}:1", "x")
    for stopped, expected in (("false", []), ("true", [f"{host}/{app}"])):
        (tmp_path / "c.toml").write_text(
            f'[[source]]\nengine = "{podman.address}"\nstopped = {stopped}\n')
        expansion = read_sources(load_config(tmp_path / "c.toml"))
        assert expansion.failures == []
        assert [t.ref.name for t in expansion.config.targets] == expected


def test_tls_engine_with_client_certificates(podman: Podman, registry_anonymous: Registry,
                                             tmp_path: Path) -> None:
    """tcp://…:PORT with ca.pem/cert.pem/key.pem, as Docker's CLI takes them; the Podman
    socket behind a TLS forwarder that requires a client certificate."""
    push = Pusher(registry_anonymous)
    host = registry_anonymous.host
    app = unique_repo("eng-tls")
    digest = push.push_image(app, "1", seed="t")
    podman.run("pull", "--tls-verify=false", f"{host}/{app}:1")
    podman.run("create", "--network=none", "--name", "secure", f"{host}/{app}:1", "x")
    ca = CA()
    forwarder = TLSForwarder(ca.server_context(tmp_path / "server"), podman.socket)
    try:
        certs = ca.docker_folder(tmp_path / "docker")
        address = f"tcp://127.0.0.1:{forwarder.port}"
        config = tmp_path / "c.toml"
        config.write_text(f'[[source]]\nengine = "{address}"\ncert_path = "{certs}"\n'
                          "stopped = true\n")
        expansion = read_sources(load_config(config))
        assert expansion.failures == []
        [target] = expansion.config.targets
        assert (str(target.ref), target.source) == (
            f"{host}/{app}:1@{digest}", f"container secure on {address}")

        # engine = "env": DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH, as the CLI does.
        config.write_text('[[source]]\nengine = "env"\nstopped = true\n')
        env = {"DOCKER_HOST": address, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(certs)}
        [target] = read_sources(load_config(config, env=env)).config.targets
        assert target.source == f"container secure on {address}"

        # A client certificate from another CA is refused by the engine; an engine whose
        # certificate another CA signed is refused by tagwatch.
        other = CA("another CA").docker_folder(tmp_path / "other")
        (other / "ca.pem").write_bytes(ca.pem)  # trusts the engine, but a foreign client cert
        config.write_text(f'[[source]]\nengine = "{address}"\ncert_path = "{other}"\n')
        expansion = read_sources(load_config(config))
        assert expansion.config.targets == ()
        [failure] = expansion.failures
        assert failure.startswith(f"source[0]: engine {address}: ")
        wrong = CA("wrong CA").docker_folder(tmp_path / "wrong")
        config.write_text(f'[[source]]\nengine = "{address}"\ncert_path = "{wrong}"\n')
        [failure] = read_sources(load_config(config)).failures
        assert "CERTIFICATE_VERIFY_FAILED" in failure
    finally:
        forwarder.close()


def test_daemon_rereads_the_engine_and_exports_it(podman: Podman, registry_anonymous: Registry,
                                                  tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    import httpx
    from regharness import free_port

    push = Pusher(registry_anonymous)
    host = registry_anonymous.host
    app = unique_repo("eng-daemon")
    push.push_image(app, "1", seed="d")
    podman.run("pull", "--tls-verify=false", f"{host}/{app}:1")
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(f'[tagwatch]\ndatabase = "{tmp_path / "tw.db"}"\ninterval = "1s"\n'
                      f'jitter = "0s"\n[metrics]\nlisten = "127.0.0.1:{port}"\n'
                      + engine_source(podman))
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "INVOCATION_ID")}
    with (tmp_path / "daemon.log").open("w") as log:  # the child keeps its own copy
        proc = subprocess.Popen([sys.executable, "-m", "tagwatch", "run", "-c", str(config),
                                 "-v"], env=env, stdout=subprocess.DEVNULL, stderr=log)
    label = f'source="engine {podman.address}"'
    pin = f'image="{host}/{app}",kind="pin"'

    def wait_metrics(*wanted: str) -> str:
        deadline = time.monotonic() + 30
        text = ""
        while time.monotonic() < deadline:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            except httpx.HTTPError:
                text = ""
            if all(w in text for w in wanted):
                return text
            time.sleep(0.2)
        raise AssertionError(f"metrics never showed {wanted}:\n{text}\n"
                             f"{(tmp_path / 'daemon.log').read_text()}")

    try:
        up, count = f"tagwatch_source_up{{{label}}}", f"tagwatch_source_targets{{{label}}}"
        wait_metrics(f"{up} 1.0", f"{count} 0.0")
        # A container appears: the next reading makes it a target, checked and exported.
        podman.run("create", "--network=none", "--name", "late", f"{host}/{app}:1", "x")
        text = wait_metrics(f"{count} 1.0")
        text = wait_metrics(f'tagwatch_target_state{{{pin}', 'state="ok",tag="1"} 1.0')
        assert f'tagwatch_pin_stale{{image="{host}/{app}"' in text
        # The engine goes down: the pin stays, in error; the source is down.
        podman.stop()
        wait_metrics(f"{up} 0.0", f"{count} 1.0", 'state="error",tag="1"} 1.0')
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    text = (tmp_path / "daemon.log").read_text()
    assert f"source[0] (engine {podman.address}): engine {podman.address}: cannot connect" in text
