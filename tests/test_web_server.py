"""tagwatch.web.server, in process: each bound of the listener, with short deadlines.

The whole daemon under a real flood is tests/test_web_flood.py."""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tagwatch.web.server import Limits, Request, Response, Server, parse_head


def _recv_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def _closed_within(sock: socket.socket, timeout: float) -> bool:
    """True when the server closes `sock` (FIN or reset) within `timeout` seconds."""
    sock.settimeout(timeout)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


class Served:
    def __init__(self, handler: Callable[[Request], Response], limits: Limits) -> None:
        self.drops: list[str] = []
        self.server = Server("127.0.0.1", 0, handler, limits, on_drop=self.drops.append)
        self.server.start()
        self.socks: list[socket.socket] = []

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
        self.socks.append(sock)
        return sock

    def get(self, path: str = "/", method: str = "GET") -> bytes:
        sock = self.connect()
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        return _recv_all(sock)

    def wait_for(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, "condition never met"
            time.sleep(0.01)

    def close(self) -> None:
        for sock in self.socks:
            sock.close()
        self.server.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(handler: Callable[[Request], Response] | None = None, **limits: float) -> Served:
        served = Served(handler or (lambda r: Response.text(200, f"hello {r.path}")),
                        Limits(**limits))  # type: ignore[arg-type]
        started.append(served)
        return served

    yield start
    for served in started:
        served.close()


def test_get_and_head(serve: Callable[..., Served]) -> None:
    s = serve()
    answer = s.get("/a%20b?x=1")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nConnection: close" in head and b"\r\nContent-Length: 11" in head
    assert body == b"hello /a b\n"
    head_only = s.get("/", method="HEAD")
    assert head_only.endswith(b"\r\n\r\n") and b"Content-Length: 8" in head_only


@pytest.mark.parametrize(("raw", "status"), [
    (b"POST /metrics HTTP/1.1\r\n\r\n", b"405"),
    (b"GET /metrics\r\n\r\n", b"400"),
    (b"GET metrics HTTP/1.1\r\n\r\n", b"400"),
    (b"GET /%ff HTTP/1.1\r\n\r\n", b"400"),
    (b"\r\nGET / HTTP/1.0\n\n", b"200"),  # an empty line first, bare LF: still a request
    (b"GET / HTTP/1.1\r\nX: " + b"a" * 9000, b"431"),
])
def test_bad_requests_get_a_status_not_a_hang(serve: Callable[..., Served], raw: bytes,
                                              status: bytes) -> None:
    s = serve()
    sock = s.connect()
    sock.sendall(raw)
    assert _recv_all(sock).split(b" ")[1] == status


def test_parse_head_allows_only_get_and_head() -> None:
    answer = parse_head(b"DELETE / HTTP/1.1")
    assert isinstance(answer, Response) and answer.status == 405
    assert ("Allow", "GET, HEAD") in answer.headers


def test_slowloris_is_closed_at_the_head_deadline_however_it_trickles(
        serve: Callable[..., Served]) -> None:
    s = serve(head_timeout=0.5)
    sock = s.connect()
    started = time.monotonic()
    closed = False
    for byte in b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 100:
        try:
            sock.send(bytes([byte]))
        except OSError:
            closed = True
            break
        if _closed_within(sock, 0.1):
            closed = True
            break
    took = time.monotonic() - started
    assert closed and 0.5 <= took < 3.0, took
    assert s.drops == ["timeout"]
    s.wait_for(lambda: not s.server.connections)


def _partial(s: Served) -> socket.socket:
    """A connection that started a request head and stalls."""
    sock = s.connect()
    sock.sendall(b"GET /metr")
    return sock


def test_silent_connections_hold_no_descriptor(serve: Callable[..., Served]) -> None:
    s = serve(max_connections=4, head_timeout=60)
    silent = [s.connect() for _ in range(50)]
    assert s.get("/metrics").startswith(b"HTTP/1.1 200 ")
    time.sleep(0.3)
    assert not s.server.connections  # TCP_DEFER_ACCEPT: never accepted while silent
    assert not any(_closed_within(sock, 0.01) for sock in silent)
    assert s.drops == []


def test_a_client_slow_to_send_is_not_evicted_by_a_burst(serve: Callable[..., Served]) -> None:
    s = serve(max_connections=4, head_timeout=60)
    slow = s.connect()  # connected, its request not sent yet
    burst = [_partial(s) for _ in range(12)]
    s.wait_for(lambda: s.drops.count("evicted") == 8)
    slow.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
    assert _recv_all(slow).startswith(b"HTTP/1.1 200 ")
    assert sum(not _closed_within(sock, 0.01) for sock in burst) == 3  # room was made for slow


def test_a_full_listener_evicts_its_oldest_idle_connection(
        serve: Callable[..., Served]) -> None:
    s = serve(max_connections=4, head_timeout=60)
    idle = []
    for _ in range(4):  # one by one, so that their age is their order
        idle.append(_partial(s))
        s.wait_for(lambda: len(s.server.connections) == len(idle))
    assert s.get("/metrics").startswith(b"HTTP/1.1 200 ")
    assert _closed_within(idle[0], 2.0)  # the oldest made room
    assert not any(_closed_within(sock, 0.1) for sock in idle[1:])
    assert s.drops == ["evicted"]
    assert len(s.server.connections) == 3


def test_requests_being_answered_are_never_evicted(serve: Callable[..., Served]) -> None:
    release = threading.Event()

    def slow(request: Request) -> Response:
        release.wait(10)
        return Response.text(200, "done")

    s = serve(slow, max_connections=2, workers=2)
    first, second = s.connect(), s.connect()
    for sock in (first, second):
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
    s.wait_for(lambda: len(s.server.connections) == 2 and
               all(c.state == "answering" for c in s.server.connections))
    third = s.connect()  # waits in the kernel's queue: nothing to evict
    third.sendall(b"GET / HTTP/1.1\r\n\r\n")
    assert not _closed_within(third, 0.3)
    release.set()
    for sock in (first, second, third):
        assert _recv_all(sock).endswith(b"\r\n\r\ndone\n")
    assert s.drops == []


def test_a_failing_handler_is_a_500_and_a_stuck_one_a_503(
        serve: Callable[..., Served], caplog: pytest.LogCaptureFixture) -> None:
    def handler(request: Request) -> Response:
        if request.path == "/stuck":
            time.sleep(2)
        if request.path == "/fail":
            raise RuntimeError("boom")
        return Response.text(200, "ok")

    s = serve(handler, answer_timeout=0.5)
    assert s.get("/fail").startswith(b"HTTP/1.1 500 ")
    assert "GET /fail failed" in caplog.text
    started = time.monotonic()
    assert s.get("/stuck").startswith(b"HTTP/1.1 503 ")
    assert time.monotonic() - started < 1.5


def test_an_answer_nobody_reads_is_dropped_at_the_write_deadline(
        serve: Callable[..., Served]) -> None:
    big = b"x" * (32 * 1024 * 1024)
    s = serve(lambda r: Response(200, big), write_timeout=0.5)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", s.server.port))
    s.socks.append(sock)
    sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
    s.wait_for(lambda: s.drops == ["timeout"])
    s.wait_for(lambda: not s.server.connections)


def test_accept_out_of_file_descriptors_pauses_instead_of_spinning(
        serve: Callable[..., Served]) -> None:
    s = serve()
    calls = []
    real_accept = s.server._accept

    def no_fds() -> tuple[socket.socket, object]:
        calls.append(time.monotonic())
        if len(calls) <= 2:
            real_accept()[0].close()  # take the connection, then fail as accept(2) would
            raise OSError(errno.EMFILE, "Too many open files")
        return real_accept()

    s.server._accept = no_fds  # type: ignore[method-assign]
    pending = [_partial(s) for _ in range(3)]
    s.wait_for(lambda: len(calls) >= 3, timeout=10)
    assert calls[1] - calls[0] >= 0.9 and calls[2] - calls[1] >= 0.9  # paused, not spinning
    pending[-1].sendall(b"ics HTTP/1.1\r\n\r\n")
    assert _recv_all(pending[-1]).startswith(b"HTTP/1.1 200 ")
    assert all(_closed_within(sock, 1.0) for sock in pending[:2])


@pytest.mark.parametrize(
    ("header", "gzip"),
    [
        (b"", False),
        (b"Accept-Encoding: gzip\r\n", True),
        (b"accept-encoding: deflate, GZIP;q=0.5\r\n", True),
        (b"Accept-Encoding: identity, *\r\n", True),
        (b"Accept-Encoding: gzip;q=0\r\n", False),
        (b"Accept-Encoding: gzip;q=bad\r\n", False),
        (b"Accept-Encoding: identity\r\n", False),
        (b"X-Accept-Encoding: gzip\r\n", False),
    ],
)
def test_parse_head_tells_whether_the_client_takes_gzip(header: bytes, gzip: bool) -> None:
    request = parse_head(b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n")
    assert isinstance(request, Request)
    assert request.gzip is gzip
