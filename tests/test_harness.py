"""The integration harness itself, against the real distribution registry (2.8) and apprise:
what the other integration tests rely on must hold here first."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import apprise
import httpx
import pytest
from regharness import (
    ACCEPT_ALL,
    DOCKER_V2,
    OCI_INDEX,
    OCI_MANIFEST,
    PUSHER_AGENT,
    AccessRecord,
    Registry,
    TokenRequest,
    TokenServer,
    decode_jwt,
    parse_access_log,
    require_binaries,
    start_registry,
    tamper_jwt,
    unique_repo,
)
from sinks import SmtpSink, WebhookSink

pytestmark = pytest.mark.integration

AGENT = "tagwatch-harness-test"
DOCKER_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
MODES = ["anonymous", "basic", "token"]


def _registry(request: pytest.FixtureRequest, mode: str) -> Registry:
    registry = request.getfixturevalue(f"registry_{mode}")
    assert isinstance(registry, Registry)
    return registry


@pytest.mark.parametrize("mode", MODES)
def test_index_and_image_by_tag(request: pytest.FixtureRequest, mode: str) -> None:
    registry = _registry(request, mode)
    repo = unique_repo(f"harness/{mode}")
    pusher = registry.pusher
    image = pusher.push_image(repo, "single", labels={"org.example.v": "1"},
                              created="2026-01-02T03:04:05Z", layers=2, seed="s1")
    assert image == pusher.push_image(repo, "again", labels={"org.example.v": "1"},
                                      created="2026-01-02T03:04:05Z", layers=2, seed="s1")
    index, children = pusher.push_index(repo, "multi", ["linux/amd64", "linux/arm64/v8"],
                                        seed="s2")
    assert set(children) == {"linux/amd64", "linux/arm64/v8"}

    with registry.client(user_agent=AGENT) as client:
        r = client.get(f"/v2/{repo}/manifests/multi", headers={"Accept": ACCEPT_ALL})
        assert r.status_code == 200
        assert r.headers["Docker-Content-Digest"] == index
        assert r.headers["Content-Type"] == OCI_INDEX
        body = r.json()
        assert body["mediaType"] == OCI_INDEX
        entries = body["manifests"]
        assert [e["digest"] for e in entries[:2]] == [children["linux/amd64"],
                                                      children["linux/arm64/v8"]]
        assert entries[1]["platform"] == {"os": "linux", "architecture": "arm64",
                                          "variant": "v8"}
        attestation = entries[2]
        assert attestation["platform"] == {"os": "unknown", "architecture": "unknown"}
        assert attestation["annotations"] == {
            "vnd.docker.reference.type": "attestation-manifest",
            "vnd.docker.reference.digest": children["linux/amd64"]}
        # Every child is really in the registry, the attestation included.
        for entry in entries:
            head = client.head(f"/v2/{repo}/manifests/{entry['digest']}",
                               headers={"Accept": OCI_MANIFEST})
            assert head.status_code == 200, entry

        # Distribution 2.8 without the index type in Accept: 404 MANIFEST_UNKNOWN ("OCI index
        # found, but accept header does not support OCI indexes"), no digest header.
        for accept in (OCI_MANIFEST, f"{OCI_MANIFEST}, {DOCKER_V2}", "*/*", None):
            headers = {"Accept": accept} if accept else {}
            r = client.get(f"/v2/{repo}/manifests/multi", headers=headers)
            assert r.status_code == 404, accept
            assert r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
            assert "Docker-Content-Digest" not in r.headers

        r = client.get(f"/v2/{repo}/manifests/single", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200
        assert r.headers["Docker-Content-Digest"] == image
        manifest = r.json()
        assert len(manifest["layers"]) == 2
        config = client.get(f"/v2/{repo}/blobs/{manifest['config']['digest']}")
        assert config.status_code == 200
        assert config.json()["config"]["Labels"] == {"org.example.v": "1"}
        assert config.json()["created"] == "2026-01-02T03:04:05Z"
        assert (config.json()["os"], config.json()["architecture"]) == ("linux", "amd64")


def test_basic_auth_is_enforced(registry_basic: Registry) -> None:
    assert registry_basic.username and registry_basic.password
    with httpx.Client(base_url=registry_basic.url, headers={"User-Agent": AGENT}) as client:
        r = client.get("/v2/")
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"].startswith("Basic ")
        assert client.get("/v2/", auth=(registry_basic.username, "wrong")).status_code == 401
        assert client.get("/v2/", auth=registry_basic.credentials).status_code == 200


def test_token_auth(registry_token: Registry) -> None:
    tokens = registry_token.token_server
    assert tokens is not None
    repo = unique_repo("harness/token-anon")
    digest = registry_token.pusher.push_image(repo, "v1")
    tokens.reset()

    with httpx.Client(base_url=registry_token.url, headers={"User-Agent": AGENT}) as client:
        r = client.head(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 401
        challenge = r.headers["WWW-Authenticate"]
        assert challenge.startswith("Bearer ")
        assert f'realm="{tokens.realm}"' in challenge
        assert 'service="tagwatch-test-registry"' in challenge
        assert f'scope="repository:{repo}:pull"' in challenge

        # Anonymous: a pull-only token, which pulls.
        scope = f"repository:{repo}:pull,push"
        answer = client.get(tokens.realm, params={"service": tokens.service, "scope": scope})
        assert answer.status_code == 200
        data = answer.json()
        assert data["token"] == data["access_token"]
        assert data["expires_in"] == 300 and data["issued_at"].endswith("Z")
        header, claims = decode_jwt(data["token"])
        assert header["alg"] == "ES256" and header["x5c"]
        assert claims["access"] == [{"type": "repository", "name": repo, "actions": ["pull"]}]
        assert claims["iss"] == "tagwatch-test-issuer" and claims["aud"] == tokens.service
        bearer = {"Authorization": f"Bearer {data['token']}", "Accept": OCI_MANIFEST}
        r = client.head(f"/v2/{repo}/manifests/v1", headers=bearer)
        assert r.status_code == 200
        assert r.headers["Docker-Content-Digest"] == digest
        # ... and cannot push.
        assert client.post(f"/v2/{repo}/blobs/uploads/", headers=bearer).status_code == 401

        # A tampered token (claims changed, signature kept) and a token signed by a key the
        # registry does not trust are refused.
        forged = tamper_jwt(data["token"])
        r = client.post(f"/v2/{repo}/blobs/uploads/",
                        headers={"Authorization": f"Bearer {forged}"})
        assert r.status_code == 401
        r = client.head(f"/v2/{repo}/manifests/v1",
                        headers={"Authorization": f"Bearer {forged}", "Accept": OCI_MANIFEST})
        assert r.status_code == 401
        with TokenServer() as stranger:
            alien = stranger.issue("tagwatch", [f"repository:{repo}:pull"])
        r = client.head(f"/v2/{repo}/manifests/v1",
                        headers={"Authorization": f"Bearer {alien}", "Accept": OCI_MANIFEST})
        assert r.status_code == 401

        # Wrong password: 401 from the token server; the right one: all actions.
        assert client.get(tokens.realm, params={"service": tokens.service, "scope": scope},
                          auth=(registry_token.username or "", "wrong")).status_code == 401
        answer = client.get(tokens.realm, params={"service": tokens.service, "scope": scope},
                            auth=registry_token.credentials)
        assert decode_jwt(answer.json()["token"])[1]["access"][0]["actions"] == ["pull", "push"]
        # OAuth2 password grant, then refresh.
        grant = client.post(tokens.realm, data={
            "grant_type": "password", "username": registry_token.username,
            "password": registry_token.password, "service": tokens.service, "scope": scope,
            "client_id": "harness", "access_type": "offline"})
        assert grant.status_code == 200 and grant.json()["refresh_token"]
        refreshed = client.post(tokens.realm, data={
            "grant_type": "refresh_token", "refresh_token": grant.json()["refresh_token"],
            "service": tokens.service, "scope": scope, "client_id": "harness"})
        assert refreshed.status_code == 200 and refreshed.json()["token"]

    user = registry_token.username
    assert tokens.token_requests == [
        TokenRequest(None, (scope,)), TokenRequest(user, (scope,)),
        TokenRequest(user, (scope,)), TokenRequest(user, (scope,)),
        TokenRequest(user, (scope,))]
    # The pusher's own token requests are left out.
    registry_token.pusher.push_image(unique_repo("harness/token-other"), "v1")
    assert len(tokens.token_requests) == 5
    assert len(tokens.all_token_requests) == 6


def test_access_log_counts_requests(registry_anonymous: Registry) -> None:
    repo = unique_repo("harness/log")
    pusher = registry_anonymous.pusher
    digest = pusher.push_image(repo, "v1")
    mark = registry_anonymous.mark()
    with httpx.Client(base_url=registry_anonymous.url, headers={"User-Agent": AGENT}) as c:
        r = c.head(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert r.headers["Docker-Content-Digest"] == digest
        assert c.head(f"/v2/{repo}/manifests/nope", headers={"Accept": OCI_MANIFEST}
                      ).status_code == 404
    pusher.push_image(repo, "v2")  # after the mark too, but the pusher's

    mine = registry_anonymous.requests(since=mark, exclude_agent=PUSHER_AGENT)
    assert mine == [("HEAD", f"/v2/{repo}/manifests/v1", 200),
                    ("HEAD", f"/v2/{repo}/manifests/nope", 404)]
    assert all(rec.user_agent == AGENT for rec in mine)
    assert registry_anonymous.requests("HEAD", "/manifests/v1", since=mark, agent=AGENT) == [
        ("HEAD", f"/v2/{repo}/manifests/v1", 200)]
    everything = registry_anonymous.requests(since=mark)
    assert len(everything) > len(mine)
    assert {rec.user_agent for rec in everything} == {AGENT, PUSHER_AGENT}
    # Before the mark: the first push, and nothing of this test's client.
    assert registry_anonymous.requests(path_contains=repo, agent=AGENT) == mine


def test_parse_access_log_format() -> None:
    text = (
        'time="2026-11-25T19:10:59Z" level=info msg="response completed" '
        'http.request.method=HEAD http.response.status=200\n'
        '127.0.0.1 - - [25/Nov/2026:19:10:59 +0000] "HEAD /v2/a/b/manifests/v1 HTTP/1.1" '
        '200 0 "" "tagwatch/0.1 (x \\"y\\")"\n'
        '127.0.0.1 - - [25/Nov/2026:19:10:59 +0000] "GET /v2/_catalog?n=5 HTTP/1.1" 401 '
        '145 "" ""\n'
    )
    records = parse_access_log(text)
    assert records == [("HEAD", "/v2/a/b/manifests/v1", 200), ("GET", "/v2/_catalog?n=5", 401)]
    assert isinstance(records[0], AccessRecord)
    assert records[0].user_agent == 'tagwatch/0.1 (x "y")'
    method, path, status = records[1]
    assert (method, path, status, records[1].user_agent) == ("GET", "/v2/_catalog?n=5", 401, "")


def test_stop_start_keeps_data_and_port(make_registry: Callable[..., Registry]) -> None:
    registry = make_registry("anonymous")
    repo = unique_repo("harness/restart")
    digest = registry.pusher.push_image(repo, "v1")
    port = registry.port
    registry.stop()
    assert not registry.running
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{registry.url}/v2/", timeout=2)
    registry.start()
    assert registry.port == port and registry.running
    with registry.client(user_agent=AGENT) as client:
        r = client.head(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == digest
    # The log survives the restart: both runs' requests are there.
    assert [rec.status for rec in registry.requests("HEAD", agent=AGENT)] == [200]
    assert registry.requests("PUT", f"/v2/{repo}/manifests/v1")


def test_pusher_tag_and_delete(registry_anonymous: Registry) -> None:
    repo = unique_repo("harness/tags")
    pusher = registry_anonymous.pusher
    first = pusher.push_image(repo, "v1", seed=1)
    second = pusher.push_docker_v2(repo, "v2", seed=2)
    pusher.tag(repo, "latest", second)
    pusher.tag(repo, "stable", first)
    assert pusher.head_digest(repo, "latest") == second
    assert pusher.get_manifest(repo, "latest")[1] == DOCKER_V2
    assert pusher.list_tags(repo) == ["latest", "stable", "v1", "v2"]
    # Distribution 2.8 deletes manifests, not tags: every tag on that digest goes.
    assert pusher.delete_tag(repo, "latest") == second
    assert pusher.list_tags(repo) == ["stable", "v1"]
    assert pusher.head_digest(repo, "v2") is None
    pusher.delete_manifest(repo, first)
    assert pusher.list_tags(repo) == []


def test_put_index_from_existing_children(registry_anonymous: Registry) -> None:
    repo = unique_repo("harness/put-index")
    pusher = registry_anonymous.pusher
    index1, children = pusher.push_index(repo, "1", ["linux/amd64", "linux/arm64"], seed="a")
    arm = pusher.push_image(repo, platform="linux/arm64", seed="arm-2")
    mixed = {"linux/amd64": children["linux/amd64"], "linux/arm64": arm}
    index2 = pusher.put_index(repo, "1", mixed)
    assert index2 != index1
    assert pusher.put_index(repo, "other", mixed) == index2  # deterministic
    body, media_type, digest = pusher.get_manifest(repo, "1")
    assert (media_type, digest) == (OCI_INDEX, index2)
    entries = json.loads(body)["manifests"]
    assert [e["digest"] for e in entries[:2]] == list(mixed.values())
    assert entries[2]["annotations"]["vnd.docker.reference.digest"] == children["linux/amd64"]
    plain = pusher.put_index(repo, "plain", mixed, attestation=False)
    assert len(json.loads(pusher.get_manifest(repo, plain)[0])["manifests"]) == 2


def test_docker_v2_without_accept_is_rewritten(registry_anonymous: Registry) -> None:
    """Documents 2.8: a schema 2 manifest fetched by tag without its type in Accept is
    converted to signed schema 1 (another digest); by digest it is served as is."""
    repo = unique_repo("harness/schema1")
    digest = registry_anonymous.pusher.push_docker_v2(repo, "v1")
    with registry_anonymous.client(user_agent=AGENT) as client:
        r = client.get(f"/v2/{repo}/manifests/v1")
        assert r.status_code == 200
        assert r.headers["Content-Type"] == DOCKER_V1_SIGNED
        assert r.headers["Docker-Content-Digest"] != digest
        r = client.get(f"/v2/{repo}/manifests/{digest}")
        assert r.headers["Docker-Content-Digest"] == digest


def test_start_failure_reports_log_tail(tmp_path: Path) -> None:
    require_binaries("docker-registry")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(RuntimeError, match="address already in use"):
            start_registry(tmp_path, "anonymous", port=port)
    config = json.loads((tmp_path / "config.yml").read_text())
    assert config["http"]["addr"] == f"127.0.0.1:{port}"
    assert config["storage"]["delete"] == {"enabled": True}


def test_apprise_to_webhook(webhook: WebhookSink) -> None:
    notifier = apprise.Apprise()
    assert notifier.add(webhook.url)
    assert notifier.notify(title="tag moved: nginx:1.27", body="sha256:aaa -> sha256:bbb")
    [body] = webhook.wait_for(1)
    assert body["title"] == "tag moved: nginx:1.27"
    assert body["message"] == "sha256:aaa -> sha256:bbb"
    assert body["type"] == "info"
    assert webhook.attempts[0].path == "/hook"

    webhook.fail_next(1, status=503)
    assert not notifier.notify(title="second", body="fails")
    webhook.set_failing(True)
    assert not notifier.notify(title="third", body="fails")
    webhook.set_failing(False)
    assert notifier.notify(title="fourth", body="ok")
    assert [b["title"] for b in webhook.wait_for(2)] == ["tag moved: nginx:1.27", "fourth"]
    assert [a.status for a in webhook.attempts] == [200, 503, 500, 200]


def test_apprise_to_smtp(smtp: SmtpSink) -> None:
    notifier = apprise.Apprise()
    url = smtp.url(to="ops@example.test")
    assert url == f"mailto://127.0.0.1:{smtp.port}?from=tagwatch@example.test&to=ops@example.test"
    assert notifier.add(url)
    assert notifier.notify(title="tag moved: nginx:1.27", body="sha256:aaa -> sha256:bbb")
    [mail] = smtp.wait_for(1)
    assert mail.subject == "tag moved: nginx:1.27"
    assert mail["Subject"] == mail.subject
    assert mail.sender == "tagwatch@example.test"
    assert mail.to == "ops@example.test"
    assert mail.rcpt_tos == ["ops@example.test"]
    assert mail.text is not None and "sha256:aaa -> sha256:bbb" in mail.text
