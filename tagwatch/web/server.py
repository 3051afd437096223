"""The daemon's HTTP listener: a small HTTP/1.1 server that no client can starve.

Anyone who can reach `[metrics] listen` can open connections, and every open connection is
a file descriptor of the daemon, the same budget its registry checks draw from. A server
with a thread per connection and no deadline (http.server's ThreadingHTTPServer) let 253 idle
connections exhaust a daemon limited to 256 files: checks failed with "Too many open
files", /metrics timed out and the accept loop spun at 100 % CPU. Here every resource a
client can claim has a bound:

* **Connections**: at most `max_connections` at once (32, or an eighth of RLIMIT_NOFILE if
  that is lower). When they are all taken, a new connection closes the oldest one that has
  not sent a complete request yet (as nginx reuses idle keep-alive connections), so idle and
  trickling connections cannot lock a scraper out; only when every connection is being
  answered does accepting wait.
* **Time**: the request head (request line and headers, at most `MAX_HEAD` bytes) must
  arrive within `head_timeout` of the connect, however slowly it trickles in; the answer
  must be ready within `answer_timeout` (else 503) and taken by the client within
  `write_timeout`. One request per connection (`Connection: close`).
* **Threads**: one thread runs an asyncio event loop for all the connections (an idle
  connection costs no thread); the answers are built by a fixed pool of `workers` threads.
* **accept()** only sees connections that sent something (TCP_DEFER_ACCEPT, as Apache and
  nginx's `deferred` use on Linux): a connection that stays silent holds no descriptor of
  ours until the head deadline; and accept() failing for want of file descriptors pauses
  accepting instead of spinning.

The server knows nothing of tagwatch: it calls `handler(Request) -> Response` on a worker
thread (tagwatch.web.app has the routes).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import logging
import math
import resource
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import unquote

__all__ = ["Limits", "Request", "Response", "Server", "default_max_connections"]

log = logging.getLogger("tagwatch.web")

MAX_HEAD = 8192  # request line + headers; browsers and Prometheus send well under 2 KiB
METHODS = ("GET", "HEAD")
# Connections the kernel holds completed but not yet accepted: a burst of connects waits
# there (no file descriptor of ours) rather than having its SYNs dropped and retried a
# second later; a scraper's connection waits behind the burst for milliseconds.
BACKLOG = 1024
ACCEPT_PAUSE = 1.0  # seconds accepting waits after accept() ran out of file descriptors
DROP_LOG_EVERY = 60.0  # seconds between two log lines about dropped connections


def default_max_connections() -> int:
    """32, or an eighth of the soft RLIMIT_NOFILE if that is lower (at least 4): the
    listener never claims more than a small share of the process's file descriptors."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 32
    return max(4, min(32, soft // 8))


@dataclass(frozen=True, slots=True)
class Limits:
    max_connections: int = field(default_factory=default_max_connections)
    head_timeout: float = 5.0
    answer_timeout: float = 10.0
    write_timeout: float = 10.0
    workers: int = 2


@dataclass(frozen=True, slots=True)
class Request:
    method: str  # GET or HEAD
    path: str  # percent-decoded, without the query
    query: str
    gzip: bool = False  # the client accepts `Content-Encoding: gzip` (Prometheus does)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: Sequence[tuple[str, str]] = ()

    @classmethod
    def text(cls, status: int, text: str) -> Response:
        return cls(status, (text.rstrip("\n") + "\n").encode())


Handler = Callable[[Request], Response]
DropObserver = Callable[[str], None]  # called with "evicted" or "timeout"


def _serialize(response: Response, method: str) -> bytes:
    try:
        reason = HTTPStatus(response.status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [
        f"HTTP/1.1 {response.status} {reason}",
        f"Date: {formatdate(usegmt=True)}",
        "Server: tagwatch",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in response.headers),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if method == "HEAD" else head + response.body


def parse_head(head: bytes) -> Request | Response:
    """The request line of a request head, or the error response it deserves."""
    line = head.lstrip(b"\r\n").split(b"\n", 1)[0].rstrip(b"\r")
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        return Response.text(400, "bad request line")
    try:
        method, target = parts[0].decode("ascii"), parts[1].decode("ascii")
    except UnicodeDecodeError:
        return Response.text(400, "bad request line")
    if method not in METHODS:
        return Response(405, b"only GET and HEAD\n", headers=[("Allow", ", ".join(METHODS))])
    if not target.startswith("/"):
        return Response.text(400, "bad request target")
    path, _, query = target.partition("?")
    try:
        return Request(method, unquote(path, errors="strict"), query, _accepts_gzip(head))
    except UnicodeDecodeError:
        return Response.text(400, "bad request target: not UTF-8")


def _accepts_gzip(head: bytes) -> bool:
    """Whether an Accept-Encoding header of the head names gzip (or *) with a q above 0."""
    for line in head.split(b"\n")[1:]:
        name, colon, value = line.partition(b":")
        if not colon or name.strip().lower() != b"accept-encoding":
            continue
        for item in value.split(b","):
            coding, _, params = item.strip().partition(b";")
            if coding.strip().lower() not in (b"gzip", b"*"):
                continue
            q = params.strip().lower()
            if q.startswith(b"q="):
                try:
                    if float(q[2:]) <= 0:
                        continue
                except ValueError:
                    continue
            return True
    return False


class _Connection(asyncio.Protocol):
    """One client connection: read the head, have a worker answer, write, close."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.state = "head"  # -> answering -> writing -> closed
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.method = "GET"

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._deadline(self.server.limits.head_timeout, self._head_expired)

    def data_received(self, data: bytes) -> None:
        if self.state != "head":
            return  # a body or a pipelined request: one request per connection
        self.buffer += data
        end = self._head_end()
        if end < 0:
            if len(self.buffer) > MAX_HEAD:
                self._reply(Response.text(431, "request head too large"))
            return
        parsed = parse_head(bytes(self.buffer[:end]))
        self.buffer = bytearray()
        if isinstance(parsed, Response):
            self._reply(parsed)
            return
        self.method = parsed.method
        self.state = "answering"  # from now on, never evicted (see Server._evictable)
        self._deadline(self.server.limits.answer_timeout, self._answer_expired)
        future = self.server.loop.run_in_executor(self.server.pool, self.server.answer, parsed)
        future.add_done_callback(self._answered)

    def eof_received(self) -> bool:
        # A client may half-close after its request; keep the connection to answer it.
        return self.state != "head"

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = "closed"
        if self.timer is not None:
            self.timer.cancel()
        self.server.forget(self)

    # --- steps ----------------------------------------------------------------------------

    def _head_end(self) -> int:
        data = self.buffer.lstrip(b"\r\n")  # RFC 9112 2.2: ignore empty lines before it
        if len(data) != len(self.buffer):
            self.buffer = bytearray(data)
        for marker in (b"\r\n\r\n", b"\n\n"):
            end = self.buffer.find(marker)
            if end >= 0:
                return end
        return -1

    def _deadline(self, seconds: float, expire: Callable[[], None]) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.server.loop.call_later(seconds, expire)

    def _head_expired(self) -> None:
        if self.state == "head":
            self.abort("timeout")

    def _answer_expired(self) -> None:
        if self.state == "answering":
            self._reply(Response.text(503, "busy: no answer in time, try again"))

    def _answered(self, future: asyncio.Future[Response]) -> None:
        if self.state != "answering":
            return  # timed out (503 sent) or the client went away
        self._reply(future.result())

    def _reply(self, response: Response) -> None:
        assert self.transport is not None
        self.state = "writing"
        self.transport.write(_serialize(response, self.method))
        self.transport.close()  # after the buffer is flushed
        self._deadline(self.server.limits.write_timeout, self._write_expired)

    def _write_expired(self) -> None:
        if self.state == "writing":
            self.abort("timeout")  # the client does not read its answer

    def abort(self, reason: str) -> None:
        if self.transport is not None and self.state != "closed":
            self.state = "closed"
            self.transport.abort()
            self.server.dropped(reason)


def _factory(conn: _Connection) -> Callable[[], _Connection]:
    return lambda: conn


class Server:
    """Serves `handler` on `host:port` (port 0: any free port) from a thread of its own."""

    def __init__(
        self,
        host: str,
        port: int,
        handler: Handler,
        limits: Limits | None = None,
        on_drop: DropObserver | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.handler = handler
        self.on_drop = on_drop
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # Raises OSError (address in use, no such address) here, in the caller's thread.
        self.sock = socket.create_server((host, port), family=family, backlog=BACKLOG)
        defer = getattr(socket, "TCP_DEFER_ACCEPT", None)  # Linux
        if defer is not None:
            # A connection reaches accept() only once its first bytes have arrived (after
            # the head deadline at the latest): idle connections take no descriptor, and a
            # client's request is complete when it is accepted, so it is read before any
            # later connection could make it the oldest one to evict.
            self.sock.setsockopt(
                socket.IPPROTO_TCP, defer, max(1, math.ceil(self.limits.head_timeout))
            )
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        self.address = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.pool = concurrent.futures.ThreadPoolExecutor(
            self.limits.workers, thread_name_prefix="web"
        )
        self.connections: dict[_Connection, None] = {}  # oldest first
        self._room: asyncio.Event | None = None
        self._drops: dict[str, int] = {}
        self._drops_logged = 0.0
        self._thread = threading.Thread(target=self._run, name="web", daemon=True)

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
        self.sock.close()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._room = asyncio.Event()
        accepting = self.loop.create_task(self._accept_loop())
        try:
            self.loop.run_forever()
        finally:
            accepting.cancel()
            for conn in list(self.connections):
                if conn.transport is not None:
                    conn.transport.abort()
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(asyncio.sleep(0))
            self.loop.close()

    # --- connections ------------------------------------------------------------------------

    async def _accept_loop(self) -> None:
        assert self._room is not None
        while True:
            await self._connection_waiting()
            if len(self.connections) >= self.limits.max_connections:
                victim = self._evictable()
                if victim is None:
                    # Every connection is being answered: each ends within its deadlines.
                    self._room.clear()
                    await self._room.wait()
                    continue
                victim.abort("evicted")
                self.connections.pop(victim, None)
                await asyncio.sleep(0)  # it closes first: never more than the cap open
            try:
                sock, _ = self._accept()
            except BlockingIOError:
                continue  # it went away before it was accepted
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._count_drop("no file descriptors")
                    await asyncio.sleep(ACCEPT_PAUSE)
                else:
                    log.debug("web: accept: %s", exc)
                continue
            sock.setblocking(False)
            conn = _Connection(self)
            self.connections[conn] = None
            try:
                await self.loop.connect_accepted_socket(_factory(conn), sock)
            except OSError:
                self.connections.pop(conn, None)
                sock.close()

    async def _connection_waiting(self) -> None:
        """Until a connection waits to be accepted (one select round per accept: the
        connections already open are read in between)."""
        waiting: asyncio.Future[None] = self.loop.create_future()

        def ready() -> None:
            if not waiting.done():
                waiting.set_result(None)

        fd = self.sock.fileno()
        self.loop.add_reader(fd, ready)
        try:
            await waiting
        finally:
            self.loop.remove_reader(fd)

    def _accept(self) -> tuple[socket.socket, object]:
        return self.sock.accept()

    def _evictable(self) -> _Connection | None:
        """The oldest connection still waiting for its request head."""
        for conn in self.connections:
            if conn.state == "head":
                return conn
        return None

    def forget(self, conn: _Connection) -> None:
        self.connections.pop(conn, None)
        if self._room is not None:
            self._room.set()

    def answer(self, request: Request) -> Response:
        """On a worker thread: the handler's response; a failing handler is a 500."""
        try:
            return self.handler(request)
        except Exception:  # noqa: BLE001 - a client gets an answer whatever the handler did
            log.exception("web: %s %s failed", request.method, request.path)
            return Response.text(500, "internal error (see the daemon's log)")

    # --- what was dropped -------------------------------------------------------------------

    def dropped(self, reason: str) -> None:
        if self.on_drop is not None:
            self.on_drop(reason)
        self._count_drop(reason)

    def _count_drop(self, reason: str) -> None:
        self._drops[reason] = self._drops.get(reason, 0) + 1
        now = time.monotonic()
        if now - self._drops_logged < DROP_LOG_EVERY:
            return
        self._drops_logged = now
        what = ", ".join(f"{n} {why}" for why, n in sorted(self._drops.items()))
        self._drops.clear()
        log.warning(
            "web: connections closed unanswered (%s); at most %d at once, a request within %gs",
            what,
            self.limits.max_connections,
            self.limits.head_timeout,
        )
