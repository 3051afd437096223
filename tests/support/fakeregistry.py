"""A scriptable registry for `httpx.MockTransport`, replaying the documented challenge and
header behaviour of registries that cannot run here (Docker Hub, GHCR, Quay, ECR, GAR, ACR).

Each instance records every request it sees, so tests can count HEADs and token requests and
check which host received which Authorization header.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def digest_of(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def image_manifest(
    seed: str,
    created: str = "2026-11-20T10:00:00Z",
    labels: dict[str, str] | None = None,
    layers: tuple[bytes, ...] = (),
) -> bytes:
    config = config_blob(seed, created, labels)
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest_of(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest_of(layer),
                    "size": len(layer),
                }
                for layer in layers
            ],
        },
        indent=2,
    ).encode()


def config_blob(
    seed: str, created: str = "2026-11-20T10:00:00Z", labels: dict[str, str] | None = None
) -> bytes:
    return json.dumps(
        {
            "created": created,
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"seed": seed, **(labels or {})}},
        }
    ).encode()


def index_manifest(children: dict[str, bytes], attestation: bool = True) -> bytes:
    entries = []
    for platform, body in children.items():
        os_, arch, *variant = platform.split("/")
        p = {"os": os_, "architecture": arch}
        if variant:
            p["variant"] = variant[0]
        entries.append(
            {"mediaType": OCI_MANIFEST, "digest": digest_of(body), "size": len(body), "platform": p}
        )
    if attestation:
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": "sha256:" + "e" * 64,
                "size": 1,
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
            }
        )
    return json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, indent=2
    ).encode()


@dataclass
class Seen:
    method: str
    host: str
    path: str
    params: dict[str, list[str]]
    authorization: str | None


@dataclass
class FakeRegistry:
    """One registry host with an optional token service (on `realm`'s host)."""

    host: str  # API host, e.g. "registry-1.docker.io"
    scheme: str = "bearer"  # "bearer" | "basic" | "none"
    realm: str = ""  # bearer: token endpoint URL
    service: str | None = None
    username: str | None = None
    password: str | None = None
    anonymous_ok: bool = True  # bearer: anonymous tokens for public repositories
    token_fields: tuple[str, ...] = ("token", "access_token")
    expires_in: int | None = 300
    send_digest: bool = True
    extra_headers: dict[str, str] = field(default_factory=dict)
    manifests: dict[str, tuple[str, bytes]] = field(
        default_factory=dict
    )  # "repo:ref" -> (type, body)
    blobs: dict[str, bytes] = field(default_factory=dict)
    blob_redirect: str | None = None  # e.g. "https://storage.example.net/blob"
    identity_tokens: dict[str, str] = field(default_factory=dict)  # refresh token -> user
    seen: list[Seen] = field(default_factory=list)
    issued: int = 0
    override: Callable[[httpx.Request], httpx.Response | None] | None = None

    # --- content -------------------------------------------------------------------------

    def put_image(
        self,
        repo: str,
        tag: str | None,
        seed: str,
        created: str = "2026-11-20T10:00:00Z",
        labels: dict[str, str] | None = None,
        layers: tuple[bytes, ...] = (),
    ) -> str:
        """An image manifest and its config blob (`tag` None: by digest only)."""
        body = image_manifest(seed, created, labels, layers)
        digest = digest_of(body)
        self.manifests[f"{repo}@{digest}"] = (OCI_MANIFEST, body)
        if tag is not None:
            self.manifests[f"{repo}:{tag}"] = (OCI_MANIFEST, body)
        blob = config_blob(seed, created, labels)
        self.blobs[digest_of(blob)] = blob
        return digest

    def tag(self, repo: str, tag: str, digest: str) -> None:
        """Point `tag` at a manifest the registry already has."""
        self.manifests[f"{repo}:{tag}"] = self.manifests[f"{repo}@{digest}"]

    def delete_tag(self, repo: str, tag: str) -> None:
        del self.manifests[f"{repo}:{tag}"]

    def tags(self, repo: str) -> list[str]:
        """The repository's tags, as `/v2/<repo>/tags/list` lists them (sorted)."""
        prefix = f"{repo}:"
        return sorted(k[len(prefix) :] for k in self.manifests if k.startswith(prefix))

    def put_index(
        self,
        repo: str,
        tag: str,
        seed: str,
        platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64"),
    ) -> tuple[str, dict[str, str]]:
        children = {p: image_manifest(seed + p) for p in platforms}
        for p, body in children.items():
            self.manifests[f"{repo}@{digest_of(body)}"] = (OCI_MANIFEST, body)
            blob = config_blob(seed + p)
            self.blobs[digest_of(blob)] = blob
        body = index_manifest(children)
        digest = digest_of(body)
        self.manifests[f"{repo}:{tag}"] = self.manifests[f"{repo}@{digest}"] = (OCI_INDEX, body)
        return digest, {p: digest_of(b) for p, b in children.items()}

    # --- serving -------------------------------------------------------------------------

    def requests(self, method: str | None = None, host: str | None = None) -> list[Seen]:
        return [
            s
            for s in self.seen
            if (method is None or s.method == method) and (host is None or s.host == host)
        ]

    def token_requests(self) -> list[Seen]:
        realm_host = httpx.URL(self.realm).host if self.realm else None
        return [
            s for s in self.seen if s.host == realm_host and s.path == httpx.URL(self.realm).path
        ]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(
            Seen(
                request.method,
                request.url.host,
                request.url.path,
                {k: request.url.params.get_list(k) for k in request.url.params},
                request.headers.get("authorization"),
            )
        )
        if self.override is not None:
            response = self.override(request)
            if response is not None:
                return response
        if (
            self.realm
            and request.url.host == httpx.URL(self.realm).host
            and request.url.path == httpx.URL(self.realm).path
        ):
            return self._token(request)
        if request.url.host != self.host:
            if self.blob_redirect and request.url.host == httpx.URL(self.blob_redirect).host:
                digest = request.url.params.get("digest", "")
                return httpx.Response(200, content=self.blobs.get(digest, b""))
            return httpx.Response(404, text="no such host in this fake")
        denied = self._authorize(request)
        if denied is not None:
            return denied
        return self._serve(request)

    def _basic_ok(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user == self.username and password == self.password

    def _challenge(self, scope: str | None) -> httpx.Response:
        if self.scheme == "basic":
            value = f'Basic realm="{self.host}"'
        else:
            parts = [f'Bearer realm="{self.realm}"']
            if self.service:
                parts.append(f'service="{self.service}"')
            if scope:
                parts.append(f'scope="{scope}"')
            value = ",".join(parts)
        return httpx.Response(
            401,
            headers={"WWW-Authenticate": value, "Content-Type": "application/json"},
            json={"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
        )

    def _authorize(self, request: httpx.Request) -> httpx.Response | None:
        if self.scheme == "none":
            return None
        path = request.url.path
        repo = None
        for marker in ("/manifests/", "/blobs/"):
            if marker in path:
                repo = path[4 : path.rfind(marker)]
        scope = f"repository:{repo}:pull" if repo else None
        auth = request.headers.get("authorization")
        if self.scheme == "basic":
            return None if self._basic_ok(auth) else self._challenge(scope)
        if not auth or not auth.startswith("Bearer "):
            return self._challenge(scope)
        try:
            claims = json.loads(base64.urlsafe_b64decode(auth[7:] + "=="))
        except ValueError:
            return self._challenge(scope)
        if repo is not None and repo not in claims.get("repos", []):
            return self._challenge(scope)
        return None

    def _token(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            form = dict(httpx.QueryParams(request.content.decode()))
            user = self.identity_tokens.get(form.get("refresh_token", ""))
            if form.get("grant_type") != "refresh_token" or user is None:
                return httpx.Response(401, json={"details": "invalid refresh token"})
            scopes = form.get("scope", "").split()
        else:
            auth = request.headers.get("authorization")
            if auth is not None and not self._basic_ok(auth):
                return httpx.Response(401, json={"details": "incorrect username or password"})
            if auth is None and not self.anonymous_ok:
                return httpx.Response(401, json={"details": "authentication required"})
            scopes = request.url.params.get_list("scope")
        repos = [s.split(":")[1] for s in scopes if s.startswith("repository:")]
        self.issued += 1
        token = base64.urlsafe_b64encode(json.dumps({"repos": repos, "n": self.issued}).encode())
        body: dict[str, object] = {k: token.decode().rstrip("=") for k in self.token_fields}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return httpx.Response(200, json=body)

    def _serve(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/tags/list"):
            repo = path[4 : -len("/tags/list")]
            return httpx.Response(200, json={"name": repo, "tags": self.tags(repo)})
        if "/manifests/" in path:
            repo, _, ref = path[4:].partition("/manifests/")
            key = f"{repo}@{ref}" if ref.startswith("sha256:") else f"{repo}:{ref}"
            found = self.manifests.get(key)
            if found is None:
                return httpx.Response(
                    404,
                    json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]},
                )
            media_type, body = found
            headers = {"Content-Type": media_type, **self.extra_headers}
            if self.send_digest:
                headers["Docker-Content-Digest"] = digest_of(body)
            if request.method == "HEAD":
                headers["Content-Length"] = str(len(body))
                return httpx.Response(200, headers=headers)
            return httpx.Response(200, headers=headers, content=body)
        if "/blobs/" in path:
            digest = path.rsplit("/", 1)[1]
            if self.blob_redirect:
                return httpx.Response(
                    307, headers={"Location": f"{self.blob_redirect}?digest={digest}"}
                )
            blob = self.blobs.get(digest)
            if blob is None:
                return httpx.Response(404, json={"errors": [{"code": "BLOB_UNKNOWN"}]})
            return httpx.Response(
                200, content=blob, headers={"Content-Type": "application/octet-stream"}
            )
        return httpx.Response(404, text="404 page not found")
