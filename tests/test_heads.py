"""A cycle's HEADs together (registry/heads.py, `RegistryClient.resolve_many`): against the
real distribution registry behind the fault proxy (requests and TCP connections counted),
its token mode, and a scripted server for answers no registry sends on purpose."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from faultproxy import FaultProxy
from regharness import Pusher, Registry, unique_repo

from tagwatch.core.model import Resolved
from tagwatch.core.refs import ImageRef, parse_ref
from tagwatch.errors import NotFound, RegistryError, RegistryUnavailable
from tagwatch.registry.client import RegistryClient
from tagwatch.registry.heads import ProtocolError, parse_head, request_bytes
from tagwatch.registry.slots import FairSlots

Outcome = Resolved | RegistryError | Callable[[], Resolved]


def pushed(registry: Registry, tags: int) -> tuple[str, str]:
    push = Pusher(registry)
    repo = unique_repo("heads")
    digest = push.push_image(repo, "t0", seed=repo)
    for i in range(1, tags):
        push.tag(repo, f"t{i}", digest)
    return repo, digest


def refs(host: str, repo: str, tags: int) -> list[tuple[ImageRef, Resolved | None]]:
    return [(parse_ref(f"{host}/{repo}:t{i}"), None) for i in range(tags)]


def many(client: RegistryClient, items: list[tuple[ImageRef, Resolved | None]],
         limit: int = 4, **kw: Any) -> list[Outcome]:
    registries = {ref.registry for ref, _ in items}
    return client.resolve_many(items, limit=limit, caps=dict.fromkeys(registries, limit), **kw)


# --- the real registry -----------------------------------------------------------------------


@pytest.mark.integration
def test_one_head_per_tag_over_kept_connections(registry_anonymous: Registry) -> None:
    repo, digest = pushed(registry_anonymous, 12)
    with FaultProxy(registry_anonymous) as proxy, RegistryClient(timeout=5) as client:
        items = refs(proxy.host, repo, 12)
        first = many(client, items)
        assert [r.digest for r in first] == [digest] * 12  # type: ignore[union-attr]
        assert [r.method for r in proxy.requests] == ["HEAD"] * 12
        assert 1 <= proxy.connections <= 4
        proxy.reset_counts()
        again = many(client, items)
        assert [r.digest for r in again] == [digest] * 12  # type: ignore[union-attr]
        assert len(proxy.requests) == 12 and proxy.connections == 0  # the same connections


@pytest.mark.integration
def test_missing_tag_and_a_500_to_retry(registry_anonymous: Registry) -> None:
    repo, digest = pushed(registry_anonymous, 2)
    with FaultProxy(registry_anonymous) as proxy, RegistryClient(timeout=5, retries=1,
                                                                 backoff=0.01) as client:
        many(client, refs(proxy.host, repo, 1))  # learns: no auth
        proxy.set_fault("status", code=500, count=1, match=lambda r: r.path.endswith("/t1"))
        items = [*refs(proxy.host, repo, 2), (parse_ref(f"{proxy.host}/{repo}:nope"), None)]
        got = many(client, items)
        assert isinstance(got[0], Resolved) and got[0].digest == digest
        assert isinstance(got[2], NotFound)
        retry = got[1]
        assert callable(retry) and not isinstance(retry, RegistryError)
        assert retry().digest == digest  # the 500 was its first try: one more request
        assert len(proxy.filter("HEAD", "/t1")) == 2


@pytest.mark.integration
def test_token_registry_first_the_flow_then_heads_with_the_token(make_registry: Any) -> None:
    registry = make_registry("token")
    user, password = registry.credentials
    repo, digest = pushed(registry, 6)
    from tagwatch.registry.dockercreds import Credentials

    creds = Credentials(user, password)
    with RegistryClient(timeout=5, credentials=lambda host: creds) as client:
        items = refs(registry.host, repo, 6)
        mark = registry.mark()
        first = many(client, items)
        # The first HEAD learns the scheme (a 401 with a bearer challenge); no token yet, so
        # every tag is finished by the full flow, which fetches one token for the repository.
        assert all(callable(r) for r in first)
        assert [r().digest for r in first] == [digest] * 6  # type: ignore[operator]
        assert len(registry.token_server.token_requests) == 1
        sent = registry.requests(since=mark)
        assert [m for m, _, _ in sent].count("HEAD") == 1 + 6  # the probe, then one per tag
        mark = registry.mark()
        again = many(client, items)
        assert [r.digest for r in again] == [digest] * 6  # type: ignore[union-attr]
        assert [(m, s) for m, _, s in registry.requests(since=mark)] == [("HEAD", 200)] * 6
        assert len(registry.token_server.token_requests) == 1


@pytest.mark.integration
def test_a_hanging_registry_ends_at_timeout_and_abort_ends_at_once(
        registry_anonymous: Registry) -> None:
    repo, _ = pushed(registry_anonymous, 4)
    with FaultProxy(registry_anonymous) as proxy, RegistryClient(timeout=1) as client:
        many(client, refs(proxy.host, repo, 1))
        proxy.set_fault("hang")
        started = time.monotonic()
        got = many(client, refs(proxy.host, repo, 4))
        elapsed = time.monotonic() - started
        assert 0.9 < elapsed < 1.5  # four at once, each within its own second
        for outcome in got:
            with pytest.raises(RegistryUnavailable, match="read timeout after 1s"):
                client.resolve(*refs(proxy.host, repo, 1)[0], head=outcome.keywords["head"])  # type: ignore[union-attr]
        abort = threading.Event()
        threading.Timer(0.2, abort.set).start()
        started = time.monotonic()
        got = many(client, refs(proxy.host, repo, 4), abort=abort)
        assert time.monotonic() - started < 0.8
        assert all(callable(r) for r in got)  # not settled: the caller reports them abandoned


@pytest.mark.integration
def test_slots_bound_the_requests_in_flight(registry_anonymous: Registry) -> None:
    repo, digest = pushed(registry_anonymous, 8)
    with FaultProxy(registry_anonymous) as proxy, RegistryClient(timeout=5) as client:
        many(client, refs(proxy.host, repo, 1))
        proxy.set_fault("latency", seconds=0.2)
        slots = FairSlots(2, [registry_anonymous.host])
        started = time.monotonic()
        got = many(client, refs(proxy.host, repo, 8), limit=8,
                   slots=slots.group(proxy.host))
        elapsed = time.monotonic() - started
        assert [r.digest for r in got] == [digest] * 8  # type: ignore[union-attr]
        assert elapsed >= 0.75  # 8 requests of 0.2 s, two at a time
        assert slots.held(proxy.host) == 0


# --- answers no registry sends on purpose -----------------------------------------------------


DIGEST = "sha256:" + "ab" * 32
OK = (b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n"
      b"Docker-Content-Digest: " + DIGEST.encode() + b"\r\n")


class Scripted:
    """A TCP server answering each request with the next of `answers` (bytes, or a callable
    given the socket); counts connections and requests."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.connections = 0
        self.requests = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.talk, args=(conn,), daemon=True).start()

    def talk(self, conn: socket.socket) -> None:
        with conn:
            buf = b""
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    _, buf = buf.split(b"\r\n\r\n", 1)
                    self.requests += 1
                    answer = self.answers.pop(0) if self.answers else OK + b"\r\n"
                    if callable(answer):
                        if answer(conn) is False:
                            return
                    else:
                        conn.sendall(answer)

    def close(self) -> None:
        self.server.close()


@contextmanager
def scripted(answers: list[Any]) -> Iterator[tuple[Scripted, RegistryClient, str]]:
    server = Scripted(answers)
    try:
        with RegistryClient(timeout=1, retries=0) as client:
            yield server, client, f"127.0.0.1:{server.port}"
    finally:
        server.close()


def test_bytes_past_the_answer_and_connection_close_end_the_connection() -> None:
    answers = [
        OK + b"\r\n",  # the probe
        OK + b"\r\nGARBAGE",  # more than a HEAD's answer
        OK + b"Connection: close\r\n\r\n",
        OK + b"\r\n",
    ]
    with scripted(answers) as (server, client, host):
        items = [(parse_ref(f"{host}/a:t{i}"), None) for i in range(4)]
        got = many(client, items, limit=1)
        assert [r.digest for r in got] == [DIGEST] * 4  # type: ignore[union-attr]
        assert server.connections == 3  # the garbage and the close each cost a new one


def test_interim_answers_are_skipped_and_the_header_block_is_capped() -> None:
    huge = b"HTTP/1.1 200 OK\r\nX-Pad: " + b"x" * 70_000
    answers = [OK + b"\r\n", b"HTTP/1.1 100 Continue\r\n\r\n" + OK + b"\r\n", huge]
    with scripted(answers) as (_, client, host):
        items = [(parse_ref(f"{host}/a:t{i}"), None) for i in range(3)]
        got = many(client, items, limit=1)
        assert isinstance(got[1], Resolved) and got[1].digest == DIGEST
        # Over MAX_HEAD_BYTES: not read further; the full flow (httpx) makes that one.
        assert callable(got[2]) and not isinstance(got[2], RegistryError)


def test_a_stale_kept_connection_is_replaced_without_a_failure() -> None:
    def answer_and_close(conn: socket.socket) -> bool:
        conn.sendall(OK + b"\r\n")
        return False  # closes as an idle keep-alive connection would time out

    with scripted([answer_and_close, answer_and_close]) as (server, client, host):
        item = [(parse_ref(f"{host}/a:t0"), None)]
        assert many(client, item)[0].digest == DIGEST  # type: ignore[union-attr]
        time.sleep(0.1)
        assert many(client, item)[0].digest == DIGEST  # type: ignore[union-attr]
        assert server.connections == 2 and server.requests == 2


def test_a_trickled_answer_ends_at_timeout_as_a_whole() -> None:
    def trickle(conn: socket.socket) -> bool:
        for byte in OK:
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                return False
            time.sleep(0.1)
        return False

    with scripted([OK + b"\r\n", trickle]) as (_, client, host):
        many(client, [(parse_ref(f"{host}/a:t0"), None)])
        started = time.monotonic()
        [got] = many(client, [(parse_ref(f"{host}/a:t1"), None)])
        assert time.monotonic() - started < 1.4
        failure = got.keywords["head"]  # type: ignore[union-attr]
        assert isinstance(failure, RegistryUnavailable)
        assert "read timeout after 1s" in str(failure)


def test_parse_head_and_request_safety() -> None:
    answer = parse_head(b"HTTP/1.0 404 Not Found\r\nContent-Type: a\r\nX-Caf\xe9: \xe9t\xe9")
    assert (answer.status, answer.keep_alive) == (404, False)  # 1.0 closes unless told
    assert answer.headers.get("x-caf\xe9") == "\xe9t\xe9"  # ISO-8859-1, as http.client
    assert parse_head(b"HTTP/1.0 200 OK\r\nConnection: keep-alive").keep_alive
    for bad in (b"SSH-2.0-OpenSSH", b"HTTP/1.1 2000 OK", b"HTTP/1.1 200 OK\r\nno colon"):
        with pytest.raises(ProtocolError):
            parse_head(bad)
    for path in ("/v2/a b", "/v2/a\r\nX: y", "/v2/\x00", "v2/relative"):
        with pytest.raises(ValueError):
            request_bytes("h", path, {})
    with pytest.raises(ValueError):
        request_bytes("h", "/v2/x", {"Authorization": "Bearer a\r\nX-Injected: 1"})
