"""Registry authentication: anonymous, HTTP basic, and bearer tokens obtained through the
`WWW-Authenticate` challenge; the exchange is an `httpx.Auth` flow (`RegistryAuth.flow()`).

One `RegistryAuth` serves one registry host for the life of the process (the daemon keeps it
across cycles), and is shared by the worker threads of a cycle:

* The first request to a host learns its scheme (none, basic or bearer) while the other
  threads wait, so a cycle over 500 tags does not start with 500 unauthenticated requests.
* Bearer tokens are cached per repository scope (`repository:<name>:pull`) until shortly
  before they expire, and fetched once per scope even when many threads need one at once:
  one token request per repository, not per tag.
* A 401 with a cached token (expired or revoked early) refreshes it once; a second 401 is
  final and handed back to the client, which turns it into an `AuthError`.
* Credentials go to the registry itself and to the token realm its own challenge names,
  never elsewhere: httpx drops `Authorization` on redirects to another origin, a challenge
  that comes from another origin (a host the registry redirected to) is not answered, and a
  realm that would downgrade an https registry to plain http, or that is a link-local or
  cloud metadata address, is refused.
* Token answers are read up to MAX_TOKEN_BYTES; the whole exchange runs inside the budget of
  the request that needed it (`deadline.py`), and so does waiting for another thread's.
"""

from __future__ import annotations

import base64
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tagwatch.core.challenge import Challenge, parse_www_authenticate
from tagwatch.core.jsondoc import JSONError, loads
from tagwatch.core.refs import is_metadata_host
from tagwatch.core.text import clean
from tagwatch.errors import AuthError, RegistryUnavailable
from tagwatch.registry.deadline import left
from tagwatch.registry.dockercreds import Credentials

if TYPE_CHECKING:
    import httpx

__all__ = ["MAX_TOKEN_BYTES", "RegistryAuth", "repository_of", "token_lifetime"]

log = logging.getLogger("tagwatch.registry")

MIN_TOKEN_LIFE = 60.0  # the token spec's default and floor for expires_in
MAX_TOKEN_LIFE = 86400.0  # a longer promise is not believed: renewed after a day anyway
RENEW_BEFORE = 10.0  # renew this long before a token expires
# Token answers are a few kilobytes (Docker Hub's, with `token` and `access_token` both
# carrying the same JWT, is about 3 KB; GHCR, Quay, ECR Public and ACR send less).
MAX_TOKEN_BYTES = 256 * 1024
_TOKEN_EXTENSIONS = {"tagwatch.max_body": MAX_TOKEN_BYTES}
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")  # what an Authorization header value can carry


def token_lifetime(value: object) -> float | None:
    """`expires_in` as seconds: a finite positive number (or a string of one), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    """Whether `b` is the origin of `a`, or its https upgrade (as httpx keeps credentials)."""
    if a.host != b.host:
        return False
    if a.scheme == b.scheme:
        return (a.port or _PORTS.get(a.scheme)) == (b.port or _PORTS.get(b.scheme))
    return (
        a.scheme == "http"
        and b.scheme == "https"
        and a.port in (None, 80)
        and b.port in (None, 443)
    )


_PORTS = {"http": 80, "https": 443}


def repository_of(path: str) -> str | None:
    """`/v2/library/python/manifests/3.12` -> `library/python` (None for `/v2/`)."""
    if not path.startswith("/v2/"):
        return None
    rest = path[4:]
    for marker in ("/manifests/", "/blobs/", "/tags/list", "/referrers/"):
        cut = rest.rfind(marker)
        if cut > 0:
            return rest[:cut]
    return None


@dataclass(slots=True)
class _Token:
    value: str
    expires: float  # monotonic


def _basic(username: str, password: str) -> str:
    raw = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


class RegistryAuth:
    """The 401-challenge → token → retry dance for one registry host, and what a request needs
    right now (`authorization`). Plain state: the steady-state HEADs (registry/heads.py) use it
    without loading httpx; `flow()` is the `httpx.Auth` for everything else."""

    def __init__(
        self,
        host: str,
        credentials: Credentials | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.credentials = credentials
        self._clock = clock
        self._scheme: str | None = None  # None until learned: "none" | "basic" | "bearer"
        self._warned_expiry = False
        self._bearer: dict[str, str] = {}
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()
        self._probe = threading.Lock()
        self._scope_locks: dict[str, threading.Lock] = {}

    @property
    def scheme(self) -> str | None:
        """How the registry authenticates, once learned: "none", "basic" or "bearer"."""
        return self._scheme

    def authorization(self, path: str) -> str | None:
        """The Authorization value a request to `path` would carry right now without any
        exchange ('' for none), or None when only the full flow can tell (scheme not learned
        yet, or no valid token cached for the repository). For the client's fast path."""
        scheme = self._scheme
        if scheme is None:
            return None
        if scheme == "none":
            return ""
        if scheme == "basic":
            creds = self.credentials
            return _basic(creds.username, creds.password) if creds is not None else ""
        if self.credentials is not None and self.credentials.registry_token:
            return f"Bearer {self.credentials.registry_token}"
        repository = repository_of(path)
        if repository is None:
            return None
        token = self._cached(f"repository:{repository}:pull")
        return f"Bearer {token}" if token is not None else None

    def learned(self, status: int, challenges: list[str]) -> bool:
        """What the answer to a request sent without Authorization, while the scheme was not
        known yet, teaches (the HEAD fast path's first request to a registry): any answer but
        a 401 means none is needed; a 401 with a challenge that can be answered teaches its
        scheme (True: the request is to be made again through the flow, which fetches the
        token); False when it cannot be answered and the 401 stands."""
        if status != 401:
            if self._scheme is None:
                self._scheme = "none"
            return False
        return self._learn(parse_www_authenticate(challenges), None)

    # --- the flow -------------------------------------------------------------------------

    def flow(self) -> httpx.Auth:
        """This registry's authentication as httpx's `auth=` (one per httpx client)."""
        from tagwatch.registry.transport import AuthFlow

        return AuthFlow(self)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        scope = self._scope(request)
        if self._scheme is None:
            # The first request to the host learns its scheme while the others wait; a token
            # it then needs is fetched after, under its scope's own lock, so that a slow
            # token service holds up that repository only.
            self._acquire(self._probe, "learn how it authenticates")
            try:
                probed = self._scheme is None
                if probed:
                    response = yield request
                    if response.status_code != 401:
                        self._scheme = "none"
                        return
                    if not self._learn_from(request, response, scope, used=None):
                        return  # no challenge we can answer: the 401 stands
            finally:
                self._probe.release()
            if probed:
                yield from self._authorize(request, scope)
                yield request  # retried once; a second 401 is final
                return
        used = yield from self._authorize(request, scope)
        response = yield request
        if response.status_code == 401 and self._learn_from(request, response, scope, used):
            yield from self._authorize(request, scope)
            yield request  # retried once; a second 401 is final

    def _acquire(self, lock: threading.Lock, why: str) -> None:
        """Wait for a lock another request holds across its own exchange, at most for what is
        left of this request's budget."""
        remaining = left()
        if not lock.acquire(timeout=-1 if remaining is None else remaining):
            raise RegistryUnavailable(f"{self.host}: gave up waiting for another request to {why}")

    def _learn_from(
        self,
        request: httpx.Request,
        response: httpx.Response,
        scope: str | None,
        used: str | None,
    ) -> bool:
        """Learn from a 401 whether and how to try again (dropping a refused token)."""
        if not _same_origin(request.url, response.url):
            # The registry redirected to another host, which wants credentials of its own:
            # the registry's are not for it, nor for any token service it names.
            return False
        challenges = parse_www_authenticate(response.headers.get_list("www-authenticate"))
        if not self._learn(challenges, scope):
            return False  # no challenge we can answer: the 401 stands
        if used is not None and scope is not None:
            with self._lock:  # drop the token that was refused, unless already replaced
                token = self._tokens.get(scope)
                if token is not None and token.value == used:
                    del self._tokens[scope]
        return True

    def _learn(self, challenges: list[Challenge], scope: str | None) -> bool:
        for challenge in challenges:
            if challenge.scheme == "bearer" and challenge.params.get("realm"):
                self._bearer = dict(challenge.params)
                self._scheme = "bearer"
                return True
        for challenge in challenges:
            if challenge.scheme == "basic":
                self._scheme = "basic"
                return self.credentials is not None  # without credentials the 401 stands
        return False

    def _authorize(
        self, request: httpx.Request, scope: str | None
    ) -> Generator[httpx.Request, httpx.Response, str | None]:
        """Set Authorization for the learned scheme; returns the bearer token used."""
        if self._scheme == "basic" and self.credentials is not None:
            request.headers["Authorization"] = _basic(
                self.credentials.username, self.credentials.password
            )
            return None
        if self._scheme != "bearer":
            return None
        if self.credentials is not None and self.credentials.registry_token:
            request.headers["Authorization"] = f"Bearer {self.credentials.registry_token}"
            return self.credentials.registry_token
        key = scope or ""
        token = self._cached(key)
        if token is None:
            with self._lock:
                lock = self._scope_locks.setdefault(key, threading.Lock())
            self._acquire(lock, "fetch a token")  # one token request per scope, however
            try:  # many threads need it
                token = self._cached(key)
                if token is None:
                    token = yield from self._fetch_token(request, scope)
            finally:
                lock.release()
        request.headers["Authorization"] = f"Bearer {token}"
        return token

    def _cached(self, key: str) -> str | None:
        with self._lock:
            token = self._tokens.get(key)
            if token is not None and token.expires > self._clock():
                return token.value
        return None

    # --- the token request ----------------------------------------------------------------

    def _realm(self, request: httpx.Request) -> httpx.URL:
        import httpx

        try:
            realm = request.url.join(self._bearer["realm"])
            shown = clean(str(realm.copy_with(query=None, fragment=None)), 120)
        except (httpx.InvalidURL, ValueError):
            raise AuthError(
                f"{self.host}: the token realm {clean(self._bearer['realm'], 120)!r} is not a URL",
            ) from None
        if realm.scheme not in ("http", "https"):
            raise AuthError(f"{self.host}: token realm {shown} is not an http(s) URL")
        if request.url.scheme == "https" and realm.scheme == "http":
            raise AuthError(
                f"{self.host}: refusing token realm {shown}: it would send credentials over "
                "plain http",
            )
        if is_metadata_host(realm.host) and not is_metadata_host(request.url.host):
            raise AuthError(
                f"{self.host}: refusing token realm {shown}: a link-local or cloud metadata "
                "address",
            )
        return realm

    def _fetch_token(
        self, request: httpx.Request, scope: str | None
    ) -> Generator[httpx.Request, httpx.Response, str]:
        import httpx

        from tagwatch.registry.transport import BodyError

        realm = self._realm(request)
        service = self._bearer.get("service")
        # A scope from the challenge is used when the request has no repository (e.g. /v2/).
        scopes = [scope] if scope else [s for s in self._bearer.get("scope", "").split(" ") if s]
        creds = self.credentials
        headers = {"Accept": "application/json"}
        if creds is not None and creds.identity_token:
            # An identity (refresh) token is exchanged with the OAuth2 POST form.
            form = {
                "grant_type": "refresh_token",
                "refresh_token": creds.identity_token,
                "client_id": "tagwatch",
            }
            if service:
                form["service"] = service
            if scopes:
                form["scope"] = " ".join(scopes)
            token_request = httpx.Request(
                "POST", realm, data=form, headers=headers, extensions=_TOKEN_EXTENSIONS
            )
        else:
            params: list[tuple[str, str | int | float | bool | None]] = []
            if service:
                params.append(("service", service))
            params.extend(("scope", s) for s in scopes)
            if creds is not None:
                params.append(("account", creds.username))
                headers["Authorization"] = _basic(creds.username, creds.password)
            token_request = httpx.Request(
                "GET",
                realm.copy_merge_params(params),
                headers=headers,
                extensions=_TOKEN_EXTENSIONS,
            )
        started = self._clock()
        response = yield token_request
        service_at = f"{self.host}: the token service at {clean(realm.host, 100)}"
        try:
            body = response.read()  # at most MAX_TOKEN_BYTES: BoundedTransport cuts it off
        except BodyError as exc:
            raise AuthError(f"{service_at}: {exc}") from None
        who = f"user '{creds.username}'" if creds is not None else "anonymous access"
        if response.status_code in (401, 403):
            raise AuthError(
                f"{service_at} refused {who} (HTTP {response.status_code}): check the username "
                "and password",
            )
        if response.status_code != 200:
            raise AuthError(f"{service_at} answered HTTP {response.status_code}")
        try:
            answer = loads(body)
        except JSONError as exc:
            raise AuthError(f"{service_at} sent no token: its answer is {exc}") from None
        if not isinstance(answer, dict):
            raise AuthError(f"{service_at} sent no token: its answer is not a JSON object")
        value = answer.get("token") or answer.get("access_token")
        if not isinstance(value, str) or not value:
            raise AuthError(f"{service_at} sent no token")
        if not _TOKEN_CHARS.fullmatch(value):
            raise AuthError(
                f"{service_at} sent a token that cannot be sent back: it holds spaces, "
                "control or non-ASCII characters",
            )
        # The issued_at field is ignored on purpose: the local clock at the start of the
        # exchange is the safe origin (it is never later than the server's issue time).
        expires_in = answer.get("expires_in")
        life = token_lifetime(expires_in)
        if life is None:
            life = MIN_TOKEN_LIFE
            if expires_in is not None and not self._warned_expiry:
                self._warned_expiry = True
                log.warning(
                    "%s sent expires_in %s, not a number of seconds: its tokens are renewed "
                    "after %.0fs",
                    service_at,
                    clean(repr(expires_in), 60),
                    MIN_TOKEN_LIFE,
                )
        life = min(max(life, MIN_TOKEN_LIFE), MAX_TOKEN_LIFE)
        with self._lock:
            self._tokens[scope or ""] = _Token(value, started + life - RENEW_BEFORE)
        return value

    @staticmethod
    def _scope(request: httpx.Request) -> str | None:
        repository = repository_of(request.url.path)
        return f"repository:{repository}:pull" if repository else None
