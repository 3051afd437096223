"""Connections are owned (issue 17): per registry, kept alive and reused across cycles, closed
on reload, on stop and once idle; never left to the garbage collector (the suite turns
`ResourceWarning` into an error, see pyproject.toml)."""

from __future__ import annotations

import gc
import signal
import threading
import time
from pathlib import Path

import pytest
from faultproxy import FaultProxy
from hostile import daemon, wait_until
from regharness import Pusher, Registry, unique_repo
from test_check_integration import Setup

from tagwatch.core.refs import parse_ref
from tagwatch.registry.client import RegistryClient

pytestmark = pytest.mark.integration

TAGS = 20
# A client's first cycle opens at most its pool of kept HEAD connections (concurrency + 2)
# and as many of httpx's (the requests that learn how the registry authenticates).
PER_CLIENT = 2 * (4 + 2)


def watched(registry: Registry, proxy: FaultProxy, setup: Setup, tags: int = TAGS) -> str:
    push = Pusher(registry)
    repo = unique_repo("conn")
    digest = push.push_image(repo, "t0", seed=repo)
    for i in range(1, tags):
        push.tag(repo, f"t{i}", digest)
    for i in range(tags):
        setup.watch(f"{proxy.host}/{repo}:t{i}")
    return repo


def daemon_config(setup: Setup, interval: str) -> Path:
    setup.parts[0] = setup.parts[0].replace("concurrency = 16", "concurrency = 4")
    setup.parts[0] += f'interval = "{interval}"\njitter = "0s"\n[metrics]\nlisten = ""\n'
    return setup.write().path


def heads(proxy: FaultProxy) -> int:
    return len(proxy.filter("HEAD"))


def test_daemon_reuses_connections_across_cycles(registry_anonymous: Registry, tmp_path: Path
                                                 ) -> None:
    setup = Setup(tmp_path)
    with FaultProxy(registry_anonymous) as proxy:
        watched(registry_anonymous, proxy, setup)
        with daemon(daemon_config(setup, "1s"), tmp_path / "daemon.log"):
            wait_until(lambda: heads(proxy) >= 3 * TAGS, 30, "three cycles")
            proxy.reset_counts()
            wait_until(lambda: heads(proxy) >= 5 * TAGS, 30, "five more cycles")
            opened = proxy.connections
            cycles = heads(proxy) / TAGS
        print(f"\nMEASURED TCP connections opened over {cycles:.0f} steady cycles: {opened}")
        assert opened == 0


def test_daemon_closes_connections_once_idle(registry_anonymous: Registry, tmp_path: Path
                                             ) -> None:
    """Checked every 2 minutes, longer than a registry keeps a connection open (tagwatch's
    IDLE_TIMEOUT is 30 s): the connections are closed as soon as the cycle is done."""
    setup = Setup(tmp_path)
    with FaultProxy(registry_anonymous) as proxy:
        watched(registry_anonymous, proxy, setup)
        with daemon(daemon_config(setup, "2m"), tmp_path / "daemon.log"):
            wait_until(lambda: heads(proxy) >= TAGS, 30, "the first cycle")
            wait_until(lambda: proxy.open_connections == 0, 10, "idle connections to close")
        print(f"\nMEASURED connections of the first cycle: {proxy.connections}, all closed")
        assert 1 <= proxy.connections <= PER_CLIENT


def test_daemon_closes_connections_on_reload(registry_anonymous: Registry, tmp_path: Path
                                             ) -> None:
    setup = Setup(tmp_path)
    with FaultProxy(registry_anonymous) as proxy:
        watched(registry_anonymous, proxy, setup)
        with daemon(daemon_config(setup, "1s"), tmp_path / "daemon.log") as proc:
            wait_until(lambda: heads(proxy) >= 2 * TAGS, 30, "two cycles")
            before = proxy.open_connections
            for _ in range(3):
                done = heads(proxy)
                proc.send_signal(signal.SIGHUP)
                wait_until(lambda: heads(proxy) >= done + 2 * TAGS, 30, "two more cycles")  # noqa: B023
            wait_until(lambda: proxy.open_connections <= 6, 10, "old connections to close")
            after = proxy.open_connections
        print(f"\nMEASURED connections open before 3 reloads: {before}, after: {after}; "
              f"opened in all: {proxy.connections}")
        assert after <= 6 and proxy.connections <= 4 * PER_CLIENT


def test_client_close_leaves_no_socket_behind(registry_anonymous: Registry) -> None:
    """Threads resolving through one client, then `close()`: every socket is closed by it,
    not by the garbage collector (a ResourceWarning would fail this test)."""
    push = Pusher(registry_anonymous)
    repo = unique_repo("close")
    digest = push.push_image(repo, "v1", seed=repo)
    with FaultProxy(registry_anonymous) as proxy:
        client = RegistryClient(timeout=5, concurrency=4)
        ref = parse_ref(f"{proxy.host}/{repo}:v1")
        results: list[str] = []

        def work(client: RegistryClient) -> None:
            results.extend(client.resolve(ref).digest for _ in range(5))

        threads = [threading.Thread(target=work, args=(client,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == [digest] * 20
        assert proxy.open_connections >= 1
        client.close()
        wait_until(lambda: proxy.open_connections == 0, 5, "the proxy to see them closed")
        del client
        gc.collect()
        time.sleep(0.1)
