"""An HTTP/1.1 reverse proxy on loopback that injects faults in front of a registry.

    with FaultProxy(registry.url) as proxy:          # proxy.host = "127.0.0.1:PORT"
        proxy.set_fault("status", code=429, headers={"Retry-After": "2"}, count=1)
        ...                                           # point tagwatch at proxy.host
        assert [r.status_sent for r in proxy.requests] == [429, 200]

The proxy is a `ThreadingHTTPServer` (one thread per client connection, keep-alive supported)
forwarding through one `httpx.Client` to the upstream. Request and response headers pass
unchanged except hop-by-hop ones (the client's `Host` too, so absolute `Location`s the registry
builds point back at the proxy); request bodies may be chunked or sized, responses go out with
a `Content-Length`.

Faults (`set_fault(kind, count=None, match=None, **params)`) queue up as rules: for each request
the first rule that matches it and has applications left is applied (once per request), so

    proxy.set_fault("status", code=503, count=2)
    proxy.set_fault("reset", count=1)

answers 503, 503, then resets, then forwards normally. `count=None` applies until `clear()` or
`Fault.remove()`. Kinds and parameters:

* ``latency``  (seconds=1.0): wait, then forward normally.
* ``reset``: close the client connection with an RST (SO_LINGER 0), answering nothing.
* ``hang``: answer nothing until the client disconnects or the proxy closes.
* ``status``  (code=503, headers=None, body=None, content_type="application/json"): answer
  this status without contacting the upstream (default body: a registry-style error JSON).
* ``html``  (code=200, body=None): answer a captive-portal HTML login page, `text/html`.
* ``truncate``  (fraction=0.5 | keep_bytes=N): forward with the full `Content-Length`, send only
  part of the body, then close the connection.
* ``drop_digest``: forward without the `Docker-Content-Digest` header.
* ``corrupt``  (keep_json=True): forward with a changed body (its sha256 no longer matches the
  digest header). A JSON body is re-serialised with other whitespace, so it still parses;
  anything else (or keep_json=False) gets one byte flipped, length unchanged.
* ``wrong_type``  (content_type="application/octet-stream"): forward with that Content-Type.
* ``ratelimit_headers``  (limit=100, remaining=..., window=21600, source=None): forward and add
  `ratelimit-limit: 100;w=21600`, `ratelimit-remaining: N;w=21600` (and
  `docker-ratelimit-source` when `source`).

Hostile ones (a registry that means harm, not one that is down):

* ``redirect``  (location=None, code=307): answer a redirect to `location`, by default the
  request's own path (a redirect loop).
* ``encoding``  (value="gzip"): forward with `Content-Encoding: gzip` on a body that is not.
* ``trickle``  (interval=1.0, part="head"): forward, writing the answer one byte per
  `interval`: from the status line on (`head`), or the headers at once and then the body.
* ``endless``  (content_type="application/json", chunk=65536): answer 200 with a chunked
  body that never ends (until the client hangs up or the proxy closes).
* ``bomb``  (size=1 GiB, content_type="application/json"): answer 200 with `size` zero bytes
  gzip-compressed (about a thousandth of the size on the wire), `Content-Encoding: gzip`.

`set_headers({...})` adds headers to every answer, forwarded or proxy-made (e.g. rate-limit
headers on all responses, also on injected 429s). A request the upstream cannot take (refused,
timed out) is answered 502, or reset with `FaultProxy(..., upstream_error="reset")`.

`requests` lists a `ProxyRequest` (method, path, status_sent, fault) per request received,
`connections` counts the TCP connections accepted (keep-alive reuse keeps it at 1),
`open_connections` those still open.
"""

from __future__ import annotations

import contextlib
import functools
import json
import select
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

__all__ = ["FAULT_KINDS", "Fault", "FaultProxy", "ProxyRequest"]

FAULT_KINDS = (
    "latency", "reset", "hang", "status", "html", "truncate", "drop_digest", "corrupt",
    "wrong_type", "ratelimit_headers", "redirect", "encoding", "trickle", "endless", "bomb",
)

_PARAMS: dict[str, dict[str, Any]] = {
    "latency": {"seconds": 1.0},
    "reset": {},
    "hang": {},
    "status": {"code": 503, "headers": None, "body": None, "content_type": "application/json"},
    "html": {"code": 200, "body": None},
    "truncate": {"fraction": 0.5, "keep_bytes": None},
    "drop_digest": {},
    "corrupt": {"keep_json": True},
    "wrong_type": {"content_type": "application/octet-stream"},
    "ratelimit_headers": {"limit": 100, "remaining": 99, "window": 21600, "source": None},
    "redirect": {"location": None, "code": 307},
    "encoding": {"value": "gzip"},
    "trickle": {"interval": 1.0, "part": "head"},
    "endless": {"content_type": "application/json", "chunk": 65536},
    "bomb": {"size": 1 << 30, "content_type": "application/json"},
}

# RFC 9110 7.6.1 plus the usual suspects; Host and Content-Length are handled separately.
_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade", "expect",
})

_ERROR_CODES = {
    400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "DENIED", 404: "NOT_FOUND",
    429: "TOOMANYREQUESTS", 500: "UNKNOWN", 502: "UNAVAILABLE", 503: "UNAVAILABLE",
    504: "UNAVAILABLE",
}

LOGIN_PAGE = b"""<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>Network login required</title></head>
<body>
<h1>Please sign in to continue</h1>
<p>Access to this network requires authentication.</p>
<form method="post" action="/login">
  <label>Username <input type="text" name="username"></label>
  <label>Password <input type="password" name="password"></label>
  <button type="submit">Sign in</button>
</form>
</body>
</html>
"""

Match = Callable[["ProxyRequest"], bool] | tuple[str | None, str | None] | str | None


@dataclass(eq=False)
class ProxyRequest:
    """One request the proxy received. `status_sent` is the status of the answer the client
    got (None when it got none: reset, hang, client gone); `fault` the kind applied, or None.
    `path` is the request target, query included. Unpacks as (method, path, status, fault)."""

    method: str
    path: str
    headers: dict[str, str]
    status_sent: int | None = None
    fault: str | None = None
    time: float = field(default_factory=time.monotonic)

    @property
    def status(self) -> int | None:
        return self.status_sent

    @property
    def user_agent(self) -> str:
        return self.headers.get("user-agent", "")

    def __iter__(self) -> Any:
        return iter((self.method, self.path, self.status_sent, self.fault))

    def __repr__(self) -> str:
        return (f"ProxyRequest({self.method!r}, {self.path!r}, {self.status_sent}, "
                f"fault={self.fault!r})")


class Fault:
    """A queued fault rule (returned by `FaultProxy.set_fault`)."""

    def __init__(self, proxy: FaultProxy, kind: str, count: int | None, match: Match,
                 params: dict[str, Any]) -> None:
        self.proxy = proxy
        self.kind = kind
        self.remaining = count
        self.params = params
        self.hits = 0  # requests it was applied to
        self._match = match

    @property
    def active(self) -> bool:
        return self.remaining is None or self.remaining > 0

    def matches(self, request: ProxyRequest) -> bool:
        m = self._match
        if m is None:
            return True
        if callable(m):
            return bool(m(request))
        if isinstance(m, str):
            return m in request.path
        method, path_part = m
        if method not in (None, "*") and request.method != method.upper():
            return False
        return path_part is None or path_part in request.path

    def remove(self) -> None:
        self.proxy._remove(self)

    def __repr__(self) -> str:
        return (f"Fault({self.kind!r}, remaining={self.remaining}, hits={self.hits}, "
                f"params={self.params!r})")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that vanish mid-request are part of the game; keep stderr quiet.
        pass


class FaultProxy:
    def __init__(
        self,
        upstream_url: str | Any,
        *,
        timeout: float = 30.0,
        upstream_error: str = "502",
        preserve_host: bool = True,
    ) -> None:
        """Proxy to `upstream_url` (or anything with a `.url`, e.g. a regharness Registry)."""
        if not isinstance(upstream_url, str):
            upstream_url = upstream_url.url
        if upstream_error not in ("502", "reset"):
            raise ValueError("upstream_error must be '502' or 'reset'")
        self.upstream_url = upstream_url.rstrip("/")
        self.upstream_error = upstream_error
        self.preserve_host = preserve_host
        self._lock = threading.Lock()
        self._records: list[ProxyRequest] = []
        self._faults: list[Fault] = []
        self._extra_headers: list[tuple[str, str]] = []
        self._conns: set[socket.socket] = set()
        self._connections = 0
        self._closing = threading.Event()
        self._client = httpx.Client(timeout=timeout, follow_redirects=False,
                                    limits=httpx.Limits(max_connections=64,
                                                        max_keepalive_connections=16))
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True, name=f"faultproxy-{self.port}")
        self._thread.start()

    # ------------------------------------------------------------------------------ public
    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def requests(self) -> list[ProxyRequest]:
        """Every request received since start / `reset_counts()`, oldest first (a copy)."""
        with self._lock:
            return list(self._records)

    def filter(self, method: str | None = None, path_contains: str | None = None, *,
               agent: str | None = None, fault: str | None = None) -> list[ProxyRequest]:
        """`requests` narrowed down by method, path substring, user agent and/or fault kind."""
        out = []
        for rec in self.requests:
            if method is not None and rec.method != method.upper():
                continue
            if path_contains is not None and path_contains not in rec.path:
                continue
            if agent is not None and rec.user_agent != agent:
                continue
            if fault is not None and rec.fault != fault:
                continue
            out.append(rec)
        return out

    @property
    def connections(self) -> int:
        """TCP connections accepted since start / `reset_counts()`."""
        with self._lock:
            return self._connections

    @property
    def open_connections(self) -> int:
        """Client connections open right now."""
        with self._lock:
            return len(self._conns)

    def reset_counts(self) -> None:
        with self._lock:
            self._records.clear()
            self._connections = 0

    def set_fault(self, kind: str, *, count: int | None = None, match: Match = None,
                  **params: Any) -> Fault:
        """Queue a fault for the next `count` requests `match` accepts (None: all, until
        cleared). `match`: a predicate on `ProxyRequest`, a (method, path substring) tuple
        (either may be None) or a path substring."""
        if kind not in _PARAMS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(FAULT_KINDS)}")
        unknown = set(params) - set(_PARAMS[kind])
        if unknown:
            raise TypeError(f"fault {kind!r} takes no parameter(s) {', '.join(sorted(unknown))}")
        if count is not None and count < 0:
            raise ValueError("count must be >= 0 or None")
        merged = {**_PARAMS[kind], **params}
        if kind == "status" and not 100 <= int(merged["code"]) <= 599:
            raise ValueError(f"bad status code {merged['code']!r}")
        if kind == "bomb":
            _gzip_zeros(int(merged["size"]))  # made now, not while a client waits
        fault = Fault(self, kind, count, match, merged)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every queued fault (hung requests keep hanging; extra headers stay)."""
        with self._lock:
            self._faults.clear()

    @property
    def faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def set_headers(self, headers: Mapping[str, str] | Iterable[tuple[str, str]] | None
                    ) -> None:
        """Headers added to every answer from now on (replacing earlier ones; None clears)."""
        items = list(headers.items() if isinstance(headers, Mapping) else headers or [])
        with self._lock:
            self._extra_headers = [(str(k), str(v)) for k, v in items]

    def close(self) -> None:
        """Stop accepting, drop every open client connection (releasing hangs), close the
        upstream client. Idempotent."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)
        self._client.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FaultProxy({self.host} -> {self.upstream_url})"

    # ---------------------------------------------------------------------------- internal
    def _intercept(self, handler: _Handler, record: ProxyRequest, body: bytes) -> bool:
        """A subclass's chance to answer a request itself (before any fault): True if it did."""
        return False

    def _remove(self, fault: Fault) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._faults.remove(fault)

    def _take_fault(self, record: ProxyRequest) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if not fault.active or not fault.matches(record):
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                fault.hits += 1
                record.fault = fault.kind
                if not fault.active:
                    self._faults.remove(fault)
                return fault
        return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(_Handler):
            pass

        Handler.proxy = proxy
        return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tagwatch-faultproxy"
    sys_version = ""
    proxy: FaultProxy

    # -- connection bookkeeping
    def setup(self) -> None:
        super().setup()
        with self.proxy._lock:
            self.proxy._conns.add(self.connection)
            self.proxy._connections += 1
        if self.proxy._closing.is_set():
            self.close_connection = True

    def finish(self) -> None:
        with self.proxy._lock:
            self.proxy._conns.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (OSError, ValueError):
            # client went away (reset, broken pipe) or the proxy closed the socket
            self.close_connection = True

    # -- every method goes through one place
    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._proxy_request
        raise AttributeError(name)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("client closed mid-body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                data = self.rfile.read(size)
                if len(data) < size:
                    raise ConnectionError("client closed mid-body")
                chunks.append(data)
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        if len(data) < length:
            raise ConnectionError("client closed mid-body")
        return data

    def _proxy_request(self) -> None:
        proxy = self.proxy
        record = ProxyRequest(self.command, self.path,
                              {k.lower(): v for k, v in self.headers.items()})
        with proxy._lock:
            proxy._records.append(record)
        try:
            body = self._read_body()
        except (ConnectionError, ValueError):
            self.close_connection = True
            return
        if proxy._intercept(self, record, body):
            return
        fault = proxy._take_fault(record)
        kind = fault.kind if fault else None
        params = fault.params if fault else {}

        if kind == "reset":
            self._reset()
            return
        if kind == "hang":
            self._hang()
            return
        if kind == "latency" and proxy._closing.wait(float(params["seconds"])):
            self.close_connection = True
            return
        if kind == "status":
            code = int(params["code"])
            data = params["body"]
            if data is None:
                data = json.dumps({"errors": [{
                    "code": _ERROR_CODES.get(code, "UNKNOWN"),
                    "message": f"injected {code} by faultproxy", "detail": None}]}).encode()
            elif isinstance(data, str):
                data = data.encode()
            headers = [("Content-Type", params["content_type"])]
            headers += list((params["headers"] or {}).items())
            self._local_answer(record, code, headers, data)
            return
        if kind == "redirect":
            location = params["location"] or self.path
            self._local_answer(record, int(params["code"]), [("Location", location)], b"")
            return
        if kind == "endless":
            self.endless(record, params["content_type"], int(params["chunk"]))
            return
        if kind == "bomb":
            self._bomb(record, int(params["size"]), params["content_type"])
            return
        if kind == "html":
            data = params["body"] if params["body"] is not None else LOGIN_PAGE
            if isinstance(data, str):
                data = data.encode()
            self._local_answer(record, int(params["code"]),
                               [("Content-Type", "text/html; charset=utf-8"),
                                ("Cache-Control", "no-store")], data)
            return
        self._forward(record, body, kind, params)

    # -- answers
    def endless(self, record: ProxyRequest, content_type: str, chunk: int = 65536,
                prefix: bytes = b"") -> None:
        """200 with a chunked body that never ends (`prefix`, then spaces)."""
        self.close_connection = True
        self._write_head(record, 200, None, [("Content-Type", content_type),
                                             ("Transfer-Encoding", "chunked")])
        data = b" " * chunk
        try:
            if prefix:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(prefix), prefix))
            while not self.proxy._closing.is_set():
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        except OSError:
            return  # the client hung up: what it should do

    def _bomb(self, record: ProxyRequest, size: int, content_type: str) -> None:
        data = _gzip_zeros(size)
        self._local_answer(record, 200, [("Content-Type", content_type),
                                         ("Content-Encoding", "gzip")], data)

    def trickle(self, data: bytes, interval: float) -> None:
        """Write `data` one byte per `interval` (until the client hangs up)."""
        self.close_connection = True
        for i in range(len(data)):
            if self.proxy._closing.wait(interval):
                return
            try:
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
            except OSError:
                return

    def _reset(self) -> None:
        """Abort the connection: RST, no FIN, nothing answered."""
        self.close_connection = True
        conn = self.connection
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.rfile.close()  # drop the makefile() reference so close() really closes
        with contextlib.suppress(OSError):
            conn.close()

    def _hang(self) -> None:
        self.close_connection = True
        conn = self.connection
        closing = self.proxy._closing
        while not closing.is_set():
            try:
                readable, _, _ = select.select([conn], [], [], 0.05)
                if readable and not conn.recv(65536):
                    return  # client gave up
            except (OSError, ValueError):
                return

    def _write_head(self, record: ProxyRequest, code: int, reason: str | None,
                    headers: Iterable[tuple[str, str]]) -> None:
        record.status_sent = code
        self.send_response_only(code, reason or None)
        for name, value in headers:
            self.send_header(name, value)
        with self.proxy._lock:
            extra = list(self.proxy._extra_headers)
        for name, value in extra:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    def _local_answer(self, record: ProxyRequest, code: int, headers: list[tuple[str, str]],
                      data: bytes) -> None:
        headers = [("Date", formatdate(usegmt=True)), *headers,
                   ("Content-Length", str(len(data)))]
        self._write_head(record, code, None, headers)
        if self.command != "HEAD" and code not in (204, 304):
            self.wfile.write(data)

    def _forward(self, record: ProxyRequest, body: bytes, kind: str | None,
                 params: dict[str, Any]) -> None:
        proxy = self.proxy
        headers = [(k, v) for k, v in self.headers.items()
                   if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"
                   and (proxy.preserve_host or k.lower() != "host")]
        has_body = bool(body) or "Content-Length" in self.headers or \
            "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        request = httpx.Request(self.command, proxy.upstream_url + self.path, headers=headers,
                                content=body if has_body else None)
        try:
            response = proxy._client.send(request, stream=True)
            try:
                data = b"".join(response.iter_raw())
            finally:
                response.close()
        except httpx.HTTPError as exc:
            if proxy.upstream_error == "reset":
                self._reset()
            else:
                self._local_answer(record, 502, [("Content-Type", "text/plain")],
                                   f"faultproxy: upstream error: {exc!r}\n".encode())
            return

        out: list[tuple[str, str]] = []
        upstream_length = None
        for raw_name, raw_value in response.headers.raw:
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            low = name.lower()
            if low == "content-length":
                upstream_length = value
                continue
            if low in _HOP_BY_HOP:
                continue
            if kind == "drop_digest" and low == "docker-content-digest":
                continue
            if kind == "wrong_type" and low == "content-type":
                continue
            out.append((name, value))
        if kind == "wrong_type":
            out.append(("Content-Type", params["content_type"]))
        if kind == "encoding":
            out.append(("Content-Encoding", params["value"]))
        if kind == "ratelimit_headers":
            window = params["window"]
            out.append(("ratelimit-limit", f"{params['limit']};w={window}"))
            out.append(("ratelimit-remaining", f"{params['remaining']};w={window}"))
            if params["source"] is not None:
                out.append(("docker-ratelimit-source", str(params["source"])))
        if kind == "corrupt":
            data = _corrupt(data, params["keep_json"])

        bodyless = self.command == "HEAD" or response.status_code in (204, 304) \
            or response.status_code < 200
        if self.command == "HEAD":
            if upstream_length is not None:
                out.append(("Content-Length", upstream_length))
        elif not bodyless:
            out.append(("Content-Length", str(len(data))))

        if kind == "trickle":
            head = [f"HTTP/1.1 {response.status_code} {response.reason_phrase}".encode()]
            head += [f"{k}: {v}".encode("latin-1") for k, v in out]
            raw = b"\r\n".join([*head, b"Connection: close", b"", b""])
            record.status_sent = response.status_code
            if params["part"] == "head":
                self.trickle(raw + (b"" if bodyless else data), float(params["interval"]))
            else:
                self.wfile.write(raw)
                self.wfile.flush()
                self.trickle(b"" if bodyless else data, float(params["interval"]))
            return
        if kind == "truncate":
            self.close_connection = True
            keep = params["keep_bytes"]
            if keep is None:
                keep = int(len(data) * float(params["fraction"]))
            keep = max(0, min(int(keep), max(len(data) - 1, 0)))
            self._write_head(record, response.status_code, response.reason_phrase, out)
            if not bodyless:
                self.wfile.write(data[:keep])
            return
        self._write_head(record, response.status_code, response.reason_phrase, out)
        if not bodyless:
            self.wfile.write(data)


@functools.lru_cache(maxsize=4)
def _gzip_zeros(size: int) -> bytes:
    """`size` zero bytes, gzip-compressed (made once per size: 1 GiB takes seconds)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1 << 20)
    parts = [compressor.compress(block) for _ in range(size >> 20)]
    return b"".join(parts) + compressor.flush()


def _corrupt(data: bytes, keep_json: bool) -> bytes:
    if not data:
        return b" "
    if keep_json:
        try:
            obj = json.loads(data)
        except ValueError:
            pass
        else:
            for candidate in (json.dumps(obj, separators=(",", ":")).encode(),
                              json.dumps(obj, indent=3).encode(), data + b"\n"):
                if candidate != data:
                    return candidate
    mid = len(data) // 2
    return data[:mid] + bytes([data[mid] ^ 0x01]) + data[mid + 1:]
