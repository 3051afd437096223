"""httpx's side of the connections to one registry: owned, bounded in time and size.

httpx's pool carries everything but the steady-state HEADs (challenges, token requests,
redirects, GETs; the HEADs go over `heads.py`'s connections), kept alive across cycles by the
registry's endpoint and closed by it (on reload, stop, or once idle for IDLE_TIMEOUT).
`BoundedTransport` is httpx's own transport over a network backend whose every socket
operation waits at most what is left of the request's budget (`deadline.py`), and which never
connects to a link-local or cloud metadata address on behalf of a registry that is not itself
on one (a redirect or a token realm may name any host; the answer of such a service could be
echoed back to the registry).

`BoundedTransport` also bounds every body: decoded here (gzip and deflate in bounded steps: a
compressed body never expands past the cap in memory) and cut off past the cap the request
names.
"""

from __future__ import annotations

import socket
import ssl
import zlib
from collections.abc import Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import httpcore
import httpx

from tagwatch.core.refs import is_metadata_host
from tagwatch.registry.deadline import budget
from tagwatch.registry.heads import IDLE_TIMEOUT

if TYPE_CHECKING:
    from tagwatch.registry.auth import RegistryAuth

__all__ = [
    "ACCEPT_ENCODING",
    "IDLE_TIMEOUT",
    "AuthFlow",
    "BodyError",
    "BoundedTransport",
    "DEFAULT_MAX_BODY",
]

# Only what _BoundedBody can decode in bounded steps; br and zstd are not offered.
ACCEPT_ENCODING = "gzip, deflate"


def _wait(timeout: float | None, error: type[Exception]) -> float | None:
    """The timeout for one socket operation, or `error` when the budget is spent."""
    seconds = budget(timeout)
    if seconds is not None and seconds <= 0:
        raise error("the request's time budget is spent")
    return seconds


class AuthFlow(httpx.Auth):
    """A registry's `RegistryAuth` as httpx's `auth=`. Sync only: the flow blocks on locks
    while another thread fetches a token."""

    requires_request_body = False
    requires_response_body = False  # token bodies are read explicitly; manifests are streamed

    def __init__(self, auth: RegistryAuth) -> None:
        self.auth = auth

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        return self.auth.auth_flow(request)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        return self.auth.auth_flow(request)


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
