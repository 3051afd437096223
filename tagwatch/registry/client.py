"""The registry client: resolves a tag to its digest (and, for an index, its platform image
digests) over the distribution HTTP API. Returns data only; deciding is the core's job.

Cost of a check, by design:
* an unchanged tag costs exactly one `HEAD /v2/<name>/manifests/<tag>`;
* a tag whose index digest is new costs one GET more (the index, by digest, verified);
* only a registry that omits `Docker-Content-Digest` gets a GET of the tag instead of a HEAD.

Sync `httpx.Client`s (one per registry host, shared by the cycle's worker threads): httpx's
thread-safe sync pool costs about a third of the CPU of its asyncio pool per request.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

import httpx

from tagwatch import __version__
from tagwatch.config import Config, RegistryConfig
from tagwatch.core.changes import ImageFacts
from tagwatch.core.manifest import (
    ACCEPT,
    INDEX_TYPES,
    MAX_MANIFEST_BYTES,
    MEDIA_DOCKER_V1_SIGNED,
    Manifest,
    ManifestError,
    is_manifest_type,
    parse_manifest,
    sha256_digest,
)
from tagwatch.core.model import Resolved
from tagwatch.core.refs import ImageRef, is_loopback, parse_platform
from tagwatch.core.times import parse_time
from tagwatch.errors import (
    AuthError,
    BadResponse,
    NotFound,
    RateLimited,
    RegistryError,
    RegistryUnavailable,
)
from tagwatch.registry.auth import RegistryAuth
from tagwatch.registry.dockercreds import Credentials, docker_credentials
from tagwatch.registry.gate import Gate

__all__ = ["RegistryClient", "RequestObserver"]

log = logging.getLogger("tagwatch.registry")

_DIGEST = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")
_NOT_FOUND_CODES = {"MANIFEST_UNKNOWN", "NAME_UNKNOWN", "NOT_FOUND", "TAG_UNKNOWN"}
MAX_CONFIG_BYTES = 8 * 1024 * 1024
RETRY_STATUSES = frozenset({500, 502, 503, 504})
MAX_TAG_PAGES = 20  # 20,000 tags at n=1000: node on Docker Hub has about 9,000
MAX_TAG_LIST_BYTES = 4 * 1024 * 1024
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
MAX_BACKOFF = 8.0  # seconds; the longest wait between two tries of one request


class RequestObserver(Protocol):
    """Told about every HTTP request made (metrics): code is the status, or "error"."""

    def __call__(
        self, registry: str, method: str, code: str, seconds: float, headers: httpx.Headers | None
    ) -> None: ...


@dataclass(slots=True)
class _Endpoint:
    client: httpx.Client
    base: str  # "https://ghcr.io"
    auth: RegistryAuth
    insecure: bool
    gate: Gate
    verify: ssl.SSLContext | bool = True


def _content_type(response: httpx.Response) -> str:
    value: str = response.headers.get("content-type", "")
    return value.split(";", 1)[0].strip().lower()


def _error_detail(body: bytes) -> tuple[str | None, str]:
    """(first error code, 'CODE: message') from a registry error body, if it is one."""
    try:
        errors = json.loads(body).get("errors")
        first = errors[0]
        code = str(first.get("code") or "")
        message = str(first.get("message") or "")
        return code or None, f"{code}: {message}" if message else code
    except (ValueError, AttributeError, TypeError, IndexError, KeyError):
        return None, ""


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class RegistryClient:
    """Resolve references against registries. Thread-safe; one per process."""

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        registries: Mapping[str, RegistryConfig] | None = None,
        credentials: Callable[[str], Credentials | None] = lambda host: None,
        transport: httpx.BaseTransport | None = None,
        observer: RequestObserver | None = None,
        concurrency: int = 8,
        retries: int = 2,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.timeout = timeout
        self.registries = dict(registries or {})
        self._credentials = credentials
        self._transport = transport
        self._observer = observer
        self._concurrency = concurrency
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self._closed = False
        self._local = threading.local()  # per-thread http.client connections (_fast_head)
        self._endpoints: dict[str, _Endpoint] = {}
        self._lock = threading.Lock()

    # --- public API -------------------------------------------------------------------------

    def resolve(self, ref: ImageRef, known: Resolved | None = None) -> Resolved:
        """The digest `ref`'s tag points at now. `known` is what it pointed at before: when
        the digest is unchanged its platforms are reused and nothing more is fetched.
        Raises NotFound when the registry says the tag does not exist."""
        assert ref.tag is not None
        path = f"/v2/{ref.repository}/manifests/{ref.tag}"
        response = self._send(ref, "HEAD", path, {"Accept": ACCEPT})
        status = response.status_code
        if status == 200:
            media_type = _content_type(response)
            if not is_manifest_type(media_type):
                raise BadResponse(
                    f"{self._host(ref)} answered {media_type or 'no content type'} for "
                    f"{ref}, not a manifest",
                    host=ref.registry,
                )
            digest = response.headers.get("docker-content-digest", "").strip()
            if not _DIGEST.fullmatch(digest) or media_type == MEDIA_DOCKER_V1_SIGNED:
                return self._get_tag(ref)
            if media_type in INDEX_TYPES:
                if known is not None and known.digest == digest and known.platforms:
                    return Resolved(digest, media_type, dict(known.platforms))
                manifest = self.manifest(ref, digest)
                return Resolved(digest, manifest.media_type, manifest.platforms)
            return Resolved(digest, media_type, {})
        if status in (405, 501):  # HEAD not supported: GET and hash
            return self._get_tag(ref)
        if status == 404 and _content_type(response) == "application/json":
            raise NotFound(f"{ref.name}:{ref.tag}: tag not found", host=ref.registry)
        if status == 404:
            # A HEAD error has no body; a 404 that is not a registry's JSON may be a proxy's
            # page. GET once to tell a missing tag from a broken path.
            return self._get_tag(ref)
        raise self._error(ref, response, b"")

    def manifest(self, ref: ImageRef, digest: str) -> Manifest:
        """GET a manifest by digest, verify the bytes against the digest, parse it."""
        path = f"/v2/{ref.repository}/manifests/{digest}"
        body, media_type, _ = self._get(ref, path, {"Accept": ACCEPT})
        if digest.startswith("sha256:") and sha256_digest(body) != digest:
            raise BadResponse(
                f"{self._host(ref)} sent a manifest whose sha256 does not match {digest}",
                host=ref.registry,
            )
        try:
            return parse_manifest(body, media_type)
        except ManifestError as exc:
            raise BadResponse(
                f"{self._host(ref)}: {ref.name}@{digest}: {exc}", host=ref.registry
            ) from None

    def exists(self, ref: ImageRef, digest: str) -> bool:
        """Whether the registry still serves a manifest by digest (a pin's)."""
        path = f"/v2/{ref.repository}/manifests/{digest}"
        response = self._send(ref, "HEAD", path, {"Accept": ACCEPT})
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise self._error(ref, response, b"")

    def image_facts(
        self,
        ref: ImageRef,
        digest: str,
        platforms: Mapping[str, str] | None = None,
        prefer: Sequence[str] = (),
    ) -> ImageFacts:
        """Manifest and config facts of the image behind `digest`: for an index (its
        `platforms` given), the first of `prefer`, else linux/amd64, else the first platform.
        Two GETs (three for an index), all by digest; used only when a tag moved."""
        platform = None
        image = digest
        if platforms:
            platform = next(
                (p for p in (*prefer, "linux/amd64") if p in platforms), sorted(platforms)[0]
            )
            image = platforms[platform]
        manifest = self.manifest(ref, image)
        if manifest.is_index:  # platforms were not known: pick from the index itself
            platform = next(
                (p for p in (*prefer, "linux/amd64") if p in manifest.platforms),
                sorted(manifest.platforms)[0],
            )
            image = manifest.platforms[platform]
            manifest = self.manifest(ref, image)
        created: str | None = None
        labels: dict[str, str] = {}
        if manifest.config_digest is not None:
            body, _, _ = self._get(
                ref,
                f"/v2/{ref.repository}/blobs/{manifest.config_digest}",
                {},
                limit=MAX_CONFIG_BYTES,
            )
            try:
                config = json.loads(body)
            except ValueError:
                config = {}
            if isinstance(config, dict):
                if isinstance(config.get("created"), str):
                    created = config["created"]
                inner = config.get("config")
                found = inner.get("Labels") if isinstance(inner, dict) else None
                if isinstance(found, dict):
                    labels = {str(k): v for k, v in found.items() if isinstance(v, str)}
        return ImageFacts(image, platform, created, labels, manifest.annotations, manifest.layers)

    def config_platform(self, ref: ImageRef, config_digest: str) -> str | None:
        """The platform (`os/arch[/variant]`, normalised) an image's config blob declares;
        None when it declares none we can read. The blob is verified against its digest."""
        body, _, _ = self._get(
            ref, f"/v2/{ref.repository}/blobs/{config_digest}", {}, limit=MAX_CONFIG_BYTES
        )
        if config_digest.startswith("sha256:") and sha256_digest(body) != config_digest:
            raise BadResponse(
                f"{self._host(ref)} sent a config blob whose sha256 does not match {config_digest}",
                host=ref.registry,
            )
        try:
            config = json.loads(body)
        except ValueError:
            return None
        if not isinstance(config, dict):
            return None
        os_, arch, variant = (config.get(k) for k in ("os", "architecture", "variant"))
        if not isinstance(os_, str) or not isinstance(arch, str):
            return None
        text = f"{os_}/{arch}" + (f"/{variant}" if isinstance(variant, str) and variant else "")
        try:
            return parse_platform(text)
        except ValueError:
            return None

    def list_tags(self, ref: ImageRef, page_size: int = 1000) -> tuple[list[str], bool]:
        """Every tag of the repository, following `Link: <…>; rel="next"` pagination for at
        most MAX_TAG_PAGES pages; returns (tags, complete)."""
        path = f"/v2/{ref.repository}/tags/list?n={page_size}"
        tags: list[str] = []
        for _ in range(MAX_TAG_PAGES):
            body, _, headers = self._get(
                ref, path, {"Accept": "application/json"}, limit=MAX_TAG_LIST_BYTES
            )
            try:
                page = json.loads(body).get("tags") or []
            except (ValueError, AttributeError):
                raise BadResponse(
                    f"{self._host(ref)}: {ref.name}: the tag list is not JSON",
                    host=ref.registry,
                ) from None
            tags.extend(t for t in page if isinstance(t, str))
            following = _next_link(headers.get("link"))
            if following is None:
                return tags, True
            path = following
        return tags, False

    def image_created(self, ref: ImageRef, seen: Resolved) -> datetime | None:
        """The `created` time of the image a tag points at; evidence for a pin's age."""
        return parse_time(self.image_facts(ref, seen.digest, seen.platforms).created)

    def close(self) -> None:
        self._closed = True  # no more retries: a stopping daemon must not wait for backoffs
        with self._lock:
            endpoints, self._endpoints = list(self._endpoints.values()), {}
        for endpoint in endpoints:
            endpoint.client.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- HTTP -------------------------------------------------------------------------------

    @staticmethod
    def _host(ref: ImageRef) -> str:
        return ref.api_host

    def _endpoint(self, ref: ImageRef) -> _Endpoint:
        endpoint = self._endpoints.get(ref.registry)
        if endpoint is not None:
            return endpoint
        with self._lock:
            endpoint = self._endpoints.get(ref.registry)
            if endpoint is None:
                endpoint = self._make_endpoint(ref)
                self._endpoints[ref.registry] = endpoint
        return endpoint

    def _make_endpoint(self, ref: ImageRef) -> _Endpoint:
        settings = self.registries.get(ref.registry) or RegistryConfig(host=ref.registry)
        host = ref.api_host
        insecure = settings.insecure
        scheme = "http" if is_loopback(host) else "https"
        if settings.endpoint:  # a mirror or pull-through cache answers for this registry
            scheme, _, host = settings.endpoint.partition("://")
        verify: ssl.SSLContext | bool = True
        if insecure:
            verify = False
        elif settings.ca_file:
            verify = ssl.create_default_context(cafile=settings.ca_file)
        credentials = self._credentials(ref.registry)
        auth = RegistryAuth(host, credentials)
        limit = settings.concurrency or self._concurrency
        observer = self._observer
        registry = ref.registry

        def on_request(request: httpx.Request) -> None:
            request.extensions["tagwatch.start"] = time.perf_counter()

        def on_response(response: httpx.Response) -> None:
            if observer is not None:
                start = response.request.extensions.get("tagwatch.start", time.perf_counter())
                observer(
                    registry,
                    response.request.method,
                    str(response.status_code),
                    time.perf_counter() - start,
                    response.headers,
                )

        client = httpx.Client(
            auth=auth,
            timeout=httpx.Timeout(self.timeout),
            verify=verify,
            follow_redirects=True,
            transport=self._transport,
            limits=httpx.Limits(max_connections=limit + 2, max_keepalive_connections=limit + 2),
            headers={"User-Agent": f"tagwatch/{__version__}"},
            event_hooks={"request": [on_request], "response": [on_response]},
            trust_env=False,
        )
        gate = Gate(ref.registry, settings.rate)
        return _Endpoint(client, f"{scheme}://{host}", auth, insecure, gate, verify)

    def _send(
        self,
        ref: ImageRef,
        method: str,
        path: str,
        headers: Mapping[str, str],
        stream: bool = False,
    ) -> httpx.Response:
        """One request under the registry's gate, with bounded retries.

        Transient failures (connect errors, timeouts, resets, HTTP 500/502/503/504) are tried
        again up to `retries` times with exponential backoff and jitter, then raised as
        RegistryUnavailable. A 429 closes the registry's gate and raises RateLimited at once:
        retrying a rate limit is how clients get banned."""
        endpoint = self._endpoint(ref)
        attempt = 0
        while True:
            endpoint.gate.wait(method)
            wait: float | None = None
            try:
                fast = self._fast_head(endpoint, ref, path, headers) if method == "HEAD" else None
                response = fast or self._send_once(endpoint, ref, method, path, headers, stream)
                status = response.status_code
                if status == 429:
                    response.close()
                    error = self._error(ref, response, b"")
                    closed_for = endpoint.gate.rate_limited(
                        _retry_after(response.headers.get("retry-after"))
                    )
                    log.warning(
                        "%s: HTTP 429; no requests to it for %.0fs", ref.registry, closed_for
                    )
                    raise error
                endpoint.gate.answered(
                    response.headers.get("ratelimit-remaining"),
                    response.headers.get("ratelimit-limit"),
                )
                if status not in RETRY_STATUSES:
                    return response
                response.close()
                wait = _retry_after(response.headers.get("retry-after"))
                raise self._error(ref, response, b"")
            except RegistryUnavailable:
                if attempt >= self.retries or self._closed:
                    raise
            backoff = min(MAX_BACKOFF, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)
            self._sleep(min(wait, MAX_BACKOFF) if wait is not None else backoff)
            attempt += 1

    def _fast_head(
        self, endpoint: _Endpoint, ref: ImageRef, path: str, headers: Mapping[str, str]
    ) -> httpx.Response | None:
        """A HEAD over this thread's own keep-alive `http.client` connection, when the
        Authorization it needs is already known (no challenge, no token to fetch).

        httpx's connection pool costs about 1 ms of CPU per request under 16 threads
        (encode/httpcore#1035); the steady state of a cycle is nothing but HEADs, so they take
        this path, and everything else (challenges, redirects, GETs, errors) httpx's. Returns
        None — and the caller uses httpx — when the answer needs the full flow (401, 3xx) or
        the connection failed before an answer."""
        if self._transport is not None:  # an injected transport (tests) sees every request
            return None
        authorization = endpoint.auth.authorization(path)
        if authorization is None:
            return None
        scheme, _, host = endpoint.base.partition("://")
        connections = self._local.__dict__.setdefault("connections", {})
        conn = connections.get(endpoint.base)
        if conn is None:
            if scheme == "https":
                context = (
                    endpoint.verify
                    if isinstance(endpoint.verify, ssl.SSLContext)
                    else (ssl.create_default_context() if endpoint.verify else _unverified())
                )
                conn = http.client.HTTPSConnection(host, timeout=self.timeout, context=context)
            else:
                conn = http.client.HTTPConnection(host, timeout=self.timeout)
            connections[endpoint.base] = conn
        sent = {**headers, "User-Agent": f"tagwatch/{__version__}"}
        if authorization:
            sent["Authorization"] = authorization
        started = time.perf_counter()
        try:
            conn.request("HEAD", path, headers=sent)
            answer = conn.getresponse()
            answer.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            connections.pop(endpoint.base, None)
            return None  # httpx tries again, with its error handling and retries
        if answer.will_close:
            conn.close()
            connections.pop(endpoint.base, None)
        if answer.status == 401 or 300 <= answer.status < 400:
            return None
        # No httpx.Request attached: building one (URL parsing) cost more than the request.
        response = httpx.Response(answer.status, headers=answer.getheaders())
        if self._observer is not None:
            self._observer(
                ref.registry,
                "HEAD",
                str(answer.status),
                time.perf_counter() - started,
                response.headers,
            )
        return response

    def _send_once(
        self,
        endpoint: _Endpoint,
        ref: ImageRef,
        method: str,
        path: str,
        headers: Mapping[str, str],
        stream: bool,
    ) -> httpx.Response:
        try:
            return self._request(endpoint, method, path, headers, stream)
        except httpx.ConnectError as exc:
            if not (endpoint.insecure and endpoint.base.startswith("https://")):
                raise RegistryUnavailable(str(exc), host=ref.registry) from None
        # An insecure registry may speak plain http only: fall back once, and remember.
        endpoint.base = "http://" + endpoint.base[len("https://") :]
        try:
            return self._request(endpoint, method, path, headers, stream)
        except httpx.ConnectError as exc:
            raise RegistryUnavailable(str(exc), host=ref.registry) from None

    def _request(
        self,
        endpoint: _Endpoint,
        method: str,
        path: str,
        headers: Mapping[str, str],
        stream: bool = False,
    ) -> httpx.Response:
        host = endpoint.base.split("://", 1)[1]
        started = time.perf_counter()
        try:
            request = endpoint.client.build_request(method, endpoint.base + path, headers=headers)
            return endpoint.client.send(request, stream=stream)
        except RegistryError:
            raise
        except httpx.TimeoutException as exc:
            self._observe_failure(endpoint, method, started)
            kind = type(exc).__name__.replace("Timeout", " timeout").lower().strip()
            raise RegistryUnavailable(
                f"{host}: {kind} after {self.timeout:g}s ({method} {path})", host=host
            ) from None
        except httpx.ConnectError as exc:
            self._observe_failure(endpoint, method, started)
            raise httpx.ConnectError(f"{host}: cannot connect: {exc}") from exc
        except httpx.TransportError as exc:
            self._observe_failure(endpoint, method, started)
            raise RegistryUnavailable(
                f"{host}: {type(exc).__name__}: {exc or 'connection failed'} ({method} {path})",
                host=host,
            ) from None

    def _observe_failure(self, endpoint: _Endpoint, method: str, started: float) -> None:
        if self._observer is not None:
            registry = next((r for r, e in self._endpoints.items() if e is endpoint), "")
            self._observer(registry, method, "error", time.perf_counter() - started, None)

    def _get(
        self, ref: ImageRef, path: str, headers: Mapping[str, str], limit: int = MAX_MANIFEST_BYTES
    ) -> tuple[bytes, str, httpx.Headers]:
        attempt = 0
        while True:
            response = self._send(ref, "GET", path, headers, stream=True)
            try:
                body = self._read(ref, response, path, limit)
            except RegistryUnavailable:  # reset or timeout mid-body: transient too
                if attempt >= self.retries or self._closed:
                    raise
                self._sleep(min(MAX_BACKOFF, self.backoff * 2**attempt) * random.uniform(0.5, 1))
                attempt += 1
                continue
            if response.status_code != 200:
                raise self._error(ref, response, body)
            return body, _content_type(response), response.headers

    def _read(self, ref: ImageRef, response: httpx.Response, path: str, limit: int) -> bytes:
        try:
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise BadResponse(
                        f"{self._host(ref)}: answer to GET {path} is over {limit} bytes",
                        host=ref.registry,
                    )
                chunks.append(chunk)
        except httpx.TimeoutException:
            raise RegistryUnavailable(
                f"{self._host(ref)}: read timeout after {self.timeout:g}s (GET {path})",
                host=ref.registry,
            ) from None
        except httpx.TransportError as exc:
            raise RegistryUnavailable(
                f"{self._host(ref)}: {type(exc).__name__} while reading GET {path}",
                host=ref.registry,
            ) from None
        finally:
            response.close()
        return b"".join(chunks)

    def _get_tag(self, ref: ImageRef) -> Resolved:
        """GET the tag's manifest and hash the exact bytes (no usable digest header)."""
        path = f"/v2/{ref.repository}/manifests/{ref.tag}"
        body, media_type, headers = self._get(ref, path, {"Accept": ACCEPT})
        if not is_manifest_type(media_type):
            raise BadResponse(
                f"{self._host(ref)} answered {media_type or 'no content type'} for {ref}, "
                "not a manifest",
                host=ref.registry,
            )
        header = headers.get("docker-content-digest", "").strip()
        if media_type == MEDIA_DOCKER_V1_SIGNED and _DIGEST.fullmatch(header):
            # Signed schema 1: the digest covers the payload without signatures, which only
            # the registry's header states; the body hash changes with every signature.
            digest = header
        else:
            digest = sha256_digest(body)
            if _DIGEST.fullmatch(header) and header.startswith("sha256:") and header != digest:
                raise BadResponse(
                    f"{self._host(ref)}: {ref}: Docker-Content-Digest {header} does not match "
                    f"the manifest's sha256 {digest}",
                    host=ref.registry,
                )
        try:
            manifest = parse_manifest(body, media_type)
        except ManifestError as exc:
            raise BadResponse(f"{self._host(ref)}: {ref}: {exc}", host=ref.registry) from None
        return Resolved(digest, manifest.media_type, manifest.platforms)

    def _error(self, ref: ImageRef, response: httpx.Response, body: bytes) -> RegistryError:
        status = response.status_code
        host = self._host(ref)
        code, detail = _error_detail(body)
        where = f"{ref.name}:{ref.tag}" if ref.tag else ref.name
        suffix = f" ({detail})" if detail else ""
        if status == 404:
            if code in _NOT_FOUND_CODES:
                return NotFound(f"{where}: tag not found", host=ref.registry)
            kind = _content_type(response) or "no content type"
            return BadResponse(
                f"{host} answered 404 with {kind} for {where}, not a registry error",
                host=ref.registry,
            )
        if status == 401:
            creds = self._endpoint(ref).auth.credentials
            if creds is None:
                why = "anonymous access refused: the repository does not exist or needs credentials"
            else:
                why = (
                    f"credentials for user '{creds.username}' were refused or give no access "
                    "to this repository"
                )
            return AuthError(f"{host}: {where}: {why}{suffix}", host=ref.registry)
        if status == 403:
            return AuthError(
                f"{host}: {where}: access denied (HTTP 403){suffix}", host=ref.registry
            )
        if status == 429:
            retry = _retry_after(response.headers.get("retry-after"))
            when = f"; retry after {retry:.0f}s" if retry is not None else ""
            return RateLimited(
                f"{host}: rate limited (HTTP 429){when}{suffix}",
                host=ref.registry,
                retry_after=retry,
            )
        if status >= 500:
            return RegistryUnavailable(
                f"{host}: HTTP {status} {response.reason_phrase} for {where}{suffix}",
                host=ref.registry,
            )
        return BadResponse(f"{host}: HTTP {status} for {where}{suffix}", host=ref.registry)


def _unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _next_link(value: str | None) -> str | None:
    """The path of a `Link: </v2/x/tags/list?last=a&n=100>; rel="next"` header."""
    if not value:
        return None
    match = _LINK_NEXT.search(value)
    if match is None:
        return None
    url = httpx.URL(match.group(1))
    return url.raw_path.decode("ascii")


def credentials_for(config: Config) -> Callable[[str], Credentials | None]:
    """Credentials for a registry host: the config's `[[registry]]`, else what
    `docker login` stored in ~/.docker/config.json (read when the host is first used)."""

    def lookup(host: str) -> Credentials | None:
        settings = config.registry(host)
        if settings is not None and settings.username and settings.password is not None:
            return Credentials(
                settings.username, settings.password.read(), source=f"config [[registry]] {host}"
            )
        return docker_credentials(host)

    return lookup


def client_for(config: Config, observer: RequestObserver | None = None) -> RegistryClient:
    """The registry client a config asks for."""
    return RegistryClient(
        timeout=config.settings.timeout,
        registries=config.registries,
        credentials=credentials_for(config),
        concurrency=config.settings.concurrency,
        observer=observer,
    )
