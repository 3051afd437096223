"""Registries that cannot run here, through `httpx.MockTransport` replaying their documented
challenges and headers (notes: registry-protocol.md §3.5)."""

from __future__ import annotations

import httpx
import pytest
from fakeregistry import OCI_INDEX, FakeRegistry, digest_of

from tagwatch.core.refs import parse_ref
from tagwatch.errors import AuthError, BadResponse, NotFound
from tagwatch.registry.auth import RegistryAuth
from tagwatch.registry.client import RegistryClient
from tagwatch.registry.dockercreds import Credentials


def client_for(
    fake: FakeRegistry, creds: Credentials | None = None, **kw: object
) -> RegistryClient:
    return RegistryClient(transport=httpx.MockTransport(fake), credentials=lambda host: creds, **kw)  # type: ignore[arg-type]


def docker_hub(**kw: object) -> FakeRegistry:
    return FakeRegistry(
        host="registry-1.docker.io",
        realm="https://auth.docker.io/token",
        service="registry.docker.io",
        extra_headers={"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "76;w=21600"},
        **kw,
    )  # type: ignore[arg-type]


def test_docker_hub_anonymous_one_token_per_repository() -> None:
    hub = docker_hub()
    digest, platforms = hub.put_index("library/python", "3.12", "a")
    hub.put_index("library/python", "3.13", "b")
    hub.put_image("library/nginx", "1.27", "c")
    seen_headers: list[httpx.Headers | None] = []
    client = client_for(hub, observer=lambda r, m, c, s, h: seen_headers.append(h))
    got = client.resolve(parse_ref("python:3.12"))
    assert got.digest == digest and dict(got.platforms) == platforms
    client.resolve(parse_ref("index.docker.io/library/python:3.13"))
    client.resolve(parse_ref("nginx:1.27"))
    client.resolve(parse_ref("registry-1.docker.io/library/python:3.12"))
    tokens = hub.token_requests()
    assert [t.params["scope"] for t in tokens] == [
        ["repository:library/python:pull"],
        ["repository:library/nginx:pull"],
    ]
    assert all(t.params["service"] == ["registry.docker.io"] for t in tokens)
    assert all(t.authorization is None for t in tokens)  # anonymous
    assert {s.host for s in hub.requests("HEAD")} == {"registry-1.docker.io"}
    assert any(h is not None and h.get("ratelimit-remaining") == "76;w=21600" for h in seen_headers)


def test_docker_hub_with_credentials_sends_basic_only_to_the_token_service() -> None:
    hub = docker_hub(username="me", password="pat-123", anonymous_ok=False)
    hub.put_image("me/app", "v1", "a")
    client = client_for(hub, Credentials("me", "pat-123"))
    client.resolve(parse_ref("me/app:v1"))
    (token,) = hub.token_requests()
    assert token.authorization is not None and token.authorization.startswith("Basic ")
    assert token.params["account"] == ["me"]
    for seen in hub.requests(host="registry-1.docker.io"):
        assert seen.authorization is None or seen.authorization.startswith("Bearer ")


def test_wrong_password_says_so_without_the_secret() -> None:
    hub = docker_hub(username="me", password="right", anonymous_ok=False)
    hub.put_image("me/app", "v1", "a")
    client = client_for(hub, Credentials("me", "wrong-s3cret"))
    with pytest.raises(AuthError) as info:
        client.resolve(parse_ref("me/app:v1"))
    message = str(info.value)
    assert "refused user 'me'" in message and "check the username and password" in message
    assert "wrong-s3cret" not in message


def test_ghcr_token_without_expires_in_defaults_to_60s() -> None:
    now = [1000.0]
    ghcr = FakeRegistry(
        host="ghcr.io", realm="https://ghcr.io/token", service="ghcr.io", expires_in=None
    )
    ghcr.put_image("owner/app", "main", "a")
    auth = RegistryAuth("ghcr.io", None, clock=lambda: now[0])
    with httpx.Client(transport=httpx.MockTransport(ghcr), auth=auth.flow()) as http:
        url = "https://ghcr.io/v2/owner/app/manifests/main"
        assert http.head(url).status_code == 200
        now[0] += 45
        assert http.head(url).status_code == 200
        assert len(ghcr.token_requests()) == 1  # reused within its life
        now[0] += 20  # 65 s after issue: past 60 s minus the renewal margin
        assert http.head(url).status_code == 200
        assert len(ghcr.token_requests()) == 2


def test_quay_realm_and_robot_account() -> None:
    quay = FakeRegistry(
        host="quay.io",
        realm="https://quay.io/v2/auth",
        service="quay.io",
        username="org+robot",
        password="robot-token",
    )
    quay.put_image("org/app", "latest", "q")
    client = client_for(quay, Credentials("org+robot", "robot-token"))
    assert client.resolve(parse_ref("quay.io/org/app")).digest.startswith("sha256:")
    (token,) = quay.token_requests()
    assert token.params["service"] == ["quay.io"]


def test_ecr_basic_auth_with_aws_user() -> None:
    host = "123456789012.dkr.ecr.eu-west-2.amazonaws.com"
    ecr = FakeRegistry(host=host, scheme="basic", username="AWS", password="ecr-token")
    digest = ecr.put_image("team/app", "prod", "e")
    client = client_for(ecr, Credentials("AWS", "ecr-token"))
    assert client.resolve(parse_ref(f"{host}/team/app:prod")).digest == digest
    client.resolve(parse_ref(f"{host}/team/app:prod"))
    heads = ecr.requests("HEAD")
    # One probe learns the scheme; from then on Basic is sent up front.
    assert [h.authorization is not None for h in heads] == [False, True, True]


def test_ecr_expired_token_is_an_auth_error() -> None:
    host = "123456789012.dkr.ecr.eu-west-2.amazonaws.com"
    ecr = FakeRegistry(host=host, scheme="basic", username="AWS", password="new-token")
    ecr.put_image("team/app", "prod", "e")
    client = client_for(ecr, Credentials("AWS", "old-token"))
    with pytest.raises(AuthError, match="credentials for user 'AWS' were refused"):
        client.resolve(parse_ref(f"{host}/team/app:prod"))


def test_artifact_registry_realm_without_service() -> None:
    gar = FakeRegistry(
        host="us-docker.pkg.dev",
        realm="https://us-docker.pkg.dev/v2/token",
        service=None,
        username="oauth2accesstoken",
        password="ya29.token",
    )
    gar.put_image("proj/repo/app", "v2", "g")
    client = client_for(gar, Credentials("oauth2accesstoken", "ya29.token"))
    client.resolve(parse_ref("us-docker.pkg.dev/proj/repo/app:v2"))
    (token,) = gar.token_requests()
    assert "service" not in token.params
    assert token.params["scope"] == ["repository:proj/repo/app:pull"]


def test_acr_access_token_only_and_identity_token_refresh() -> None:
    acr = FakeRegistry(
        host="contoso.azurecr.io",
        realm="https://contoso.azurecr.io/oauth2/token",
        service="contoso.azurecr.io",
        token_fields=("access_token",),
        anonymous_ok=False,
        identity_tokens={"refresh-abc": "sp"},
    )
    digest = acr.put_image("app", "1.0", "z")
    creds = Credentials("00000000-0000-0000-0000-000000000000", "", identity_token="refresh-abc")
    client = client_for(acr, creds)
    assert client.resolve(parse_ref("contoso.azurecr.io/app:1.0")).digest == digest
    (token,) = acr.token_requests()
    assert token.method == "POST"


def test_head_without_digest_header_falls_back_to_get_and_hashes_bytes() -> None:
    reg = FakeRegistry(host="registry.example.com", scheme="none", send_digest=False)
    digest = reg.put_image("app", "v1", "x")
    got = client_for(reg).resolve(parse_ref("registry.example.com/app:v1"))
    assert got.digest == digest
    assert [s.method for s in reg.seen] == ["HEAD", "GET"]


def test_unchanged_index_costs_one_head_and_a_new_one_one_get() -> None:
    reg = FakeRegistry(host="registry.example.com", scheme="none")
    reg.put_index("app", "v1", "1")
    client = client_for(reg)
    first = client.resolve(parse_ref("registry.example.com/app:v1"))
    assert [s.method for s in reg.seen] == ["HEAD", "GET"]
    reg.seen.clear()
    again = client.resolve(parse_ref("registry.example.com/app:v1"), known=first)
    assert again == first and [s.method for s in reg.seen] == ["HEAD"]


def test_html_from_a_proxy_is_never_a_digest() -> None:
    reg = FakeRegistry(host="registry.example.com", scheme="none")
    reg.override = lambda r: httpx.Response(
        200,
        headers={"Content-Type": "text/html", "Docker-Content-Digest": "sha256:" + "1" * 64},
        text="<html>login</html>",
    )
    with pytest.raises(BadResponse, match="answered text/html"):
        client_for(reg).resolve(parse_ref("registry.example.com/app:v1"))


def test_html_404_is_an_error_not_a_vanish() -> None:
    reg = FakeRegistry(host="registry.example.com", scheme="none")
    reg.override = lambda r: httpx.Response(
        404, headers={"Content-Type": "text/html"}, text="<html>not here</html>"
    )
    with pytest.raises(BadResponse, match="answered 404 with text/html"):
        client_for(reg).resolve(parse_ref("registry.example.com/app:v1"))


def test_missing_tag_is_not_found() -> None:
    reg = FakeRegistry(host="registry.example.com", scheme="none")
    with pytest.raises(NotFound, match="tag not found"):
        client_for(reg).resolve(parse_ref("registry.example.com/app:nope"))


def test_digest_mismatch_is_an_error() -> None:
    reg = FakeRegistry(host="registry.example.com", scheme="none", send_digest=False)
    reg.put_image("app", "v1", "x")

    def lying(request: httpx.Request) -> httpx.Response | None:
        if request.method == "GET":
            _, body = reg.manifests["app:v1"]
            return httpx.Response(
                200,
                content=body,
                headers={
                    "Content-Type": "application/vnd.oci.image.manifest.v1+json",
                    "Docker-Content-Digest": "sha256:" + "0" * 64,
                },
            )
        return None

    reg.override = lying
    with pytest.raises(BadResponse, match="does not match"):
        client_for(reg).resolve(parse_ref("registry.example.com/app:v1"))


def test_index_get_verified_against_its_digest() -> None:
    reg = FakeRegistry(host="registry.example.com", scheme="none")
    digest, _ = reg.put_index("app", "v1", "1")
    reg.manifests[f"app@{digest}"] = (
        OCI_INDEX,
        b'{"mediaType": "' + OCI_INDEX.encode() + b'", "manifests": []}',
    )
    with pytest.raises(BadResponse, match="does not match"):
        client_for(reg).resolve(parse_ref("registry.example.com/app:v1"))


def test_token_realm_redirect_drops_authorization() -> None:
    hub = docker_hub(username="me", password="pw")
    digest = hub.put_image("me/app", "v1", "a")
    elsewhere: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.docker.io":
            assert request.headers.get("authorization", "").startswith("Basic ")
            return httpx.Response(
                307,
                headers={
                    "Location": "https://tokens.elsewhere.example/token?" + str(request.url.params)
                },
            )
        if request.url.host == "tokens.elsewhere.example":
            elsewhere.append(request.headers.get("authorization"))
            return hub._token(request)
        return hub(request)

    client = RegistryClient(
        transport=httpx.MockTransport(handler), credentials=lambda h: Credentials("me", "pw")
    )
    assert client.resolve(parse_ref("me/app:v1")).digest == digest
    assert elsewhere == [None]


def test_https_registry_refuses_a_plain_http_realm() -> None:
    reg = FakeRegistry(host="registry.example.com", realm="http://registry.example.com/token")
    reg.put_image("app", "v1", "x")
    with pytest.raises(AuthError, match="refusing token realm .* plain http"):
        client_for(reg, Credentials("u", "p")).resolve(parse_ref("registry.example.com/app:v1"))
    assert reg.token_requests() == []


def test_blob_redirect_to_storage_does_not_forward_authorization() -> None:
    hub = docker_hub(blob_redirect="https://production.cloudflare.docker.example/blob")
    hub.put_index("library/python", "3.12", "a")
    client = client_for(hub)
    seen = client.resolve(parse_ref("python:3.12"))
    created = client.image_created(parse_ref("python:3.12"), seen)
    assert created is not None and created.isoformat() == "2026-11-20T10:00:00+00:00"
    storage = hub.requests(host="production.cloudflare.docker.example")
    assert storage and all(s.authorization is None for s in storage)


def test_expired_token_mid_cycle_is_refreshed_once() -> None:
    hub = docker_hub()
    hub.put_image("library/alpine", "3.20", "a")
    client = client_for(hub)
    client.resolve(parse_ref("alpine:3.20"))
    # The registry revokes every token it issued: the next request gets 401 with the cached
    # token, and the client fetches a new one once and retries.
    issued_before = hub.issued
    hub.issued += 1000
    original_authorize = hub._authorize

    def revoke_first(request: httpx.Request) -> httpx.Response | None:
        auth = request.headers.get("authorization", "")
        if (
            request.method == "HEAD"
            and auth
            and '"n": 1}' in __import__("base64").urlsafe_b64decode(auth[7:] + "==").decode()
        ):
            return hub._challenge("repository:library/alpine:pull")
        return original_authorize(request)

    hub._authorize = revoke_first  # type: ignore[method-assign]
    assert client.resolve(parse_ref("alpine:3.20")).digest == digest_of(
        hub.manifests["library/alpine:3.20"][1]
    )
    assert hub.issued == issued_before + 1000 + 1
