"""A hostile registry for tests: the fault proxy in front of the real registry, with an auth
layer and a token service of its own whose answers are chosen by the repository asked for.

    with HostileRegistry(registry, auth="bearer") as hostile:   # hostile.host = 127.0.0.1:PORT
        ...  # watch f"{hostile.host}/token-trickle/app:v1": its token answer trickles
        hostile.set_fault("redirect", match="/v2/loop/")       # every FaultProxy fault works

Repositories are the real registry's (push them there); the first path component of the
repository a token is asked for picks the token service's behaviour (TOKEN_BEHAVIOURS):

* ``token-huge``: a valid JSON answer of `huge_token` bytes (default 300 MB), streamed;
* ``token-endless``: a chunked JSON answer that never ends;
* ``token-trickle``: a good answer, one byte per second;
* ``expires-soon`` / ``expires-nan`` / ``expires-inf`` / ``expires-neg``: a good token with
  `expires_in` "soon", NaN, Infinity or -5;
* anything else: a good token, `expires_in` 300.

`auth` is "basic" (`Basic realm="hostile"`, accepting `credentials`), "bearer" (the challenge
names `realm`, by default this host's `/token`), or None (no auth layer). Requests the auth
layer lets through are proxied to the real registry, faults applied. A `HostileRegistry`
also serves as the *other* host a registry redirects to: `requests` records every request with
its headers, `token_requests` the token requests with their Authorization.

Also here: `run_measured` (a `tagwatch` command as a child process: exit status, output, wall
time and its peak RSS, read by the process itself at exit), `daemon` (`tagwatch run` for the
length of a block) and `wait_until`.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from faultproxy import FaultProxy, ProxyRequest, _Handler

__all__ = ["TOKEN_BEHAVIOURS", "HostileRegistry", "Measured",
           "daemon", "run_measured", "wait_until"]

TOKEN_BEHAVIOURS = (
    "token-huge", "token-endless", "token-trickle",
    "expires-soon", "expires-nan", "expires-inf", "expires-neg",
)
_EXPIRES: dict[str, str] = {
    "expires-soon": '"soon"', "expires-nan": "NaN", "expires-inf": "Infinity",
    "expires-neg": "-5",
}


class HostileRegistry(FaultProxy):
    def __init__(self, upstream: Any, *, auth: str | None = "bearer",
                 credentials: tuple[str, str] = ("hostile-user", "hostile-pass"),
                 realm: str | None = None, huge_token: int = 300 * 1000 * 1000,
                 **kwargs: Any) -> None:
        if auth not in (None, "basic", "bearer"):
            raise ValueError("auth must be None, 'basic' or 'bearer'")
        self.auth = auth
        self.credentials = credentials
        self.huge_token = huge_token
        self._realm = realm
        self._issued: set[str] = set()
        self._token_log: list[ProxyRequest] = []
        self._token_lock = threading.Lock()
        super().__init__(upstream, **kwargs)

    @property
    def realm(self) -> str:
        return self._realm or f"{self.url}/token"

    @property
    def token_requests(self) -> list[ProxyRequest]:
        with self._token_lock:
            return list(self._token_log)

    def reset_counts(self) -> None:
        super().reset_counts()
        with self._token_lock:
            self._token_log.clear()

    # --------------------------------------------------------------------------- the layer
    def _intercept(self, handler: _Handler, record: ProxyRequest, body: bytes) -> bool:
        path = urlsplit(record.path).path
        if path.rstrip("/") == "/token":
            with self._token_lock:
                self._token_log.append(record)
            self._token(handler, record)
            return True
        if self.auth is None or not path.startswith("/v2"):
            return False
        given = record.headers.get("authorization", "")
        if self.auth == "basic":
            user, password = self.credentials
            expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            if given == expected:
                return False
            challenge = 'Basic realm="hostile"'
        else:
            if given.startswith("Bearer ") and given[7:] in self._issued:
                return False
            repository = _repository(path)
            scope = f',scope="repository:{repository}:pull"' if repository else ""
            challenge = f'Bearer realm="{self.realm}",service="hostile"{scope}'
        handler._local_answer(record, 401, [("Content-Type", "application/json"),
                                            ("WWW-Authenticate", challenge)],
                              b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication '
                              b'required"}]}')
        return True

    def _token(self, handler: _Handler, record: ProxyRequest) -> None:
        query = parse_qs(urlsplit(record.path).query)
        scopes = query.get("scope", [""])
        repository = scopes[0].split(":")[1] if scopes[0].count(":") >= 2 else ""
        behaviour = repository.split("/", 1)[0]
        token = secrets.token_urlsafe(24)
        self._issued.add(token)
        expires = _EXPIRES.get(behaviour, "300")
        good = f'{{"token": "{token}", "expires_in": {expires}}}'.encode()
        if behaviour == "token-endless":
            handler.endless(record, "application/json", prefix=b'{"token": "')
        elif behaviour == "token-trickle":
            head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(good))
            record.status_sent = 200
            handler.trickle(head + good, 1.0)
        elif behaviour == "token-huge":
            self._huge(handler, record, token)
        else:
            handler._local_answer(record, 200, [("Content-Type", "application/json")], good)

    def _huge(self, handler: _Handler, record: ProxyRequest, token: str) -> None:
        """A valid answer of `huge_token` bytes: the token, then a long string of padding."""
        head = f'{{"token": "{token}", "padding": "'.encode()
        tail = b'"}'
        size = max(self.huge_token, len(head) + len(tail))
        handler.close_connection = True
        handler._write_head(record, 200, None, [("Content-Type", "application/json"),
                                                ("Content-Length", str(size))])
        block = b"x" * (1 << 20)
        left = size - len(head) - len(tail)
        try:
            handler.wfile.write(head)
            while left > 0 and not self._closing.is_set():
                piece = block[:left]
                handler.wfile.write(piece)
                left -= len(piece)
            handler.wfile.write(tail)
        except OSError:
            return  # the client hung up: what it should do


def _repository(path: str) -> str | None:
    rest = path[len("/v2/"):]
    for marker in ("/manifests/", "/blobs/", "/tags/list"):
        cut = rest.rfind(marker)
        if cut > 0:
            return rest[:cut]
    return None



# ------------------------------------------------------------------- hostile content, runs


@dataclass
class Measured:
    """A `tagwatch` process as the user ran it: exit status (None: killed at the timeout),
    output, wall time and peak resident memory (VmHWM, read by the process itself at exit)."""

    code: int | None
    out: str
    err: str
    seconds: float
    peak_mb: float | None

    def __str__(self) -> str:
        peak = f"{self.peak_mb:.0f} MB" if self.peak_mb is not None else "?"
        return f"exit {self.code}, {self.seconds:.1f} s, peak RSS {peak}"


_PEAK_WRAPPER = """
import atexit, os, sys
def _peak():
    with open("/proc/self/status") as status, open(os.environ["TAGWATCH_TEST_PEAK"], "w") as out:
        out.write(next(l for l in status if l.startswith("VmHWM:")).split()[1])
atexit.register(_peak)
from tagwatch.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_measured(*argv: str, timeout: float = 120.0, env: dict[str, str] | None = None
                 ) -> Measured:
    """Run `tagwatch ARGV…` in a child process and measure it."""
    with tempfile.TemporaryDirectory() as tmp:
        peak_file = os.path.join(tmp, "peak")
        child_env = dict(os.environ if env is None else env, TAGWATCH_TEST_PEAK=peak_file)
        started = time.monotonic()
        with subprocess.Popen([sys.executable, "-c", _PEAK_WRAPPER, *argv], env=child_env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) as proc:
            try:
                out, err = proc.communicate(timeout=timeout)
                code: int | None = proc.returncode
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
                code = None
        seconds = time.monotonic() - started
        try:
            with open(peak_file) as f:
                peak: float | None = int(f.read()) / 1024
        except (OSError, ValueError):
            peak = None
    return Measured(code, out, err, seconds, peak)


@contextlib.contextmanager
def daemon(config: str | os.PathLike[str], log: str | os.PathLike[str], *args: str
           ) -> Iterator[subprocess.Popen[bytes]]:
    """`tagwatch run -c CONFIG -v` as a child process logging to `log`; stopped with SIGTERM
    at the end of the block (and its exit status checked: 0)."""
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "tagwatch", "run", "-c", str(config),
                                 "-v", *args], stdout=subprocess.DEVNULL, stderr=err)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    assert code == 0, f"tagwatch run exited {code}"


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)
