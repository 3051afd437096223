"""Connections to one registry: owned, bounded in time, closed on purpose.

Two kinds, both kept alive across cycles by the registry's endpoint and closed by it (on
reload, stop, or once idle for IDLE_TIMEOUT):

* httpx's pool, for everything but steady-state HEADs (challenges, token requests,
  redirects, GETs). `BoundedTransport` is httpx's own transport over a network backend whose
  every socket operation waits at most what is left of the request's budget
  (`deadline.py`), and which never connects to a link-local or cloud metadata address on
  behalf of a registry that is not itself on one (a redirect or a token realm may name any
  host; the answer of such a service could be echoed back to the registry).
* `HeadConnections`, keep-alive `http.client` connections for the cycle's HEADs (httpx's
  pool costs about 1 ms of CPU per request under 16 threads; http.client a tenth of that),
  whose reads also keep the budget.

`BoundedTransport` also bounds every body: decoded here (gzip and deflate in bounded steps: a
compressed body never expands past the cap in memory) and cut off past the cap the request
names.
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

from tagwatch.core.refs import is_metadata_host
from tagwatch.registry.deadline import budget

__all__ = [
    "ACCEPT_ENCODING",
    "IDLE_TIMEOUT",
    "BodyError",
    "BoundedTransport",
    "DEFAULT_MAX_BODY",
    "HeadConnections",
]

# How long an unused connection is kept. Below the 60 s idle timeout of the usual load
# balancers in front of registries (AWS ELB/ALB, GCP), so tagwatch closes first.
IDLE_TIMEOUT = 30.0

# Only what _BoundedBody can decode in bounded steps; br and zstd are not offered.
ACCEPT_ENCODING = "gzip, deflate"


def _wait(timeout: float | None, error: type[Exception]) -> float | None:
    """The timeout for one socket operation, or `error` when the budget is spent."""
    seconds = budget(timeout)
    if seconds is not None and seconds <= 0:
        raise error("the request's time budget is spent")
    return seconds


# --- httpx: a network backend that keeps the budget ----------------------------------------


class _BoundedStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _wait(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _wait(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        # One timeout for the whole handshake: CPython's SSL handshake keeps a deadline.
        upgraded = self._stream.start_tls(
            ssl_context, server_hostname, _wait(timeout, httpcore.ConnectTimeout)
        )
        return _BoundedStream(upgraded)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _BoundedBackend(httpcore.NetworkBackend):
    def __init__(self, allow_metadata: bool) -> None:
        self._backend = httpcore.SyncBackend()
        self._allow_metadata = allow_metadata

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        if not self._allow_metadata and is_metadata_host(host):
            raise httpcore.ConnectError(f"refusing to connect to {host}: a metadata address")
        try:  # resolved here to see the addresses (the name resolver has no timeout)
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        addresses = [str(info[4][0]) for info in infos]
        allowed = [a for a in addresses if self._allow_metadata or not is_metadata_host(a)]
        if not allowed:
            raise httpcore.ConnectError(
                f"refusing to connect to {host}: it resolves to a link-local or metadata address"
            )
        error: Exception | None = None
        for address in dict.fromkeys(allowed):
            try:
                stream = self._backend.connect_tcp(
                    address,
                    port,
                    _wait(timeout, httpcore.ConnectTimeout),
                    local_address,
                    socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            return _BoundedStream(stream)
        assert error is not None
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:  # pragma: no cover - registries are reached over TCP
        raise httpcore.ConnectError("unix sockets are not used for registries")

    def sleep(self, seconds: float) -> None:  # pragma: no cover - httpcore retries are off
        self._backend.sleep(seconds)


class BoundedTransport(httpx.BaseTransport):
    """httpx's transport for one registry, with every body bounded.

    Over `_BoundedBackend` (httpx takes no network backend, so the pool its HTTPTransport
    builds is replaced by an identical one that has it), or over `inner` (tests). Each answer's
    body is decoded here (gzip, deflate) and cut off with BodyError past the request's
    `extensions["tagwatch.max_body"]` (default DEFAULT_MAX_BODY), so that neither tagwatch nor
    httpx (which reads the bodies of 401s and redirects itself) ever holds more."""

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | None = None,
        limits: httpx.Limits | None = None,
        allow_metadata: bool = False,
        inner: httpx.BaseTransport | None = None,
    ) -> None:
        if inner is None:
            limits = limits or httpx.Limits()
            context = verify or httpx.create_ssl_context(trust_env=False)
            http = httpx.HTTPTransport(verify=context, limits=limits, trust_env=False)
            http._pool.close()
            http._pool = httpcore.ConnectionPool(
                ssl_context=context,
                max_connections=limits.max_connections,
                max_keepalive_connections=limits.max_keepalive_connections,
                keepalive_expiry=limits.keepalive_expiry,
                network_backend=_BoundedBackend(allow_metadata),
            )
            inner = http
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        encoding = response.headers.get("content-encoding", "").strip().lower()
        limit = int(request.extensions.get("tagwatch.max_body", DEFAULT_MAX_BODY))
        headers = [(k, v) for k, v in response.headers.raw if k.lower() != b"content-encoding"]
        return httpx.Response(
            response.status_code,
            headers=headers,
            stream=_BoundedBody(response.stream, encoding, limit),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._inner.close()


# --- bounded bodies ------------------------------------------------------------------------

DEFAULT_MAX_BODY = 64 * 1024  # what a request does not say: error pages, 401s, redirects


class BodyError(ValueError):
    """A body over its cap, or one that does not decode as its Content-Encoding says."""


class _BoundedBody(httpx.SyncByteStream):
    """A response body, decoded in bounded steps and cut off past `limit` bytes."""

    def __init__(self, stream: httpx.SyncByteStream | Any, encoding: str, limit: int) -> None:
        self._stream = stream
        self._encoding = encoding
        self._limit = limit

    def __iter__(self) -> Iterator[bytes]:
        encoding, limit = self._encoding, self._limit
        decoder: Any = None
        if encoding in ("gzip", "x-gzip"):
            decoder = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif encoding == "deflate":
            decoder = zlib.decompressobj()
        elif encoding not in ("", "identity"):
            raise BodyError(f"the body has Content-Encoding {encoding[:40]!r}, which was not asked")
        size = 0
        for chunk in self._stream:
            data = chunk
            while data:
                if decoder is None:
                    piece, data = data, b""
                else:
                    try:  # never more than the cap allows, however well it compresses
                        piece = decoder.decompress(data, limit - size + 1)
                    except zlib.error:
                        raise BodyError(
                            f"the body does not decode as its Content-Encoding {encoding}"
                        ) from None
                    data = decoder.unconsumed_tail
                    if not piece:
                        break
                size += len(piece)
                if size > limit:
                    raise BodyError(f"the body is over {limit} bytes")
                yield piece
        if decoder is not None and size and not decoder.eof:
            raise BodyError(f"the body ends inside its Content-Encoding {encoding} stream")

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


# --- http.client connections for HEADs ------------------------------------------------------


class _BudgetReader(io.RawIOBase):
    """A socket's reads, each waiting at most what is left of the request's budget."""

    def __init__(self, sock: socket.socket, timeout: float | None) -> None:
        self._sock = sock
        self._timeout = timeout

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.settimeout(_wait(self._timeout, TimeoutError))
        return self._sock.recv_into(buffer)


class _HeadResponse(http.client.HTTPResponse):
    def __init__(
        self,
        sock: socket.socket,
        debuglevel: int = 0,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(sock, debuglevel, method, url)
        self.fp.close()  # the plain makefile() reader: one timeout per read, not per answer
        self.fp = io.BufferedReader(_BudgetReader(sock, sock.gettimeout()))


class _HTTPConnection(http.client.HTTPConnection):
    response_class = _HeadResponse


class _HTTPSConnection(http.client.HTTPSConnection):
    response_class = _HeadResponse


class HeadConnections:
    """Keep-alive `http.client` connections to one registry, shared by the threads of its
    checks: a thread takes one for a request and gives it back. At most `size` are kept; one
    unused for IDLE_TIMEOUT is closed instead of reused. Thread-safe."""

    def __init__(
        self,
        base: str,
        *,
        timeout: float,
        size: int,
        verify: ssl.SSLContext | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        self.scheme, _, self.host = base.partition("://")
        self.timeout = timeout
        self.size = size
        self._context = verify
        self._clock = clock
        self._idle: list[tuple[http.client.HTTPConnection, float]] = []  # (conn, idle since)
        self._lock = threading.Lock()
        self._closed = False
        self.opened = 0  # connections made, for tests and the endurance benchmark

    def take(self) -> tuple[http.client.HTTPConnection, bool]:
        """A connection and whether it was used before (an idle one may have been closed by
        the server meanwhile: the caller tries once more on a new one)."""
        now = self._clock()
        conn: http.client.HTTPConnection | None = None
        with self._lock:
            # Given back in order, so the oldest are first: drop those idle too long.
            fresh = next(
                (i for i, (_, since) in enumerate(self._idle) if now - since < IDLE_TIMEOUT),
                len(self._idle),
            )
            stale, self._idle = self._idle[:fresh], self._idle[fresh:]
            if self._idle:
                conn = self._idle.pop()[0]  # the most recently used: the likeliest still open
        for old, _ in stale:
            old.close()
        if conn is None:
            return self._new(), False
        if conn.sock is not None:
            conn.sock.settimeout(_wait(self.timeout, TimeoutError))
        return conn, True

    def _new(self) -> http.client.HTTPConnection:
        timeout = _wait(self.timeout, TimeoutError)
        conn: http.client.HTTPConnection
        if self.scheme == "https":
            conn = _HTTPSConnection(self.host, timeout=timeout, context=self._ssl_context())
        else:
            conn = _HTTPConnection(self.host, timeout=timeout)
        with self._lock:
            self.opened += 1
        return conn

    def _ssl_context(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = httpx.create_ssl_context(trust_env=False)
        return self._context

    def give_back(self, conn: http.client.HTTPConnection) -> None:
        """Return a connection after a complete answer that leaves it open."""
        with self._lock:
            if not self._closed and len(self._idle) < self.size:
                self._idle.append((conn, self._clock()))
                return
        conn.close()

    def close_idle(self, older_than: float = 0.0) -> int:
        """Close the connections unused for at least `older_than` seconds; returns how many."""
        now = self._clock()
        with self._lock:
            old = [c for c, since in self._idle if now - since >= older_than]
            self._idle = [(c, s) for c, s in self._idle if now - s < older_than]
        for conn in old:
            conn.close()
        return len(old)

    def close(self) -> None:
        """Close every idle connection; one in use is closed when given back."""
        with self._lock:
            self._closed = True
        self.close_idle()

    @property
    def idle(self) -> int:
        with self._lock:
            return len(self._idle)
