"""The registry client: resolves a tag to its digest (and, for an index, its platform image
digests) over the distribution HTTP API. Returns data only; deciding is the core's job.

Cost of a check, by design:
* an unchanged tag costs exactly one `HEAD /v2/<name>/manifests/<tag>`;
* a tag whose index digest is new costs one GET more (the index, by digest, verified);
* only a registry that omits `Docker-Content-Digest` gets a GET of the tag instead of a HEAD.

A registry may be hostile, and whatever it sends:
* the public methods raise `RegistryError` subclasses only: every other exception an answer
  can cause (httpx's, decoding, JSON, recursion, memory) becomes a `BadResponse` (or a
  `RegistryUnavailable` where it is transient) naming the registry and what was wrong, its
  text made one safe line (`core.text.clean`);
* every request, with its token request and redirects, ends within `timeout` as a whole
  (`deadline.py`); every body is read up to a cap (`MAX_*_BYTES` here, MAX_TOKEN_BYTES in
  `auth.py`); JSON is parsed with a depth limit (`core.jsondoc`);
* credentials go only to the registry and to the token service its own challenge names
  (`auth.py`).

Connections are owned per registry (`_Endpoint`): one `httpx.Client` and a pool of kept
connections for the steady-state HEADs (`heads.py`), kept alive across cycles and closed by
`close_idle` (the daemon calls it when a registry's next cycle is further away than
IDLE_TIMEOUT) and `close`. A cycle's HEADs go out together (`resolve_many`), multiplexed on
one thread; httpx is loaded only for what a HEAD does not settle (a challenge to answer, a
token to fetch, a GET, a redirect, an error to retry).

Every HTTP request is logged at DEBUG on `tagwatch.registry`: method, URL (query values other
than paging and scope left out), status and milliseconds; never a header.
"""

from __future__ import annotations

import functools
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar

from tagwatch import __version__
from tagwatch.config import Config, RegistryConfig
from tagwatch.core.jsondoc import JSONError, loads
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
from tagwatch.core.refs import ImageRef, is_loopback, is_metadata_host, parse_platform
from tagwatch.core.text import clean
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
from tagwatch.registry.deadline import within
from tagwatch.registry.dockercreds import Credentials, docker_credentials
from tagwatch.registry.gate import Gate
from tagwatch.registry.heads import (
    WAIT,
    Answer,
    CannotConnect,
    ClosedEarly,
    HeadJob,
    HeadPool,
    ProtocolError,
    RequestMaker,
    Slots,
    Wait,
    exchange,
    request_bytes,
    run_heads,
)

if TYPE_CHECKING:
    import ssl

    import httpx

    from tagwatch.core.changes import ImageFacts

__all__ = ["RegistryClient", "RequestObserver"]

log = logging.getLogger("tagwatch.registry")

_DIGEST = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_NOT_FOUND_CODES = {"MANIFEST_UNKNOWN", "NAME_UNKNOWN", "NOT_FOUND", "TAG_UNKNOWN"}
RETRY_STATUSES = frozenset({500, 502, 503, 504})
# Caps on what is read, from what registries send: manifests per the distribution spec
# (clients should accept 4 MB; real indexes are a few KB); image configs are a few KB (tens
# with a long history); a tag list page of 1,000 tags is about 30 KB.
MAX_CONFIG_BYTES = 1024 * 1024
MAX_TAG_LIST_BYTES = 4 * 1024 * 1024
MAX_TAG_PAGES = 20  # 20,000 tags at n=1000: node on Docker Hub has about 9,000
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
MAX_BACKOFF = 8.0  # seconds; the longest wait between two tries of one request
_LOGGED_QUERY = frozenset({"n", "last", "service", "scope"})

P = ParamSpec("P")
T = TypeVar("T")


class Headers(Protocol):
    def get(self, key: str, default: Any = None, /) -> Any: ...


class RequestObserver(Protocol):
    """Told about every HTTP request made (metrics): code is the status, or "error"."""

    def __call__(
        self, registry: str, method: str, code: str, seconds: float, headers: Headers | None
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class _Answer:
    """What a request brought back (its body read and capped), nothing that holds a
    connection or a socket."""

    status_code: int
    headers: Headers
    body: bytes = b""
    reason_phrase: str = ""


class _Endpoint:
    """One registry: where it is, how it authenticates and is paced, and its connections."""

    def __init__(
        self,
        registry: str,
        base: str,
        auth: RegistryAuth,
        gate: Gate,
        *,
        insecure: bool,
        make_tls: Callable[[], ssl.SSLContext],
        limit: int,
        timeout: float,
        make_client: Callable[[_Endpoint], httpx.Client],
    ) -> None:
        self.registry = registry
        self.base = base  # "https://ghcr.io"
        self.auth = auth
        self.gate = gate
        self.insecure = insecure
        self.limit = limit
        self._timeout = timeout
        self._make_tls = make_tls
        self._tls: ssl.SSLContext | None = None
        self._tls_lock = threading.Lock()
        self._make_client = make_client
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._in_flight = 0
        self._closed = False
        self.heads = HeadPool(base, timeout=timeout, size=limit + 2, tls=self.tls_context)

    def tls_context(self) -> ssl.SSLContext:
        """The registry's TLS context, made once when first needed (never for plain http):
        every connection, httpx's and the HEAD pool's, uses it."""
        with self._tls_lock:
            if self._tls is None:
                self._tls = self._make_tls()
            return self._tls

    @contextmanager
    def busy(self) -> Iterator[httpx.Client]:
        """The httpx client, counted as in use until the block ends."""
        with self._lock:
            if self._closed:
                raise RegistryUnavailable(f"{self.registry}: not checked: tagwatch is stopping")
            if self._client is None:
                self._client = self._make_client(self)
            client = self._client
            self._in_flight += 1
        try:
            yield client
        finally:
            with self._lock:
                self._in_flight -= 1

    def use_http(self) -> None:
        """An insecure registry that speaks plain http only: from now on, http."""
        with self._lock:
            self.base = "http://" + self.base.removeprefix("https://")
            old, self.heads = (
                self.heads,
                HeadPool(self.base, timeout=self._timeout, size=self.limit + 2),
            )
        old.close()

    def close_idle(self) -> None:
        self.heads.close_idle()
        with self._lock:
            if self._in_flight or self._client is None:
                return
            client, self._client = self._client, None
        client.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
        self.heads.close()
        if client is not None:
            client.close()  # idle connections go; a read blocked in another thread may not

    @property
    def connections_opened(self) -> int:
        return self.heads.opened


def _contained(
    method: Callable[Concatenate[RegistryClient, ImageRef, P], T],
) -> Callable[Concatenate[RegistryClient, ImageRef, P], T]:
    """A public method raises RegistryError subclasses only, whatever the registry sent."""

    @functools.wraps(method)
    def wrapper(self: RegistryClient, ref: ImageRef, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(self, ref, *args, **kwargs)
        except RegistryError:
            raise
        except Exception as exc:  # noqa: BLE001 - the registry's answer caused it: contained
            raise self._uncontained(ref, exc) from None

    return wrapper


def _content_type(answer: _Answer | Answer | httpx.Response) -> str:
    value = answer.headers.get("content-type") or ""
    return str(value).split(";", 1)[0].strip().lower()


def _error_detail(body: bytes) -> tuple[str | None, str]:
    """(first error code, 'CODE: message') from a registry error body, if it is one; the
    text cleaned for showing."""
    try:
        errors = loads(body).get("errors")
        first = errors[0]
        code = clean(first.get("code") or "", 40)
        message = clean(first.get("message") or "", 200)
    except (JSONError, AttributeError, TypeError, IndexError, KeyError):
        return None, ""
    return code or None, f"{code}: {message}" if message else code


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _pick_platform(platforms: Mapping[str, str], prefer: Sequence[str]) -> str:
    """The first of `prefer` the index has, else linux/amd64, else the first by name."""
    return next((p for p in (*prefer, "linux/amd64") if p in platforms), min(platforms))


def _shown_url(url: httpx.URL) -> str:
    """A URL for the request log: no user info, and of the query only the paging and scope
    values (a redirect to storage carries signatures in its query)."""
    query = "&".join(
        f"{key}={clean(value, 80) if key in _LOGGED_QUERY else '…'}"
        for key, value in url.params.multi_items()
    )
    shown = f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}{url.path}"
    return clean(f"{shown}?{query}" if query else shown, 300)


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
        self._endpoints: dict[str, _Endpoint] = {}
        self._making: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    # --- public API -------------------------------------------------------------------------

    @_contained
    def resolve(
        self,
        ref: ImageRef,
        known: Resolved | None = None,
        *,
        head: _Answer | RegistryError | None = None,
    ) -> Resolved:
        """The digest `ref`'s tag points at now. `known` is what it pointed at before: when
        the digest is unchanged its platforms are reused and nothing more is fetched.
        Raises NotFound when the registry says the tag does not exist. `head`: the answer to
        (or the failure of) a HEAD of the tag already made (`resolve_many`), taken as this
        request's first try."""
        assert ref.tag is not None
        path = f"/v2/{ref.repository}/manifests/{ref.tag}"
        answer = self._call(ref, "HEAD", path, {"Accept": ACCEPT}, first=head)
        settled = self._settled(ref, known, answer)
        if settled is not None:
            return settled
        status = answer.status_code
        if status == 200:  # no usable digest header, or an index whose platforms are not known
            media_type = _content_type(answer)
            digest = str(answer.headers.get("docker-content-digest") or "").strip()
            if not _DIGEST.fullmatch(digest) or media_type == MEDIA_DOCKER_V1_SIGNED:
                return self._get_tag(ref)
            manifest = self.manifest(ref, digest)
            return Resolved(digest, manifest.media_type, manifest.platforms)
        if status in (405, 501):  # HEAD not supported: GET and hash
            return self._get_tag(ref)
        if status == 404:
            # A HEAD error has no body; a 404 that is not a registry's JSON may be a proxy's
            # page. GET once to tell a missing tag from a broken path.
            return self._get_tag(ref)
        raise self._error(ref, answer)

    def _settled(self, ref: ImageRef, known: Resolved | None, answer: _Answer) -> Resolved | None:
        """What a HEAD's answer settles by itself: the digest of an image, or of an index whose
        platforms `known` has; NotFound or BadResponse (not a manifest) raised. None when it
        takes another request, or is an error `resolve` raises."""
        status = answer.status_code
        if status == 200:
            media_type = _content_type(answer)
            if not is_manifest_type(media_type):
                raise self._not_a_manifest(ref, media_type)
            digest = str(answer.headers.get("docker-content-digest") or "").strip()
            if not _DIGEST.fullmatch(digest) or media_type == MEDIA_DOCKER_V1_SIGNED:
                return None
            if media_type in INDEX_TYPES:
                if known is not None and known.digest == digest and known.platforms:
                    return Resolved(digest, media_type, dict(known.platforms))
                return None
            return Resolved(digest, media_type, {})
        if status == 404 and _content_type(answer) == "application/json":
            raise NotFound(f"{ref.name}:{ref.tag}: tag not found")
        return None

    def resolve_many(
        self,
        items: Sequence[tuple[ImageRef, Resolved | None]],
        *,
        limit: int,
        caps: Mapping[str, int],
        slots: Slots | None = None,
        abort: threading.Event | None = None,
    ) -> list[Resolved | RegistryError | Callable[[], Resolved]]:
        """`resolve` for many tags at once, `(ref, known)` each: their HEADs are sent together
        on this thread (`heads.run_heads`: at most `limit` in flight, `caps[registry]` per
        registry, each holding one of `slots`), and each answer is settled here as it comes.

        Per item: what the tag resolved to; the RegistryError it failed with (NotFound: the
        tag does not exist); or, where its HEAD does not settle it, a call that finishes it
        as `resolve` does, taking the HEAD made as its first try — for the caller's worker
        threads: a GET to make, a try to repeat after a 5xx or a timeout, a challenge to
        answer, a token to fetch, a redirect. A HEAD is not sent here (its call does all of
        `resolve`) when its Authorization needs a token not yet fetched, when the registry's
        rate is capped or it is backing off after a 429, once the registry's first request
        got no answer, and through an injected transport (tests, which see every request).

        A registry whose scheme is not known yet gets one request first, without
        Authorization (as httpx's flow probes it): its answer says none is needed, or names
        the scheme; its other HEADs wait for it. Once `abort` is set no request starts."""
        if self._transport is not None or not items:
            return [functools.partial(self.resolve, ref, known) for ref, known in items]
        # None: not settled here (yet); made the whole way at the end. Not a call per item
        # up front: at 100,000 tags those were ~14 MB held through the whole resolve.
        results: list[Resolved | RegistryError | Callable[[], Resolved] | None] = [None] * len(
            items
        )
        endpoints: list[_Endpoint | None] = []
        for index, (ref, _) in enumerate(items):
            try:
                endpoints.append(self._endpoint(ref))
            except RegistryError as exc:
                endpoints.append(None)
                results[index] = exc
        paths = [f"/v2/{ref.repository}/manifests/{ref.tag}" for ref, _ in items]
        probing: dict[str, int] = {}  # registry -> the item whose HEAD learns its scheme
        stopped: set[str] = set()  # registries whose HEADs are no longer sent here
        agent = f"tagwatch/{__version__}"
        makers: dict[tuple[str, str], RequestMaker] = {}  # (registry, Authorization)

        def prepare(index: int) -> bytes | Wait | None:
            endpoint = endpoints[index]
            registry = items[index][0].registry
            if endpoint is None or registry in stopped or not endpoint.gate.may_start_now():
                return None
            authorization = endpoint.auth.authorization(paths[index])
            if authorization is None:
                if endpoint.auth.scheme is not None:
                    return None  # a token to fetch: the full flow does, once per repository
                if registry in probing:
                    return WAIT  # its answer says how this registry authenticates
                probing[registry] = index
                authorization = ""
            try:
                maker = makers.get((registry, authorization))
                if maker is None:
                    headers = {"Accept": ACCEPT, "User-Agent": agent}
                    if authorization:
                        headers["Authorization"] = authorization
                    maker = makers[registry, authorization] = RequestMaker(
                        endpoint.heads.host, headers
                    )
                return maker.make(paths[index])
            except ValueError:
                return None

        def settle(index: int, outcome: Answer | BaseException | None, seconds: float) -> None:
            ref, known = items[index]
            endpoint = endpoints[index]
            assert endpoint is not None
            probe = probing.get(ref.registry) == index
            if probe:
                del probing[ref.registry]
            try:
                result = self._settle_head(endpoint, ref, known, paths[index], outcome, seconds)
            except RegistryError as exc:
                result = exc
            except Exception as exc:  # noqa: BLE001 - the registry's answer caused it
                result = self._uncontained(ref, exc)
            if probe and (outcome is None or isinstance(outcome, BaseException)):
                stopped.add(ref.registry)  # no answer to learn from: the full flow, as before
            elif probe and isinstance(outcome, Answer):
                learns = endpoint.auth.learned(
                    outcome.status, outcome.headers.get_list("www-authenticate")
                )
                if outcome.status == 401 and not learns:  # no challenge to answer: it stands
                    result = self._error(ref, _Answer(401, outcome.headers, b"", outcome.reason))
            if isinstance(result, RateLimited) and ref.registry not in stopped:
                stopped.add(ref.registry)
            results[index] = result

        live = [i for i, endpoint in enumerate(endpoints) if endpoint is not None]
        shared: dict[str, HeadJob] = {}  # one per registry (jobs are frozen), not one per tag
        for i in live:
            registry = items[i][0].registry
            if registry not in shared:
                shared[registry] = HeadJob(registry, endpoints[i].heads)  # type: ignore[union-attr]
        run_heads(
            [shared[items[i][0].registry] for i in live],
            limit=limit,
            caps=caps,
            timeout=self.timeout,
            prepare=lambda job: prepare(live[job]),
            settle=lambda job, outcome, seconds: settle(live[job], outcome, seconds),
            slots=slots,
            stopping=lambda: self._closed or (abort is not None and abort.is_set()),
        )
        return [
            functools.partial(self.resolve, *items[i]) if result is None else result
            for i, result in enumerate(results)
        ]

    def _settle_head(
        self,
        endpoint: _Endpoint,
        ref: ImageRef,
        known: Resolved | None,
        path: str,
        outcome: Answer | BaseException | None,
        seconds: float,
    ) -> Resolved | RegistryError | Callable[[], Resolved]:
        """What one HEAD of `resolve_many` comes to (see there)."""
        if outcome is None:  # not sent here, or abandoned: the whole way (or "abandoned")
            return functools.partial(self.resolve, ref, known)
        if isinstance(outcome, BaseException):
            self._observe_failure(endpoint, "HEAD", time.perf_counter() - seconds, path)
            failure = self._head_failure(endpoint, ref, path, outcome)
            if failure is None:
                return functools.partial(self.resolve, ref, known)
            return functools.partial(self.resolve, ref, known, head=failure)
        status = outcome.status
        if log.isEnabledFor(logging.DEBUG):
            # The path is tagwatch's own (repository and tag from the config): shown as is.
            log.debug(
                "HEAD %s://%s%s -> %d in %.0f ms",
                endpoint.heads.scheme,
                endpoint.heads.host,
                path,
                status,
                seconds * 1000,
            )
        if self._observer is not None:
            self._observer(ref.registry, "HEAD", str(status), seconds, outcome.headers)
        answer = _Answer(status, outcome.headers, b"", outcome.reason)
        if status == 401 or 300 <= status < 400:
            # A challenge or a redirect: the full flow (a 401 that stands: resolve_many).
            return functools.partial(self.resolve, ref, known)
        if status == 429:
            return self._rate_limited(endpoint, ref, answer)
        endpoint.gate.answered(
            outcome.headers.get("ratelimit-remaining"), outcome.headers.get("ratelimit-limit")
        )
        if status in RETRY_STATUSES:
            return functools.partial(self.resolve, ref, known, head=answer)
        settled = self._settled(ref, known, answer)
        if settled is not None:
            return settled
        if status in (200, 404, 405, 501):
            return functools.partial(self.resolve, ref, known, head=answer)
        return self._error(ref, answer)

    def _head_failure(
        self, endpoint: _Endpoint, ref: ImageRef, path: str, exc: BaseException
    ) -> RegistryError | None:
        """A HEAD that got no answer, as the error its first try ends with; None where the
        full flow is to make it instead (an answer only httpx can read, an insecure registry
        that may speak plain http only)."""
        host = endpoint.heads.host
        what = f"(HEAD {path})"
        if isinstance(exc, TimeoutError):
            return RegistryUnavailable(f"{host}: {exc} timeout after {self.timeout:g}s {what}")
        if isinstance(exc, ProtocolError):
            return None
        if isinstance(exc, CannotConnect):
            if endpoint.insecure and endpoint.base.startswith("https://"):
                return None
            return RegistryUnavailable(f"{host}: cannot connect: {clean(str(exc), 200)}")
        if isinstance(exc, ClosedEarly):
            return RegistryUnavailable(f"{host}: {exc} {what}")
        return RegistryUnavailable(
            f"{host}: {type(exc).__name__}: {clean(str(exc), 200) or 'connection failed'} {what}"
        )

    def _uncontained(self, ref: ImageRef, exc: Exception) -> BadResponse:
        log.debug("unexpected error reading %s from %s", ref, ref.api_host, exc_info=True)
        return BadResponse(
            f"{ref.api_host}: {ref}: the answer could not be read "
            f"({type(exc).__name__}: {clean(str(exc), 120) or 'no detail'})",
        )

    @_contained
    def manifest(self, ref: ImageRef, digest: str) -> Manifest:
        """GET a manifest by digest, verify the bytes against the digest, parse it."""
        path = f"/v2/{ref.repository}/manifests/{digest}"
        answer = self._get(ref, path, {"Accept": ACCEPT}, MAX_MANIFEST_BYTES)
        if digest.startswith("sha256:") and sha256_digest(answer.body) != digest:
            raise BadResponse(
                f"{ref.api_host} sent a manifest whose sha256 does not match {digest}",
            )
        try:
            return parse_manifest(answer.body, _content_type(answer))
        except ManifestError as exc:
            raise BadResponse(f"{ref.api_host}: {ref.name}@{digest}: {clean(exc)}") from None

    @_contained
    def exists(self, ref: ImageRef, digest: str) -> bool:
        """Whether the registry still serves a manifest by digest (a pin's)."""
        path = f"/v2/{ref.repository}/manifests/{digest}"
        answer = self._call(ref, "HEAD", path, {"Accept": ACCEPT})
        if answer.status_code == 200:
            return True
        if answer.status_code == 404:
            return False
        raise self._error(ref, answer)

    @_contained
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
            platform = _pick_platform(platforms, prefer)
            image = platforms[platform]
        manifest = self.manifest(ref, image)
        if manifest.is_index:  # platforms were not known: pick from the index itself
            platform = _pick_platform(manifest.platforms, prefer)
            image = manifest.platforms[platform]
            manifest = self.manifest(ref, image)
        created: str | None = None
        labels: dict[str, str] = {}
        if manifest.config_digest is not None:
            path = f"/v2/{ref.repository}/blobs/{manifest.config_digest}"
            body = self._get(ref, path, {}, MAX_CONFIG_BYTES).body
            try:
                config = loads(body)
            except JSONError as exc:
                raise BadResponse(
                    f"{ref.api_host}: {ref.name}: config {clean(manifest.config_digest, 80)} "
                    f"is {exc}",
                ) from None
            if isinstance(config, dict):
                if isinstance(config.get("created"), str):
                    created = config["created"]
                inner = config.get("config")
                found = inner.get("Labels") if isinstance(inner, dict) else None
                if isinstance(found, dict):
                    labels = {str(k): v for k, v in found.items() if isinstance(v, str)}
        from tagwatch.core.changes import ImageFacts  # a move's details only

        return ImageFacts(image, platform, created, labels, manifest.annotations, manifest.layers)

    @_contained
    def config_platform(self, ref: ImageRef, config_digest: str) -> str | None:
        """The platform (`os/arch[/variant]`, normalised) an image's config blob declares;
        None when it declares none we can read. The blob is verified against its digest."""
        path = f"/v2/{ref.repository}/blobs/{config_digest}"
        body = self._get(ref, path, {}, MAX_CONFIG_BYTES).body
        if config_digest.startswith("sha256:") and sha256_digest(body) != config_digest:
            raise BadResponse(
                f"{ref.api_host} sent a config blob whose sha256 does not match {config_digest}",
            )
        try:
            config = loads(body)
        except JSONError:
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

    @_contained
    def list_tags(self, ref: ImageRef, page_size: int = 1000) -> tuple[list[str], bool]:
        """Every tag of the repository, following `Link: <…>; rel="next"` pagination for at
        most MAX_TAG_PAGES pages; returns (tags, complete). Names that are not tags by the
        reference grammar are left out."""
        path = f"/v2/{ref.repository}/tags/list?n={page_size}"
        tags: list[str] = []
        for _ in range(MAX_TAG_PAGES):
            answer = self._get(ref, path, {"Accept": "application/json"}, MAX_TAG_LIST_BYTES)
            try:
                page = loads(answer.body).get("tags") or []
                if not isinstance(page, list):
                    raise TypeError
            except (JSONError, AttributeError, TypeError) as exc:
                why = f": {exc}" if isinstance(exc, JSONError) else ""
                raise BadResponse(
                    f"{ref.api_host}: {ref.name}: the tag list is not JSON with a list of "
                    f"tags{why}",
                ) from None
            tags.extend(t for t in page if isinstance(t, str) and _TAG.match(t))
            following = _next_link(answer.headers.get("link"))
            if following is None:
                return tags, True
            path = following
        return tags, False

    @_contained
    def image_created(self, ref: ImageRef, seen: Resolved) -> datetime | None:
        """The `created` time of the image a tag points at; evidence for a pin's age."""
        return parse_time(self.image_facts(ref, seen.digest, seen.platforms).created)

    def close_idle(self, registry: str | None = None) -> None:
        """Close the connections to `registry` (or every registry) not in use right now:
        for a registry whose next check is further away than the servers keep them."""
        with self._lock:
            endpoints = [e for r, e in self._endpoints.items() if registry in (None, r)]
        for endpoint in endpoints:
            endpoint.close_idle()

    def connections_opened(self) -> int:
        """HEAD connections opened so far, over every registry (for the benchmark)."""
        with self._lock:
            return sum(e.connections_opened for e in self._endpoints.values())

    def close(self) -> None:
        self._closed = True  # no more retries: a stopping daemon must not wait for backoffs
        with self._lock:
            endpoints, self._endpoints = list(self._endpoints.values()), {}
        for endpoint in endpoints:
            endpoint.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- endpoints --------------------------------------------------------------------------

    def _endpoint(self, ref: ImageRef) -> _Endpoint:
        endpoint = self._endpoints.get(ref.registry)
        if endpoint is not None:
            return endpoint
        with self._lock:
            if self._closed:
                raise RegistryUnavailable(f"{ref.registry}: not checked: tagwatch is stopping")
            making = self._making.setdefault(ref.registry, threading.Lock())
        with making:  # per registry: a credential helper may take seconds
            endpoint = self._endpoints.get(ref.registry)
            if endpoint is None:
                endpoint = self._make_endpoint(ref)
                with self._lock:
                    self._endpoints[ref.registry] = endpoint
        return endpoint

    def _make_endpoint(self, ref: ImageRef) -> _Endpoint:
        settings = self.registries.get(ref.registry) or RegistryConfig(host=ref.registry)
        host = ref.api_host
        scheme = "http" if is_loopback(host) else "https"
        if settings.endpoint:  # a mirror or pull-through cache answers for this registry
            scheme, _, host = settings.endpoint.partition("://")
        auth = RegistryAuth(host, self._credentials(ref.registry))
        return _Endpoint(
            ref.registry,
            f"{scheme}://{host}",
            auth,
            Gate(ref.registry, settings.rate),
            insecure=settings.insecure,
            make_tls=functools.partial(_tls_context, settings),
            limit=settings.concurrency or self._concurrency,
            timeout=self.timeout,
            make_client=self._make_http_client,
        )

    def _make_http_client(self, endpoint: _Endpoint) -> httpx.Client:
        import httpx

        from tagwatch.registry.heads import IDLE_TIMEOUT
        from tagwatch.registry.transport import ACCEPT_ENCODING, BoundedTransport

        observer = self._observer
        registry = endpoint.registry
        limits = httpx.Limits(
            max_connections=endpoint.limit + 2,
            max_keepalive_connections=endpoint.limit + 2,
            keepalive_expiry=IDLE_TIMEOUT,
        )
        transport = BoundedTransport(
            verify=endpoint.tls_context(),
            limits=limits,
            allow_metadata=is_metadata_host(endpoint.base.partition("://")[2]),
            inner=self._transport,
        )

        def on_request(request: httpx.Request) -> None:
            request.extensions["tagwatch.start"] = time.perf_counter()

        def on_response(response: httpx.Response) -> None:
            request = response.request
            seconds = time.perf_counter() - request.extensions.get(
                "tagwatch.start", time.perf_counter()
            )
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "%s %s -> %d in %.0f ms",
                    request.method,
                    _shown_url(request.url),
                    response.status_code,
                    seconds * 1000,
                )
            if observer is not None:
                observer(
                    registry, request.method, str(response.status_code), seconds, response.headers
                )

        return httpx.Client(
            auth=endpoint.auth.flow(),
            timeout=httpx.Timeout(self.timeout),
            follow_redirects=True,
            transport=transport,
            headers={"User-Agent": f"tagwatch/{__version__}", "Accept-Encoding": ACCEPT_ENCODING},
            event_hooks={"request": [on_request], "response": [on_response]},
            trust_env=False,
        )

    # --- requests ---------------------------------------------------------------------------

    def _backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """How long to wait before try `attempt + 2` of a request: the registry's short
        Retry-After, else exponential backoff with jitter; never more than MAX_BACKOFF."""
        if retry_after is not None:
            return min(retry_after, MAX_BACKOFF)
        return min(MAX_BACKOFF, self.backoff * 2.0**attempt) * random.uniform(0.5, 1.0)

    def _get(self, ref: ImageRef, path: str, headers: Mapping[str, str], limit: int) -> _Answer:
        answer = self._call(ref, "GET", path, headers, limit)
        if answer.status_code != 200:
            raise self._error(ref, answer)
        return answer

    def _call(
        self,
        ref: ImageRef,
        method: str,
        path: str,
        headers: Mapping[str, str],
        limit: int | None = None,
        *,
        first: _Answer | RegistryError | None = None,
    ) -> _Answer:
        """One request under the registry's gate, with bounded retries. `limit`: the most
        bytes of body read (None: the transport's default, for error pages); `first`: the
        answer to the first try, or how it failed, when it was made already (`resolve_many`).

        Transient failures (connect errors, timeouts, resets, HTTP 500/502/503/504, a body
        cut short) are tried again up to `retries` times with exponential backoff and jitter,
        then raised as RegistryUnavailable. A 429 closes the registry's gate and raises
        RateLimited at once: retrying a rate limit is how clients get banned."""
        endpoint = self._endpoint(ref)
        attempt = 0
        while True:
            wait: float | None = None
            try:
                if attempt == 0 and first is not None:
                    if isinstance(first, RegistryError):
                        raise first
                    answer = first
                else:
                    endpoint.gate.wait(method)
                    answer = self._attempt(endpoint, ref, method, path, headers, limit)
                status = answer.status_code
                if status == 429:
                    raise self._rate_limited(endpoint, ref, answer)
                endpoint.gate.answered(
                    answer.headers.get("ratelimit-remaining"),
                    answer.headers.get("ratelimit-limit"),
                )
                if status not in RETRY_STATUSES:
                    return answer
                wait = _retry_after(answer.headers.get("retry-after"))
                raise self._error(ref, answer)
            except RegistryUnavailable:
                if attempt >= self.retries or self._closed:
                    raise
            self._sleep(self._backoff(attempt, wait))
            attempt += 1

    def _rate_limited(self, endpoint: _Endpoint, ref: ImageRef, answer: _Answer) -> RegistryError:
        """A 429: the registry's gate closes; the error to raise."""
        error = self._error(ref, answer)
        closed_for = endpoint.gate.rate_limited(_retry_after(answer.headers.get("retry-after")))
        log.warning("%s: HTTP 429; no requests to it for %.0fs", ref.registry, closed_for)
        return error

    def _attempt(
        self,
        endpoint: _Endpoint,
        ref: ImageRef,
        method: str,
        path: str,
        headers: Mapping[str, str],
        limit: int | None,
    ) -> _Answer:
        """One try, as a whole within `timeout`: the request, its token request and
        redirects, and the body."""
        import httpx

        from tagwatch.registry.transport import BodyError

        with within(self.timeout):
            if method == "HEAD":
                fast = self._fast_head(endpoint, ref, path, headers)
                if fast is not None:
                    return fast
            with endpoint.busy() as client:
                response = self._open(endpoint, client, ref, method, path, headers, limit)
                try:
                    body = response.read() if method != "HEAD" else b""
                except BodyError as exc:
                    raise BadResponse(f"{ref.api_host}: answer to {method} {path}: {exc}") from None
                except httpx.TimeoutException:
                    raise RegistryUnavailable(
                        f"{ref.api_host}: read timeout after {self.timeout:g}s ({method} {path})",
                    ) from None
                except httpx.TransportError as exc:
                    raise RegistryUnavailable(
                        f"{ref.api_host}: {type(exc).__name__} while reading {method} {path}",
                    ) from None
                finally:
                    response.close()
        return _Answer(response.status_code, response.headers, body, response.reason_phrase)

    def _fast_head(
        self, endpoint: _Endpoint, ref: ImageRef, path: str, headers: Mapping[str, str]
    ) -> _Answer | None:
        """A HEAD over one of the registry's kept connections (`heads.py`), when the
        Authorization it needs is already known (no challenge, no token to fetch).

        httpx's connection pool costs about 1 ms of CPU per request under 16 threads
        (encode/httpcore#1035); HEADs are most of what tagwatch sends, so they take this path,
        and everything else (challenges, redirects, GETs, errors) httpx's. Returns None — and
        the caller uses httpx — when the answer needs the full flow (401, 3xx) or the
        connection failed before an answer."""
        if self._transport is not None:  # an injected transport (tests) sees every request
            return None
        authorization = endpoint.auth.authorization(path)
        if authorization is None:
            return None
        sent = {**headers, "User-Agent": f"tagwatch/{__version__}"}
        if authorization:
            sent["Authorization"] = authorization
        heads = endpoint.heads
        try:
            request = request_bytes(heads.host, path, sent)
        except ValueError:
            return None
        reused = True
        while reused:
            started = time.perf_counter()
            try:
                conn, reused = heads.take()
            except TimeoutError:  # the budget went on a first try over a stale connection
                raise RegistryUnavailable(
                    f"{ref.api_host}: read timeout after {self.timeout:g}s (HEAD {path})"
                ) from None
            except OSError:
                return None  # httpx connects, with its error handling and retries
            try:
                answer = exchange(conn, request, self.timeout)
            except TimeoutError:
                conn.close()
                self._observe_failure(endpoint, "HEAD", started, path)
                raise RegistryUnavailable(
                    f"{ref.api_host}: read timeout after {self.timeout:g}s (HEAD {path})",
                ) from None
            except (OSError, ProtocolError):
                conn.close()
                if reused:
                    continue  # the server closed it while idle: once more on a new one
                return None  # httpx tries again, with its error handling and retries
            if answer.keep_alive:
                heads.give_back(conn)
            else:
                conn.close()
            seconds = time.perf_counter() - started
            if log.isEnabledFor(logging.DEBUG):
                # The path is tagwatch's own (repository and tag from the config): shown as is.
                log.debug(
                    "HEAD %s://%s%s -> %d in %.0f ms",
                    heads.scheme,
                    heads.host,
                    path,
                    answer.status,
                    seconds * 1000,
                )
            if answer.status == 401 or 300 <= answer.status < 400:
                return None
            if self._observer is not None:
                self._observer(ref.registry, "HEAD", str(answer.status), seconds, answer.headers)
            return _Answer(answer.status, answer.headers, b"", answer.reason)
        return None

    def _open(
        self,
        endpoint: _Endpoint,
        client: httpx.Client,
        ref: ImageRef,
        method: str,
        path: str,
        headers: Mapping[str, str],
        limit: int | None,
    ) -> httpx.Response:
        import httpx

        try:
            return self._request(endpoint, client, ref, method, path, headers, limit)
        except httpx.ConnectError as exc:
            if not (endpoint.insecure and endpoint.base.startswith("https://")):
                raise RegistryUnavailable(str(exc)) from None
        # An insecure registry may speak plain http only: fall back once, and remember.
        endpoint.use_http()
        try:
            return self._request(endpoint, client, ref, method, path, headers, limit)
        except httpx.ConnectError as exc:
            raise RegistryUnavailable(str(exc)) from None

    def _request(
        self,
        endpoint: _Endpoint,
        client: httpx.Client,
        ref: ImageRef,
        method: str,
        path: str,
        headers: Mapping[str, str],
        limit: int | None,
    ) -> httpx.Response:
        """Send, and turn what httpx raises into the client's errors (ConnectError excepted:
        `_open` may try plain http)."""
        import httpx

        from tagwatch.registry.transport import BodyError

        host = endpoint.base.split("://", 1)[1]
        started = time.perf_counter()
        what = f"({method} {path})"
        try:
            request = client.build_request(
                method,
                endpoint.base + path,
                headers=headers,
                extensions={} if limit is None else {"tagwatch.max_body": limit},
            )
            return client.send(request, stream=True)
        except RegistryError:
            raise
        except httpx.TimeoutException as exc:
            self._observe_failure(endpoint, method, started, path)
            kind = type(exc).__name__.replace("Timeout", " timeout").lower().strip()
            raise RegistryUnavailable(f"{host}: {kind} after {self.timeout:g}s {what}") from None
        except httpx.ConnectError as exc:
            self._observe_failure(endpoint, method, started, path)
            raise httpx.ConnectError(f"{host}: cannot connect: {clean(str(exc), 200)}") from exc
        except httpx.TooManyRedirects:
            self._observe_failure(endpoint, method, started, path)
            raise BadResponse(
                f"{host}: more than {client.max_redirects} redirects {what}"
            ) from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            self._observe_failure(endpoint, method, started, path)
            raise BadResponse(
                f"{host}: redirected to an unusable URL {what}: {clean(str(exc), 120)}",
            ) from None
        except BodyError as exc:  # a redirect's or a 401's body, read by httpx itself
            self._observe_failure(endpoint, method, started, path)
            raise BadResponse(f"{host}: {exc} {what}") from None
        except httpx.TransportError as exc:
            self._observe_failure(endpoint, method, started, path)
            raise RegistryUnavailable(
                f"{host}: {type(exc).__name__}: {clean(str(exc), 200) or 'connection failed'} "
                f"{what}",
            ) from None
        except httpx.HTTPError as exc:
            self._observe_failure(endpoint, method, started, path)
            raise BadResponse(
                f"{host}: {type(exc).__name__}: {clean(str(exc), 200)} {what}"
            ) from None

    def _observe_failure(
        self, endpoint: _Endpoint, method: str, started: float, path: str = ""
    ) -> None:
        seconds = time.perf_counter() - started
        if log.isEnabledFor(logging.DEBUG):
            import httpx

            log.debug(
                "%s %s -> failed in %.0f ms",
                method,
                _shown_url(httpx.URL(endpoint.base + path)),
                seconds * 1000,
            )
        if self._observer is not None:
            self._observer(endpoint.registry, method, "error", seconds, None)

    def _get_tag(self, ref: ImageRef) -> Resolved:
        """GET the tag's manifest and hash the exact bytes (no usable digest header)."""
        path = f"/v2/{ref.repository}/manifests/{ref.tag}"
        answer = self._get(ref, path, {"Accept": ACCEPT}, MAX_MANIFEST_BYTES)
        media_type = _content_type(answer)
        if not is_manifest_type(media_type):
            raise self._not_a_manifest(ref, media_type)
        header = str(answer.headers.get("docker-content-digest") or "").strip()
        if media_type == MEDIA_DOCKER_V1_SIGNED and _DIGEST.fullmatch(header):
            # Signed schema 1: the digest covers the payload without signatures, which only
            # the registry's header states; the body hash changes with every signature.
            digest = header
        else:
            digest = sha256_digest(answer.body)
            if _DIGEST.fullmatch(header) and header.startswith("sha256:") and header != digest:
                raise BadResponse(
                    f"{ref.api_host}: {ref}: Docker-Content-Digest {header} does not match "
                    f"the manifest's sha256 {digest}",
                )
        try:
            manifest = parse_manifest(answer.body, media_type)
        except ManifestError as exc:
            raise BadResponse(f"{ref.api_host}: {ref}: {clean(exc)}") from None
        return Resolved(digest, manifest.media_type, manifest.platforms)

    @staticmethod
    def _not_a_manifest(ref: ImageRef, media_type: str) -> BadResponse:
        return BadResponse(
            f"{ref.api_host} answered {clean(media_type, 80) or 'no content type'} for {ref}, "
            "not a manifest",
        )

    def _error(self, ref: ImageRef, answer: _Answer) -> RegistryError:
        status = answer.status_code
        host = ref.api_host
        code, detail = _error_detail(answer.body)
        where = f"{ref.name}:{ref.tag}" if ref.tag else ref.name
        suffix = f" ({detail})" if detail else ""
        if status == 404:
            if code in _NOT_FOUND_CODES:
                return NotFound(f"{where}: tag not found")
            kind = clean(_content_type(answer), 80) or "no content type"
            return BadResponse(
                f"{host} answered 404 with {kind} for {where}, not a registry error",
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
            return AuthError(f"{host}: {where}: {why}{suffix}")
        if status == 403:
            return AuthError(f"{host}: {where}: access denied (HTTP 403){suffix}")
        if status == 429:
            retry = _retry_after(answer.headers.get("retry-after"))
            when = f"; retry after {retry:.0f}s" if retry is not None else ""
            return RateLimited(
                f"{host}: rate limited (HTTP 429){when}{suffix}",
                retry_after=retry,
            )
        if status >= 500:
            reason = clean(answer.reason_phrase, 60)
            return RegistryUnavailable(
                f"{host}: HTTP {status} {reason} for {where}{suffix}".replace("  ", " "),
            )
        return BadResponse(f"{host}: HTTP {status} for {where}{suffix}")


def _next_link(value: str | None) -> str | None:
    """The path of a `Link: </v2/x/tags/list?last=a&n=100>; rel="next"` header."""
    if not value:
        return None
    match = _LINK_NEXT.search(value)
    if match is None:
        return None
    import httpx

    url = httpx.URL(match.group(1))
    return url.raw_path.decode("ascii")


def _tls_context(settings: RegistryConfig) -> ssl.SSLContext:
    """A registry's TLS context: its `ca_file`, else certifi's CAs (as httpx's default), or
    no verification at all for an `insecure` registry."""
    import ssl

    if settings.insecure:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if settings.ca_file:
        return ssl.create_default_context(cafile=settings.ca_file)
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


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
