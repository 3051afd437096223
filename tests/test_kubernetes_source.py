"""`[[source]] kubernetes` against responses in the Kubernetes API's exact shapes
(tests/fixtures/kubernetes/, served over TLS by tests/support/kubeapi.py): no API server can
run on these machines, so this source has not been run against a live cluster.

Covered: pagination (limit/continue, remainingItemCount), a continue token that expired
(410), `docker-pullable://` and plain `repo@sha256:` image IDs, a `docker://` image ID (a
local image: no registry digest), init and ephemeral containers, a pod still pulling, a
finished Job, a digest-only image, namespaces, bearer token, client certificate, in-cluster
service account, an exec plugin (refused), RBAC missing (403) and a server whose certificate
another CA signed."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubeapi import KubeAPI
from regharness import Pusher, Registry
from sinks import WebhookSink
from test_check_integration import Setup
from tlsca import CA

from tagwatch.config import load_config
from tagwatch.sources import kubernetes as kube_source
from tagwatch.sources import read_sources


def d(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


WEB, NGINX, BUSYBOX = d("web-1.4-old"), d("nginx-1.25-index"), d("busybox-1.36")
MIGRATE, JOB = d("migrate-1.4"), d("report-job-3")
REG = "registry.shop.example"
WEB_PLACES = ("pod shop/web-7d9c5b6f4-k2x8p container app, "
              "pod shop/web-7d9c5b6f4-q9w3z container app")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[KubeAPI]:
    server = KubeAPI(tmp_path / "api")
    yield server
    server.close()


def source(tmp_path: Path, kubeconfig: Path | str, extra: str = "") -> Path:
    config = tmp_path / "config.toml"
    config.write_text(f'[[source]]\nkubernetes = "{kubeconfig}"\n{extra}')
    return config


def targets(config: Path) -> dict[str, str | None]:
    expansion = read_sources(load_config(config))
    assert expansion.failures == [], expansion.failures
    return {str(t.ref): t.source for t in expansion.config.targets}


def test_running_containers_of_every_page_are_pins(api: KubeAPI, tmp_path: Path) -> None:
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    expansion = read_sources(load_config(source(tmp_path, kubeconfig)))
    assert expansion.failures == []
    found = {str(t.ref): t.source for t in expansion.config.targets}
    assert found == {
        f"{REG}/shop/web:1.4@{WEB}": WEB_PLACES,  # two replicas, one target
        f"docker.io/library/nginx:1.25@{NGINX}": (
            "pod shop/web-7d9c5b6f4-k2x8p container proxy, "
            "pod shop/web-7d9c5b6f4-q9w3z container proxy"),
        f"docker.io/library/busybox:1.36@{BUSYBOX}": "pod debug/toolbox container debugger-x2k9",
    }
    assert sorted(expansion.notes) == [
        "pod debug/toolbox container shell: toolbox:dev: its image has no registry digest for "
        "docker.io/library/toolbox (built locally, or loaded from a tar): what it runs cannot "
        "be compared with the tag",
        f"pod shop/cache-0 container redis: redis@{d('redis-7.2-pinned')}: pinned by digest "
        "alone: there is no tag to follow",
        f"pod shop/worker-6c8f7d9b5-m4n7r container worker: {REG}/shop/worker:2.0: image not "
        "pulled yet (ContainerCreating)",
    ]
    # Three pages, each asked with limit=500 and the previous page's continue token.
    assert [r["query"].get("continue", "")[:12] for r in api.requests] == [
        "", "eyJ2IjoibWV0", "eyJ2IjoibWV0"]
    assert {r["query"]["limit"] for r in api.requests} == {"500"}
    assert {r["auth"] for r in api.requests} == {f"Bearer {api.token}"}


def test_stopped_adds_finished_init_containers_and_jobs(api: KubeAPI, tmp_path: Path) -> None:
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    found = targets(source(tmp_path, kubeconfig, "stopped = true\n"))
    assert found[f"{REG}/shop/migrate:1.4@{MIGRATE}"] == (
        "pod shop/web-7d9c5b6f4-k2x8p container migrate, "
        "pod shop/web-7d9c5b6f4-q9w3z container migrate")
    report = found[f"{REG}/batch/report:3@{JOB}"]
    assert report == "pod batch/report-28871340-7xk2d container report"
    assert len(found) == 5


def test_namespaces_are_listed_one_by_one(api: KubeAPI, tmp_path: Path) -> None:
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    found = targets(source(tmp_path, kubeconfig, 'namespaces = ["shop", "quiet"]\n'))
    assert set(found) == {f"{REG}/shop/web:1.4@{WEB}", f"docker.io/library/nginx:1.25@{NGINX}"}
    assert [r["path"] for r in api.requests] == [
        "/api/v1/namespaces/shop/pods", "/api/v1/namespaces/quiet/pods"]


def test_an_expired_continue_token_restarts_the_listing(api: KubeAPI, tmp_path: Path) -> None:
    api.expire_next_continue = True
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    assert len(targets(source(tmp_path, kubeconfig))) == 3
    assert [bool(r["query"].get("continue")) for r in api.requests] == [
        False, True, False, True, True]  # page 1, 410, then pages 1, 2 and 3 again


def test_missing_rbac_names_what_is_needed(api: KubeAPI, tmp_path: Path) -> None:
    api.forbidden = True
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    [failure] = read_sources(load_config(source(tmp_path, kubeconfig))).failures
    assert failure == (
        f"source[0]: kubernetes {kubeconfig}: GET /api/v1/pods: HTTP 403: pods is forbidden: "
        'User "system:serviceaccount:monitoring:tagwatch" cannot list resource "pods" in API '
        'group "" at the cluster scope (the account needs get and list on pods: see '
        "deploy/kubernetes/rbac.yaml)")


def test_a_refused_token_says_so_and_never_shows_it(api: KubeAPI, tmp_path: Path) -> None:
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig", user={"token": "stolen-token"})
    [failure] = read_sources(load_config(source(tmp_path, kubeconfig))).failures
    assert "HTTP 401" in failure and "token expired or revoked?" in failure
    assert "stolen-token" not in failure


def test_client_certificate_from_data_and_from_files(api: KubeAPI, tmp_path: Path) -> None:
    cert, key = api.ca.issue("tagwatch", server=False)
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig", user={
        "client-certificate-data": base64.b64encode(cert).decode(),
        "client-key-data": base64.b64encode(key).decode()})
    assert len(targets(source(tmp_path, kubeconfig))) == 3
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "client.crt").write_bytes(cert)
    (tmp_path / "certs" / "client.key").write_bytes(key)
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig2", user={
        "client-certificate": "certs/client.crt", "client-key": "certs/client.key"})
    assert len(targets(source(tmp_path, kubeconfig))) == 3
    assert all(r["client_cert"] and r["auth"] is None for r in api.requests)


def test_exec_plugins_are_refused_with_a_reason(api: KubeAPI, tmp_path: Path) -> None:
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig", user={"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws",
        "args": ["eks", "get-token", "--cluster-name", "shop"]}})
    [failure] = read_sources(load_config(source(tmp_path, kubeconfig))).failures
    assert "authenticates with an exec plugin, which tagwatch does not run" in failure
    assert api.requests == []


def test_a_server_signed_by_another_ca_is_refused(api: KubeAPI, tmp_path: Path) -> None:
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    text = kubeconfig.read_text().replace(base64.b64encode(api.ca.pem).decode(),
                                          base64.b64encode(CA("other").pem).decode())
    kubeconfig.write_text(text)
    [failure] = read_sources(load_config(source(tmp_path, kubeconfig))).failures
    assert "CERTIFICATE_VERIFY_FAILED" in failure
    assert api.requests == []


def test_in_cluster_service_account(api: KubeAPI, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(api.token + "\n")
    (account / "ca.crt").write_bytes(api.ca.pem)
    monkeypatch.setattr(kube_source, "SERVICE_ACCOUNT", account)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(api.port))
    assert len(targets(source(tmp_path, "in-cluster"))) == 3
    # The token is read at every reading: a rotated one is used at once.
    api.token = "rotated"
    (account / "token").write_text("rotated\n")
    assert len(targets(source(tmp_path, "in-cluster"))) == 3
    assert api.requests[-1]["auth"] == "Bearer rotated"
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    [failure] = read_sources(load_config(source(tmp_path, "in-cluster"))).failures
    assert "KUBERNETES_SERVICE_HOST/PORT are not set" in failure


def test_config_errors(tmp_path: Path) -> None:
    from tagwatch.errors import ConfigError

    cases = {
        'kubernetes = "nowhere.yaml"': "does not exist (a kubeconfig file, or \"in-cluster\")",
        'kubernetes = "in-cluster"\ncontext = "prod"': "applies to a kubeconfig",
        'kubernetes = "in-cluster"\nnamespaces = ["Shop_1"]': "is not a namespace name",
        'kubernetes = "in-cluster"\ncert_path = "/x"': "cert_path: applies to engine sources",
        'kubernetes = "in-cluster"\npath = "/x"': "give one of path",
    }
    for text, message in cases.items():
        config = tmp_path / "c.toml"
        config.write_text(f"[[source]]\n{text}\n")
        with pytest.raises(ConfigError, match=".*") as caught:
            load_config(config)
        assert message in str(caught.value), (text, str(caught.value))


@pytest.mark.integration
def test_pods_are_judged_and_alerted_like_pins(registry_anonymous: Registry, tmp_path: Path,
                                               webhook: WebhookSink) -> None:
    """The fixtures' images in the real registry: the tag the web pods run has moved on (the
    digest they run is no longer there), so their pin is stale at once with max_age 0s, and
    the alert names the pods."""
    host = registry_anonymous.host
    api = KubeAPI(tmp_path / "api", registry=host)
    try:
        push = Pusher(registry_anonymous)
        push.push_image("shop/web", "1.4", seed="web-now")
        push.push_image("library/nginx", "1.25", seed="nginx-now")
        setup = Setup(tmp_path)
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        # The proxy containers run Docker Hub's nginx: served here by the test registry, as
        # a mirror (tests never reach a public registry).
        setup.add(f'[[registry]]\nhost = "docker.io"\nendpoint = "http://{host}"\n'
                  f'[[source]]\nkubernetes = "{kubeconfig}"\nnamespaces = ["shop"]\n'
                  'max_age = "0s"\n').notify(webhook.url, events=["stale", "pin_missing"])
        run = setup("check")
        assert run.code == 0, run.out + run.err
        line = next(ln for ln in run.out.splitlines() if ln.startswith(f"{host}/shop/web:1.4"))
        assert line.split()[1:3] == ["pin", "stale"]
        received = webhook.wait_for(4)
        titles = {m["title"].partition(" (pod ")[0] for m in received}  # titles name the pods
        assert titles == {"[tagwatch] pin_missing: docker.io/library/nginx:1.25",
                          f"[tagwatch] pin_missing: {host}/shop/web:1.4",
                          "[tagwatch] stale: docker.io/library/nginx:1.25",
                          f"[tagwatch] stale: {host}/shop/web:1.4"}
        for message in received:
            if f"{host}/shop/web:1.4" in message["title"]:
                assert message["title"].endswith(f" ({WEB_PLACES})")
                assert f"source: {WEB_PLACES.replace(REG, host)}" in message["message"]
                assert WEB in message["message"]
            else:
                assert "container proxy" in message["message"]
    finally:
        api.close()
