"""HEAD requests over kept connections: the steady state of a cycle, one HEAD per tag.

A registry's HEADs go over keep-alive HTTP/1.1 connections that tagwatch owns (`HeadPool`, one
per registry, kept across cycles and closed once idle for IDLE_TIMEOUT, on reload and on
stop), in one of two ways:

* `exchange`: one HEAD on the calling thread (the client's single requests), each read
  waiting at most what is left of the request's budget (`deadline.py`);
* `run_heads`: a whole cycle's HEADs at once on one thread, every connection non-blocking
  under one `selectors` loop. A HEAD through httpx costs about 1 ms of CPU (encode/httpcore
  #1035), one through `http.client` on 16 threads about 0.3 ms, mostly its header parsing
  (the email package) and the threads taking turns at the GIL; here about 0.06 ms, so on a
  machine the registry shares, tagwatch leaves it the CPU.

What is sent is fixed by tagwatch (`HEAD <path> HTTP/1.1`, Host, and the caller's headers);
what comes back is read only up to the end of its header block, at most MAX_HEAD_BYTES: a
HEAD's answer has no body whatever its headers say, and a connection whose peer sends more
than the answer (bytes past the header block) is not reused. Anything else unusual (not
HTTP/1.x, a header block that never ends within the cap) is a `ProtocolError`, which the
client answers by making the request through httpx, whose errors say what was wrong.

No httpx here: the first request of a `tagwatch check` leaves without loading it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from tagwatch.registry.deadline import budget

if TYPE_CHECKING:
    import ssl

__all__ = [
    "IDLE_TIMEOUT",
    "MAX_HEAD_BYTES",
    "Answer",
    "CannotConnect",
    "ClosedEarly",
    "Connection",
    "HeadJob",
    "HeadPool",
    "ProtocolError",
    "Slots",
    "WAIT",
    "Wait",
    "exchange",
    "request_bytes",
    "run_heads",
]

# How long an unused connection is kept. Below the 60 s idle timeout of the usual load
# balancers in front of registries (AWS ELB/ALB, GCP), so tagwatch closes first.
IDLE_TIMEOUT = 30.0

# A HEAD's answer is a status line and a few headers (under 1 KB from the registries known);
# http.client's limit for one header line is 64 KB.
MAX_HEAD_BYTES = 64 * 1024

_READ_SIZE = 65536
_TICK = 0.25  # seconds between looks at `stopping` while nothing else happens
_CHECK_EVERY = 0.05  # seconds between looks for requests past their deadline


class ProtocolError(Exception):
    """An answer that is not a well-formed HTTP/1.x header block within MAX_HEAD_BYTES."""


class ClosedEarly(ConnectionError):
    """The peer closed the connection before a whole answer."""


class CannotConnect(ConnectionError):
    """No connection: refused, unreachable, or its TLS handshake failed (the text says)."""


class Headers:
    """An answer's headers: names matched case-insensitively; `get` is the first value."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, list[str]]) -> None:
        self._values = values

    def get(self, key: str, default: Any = None, /) -> Any:
        found = self._values.get(key.lower())
        return found[0] if found else default

    def get_list(self, key: str) -> list[str]:
        return list(self._values.get(key.lower(), ()))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._values


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    reason: str
    headers: Headers
    keep_alive: bool  # the connection may carry another request


def parse_head(block: bytes) -> Answer:
    """The answer in a header block (without its final blank line). Header values are
    decoded as ISO-8859-1 (as http.client does), so any byte string is some text."""
    lines = block.decode("latin-1").split("\r\n")
    status_line = lines[0]
    version, _, rest = status_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:40]!r}")
    values: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or " " in name or "\t" in name:
            raise ProtocolError(f"not a header line: {line[:40]!r}")
        key = name.lower()
        if key in values:
            values[key].append(value.strip(" \t"))
        else:
            values[key] = [value.strip(" \t")]
    connection = ",".join(values.get("connection", ())).lower()
    # HTTP/1.1 keeps the connection unless told otherwise; 1.0 closes it unless told.
    keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
    return Answer(int(code), reason, Headers(values), keep_alive)


def request_bytes(host: str, path: str, headers: Mapping[str, str]) -> bytes:
    """`HEAD path HTTP/1.1` with Host, the given headers and `Accept-Encoding: identity` (as
    http.client sends). ValueError for a path or header that could split the request."""
    return RequestMaker(host, headers).make(path)


class RequestMaker:
    """HEAD requests to one host with the same headers (checked once) and any path."""

    __slots__ = ("_tail",)

    def __init__(self, host: str, headers: Mapping[str, str]) -> None:
        lines = [f"Host: {host}", *(f"{name}: {value}" for name, value in headers.items())]
        lines.append("Accept-Encoding: identity")
        if any(not _safe(line) for line in lines):
            raise ValueError("a header with a control character")
        self._tail = (" HTTP/1.1\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def make(self, path: str) -> bytes:
        if not (path.startswith("/") and path.isprintable() and path.isascii()) or " " in path:
            raise ValueError("a path that is not printable ASCII without spaces")
        return b"HEAD " + path.encode("ascii") + self._tail


def _safe(line: str) -> bool:
    return line.isprintable() or not any(c in line for c in "\r\n\0")


def _take_answer(buf: bytearray) -> Answer | None:
    """The first answer in `buf` (removed from it), skipping 1xx interim answers; None until
    its header block is complete. ProtocolError past MAX_HEAD_BYTES."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD_BYTES:
                raise ProtocolError(f"the answer's header block is over {MAX_HEAD_BYTES} bytes")
            return None
        if end > MAX_HEAD_BYTES:
            raise ProtocolError(f"the answer's header block is over {MAX_HEAD_BYTES} bytes")
        answer = parse_head(bytes(buf[:end]))
        del buf[: end + 4]
        if not 100 <= answer.status < 200:
            return answer


class Connection:
    """One keep-alive connection to a registry (TLS or not)."""

    __slots__ = ("sock", "idle_since")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.idle_since = 0.0

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def exchange(conn: Connection, request: bytes, timeout: float | None) -> Answer:
    """One HEAD on a blocking connection; every wait is cut to what is left of the budget.
    TimeoutError when it is spent; ClosedEarly, OSError or ProtocolError when the connection
    fails. The connection must not be reused unless the answer says `keep_alive`."""
    sock = conn.sock
    sock.settimeout(_wait(timeout))
    sock.sendall(request)
    buf = bytearray()
    while True:
        sock.settimeout(_wait(timeout))
        data = sock.recv(_READ_SIZE)
        if not data:
            raise ClosedEarly("the connection was closed before an answer")
        buf += data
        answer = _take_answer(buf)
        if answer is not None:
            if buf:  # more than a HEAD's answer: not a connection to send on again
                return Answer(answer.status, answer.reason, answer.headers, False)
            return answer


def _wait(timeout: float | None) -> float | None:
    seconds = budget(timeout)
    if seconds is not None and seconds <= 0:
        raise TimeoutError("the request's time budget is spent")
    return seconds


class HeadPool:
    """Keep-alive connections to one registry, shared by the threads of its checks: a
    thread takes one for a request and gives it back. At most `size` are kept; one unused
    for IDLE_TIMEOUT is closed instead of reused. Thread-safe."""

    def __init__(
        self,
        base: str,
        *,
        timeout: float,
        size: int,
        tls: Callable[[], ssl.SSLContext] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.scheme, _, self.host = base.partition("://")
        if self.host.startswith("["):  # [v6] or [v6]:port
            name, _, rest = self.host[1:].partition("]")
            port = rest.removeprefix(":")
        else:
            name, _, port = self.host.partition(":")
        self.hostname = name
        self.port = int(port) if port.isdigit() else (443 if self.scheme == "https" else 80)
        self.timeout = timeout
        self.size = size
        self._tls = tls
        self._clock = clock
        self._idle: list[Connection] = []  # given back in order: the oldest first
        self._lock = threading.Lock()
        self._closed = False
        self.opened = 0  # connections made, for tests and the endurance benchmark

    @property
    def secure(self) -> bool:
        return self.scheme == "https"

    def tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            raise ValueError("no TLS context for this registry")
        return self._tls()

    # --- taking and giving back ---------------------------------------------------------

    def take_idle(self) -> Connection | None:
        """The most recently used idle connection (the likeliest still open), if any; those
        idle for IDLE_TIMEOUT or longer are closed on the way."""
        now = self._clock()
        with self._lock:
            fresh = next(
                (i for i, c in enumerate(self._idle) if now - c.idle_since < IDLE_TIMEOUT),
                len(self._idle),
            )
            stale, self._idle = self._idle[:fresh], self._idle[fresh:]
            conn = self._idle.pop() if self._idle else None
        for old in stale:
            old.close()
        return conn

    def take(self) -> tuple[Connection, bool]:
        """A connection, blocking to make a new one if none is idle, and whether it was used
        before (an idle one may have been closed by the server meanwhile: the caller tries
        once more on a new one)."""
        conn = self.take_idle()
        if conn is not None:
            return conn, True
        return self.connect(), False

    def connect(self) -> Connection:
        """A new connection, made on this thread within the request's budget."""
        sock = socket.create_connection((self.hostname, self.port), timeout=_wait(self.timeout))
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.secure:
                sock.settimeout(_wait(self.timeout))
                sock = self.tls_context().wrap_socket(sock, server_hostname=self.hostname)
        except BaseException:
            sock.close()
            raise
        self.count_opened()
        return Connection(sock)

    def count_opened(self) -> None:
        with self._lock:
            self.opened += 1

    def give_back(self, conn: Connection) -> None:
        """Return a connection after a complete answer that leaves it open."""
        conn.idle_since = self._clock()
        with self._lock:
            if not self._closed and len(self._idle) < self.size:
                self._idle.append(conn)
                return
        conn.close()

    def close_idle(self, older_than: float = 0.0) -> int:
        """Close the connections unused for at least `older_than` seconds; returns how many."""
        now = self._clock()
        with self._lock:
            old = [c for c in self._idle if now - c.idle_since >= older_than]
            self._idle = [c for c in self._idle if now - c.idle_since < older_than]
        for conn in old:
            conn.close()
        return len(old)

    def close(self) -> None:
        """Close every idle connection; one in use is closed when given back."""
        with self._lock:
            self._closed = True
        self.close_idle()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def idle(self) -> int:
        with self._lock:
            return len(self._idle)


# --- many at once ----------------------------------------------------------------------------


class Slots(Protocol):
    """The daemon's share of `concurrency` (registry/slots.py): one held per request."""

    def try_acquire(self) -> bool: ...

    def acquire(self) -> None: ...

    def release(self) -> None: ...


@dataclass(frozen=True, slots=True)
class HeadJob:
    group: str  # the registry: its cap applies
    pool: HeadPool


class Wait:
    """What `prepare(index)` returns to hold a job, and the rest of its group, until one of
    the group's requests in flight is answered (it may only while one is)."""


WAIT = Wait()

#: `prepare(index)`: the request to send for job `index` now, WAIT, or None to leave it
#: unsent here (it is settled with None; the caller makes it another way).
Prepare = Callable[[int], "bytes | Wait | None"]

#: `settle(index, outcome, seconds)`: the job's answer, the exception that ended it
#: (TimeoutError, OSError, ProtocolError), or None: not sent (`prepare` said so, or
#: `stopping`), or abandoned in flight (`stopping`).
Settle = Callable[[int, "Answer | BaseException | None", float], None]


class _Lane:
    """One connection working through its group's jobs, one request at a time: it stays
    registered for reading while the run lasts, and goes back to its pool at the end."""

    __slots__ = (
        "group",
        "pool",
        "conn",
        "sock",
        "index",
        "request",
        "reused",
        "state",
        "sent",
        "buf",
        "started",
        "deadline",
        "events",
    )

    def __init__(self, group: str, pool: HeadPool) -> None:
        self.group = group
        self.pool = pool
        self.conn: Connection | None = None
        self.sock: Any = None
        self.index = -1  # the job in flight; -1: none
        self.request = b""
        self.reused = False
        self.state = "idle"  # connect, handshake, send, read
        self.sent = 0
        self.buf = bytearray()
        self.started = 0.0
        self.deadline = 0.0
        self.events = 0  # what the selector waits for on its socket


class _Stale(Exception):
    """A reused connection failed before any byte of its answer: the server closed it while
    it was idle. Once more on a new one, as http.client users do."""


class _Multiplexer:
    """The state of one `run_heads` call."""

    def __init__(
        self,
        jobs: Sequence[HeadJob],
        *,
        limit: int,
        caps: Mapping[str, int],
        timeout: float,
        prepare: Prepare,
        settle: Settle,
        slots: Slots | None,
        clock: Callable[[], float],
    ) -> None:
        self.jobs = jobs
        self.limit = limit
        self.caps = caps
        self.timeout = timeout
        self.prepare = prepare
        self.settle = settle
        self.slots = slots
        self.clock = clock
        self.selector = selectors.DefaultSelector()
        self.lanes: dict[str, list[_Lane]] = {}  # by group
        self.count = 0  # lanes open
        self.queues: dict[str, deque[int]] = {}
        for index, job in enumerate(jobs):
            self.queues.setdefault(job.group, deque()).append(index)
        self.order = deque(self.queues)
        self.held: set[str] = set()  # groups waiting until one of their requests is answered
        self.addresses: dict[int, Any] = {}  # per pool, resolved once per run
        self.next_check = 0.0  # when deadlines are next looked at

    # --- giving lanes work ----------------------------------------------------------------

    def fill(self) -> None:
        """Open lanes while any may: groups in turn, each below its cap and not held."""
        while self.queues and self.count < self.limit:
            for _ in range(len(self.order)):
                group = self.order[0]
                self.order.rotate(-1)
                if group in self.held or group not in self.queues:
                    continue
                if len(self.lanes.get(group, ())) >= self.caps.get(group, self.limit):
                    continue
                waiting = len(self.queues[group])
                lane = _Lane(group, self.jobs[self.queues[group][0]].pool)
                if self.feed(lane, opening=True):
                    self.lanes.setdefault(group, []).append(lane)
                    self.count += 1
                    break
                if len(self.queues.get(group, ())) != waiting:
                    break  # jobs settled without a request (not sent, or failed at once)
            else:
                return  # no group may open one now

    def feed(self, lane: _Lane, opening: bool = False) -> bool:
        """Give the lane its group's next job to send; False when there is none it may send
        now (the lane is then to close). Only a lane being opened while no other is may wait
        for a slot; the others leave theirs to whoever waits."""
        slots = self.slots
        while True:
            queue = self.queues.get(lane.group)
            if not queue or lane.group in self.held:
                return False
            if slots is not None and not slots.try_acquire():
                if not opening or self.count:
                    return False  # a request of ours in flight will free a slot
                slots.acquire()
            request = self.prepare(queue[0])
            if isinstance(request, Wait):
                if slots is not None:
                    slots.release()
                self.held.add(lane.group)
                return False
            index = queue.popleft()
            if not queue:
                del self.queues[lane.group]
                self.order.remove(lane.group)
            if request is None:
                if slots is not None:
                    slots.release()
                self.settle(index, None, 0.0)
                continue
            lane.index = index
            lane.request = request
            lane.started = self.clock()
            lane.deadline = lane.started + self.timeout
            try:
                if lane.conn is None:
                    self.connect(lane)
                else:
                    self.send(lane)
            except _Stale:
                self.again(lane)
            except (OSError, ValueError) as exc:
                self.done(lane, exc, keep=False)
                continue
            return True

    def connect(self, lane: _Lane) -> None:
        """The lane's connection: an idle one of its pool, else a new one (not waited for)."""
        conn = lane.pool.take_idle()
        if conn is not None:
            self.attach(lane, conn, reused=True)
            self.send(lane)
            return
        self.dial(lane)

    def dial(self, lane: _Lane) -> None:
        pool = lane.pool
        if id(pool) not in self.addresses:
            self.addresses[id(pool)] = socket.getaddrinfo(
                pool.hostname, pool.port, type=socket.SOCK_STREAM
            )[0]
        family, kind, proto, _, address = self.addresses[id(pool)]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            code = sock.connect_ex(address)
            if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                raise CannotConnect(f"[Errno {code}] {os.strerror(code)}")
        except BaseException:
            sock.close()
            raise
        pool.count_opened()
        self.attach(lane, Connection(sock), reused=False)
        lane.state = "connect"
        self.watch(lane, selectors.EVENT_WRITE)

    def attach(self, lane: _Lane, conn: Connection, reused: bool) -> None:
        lane.conn = conn
        lane.sock = conn.sock
        lane.reused = reused
        conn.sock.setblocking(False)
        lane.events = selectors.EVENT_READ
        self.selector.register(conn.sock, lane.events, lane)

    def watch(self, lane: _Lane, events: int) -> None:
        if lane.events != events:
            lane.events = events
            self.selector.modify(lane.sock, events, lane)

    def send(self, lane: _Lane) -> None:
        """Send the lane's request (almost always at once: a few hundred bytes)."""
        lane.state = "send"
        lane.sent = 0
        lane.buf.clear()
        self.push(lane)

    def push(self, lane: _Lane) -> None:
        sock = lane.sock
        try:
            lane.sent += sock.send(lane.request[lane.sent :])
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            if not (_want_read(exc) or _want_write(exc)):
                if lane.reused:
                    raise _Stale from None
                raise
        if lane.sent < len(lane.request):
            self.watch(lane, selectors.EVENT_WRITE)
            return
        lane.state = "read"
        self.watch(lane, selectors.EVENT_READ)

    # --- answers --------------------------------------------------------------------------

    def done(self, lane: _Lane, outcome: Answer | BaseException | None, keep: bool) -> None:
        """The lane's request ended: settle it, and the connection goes on or is closed."""
        if not keep and lane.conn is not None:
            self.drop(lane)
        index, lane.index = lane.index, -1
        if self.slots is not None:
            self.slots.release()
        self.held.discard(lane.group)
        self.settle(index, outcome, self.clock() - lane.started)

    def drop(self, lane: _Lane) -> None:
        """Close the lane's connection (it is not reusable)."""
        conn, lane.conn = lane.conn, None
        if conn is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(lane.sock)
            conn.close()
        lane.sock = None

    def close_lane(self, lane: _Lane) -> None:
        """No more work for the lane: its connection back to its pool."""
        conn, lane.conn = lane.conn, None
        if conn is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(lane.sock)
            conn.sock = lane.sock
            lane.pool.give_back(conn)
        lane.sock = None
        self.lanes[lane.group].remove(lane)
        self.count -= 1

    def again(self, lane: _Lane) -> None:
        """The reused connection was stale: the same request on a new one."""
        self.drop(lane)
        self.dial(lane)

    def step(self, lane: _Lane) -> None:
        """Take the lane's request as far as its socket allows without blocking."""
        sock = lane.sock
        if lane.state == "connect":
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                raise CannotConnect(f"[Errno {code}] {os.strerror(code)}")
            if lane.pool.secure:
                self.selector.unregister(sock)
                lane.sock = sock = lane.pool.tls_context().wrap_socket(
                    sock, server_hostname=lane.pool.hostname, do_handshake_on_connect=False
                )
                assert lane.conn is not None
                lane.conn.sock = sock
                lane.events = selectors.EVENT_WRITE
                self.selector.register(sock, lane.events, lane)
                lane.state = "handshake"
            else:
                self.send(lane)
                return
        if lane.state == "handshake":
            try:
                sock.do_handshake()
            except OSError as exc:
                if _want_read(exc):
                    self.watch(lane, selectors.EVENT_READ)
                    return
                if _want_write(exc):
                    self.watch(lane, selectors.EVENT_WRITE)
                    return
                raise CannotConnect(str(exc)) from None
            self.send(lane)
            return
        if lane.state == "send":
            self.push(lane)
            return
        while True:  # read
            try:
                data = sock.recv(_READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if _want_read(exc) or _want_write(exc):
                    return
                if lane.reused and not lane.buf:
                    raise _Stale from None
                raise
            if not data:
                if lane.reused and not lane.buf:
                    raise _Stale
                raise ClosedEarly("the connection was closed before an answer")
            lane.buf += data
            answer = _take_answer(lane.buf)
            if answer is not None:
                keep = answer.keep_alive and not lane.buf
                self.done(lane, answer, keep)
                if not self.feed(lane):
                    self.close_lane(lane)
                return
            pending = getattr(sock, "pending", None)  # TLS: bytes decrypted but not read
            if pending is None or not pending():
                return

    def wait(self) -> None:
        """Wait for sockets and move their lanes on; end requests past their deadline."""
        now = self.clock()
        timeout = max(0.0, min(self.next_check - now, _TICK))
        for key, _ in self.selector.select(timeout):
            lane = key.data
            if lane.index < 0:
                continue
            try:
                try:
                    self.step(lane)
                except _Stale:
                    self.again(lane)
            except (OSError, ProtocolError, ValueError) as exc:
                self.done(lane, exc, keep=False)
                if not self.feed(lane):
                    self.close_lane(lane)
        now = self.clock()
        if now >= self.next_check:
            self.next_check = now + _CHECK_EVERY
            busy = [lane for lanes in self.lanes.values() for lane in lanes if lane.index >= 0]
            for lane in busy:
                if lane.deadline <= now:
                    phase = "connect" if lane.state in ("connect", "handshake") else "read"
                    self.done(lane, TimeoutError(phase), keep=False)
                    if not self.feed(lane):
                        self.close_lane(lane)
                else:
                    self.next_check = min(self.next_check, lane.deadline)

    def abandon(self) -> None:
        for lanes in self.lanes.values():
            for lane in lanes:
                if lane.index >= 0:
                    self.done(lane, None, keep=False)
        for queue in self.queues.values():
            for index in queue:
                self.settle(index, None, 0.0)
        self.queues.clear()

    def close(self) -> None:
        for lanes in self.lanes.values():
            for lane in lanes:
                if lane.index >= 0:
                    self.drop(lane)
                else:
                    conn, lane.conn = lane.conn, None
                    if conn is not None:
                        with contextlib.suppress(KeyError, ValueError):
                            self.selector.unregister(lane.sock)
                        conn.sock = lane.sock
                        lane.pool.give_back(conn)
        self.lanes.clear()
        self.selector.close()


def run_heads(
    jobs: Sequence[HeadJob],
    *,
    limit: int,
    caps: Mapping[str, int],
    timeout: float,
    prepare: Prepare,
    settle: Settle,
    slots: Slots | None = None,
    stopping: Callable[[], bool] = lambda: False,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Send every job's HEAD, at most `limit` in flight and `caps[group]` per group, and hand
    each outcome to `settle` on this thread as it comes. Each connection in use (a "lane": an
    idle one of the group's pool, else a new one, connected without blocking) carries one
    request after another of its group, and goes back to its pool when the group has none
    left. A request, with its connect, takes at most `timeout` as a whole (checked every
    _CHECK_EVERY). Groups take turns opening lanes; `slots` (the daemon's share of
    `concurrency`) is held while a request is in flight. Once `stopping()` is true no request
    starts, and those in flight are abandoned (settled with None) within _TICK."""
    mux = _Multiplexer(
        jobs,
        limit=limit,
        caps=caps,
        timeout=timeout,
        prepare=prepare,
        settle=settle,
        slots=slots,
        clock=clock,
    )
    try:
        while True:
            if stopping():
                mux.abandon()
                return
            mux.fill()
            if not mux.count:
                # Nothing in flight: the rest (held groups) is not sent here.
                for queue in mux.queues.values():
                    for index in queue:
                        settle(index, None, 0.0)
                return
            mux.wait()
    finally:
        mux.close()


def _want_read(exc: OSError) -> bool:
    return type(exc).__name__ == "SSLWantReadError"


def _want_write(exc: OSError) -> bool:
    return type(exc).__name__ == "SSLWantWriteError"
