"""Drive the real CNCF distribution registry (Debian `docker-registry`, 2.8) on loopback.

* `start_registry(workdir, mode)` runs `docker-registry serve` in one of three auth modes:
  "anonymous" (no auth), "basic" (bcrypt htpasswd) or "token" (a `TokenServer` in a thread
  signing ES256 JWTs whose self-signed certificate travels in the `x5c` header and is the
  registry's `rootcertbundle`; distribution 2.8 verifies that chain against the bundle).
* `Registry.requests()` parses the registry's access log (Apache combined format, one line per
  request, written to `registry.log` next to logrus lines), so tests can count exactly what
  tagwatch sent, excluding the `Pusher`'s own traffic by user agent.
* `Pusher` builds and uploads OCI / Docker schema 2 images and indexes over the HTTP API.

Every registry process is tracked and killed at interpreter exit if a test forgot to.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import datetime as dt
import gzip
import hashlib
import io
import itertools
import json
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import httpx

__all__ = [
    "ACCEPT_ALL",
    "DOCKER_LIST",
    "DOCKER_V2",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "PUSHER_AGENT",
    "AccessRecord",
    "Pusher",
    "Registry",
    "TokenRequest",
    "TokenServer",
    "digest_of",
    "free_port",
    "require_binaries",
    "start_registry",
    "unique_repo",
]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
IN_TOTO = "application/vnd.in-toto+json"
ACCEPT_ALL = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_V2])

PUSHER_AGENT = "tagwatch-test-pusher"
SYNC_AGENT = "tagwatch-test-logsync"
TOKEN_SERVICE = "tagwatch-test-registry"
TOKEN_ISSUER = "tagwatch-test-issuer"
DEFAULT_USER = "tagwatch"
DEFAULT_PASSWORD = "s3cret-pass"
MODES = ("anonymous", "basic", "token")
READY_TIMEOUT = 15.0

# ----------------------------------------------------------------------------------- helpers


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the usual bind-to-0 race applies)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def digest_of(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


_repo_counter = itertools.count(1)


def _tar_layer(name: str, content: bytes) -> bytes:
    """A one-file tar archive with fixed metadata (same content, same bytes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(content), 0o644, 0
        tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def unique_repo(prefix: str = "test") -> str:
    """A repository name no other test uses, so tests can share one session registry."""
    clean = re.sub(r"[^a-z0-9._/-]+", "-", prefix.lower()).strip("-./") or "test"
    return f"{clean}-{next(_repo_counter)}-{uuid.uuid4().hex[:8]}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


_LIVE: set[subprocess.Popen[bytes]] = set()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _kill_leftovers() -> None:
    with _LIVE_LOCK:
        procs = list(_LIVE)
        _LIVE.clear()
    for proc in procs:
        with contextlib.suppress(OSError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


# ------------------------------------------------------------------------------ access log


class AccessRecord(tuple[str, str, int]):
    """One access-log line: compares and unpacks as `(method, path, status)`; `user_agent`
    (and the named fields) are attributes. `path` is the request URI, query included."""

    user_agent: str

    def __new__(cls, method: str, path: str, status: int, user_agent: str = "") -> AccessRecord:
        self = super().__new__(cls, (method, path, status))
        self.user_agent = user_agent
        return self

    @property
    def method(self) -> str:
        return self[0]

    @property
    def path(self) -> str:
        return self[1]

    @property
    def status(self) -> int:
        return self[2]

    def __repr__(self) -> str:
        return f"AccessRecord({self[0]!r}, {self[1]!r}, {self[2]}, ua={self.user_agent!r})"


# 127.0.0.1 - - [25/Nov/2026:19:10:59 +0000] "HEAD /v2/x/manifests/y HTTP/1.1" 404 91 "" "ua"
_ACCESS_LINE = re.compile(
    r'^(?P<remote>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] '
    r'"(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) (?P<size>\S+) '
    r'"(?P<referer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)"\s*$'
)


def parse_access_log(text: str) -> list[AccessRecord]:
    """The combined-format lines of a distribution log; logrus lines are skipped."""
    out = []
    for line in text.splitlines():
        m = _ACCESS_LINE.match(line)
        if m:
            agent = m["agent"].replace('\\"', '"').replace("\\\\", "\\")
            out.append(AccessRecord(m["method"], m["path"], int(m["status"]), agent))
    return out


# ------------------------------------------------------------------------------ token server


class TokenRequest(NamedTuple):
    account: str | None  # the authenticated user, None for anonymous
    scopes: tuple[str, ...]


@dataclass
class _TokenLogEntry:
    request: TokenRequest
    user_agent: str
    method: str


class TokenServer:
    """A distribution token server (docs: distribution spec auth/token, auth/oauth).

    GET /token?service=..&scope=repository:NAME:pull,push[&scope=..]  (HTTP basic auth optional)
    POST /token  form grant_type=password (username, password) | refresh_token (refresh_token)

    Anonymous requests get `pull` only; `users` get pull, push, delete (and registry:catalog:*).
    A wrong password is a 401. `token_requests` lists (account, scopes) of every token request
    except the `Pusher`'s (user agent `PUSHER_AGENT`); `all_token_requests` has them all.
    """

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        *,
        service: str = TOKEN_SERVICE,
        issuer: str = TOKEN_ISSUER,
        expires_in: int = 300,
    ) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.users: dict[str, str] = dict(users or {DEFAULT_USER: DEFAULT_PASSWORD})
        self.service = service
        self.issuer = issuer
        self.expires_in = expires_in
        self.issued: list[str] = []  # every token handed out, for tests that hunt leaks
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tagwatch-test-token-signer")])
        now = dt.datetime.now(dt.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_pem: bytes = self._cert.public_bytes(serialization.Encoding.PEM)
        self._x5c = base64.b64encode(self._cert.public_bytes(serialization.Encoding.DER)).decode()
        self._log: list[_TokenLogEntry] = []
        self._refresh: dict[str, str] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True, name=f"token-server-{self.port}")
        self._thread.start()

    # -- public
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def realm(self) -> str:
        return f"{self.url}/token"

    @property
    def token_requests(self) -> list[TokenRequest]:
        with self._lock:
            return [e.request for e in self._log if e.user_agent != PUSHER_AGENT]

    @property
    def requests(self) -> list[TokenRequest]:
        """Alias of `token_requests`."""
        return self.token_requests

    @property
    def all_token_requests(self) -> list[TokenRequest]:
        with self._lock:
            return [e.request for e in self._log]

    def reset(self) -> None:
        with self._lock:
            self._log.clear()

    def write_cert(self, path: Path) -> Path:
        path.write_bytes(self.cert_pem)
        return path

    def sign(self, claims: Mapping[str, Any], *, x5c: bool = True) -> str:
        """A compact ES256 JWS of `claims` (for tests minting odd tokens themselves)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        header: dict[str, Any] = {"typ": "JWT", "alg": "ES256"}
        if x5c:
            header["x5c"] = [self._x5c]
        signing_input = f"{_b64url(_canonical(header))}.{_b64url(_canonical(dict(claims)))}"
        der = self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def issue(self, account: str | None, scopes: Iterable[str],
              expires_in: int | None = None) -> str:
        """A token granting `scopes` as the policy allows `account` (None: anonymous)."""
        now = int(time.time())
        ttl = self.expires_in if expires_in is None else expires_in
        claims = {
            "iss": self.issuer,
            "sub": account or "",
            "aud": self.service,
            "exp": now + ttl,
            "nbf": now - 5,
            "iat": now,
            "jti": secrets.token_hex(12),
            "access": self._grant(account, scopes),
        }
        return self.sign(claims)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> TokenServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- policy
    @staticmethod
    def _grant(account: str | None, scopes: Iterable[str]) -> list[dict[str, Any]]:
        allowed = {"pull", "push", "delete", "*"} if account else {"pull"}
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if not kind or not name:
                continue
            if kind == "registry" and not account:
                continue
            granted = [a for a in actions.split(",") if a in allowed]
            access.append({"type": kind, "name": name, "actions": granted})
        return access

    def _check_user(self, username: str | None, password: str | None) -> bool:
        return username is not None and self.users.get(username) == password

    def _respond_token(self, account: str | None, scopes: list[str], offline: bool,
                       ) -> dict[str, Any]:
        token = self.issue(account, scopes)
        self.issued.append(token)
        body: dict[str, Any] = {
            "token": token,
            "access_token": token,
            "expires_in": self.expires_in,
            "issued_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if offline and account:
            refresh = secrets.token_urlsafe(24)
            with self._lock:
                self._refresh[refresh] = account
            body["refresh_token"] = refresh
        return body

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def _send(self, status: int, body: dict[str, Any],
                      headers: Mapping[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _unauthorized(self) -> None:
                self._send(401, {"errors": [{"code": "UNAUTHORIZED",
                                             "message": "authentication required"}]},
                           {"WWW-Authenticate": 'Basic realm="tagwatch-test-token"'})

            def _basic(self) -> tuple[str | None, str | None, bool]:
                header = self.headers.get("Authorization", "")
                if not header.lower().startswith("basic "):
                    return None, None, False
                try:
                    user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
                except ValueError:
                    return None, None, True
                return user, pw, True

            def _record(self, account: str | None, scopes: list[str]) -> None:
                entry = _TokenLogEntry(TokenRequest(account, tuple(scopes)),
                                       self.headers.get("User-Agent", ""), self.command)
                with server._lock:
                    server._log.append(entry)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path != "/token":
                    self._send(404, {"error": "not found"})
                    return
                query = parse_qs(url.query)
                scopes = query.get("scope", [])
                user, pw, sent = self._basic()
                if sent and not server._check_user(user, pw):
                    self._record(user, scopes)
                    self._unauthorized()
                    return
                self._record(user, scopes)
                offline = query.get("offline_token", ["false"])[0] == "true"
                self._send(200, server._respond_token(user, scopes, offline))

            def do_POST(self) -> None:
                if urlsplit(self.path).path != "/token":
                    self._send(404, {"error": "not found"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                scopes = " ".join(form.get("scope", [])).split()
                grant = form.get("grant_type", [""])[0]
                account: str | None
                if grant == "password":
                    account = form.get("username", [None])[0]
                    if not server._check_user(account, form.get("password", [None])[0]):
                        self._record(account, scopes)
                        self._unauthorized()
                        return
                elif grant == "refresh_token":
                    with server._lock:
                        account = server._refresh.get(form.get("refresh_token", [""])[0])
                    if account is None:
                        self._record(None, scopes)
                        self._unauthorized()
                        return
                else:
                    self._send(400, {"error": "unsupported_grant_type"})
                    return
                self._record(account, scopes)
                offline = form.get("access_type", [""])[0] == "offline"
                self._send(200, server._respond_token(account, scopes, offline))

        return Handler


# ---------------------------------------------------------------------------------- registry


@dataclass
class Registry:
    """A running `docker-registry serve` (see `start_registry`)."""

    workdir: Path
    mode: str
    port: int
    username: str | None = None
    password: str | None = None
    token_server: TokenServer | None = None
    _auto_port: bool = False
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _pusher: Pusher | None = field(default=None, repr=False)

    # -- addresses
    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "registry.log"

    @property
    def storage_path(self) -> Path:
        return self.workdir / "storage"

    @property
    def credentials(self) -> tuple[str, str] | None:
        if self.username is None or self.password is None:
            return None
        return self.username, self.password

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pusher(self) -> Pusher:
        """A shared `Pusher` for this registry (closed with it)."""
        if self._pusher is None:
            self._pusher = Pusher(self)
        return self._pusher

    def client(self, *, user_agent: str = "tagwatch-test-client", anonymous: bool = False,
               timeout: float = 5.0) -> httpx.Client:
        """An httpx client on this registry, authenticated as the admin user unless
        `anonymous` (basic auth, or answering Bearer challenges through the TokenServer;
        anonymous in token mode still answers them, with anonymous pull tokens)."""
        auth: httpx.Auth | None = None
        creds = None if anonymous else self.credentials
        if self.mode == "basic" and creds is not None:
            auth = httpx.BasicAuth(*creds)
        elif self.mode == "token":
            auth = _BearerAuth(creds, user_agent)
        return httpx.Client(base_url=self.url, auth=auth, timeout=timeout,
                            headers={"User-Agent": user_agent})

    # -- lifecycle
    def write_config(self) -> None:
        config: dict[str, Any] = {
            "version": "0.1",
            "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False},
                    "fields": {"service": "registry"}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage_path)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": self.host, "secret": "tagwatch-test-http-secret",
                     "headers": {"X-Content-Type-Options": ["nosniff"]}},
        }
        if self.mode == "basic":
            config["auth"] = {"htpasswd": {"realm": "tagwatch-test-basic",
                                           "path": str(self.workdir / "htpasswd")}}
        elif self.mode == "token":
            assert self.token_server is not None
            config["auth"] = {"token": {
                "realm": self.token_server.realm,
                "service": self.token_server.service,
                "issuer": self.token_server.issuer,
                "rootcertbundle": str(self.workdir / "token-cert.pem"),
            }}
        # JSON is YAML: no YAML library needed, and no quoting surprises.
        self.config_path.write_text(json.dumps(config, indent=2) + "\n")

    def start(self) -> None:
        """Start (or restart) the registry on the same port with the same storage; returns once
        `GET /v2/` answers. At the first start only, an automatically chosen port that turned
        out taken is re-chosen."""
        if self.running:
            return
        for attempt in range(3):
            try:
                self._spawn_and_wait()
                self._auto_port = False  # from now on, restarts keep this port
                return
            except _PortTaken:
                if not self._auto_port or attempt == 2:
                    raise RuntimeError(f"port {self.port} is taken:\n{self.log_tail()}") from None
                self.port = free_port()
                self.write_config()

    @property
    def pid(self) -> int | None:
        """The running registry process's id (a new one after a restart); None when stopped."""
        return self._proc.pid if self._proc is not None else None

    def _spawn_and_wait(self) -> None:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise RuntimeError("docker-registry is not installed (Debian package docker-registry)")
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            proc = subprocess.Popen(
                [binary, "serve", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        with _LIVE_LOCK:
            _LIVE.add(proc)
        self._proc = proc
        deadline = time.monotonic() + READY_TIMEOUT
        with httpx.Client(timeout=1.0, headers={"User-Agent": SYNC_AGENT}) as client:
            while True:
                if proc.poll() is not None:
                    self._reap()
                    if b"address already in use" in self._log_bytes(offset):
                        raise _PortTaken()
                    raise RuntimeError(
                        f"docker-registry exited with {proc.returncode} at start "
                        f"({self.config_path}):\n{self.log_tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{self.url}/v2/").status_code in (200, 401):
                        return
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"docker-registry did not answer GET {self.url}/v2/ within "
                        f"{READY_TIMEOUT:.0f}s:\n{self.log_tail()}")
                time.sleep(0.05)

    def stop(self) -> None:
        """Terminate the registry process and wait for it (storage and port are kept)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._reap()

    def _reap(self) -> None:
        if self._proc is not None:
            with _LIVE_LOCK:
                _LIVE.discard(self._proc)
            self._proc = None

    def close(self) -> None:
        if self._pusher is not None:
            self._pusher.close()
            self._pusher = None
        self.stop()
        if self.token_server is not None:
            self.token_server.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- logs
    def _log_bytes(self, offset: int = 0) -> bytes:
        try:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                return f.read()
        except FileNotFoundError:
            return b""

    def log_tail(self, lines: int = 30) -> str:
        text = self._log_bytes().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:]) or "(registry.log is empty)"

    def sync_log(self, timeout: float = 3.0) -> None:
        """Barrier: send a marker request and wait for its access-log line, so lines of the
        requests answered before it are (practically) written too. No-op when stopped."""
        if not self.running:
            return
        marker = f'"{SYNC_AGENT}"'.encode()  # the access-log line, not the logrus one
        before = self._log_bytes().count(marker)
        with contextlib.suppress(httpx.TransportError), httpx.Client(
                timeout=2.0, headers={"User-Agent": SYNC_AGENT}) as client:
            client.get(f"{self.url}/v2/")
        deadline = time.monotonic() + timeout
        while self._log_bytes().count(marker) <= before:
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        time.sleep(0.01)  # lines of concurrently answered requests

    def mark(self) -> int:
        """A position in the access log: `requests(since=mark)` sees only later requests."""
        self.sync_log()
        return len(self._log_bytes())

    def requests(
        self,
        method: str | None = None,
        path_contains: str | None = None,
        *,
        since: int = 0,
        exclude_agent: str | None = None,
        agent: str | None = None,
        sync: bool = True,
    ) -> list[AccessRecord]:
        """Requests from the access log, oldest first, as `(method, path, status)` records
        with `.user_agent`; harness-internal readiness/sync probes are never included."""
        if sync:
            self.sync_log()
        out = []
        for rec in parse_access_log(self._log_bytes(since).decode(errors="replace")):
            if rec.user_agent == SYNC_AGENT:
                continue
            if method is not None and rec.method != method.upper():
                continue
            if path_contains is not None and path_contains not in rec.path:
                continue
            if exclude_agent is not None and rec.user_agent == exclude_agent:
                continue
            if agent is not None and rec.user_agent != agent:
                continue
            out.append(rec)
        return out


class _PortTaken(Exception):
    pass


def start_registry(
    workdir: Path,
    mode: str = "anonymous",
    port: int | None = None,
    *,
    username: str = DEFAULT_USER,
    password: str = DEFAULT_PASSWORD,
    token_expires_in: int = 300,
) -> Registry:
    """Configure and start a registry in `workdir` (config.yml, storage/, registry.log, and
    htpasswd or token-cert.pem). Raises RuntimeError with the log tail if it does not come up
    within 15 s."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    reg = Registry(workdir=workdir, mode=mode, port=port or free_port(), _auto_port=port is None)
    if mode in ("basic", "token"):
        reg.username, reg.password = username, password
    if mode == "basic":
        htpasswd = shutil.which("htpasswd")
        if htpasswd is None:
            raise RuntimeError("htpasswd is not installed (Debian package apache2-utils)")
        # bcrypt (-B): distribution's htpasswd backend accepts nothing else.
        line = subprocess.run([htpasswd, "-Bbn", username, password], check=True,
                              capture_output=True, text=True).stdout.strip()
        (workdir / "htpasswd").write_text(line + "\n")
    elif mode == "token":
        reg.token_server = TokenServer({username: password}, expires_in=token_expires_in)
        reg.token_server.write_cert(workdir / "token-cert.pem")
    reg.write_config()
    try:
        reg.start()
    except BaseException:
        reg.close()
        raise
    return reg


# ------------------------------------------------------------------------------------ pusher


_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class _BearerAuth(httpx.Auth):
    """Answers the registry's Bearer challenge with a token from the realm: with credentials
    (basic auth) for pull,push,delete on the repository, else for the challenge's scope;
    cached per repository."""

    requires_response_body = True

    def __init__(self, credentials: tuple[str, str] | None,
                 user_agent: str = PUSHER_AGENT) -> None:
        self._credentials = credentials
        self._user_agent = user_agent
        self._tokens: dict[str, str] = {}

    @staticmethod
    def _repo_of(path: str) -> str | None:
        m = re.match(r"^/v2/(.+?)/(?:manifests|blobs|tags)/", path)
        return m.group(1) if m else None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        repo = self._repo_of(request.url.path)
        if repo is not None and repo in self._tokens:
            request.headers["Authorization"] = f"Bearer {self._tokens[repo]}"
        response = yield request
        challenge = response.headers.get("WWW-Authenticate", "")
        if response.status_code != 401 or not challenge.lower().startswith("bearer "):
            return
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        query: dict[str, str] = {"service": params.get("service", "")}
        if repo is not None and self._credentials is not None:
            query["scope"] = f"repository:{repo}:pull,push,delete"
        elif "scope" in params:
            query["scope"] = params["scope"]
        token_response = yield self._token_request(params["realm"], query)
        if token_response.status_code != 200:
            return
        data = token_response.json()
        token = data.get("token") or data.get("access_token")
        if repo is not None:
            self._tokens[repo] = token
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

    def _token_request(self, realm: str, query: dict[str, str]) -> httpx.Request:
        headers = {"User-Agent": self._user_agent}
        if self._credentials is not None:
            user, pw = self._credentials
            query = {**query, "account": user}
            headers["Authorization"] = "Basic " + base64.b64encode(
                f"{user}:{pw}".encode()).decode()
        return httpx.Request("GET", realm, params=query, headers=headers)


def _parse_platform(platform: str | tuple[str, str, str | None] | tuple[str, str]
                    ) -> tuple[str, str, str | None]:
    if isinstance(platform, str):
        os_, arch, *rest = platform.split("/")
        return os_, arch, (rest[0] if rest else None)
    if len(platform) == 2:
        return platform[0], platform[1], None
    return platform[0], platform[1], platform[2]


def _platform_str(p: tuple[str, str, str | None]) -> str:
    return "/".join(x for x in p if x)


class Pusher:
    """Pushes images over the registry HTTP API as the admin user (basic auth, or a push
    token from the `TokenServer` after the registry's challenge). Every request carries
    `User-Agent: tagwatch-test-pusher` (`PUSHER_AGENT`), so `Registry.requests(
    exclude_agent=PUSHER_AGENT)` leaves only the code under test."""

    def __init__(self, registry: Registry, *, timeout: float = 10.0) -> None:
        self.registry = registry
        self.client = registry.client(user_agent=PUSHER_AGENT, timeout=timeout)
        # Tests make a Pusher where they need one and drop it: its connections are closed
        # when it goes, not left to the garbage collector (the suite fails on that).
        weakref.finalize(self, self.client.close)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Pusher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- low level
    def _check(self, response: httpx.Response, *ok: int) -> httpx.Response:
        if response.status_code not in ok:
            raise RuntimeError(f"{response.request.method} {response.request.url} -> "
                               f"{response.status_code}: {response.text[:500]}")
        return response

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = digest_of(data)
        if self.client.head(f"/v2/{repo}/blobs/{digest}").status_code == 200:
            return digest
        start = self._check(self.client.post(f"/v2/{repo}/blobs/uploads/"), 202)
        location = start.headers["Location"]
        sep = "&" if "?" in location else "?"
        self._check(self.client.put(f"{location}{sep}digest={digest}", content=data,
                                    headers={"Content-Type": "application/octet-stream"}), 201)
        return digest

    def push_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str:
        """PUT `body` under a tag or digest; returns its digest (checked against the
        registry's `Docker-Content-Digest`)."""
        r = self._check(self.client.put(f"/v2/{repo}/manifests/{reference}", content=body,
                                        headers={"Content-Type": media_type}), 201)
        digest = digest_of(body)
        got = r.headers.get("Docker-Content-Digest")
        if got and got != digest:
            raise RuntimeError(f"registry digest {got} != computed {digest}")
        return digest

    def get_manifest(self, repo: str, reference: str, accept: str = ACCEPT_ALL,
                     ) -> tuple[bytes, str, str]:
        """(body, content type, digest) of a manifest."""
        r = self._check(self.client.get(f"/v2/{repo}/manifests/{reference}",
                                        headers={"Accept": accept}), 200)
        return r.content, r.headers["Content-Type"], digest_of(r.content)

    def head_digest(self, repo: str, reference: str, accept: str = ACCEPT_ALL) -> str | None:
        r = self.client.head(f"/v2/{repo}/manifests/{reference}", headers={"Accept": accept})
        return r.headers.get("Docker-Content-Digest") if r.status_code == 200 else None

    def list_tags(self, repo: str) -> list[str]:
        r = self.client.get(f"/v2/{repo}/tags/list")
        if r.status_code == 404:
            return []
        return sorted(self._check(r, 200).json().get("tags") or [])

    # -- images
    def _layers(self, rng: random.Random, count: int) -> list[tuple[bytes, str]]:
        """(gzip blob, diff_id) per layer: a real tar with one small random file, so that
        container engines (Podman) can pull and unpack the image; fixed tar metadata and gzip
        mtime 0, so a seed is reproducible."""
        out = []
        for _ in range(count):
            content = rng.randbytes(rng.randint(64, 512))
            raw = _tar_layer(f"layer-{content[:8].hex()}", content)
            out.append((gzip.compress(raw, mtime=0), digest_of(raw)))
        return out

    def _push_single(self, repo: str, reference: str | None, *, docker: bool,
                     platform: str | tuple[str, str, str | None] | tuple[str, str],
                     labels: Mapping[str, str] | None, created: str | None, layers: int,
                     seed: str | int | None) -> str:
        os_, arch, variant = _parse_platform(platform)
        rng = random.Random(str(seed) if seed is not None else secrets.token_hex(16))
        blobs = self._layers(rng, layers)
        config: dict[str, Any] = {
            "architecture": arch,
            "os": os_,
            "created": created or "2024-01-01T00:00:00Z",
            "config": {"Labels": dict(labels or {})},
            "rootfs": {"type": "layers", "diff_ids": [d for _, d in blobs]},
            "history": [{"created": created or "2024-01-01T00:00:00Z",
                         "created_by": "tagwatch-test-pusher"} for _ in blobs],
        }
        if variant:
            config["variant"] = variant
        config_bytes = _canonical(config)
        config_digest = self.push_blob(repo, config_bytes)
        layer_type = DOCKER_LAYER if docker else OCI_LAYER
        layer_desc = []
        for blob, _ in blobs:
            layer_desc.append({"mediaType": layer_type, "digest": self.push_blob(repo, blob),
                               "size": len(blob)})
        media_type = DOCKER_V2 if docker else OCI_MANIFEST
        manifest = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
                       "digest": config_digest, "size": len(config_bytes)},
            "layers": layer_desc,
        }
        body = json.dumps(manifest, indent=2).encode()
        return self.push_manifest(repo, reference or digest_of(body), body, media_type)

    def push_image(
        self,
        repo: str,
        tag: str | None = None,
        *,
        platform: str | tuple[str, str, str | None] | tuple[str, str] = ("linux", "amd64", None),
        labels: Mapping[str, str] | None = None,
        created: str | None = None,
        layers: int = 1,
        seed: str | int | None = None,
    ) -> str:
        """An OCI image (layers, OCI config, OCI manifest) under `tag` (else by digest);
        returns the manifest digest. Same seed + same arguments = same digest; no seed =
        a fresh random image."""
        return self._push_single(repo, tag, docker=False, platform=platform, labels=labels,
                                 created=created, layers=layers, seed=seed)

    def push_docker_v2(
        self,
        repo: str,
        tag: str | None = None,
        *,
        platform: str | tuple[str, str, str | None] | tuple[str, str] = ("linux", "amd64", None),
        labels: Mapping[str, str] | None = None,
        created: str | None = None,
        layers: int = 1,
        seed: str | int | None = None,
    ) -> str:
        """Like `push_image`, as a Docker schema 2 manifest."""
        return self._push_single(repo, tag, docker=True, platform=platform, labels=labels,
                                 created=created, layers=layers, seed=seed)

    def _push_attestation(self, repo: str, subject: str, seed: str) -> tuple[str, int]:
        statement = _canonical({"_type": "https://in-toto.io/Statement/v0.1",
                                "predicateType": "https://slsa.dev/provenance/v0.2",
                                "subject": [{"name": repo, "digest": {
                                    "sha256": subject.split(":", 1)[1]}}],
                                "predicate": {"seed": seed}})
        config = _canonical({"architecture": "unknown", "os": "unknown", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": [digest_of(statement)]}})
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": self.push_blob(repo, config),
                       "size": len(config)},
            "layers": [{"mediaType": IN_TOTO, "digest": self.push_blob(repo, statement),
                        "size": len(statement),
                        "annotations": {"in-toto.io/predicate-type":
                                        "https://slsa.dev/provenance/v0.2"}}],
        }
        body = json.dumps(manifest, indent=2).encode()
        return self.push_manifest(repo, digest_of(body), body, OCI_MANIFEST), len(body)

    def _push_list(self, repo: str, tag: str, platforms: Iterable[str], *, docker: bool,
                   attestation: bool, seed: str | int | None,
                   labels: Mapping[str, str] | None) -> tuple[str, dict[str, str]]:
        base = str(seed) if seed is not None else secrets.token_hex(16)
        digests: dict[str, str] = {}
        for platform in platforms:
            p = _parse_platform(platform)
            key = _platform_str(p)
            digests[key] = self._push_single(repo, None, docker=docker, platform=p,
                                             labels=labels, created=None, layers=1,
                                             seed=f"{base}/{key}")
        index = self._put_list(repo, tag, digests, docker=docker, attestation=attestation,
                               seed=base)
        return index, digests

    def _put_list(self, repo: str, tag: str, children: Mapping[str, str], *, docker: bool,
                  attestation: bool, seed: str) -> str:
        entries: list[dict[str, Any]] = []
        for platform, digest in children.items():
            os_, arch, variant = _parse_platform(platform)
            body, media_type, _ = self.get_manifest(repo, digest)
            plat: dict[str, str] = {"architecture": arch, "os": os_}
            if variant:
                plat["variant"] = variant
            entries.append({"mediaType": media_type.split(";")[0].strip(), "digest": digest,
                            "size": len(body), "platform": plat})
        if attestation and entries:
            subject = entries[0]["digest"]
            att_digest, att_size = self._push_attestation(repo, subject, seed)
            entries.append({
                "mediaType": OCI_MANIFEST, "digest": att_digest, "size": att_size,
                "platform": {"architecture": "unknown", "os": "unknown"},
                "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                                "vnd.docker.reference.digest": subject},
            })
        media_type = DOCKER_LIST if docker else OCI_INDEX
        index = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
        body = json.dumps(index, indent=2).encode()
        return self.push_manifest(repo, tag, body, media_type)

    def put_index(
        self,
        repo: str,
        tag: str,
        children: Mapping[str, str],
        *,
        attestation: bool = True,
        docker: bool = False,
    ) -> str:
        """An index (a Docker manifest list if `docker`) under `tag` from manifests already in
        `repo`, `{"os/arch[/variant]": digest}` in that order; with `attestation`, one for the
        first child, as `push_index` does (deterministic: same children, same digest).
        Returns the index digest."""
        seed = "put-index:" + ",".join(f"{k}={v}" for k, v in children.items())
        return self._put_list(repo, tag, children, docker=docker,
                              attestation=attestation and not docker, seed=seed)

    def push_index(
        self,
        repo: str,
        tag: str,
        platforms: Iterable[str],
        *,
        attestation: bool = True,
        seed: str | int | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> tuple[str, dict[str, str]]:
        """One OCI image per "os/arch[/variant]" platform plus (by default) a buildx-style
        attestation manifest (platform unknown/unknown, annotated with the first image's
        digest), then an OCI index under `tag`. Returns (index digest, {platform: digest})."""
        return self._push_list(repo, tag, platforms, docker=False, attestation=attestation,
                               seed=seed, labels=labels)

    def push_docker_list(
        self,
        repo: str,
        tag: str,
        platforms: Iterable[str],
        *,
        seed: str | int | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> tuple[str, dict[str, str]]:
        """Like `push_index` with Docker schema 2 images in a Docker manifest list (no
        attestation: buildx only attaches those to OCI indexes)."""
        return self._push_list(repo, tag, platforms, docker=True, attestation=False,
                               seed=seed, labels=labels)

    # -- tags
    def tag(self, repo: str, tag: str, digest: str) -> str:
        """Point `tag` at an existing manifest (its exact bytes and media type)."""
        body, media_type, got = self.get_manifest(repo, digest)
        if got != digest:
            raise RuntimeError(f"registry returned {got} for {digest}")
        return self.push_manifest(repo, tag, body, media_type.split(";")[0].strip())

    def delete_manifest(self, repo: str, digest: str) -> None:
        """DELETE /v2/<repo>/manifests/<digest>: removes the manifest and every tag on it."""
        self._check(self.client.delete(f"/v2/{repo}/manifests/{digest}"), 202)

    def delete_tag(self, repo: str, tag: str) -> str:
        """Make `tag` disappear; returns the digest it pointed at.

        Distribution 2.8 cannot delete a tag alone (DELETE by tag is UNSUPPORTED): this
        deletes the tagged manifest by digest, which also removes every *other* tag on the
        same manifest. Indexes' children are left in place."""
        digest = self.head_digest(repo, tag)
        if digest is None:
            raise RuntimeError(f"{repo}:{tag} does not exist")
        self.delete_manifest(repo, digest)
        return digest


# -------------------------------------------------------------------------- misc for tests


def decode_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a compact JWS, unverified."""
    header, payload, _ = token.split(".")
    return json.loads(_b64url_decode(header)), json.loads(_b64url_decode(payload))


def tamper_jwt(token: str, mutate: Callable[[dict[str, Any]], None] | None = None) -> str:
    """`token` with its claims changed by `mutate` (default: every action granted) and the
    original signature kept, which the registry must refuse."""
    header, payload, signature = token.split(".")
    claims = json.loads(_b64url_decode(payload))
    if mutate is None:
        for entry in claims.get("access", []):
            entry["actions"] = ["pull", "push", "delete"]
        claims["jti"] = claims.get("jti", "") + "x"
    else:
        mutate(claims)
    return f"{header}.{_b64url(_canonical(claims))}.{signature}"


BINARY_PACKAGES = {"docker-registry": "docker-registry", "htpasswd": "apache2-utils"}
MODE_BINARIES = {
    "anonymous": ("docker-registry",),
    "basic": ("docker-registry", "htpasswd"),
    "token": ("docker-registry",),
}


def integration_required() -> bool:
    """CI (env CI set) or TAGWATCH_REQUIRE_INTEGRATION=1: missing tools fail, not skip."""
    return bool(os.environ.get("CI")) or os.environ.get("TAGWATCH_REQUIRE_INTEGRATION") == "1"


def require_binaries(*binaries: str) -> None:
    """pytest.skip (pytest.fail when `integration_required()`) naming the Debian package to
    install when one of `binaries` is not on PATH."""
    import pytest

    missing = [b for b in binaries if shutil.which(b) is None]
    if not missing:
        return
    packages = " ".join(sorted({BINARY_PACKAGES.get(b, b) for b in missing}))
    message = (f"{', '.join(missing)} not found: install the Debian package(s) {packages} "
               f"(apt-get install {packages}, or run ./dev test)")
    if integration_required():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
