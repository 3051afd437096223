"""tests/support/faultproxy.py against the real distribution registry: every fault does what it
says, and without faults the proxy is transparent (headers, bodies, keep-alive)."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from faultproxy import FaultProxy, ProxyRequest
from regharness import ACCEPT_ALL, OCI_MANIFEST, Registry, digest_of, free_port, unique_repo

pytestmark = pytest.mark.integration

AGENT = "tagwatch-faultproxy-test"


@pytest.fixture(scope="module")
def image(registry_anonymous: Registry) -> tuple[str, str, str]:
    """(repo, tag, manifest digest) pushed directly to the registry."""
    repo = unique_repo("faultproxy")
    digest = registry_anonymous.pusher.push_image(repo, "v1", seed="faultproxy")
    return repo, "v1", digest


@pytest.fixture
def proxy(registry_anonymous: Registry) -> Iterator[FaultProxy]:
    with FaultProxy(registry_anonymous.url) as p:
        yield p


@pytest.fixture
def client(proxy: FaultProxy) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, timeout=5.0,
                      headers={"User-Agent": AGENT, "Accept": ACCEPT_ALL}) as c:
        yield c


def manifest_path(image: tuple[str, str, str]) -> str:
    repo, tag, _ = image
    return f"/v2/{repo}/manifests/{tag}"


# ------------------------------------------------------------------------------ transparent


def test_forwards_transparently_with_keepalive(
        proxy: FaultProxy, client: httpx.Client, image: tuple[str, str, str],
        registry_anonymous: Registry) -> None:
    _, _, digest = image
    mark = registry_anonymous.mark()
    assert proxy.host.startswith("127.0.0.1:") and proxy.url == f"http://{proxy.host}"

    assert client.get("/v2/").status_code == 200
    head = client.head(manifest_path(image))
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"] == digest
    assert head.content == b""
    get = client.get(manifest_path(image))
    assert get.status_code == 200
    assert get.headers["Content-Type"] == OCI_MANIFEST
    assert digest_of(get.content) == digest
    assert int(head.headers["Content-Length"]) == len(get.content)
    assert get.headers["X-Content-Type-Options"] == "nosniff"  # registry's own header
    missing = client.get(f"/v2/{image[0]}/manifests/nope")
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"

    # one client connection reused for all four requests
    assert proxy.connections == 1
    assert [tuple(r) for r in proxy.requests] == [
        ("GET", "/v2/", 200, None),
        ("HEAD", manifest_path(image), 200, None),
        ("GET", manifest_path(image), 200, None),
        ("GET", f"/v2/{image[0]}/manifests/nope", 404, None),
    ]
    assert all(r.user_agent == AGENT for r in proxy.requests)
    # the registry saw the same requests with the client's User-Agent
    seen = registry_anonymous.requests(since=mark, agent=AGENT)
    assert [(r.method, r.status) for r in seen] == [
        ("GET", 200), ("HEAD", 200), ("GET", 200), ("GET", 404)]


def test_request_bodies_forwarded(proxy: FaultProxy, client: httpx.Client,
                                  image: tuple[str, str, str]) -> None:
    repo, _, digest = image
    body = client.get(f"/v2/{repo}/manifests/{digest}").content
    put = client.put(f"/v2/{repo}/manifests/copy", content=body,
                     headers={"Content-Type": OCI_MANIFEST})
    assert put.status_code == 201
    assert put.headers["Docker-Content-Digest"] == digest
    # chunked request body (httpx streams an iterator as Transfer-Encoding: chunked)
    chunked = client.put(f"/v2/{repo}/manifests/copy2",
                         content=iter([body[:10], body[10:]]),
                         headers={"Content-Type": OCI_MANIFEST})
    assert chunked.status_code == 201
    assert client.head(f"/v2/{repo}/manifests/copy2").headers["Docker-Content-Digest"] == digest


def test_counts_and_reset(proxy: FaultProxy, client: httpx.Client) -> None:
    for _ in range(3):
        client.get("/v2/")
    assert len(proxy.requests) == 3
    assert len(proxy.filter("GET", "/v2/", agent=AGENT)) == 3
    assert proxy.filter("HEAD") == []
    proxy.reset_counts()
    assert proxy.requests == [] and proxy.connections == 0
    client.get("/v2/")
    assert [tuple(r) for r in proxy.requests] == [("GET", "/v2/", 200, None)]


def test_upstream_down_answers_502() -> None:
    with FaultProxy(f"http://127.0.0.1:{free_port()}") as p, httpx.Client() as c:
        r = c.get(p.url + "/v2/")
        assert r.status_code == 502
        assert p.requests[0].status_sent == 502


# ----------------------------------------------------------------------------------- faults


def test_latency(proxy: FaultProxy, client: httpx.Client) -> None:
    proxy.set_fault("latency", seconds=0.4, count=1)
    start = time.monotonic()
    assert client.get("/v2/").status_code == 200
    assert time.monotonic() - start >= 0.4
    start = time.monotonic()
    assert client.get("/v2/").status_code == 200
    assert time.monotonic() - start < 0.3
    assert [r.fault for r in proxy.requests] == ["latency", None]


def test_reset_then_normal(proxy: FaultProxy, client: httpx.Client,
                           registry_anonymous: Registry) -> None:
    client.get("/v2/")  # an established keep-alive connection gets reset too
    proxy.set_fault("reset", count=1)
    mark = registry_anonymous.mark()
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.get("/v2/")
    assert registry_anonymous.requests(since=mark, agent=AGENT) == []  # nothing forwarded
    assert client.get("/v2/").status_code == 200
    assert [tuple(r) for r in proxy.requests] == [
        ("GET", "/v2/", 200, None), ("GET", "/v2/", None, "reset"), ("GET", "/v2/", 200, None)]


def test_reset_is_rst(proxy: FaultProxy) -> None:
    proxy.set_fault("reset")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as s:
        s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(ConnectionResetError):
            s.recv(1024)


def test_hang_until_client_gives_up(proxy: FaultProxy, client: httpx.Client) -> None:
    proxy.set_fault("hang", count=1)
    start = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.get("/v2/", timeout=0.5)
    assert time.monotonic() - start < 2
    assert tuple(proxy.requests[0]) == ("GET", "/v2/", None, "hang")
    assert client.get("/v2/").status_code == 200


def test_hang_released_by_close(registry_anonymous: Registry) -> None:
    p = FaultProxy(registry_anonymous.url)
    p.set_fault("hang")
    errors: list[BaseException] = []

    def call() -> None:
        try:
            httpx.get(p.url + "/v2/", timeout=10)
        except httpx.HTTPError as exc:
            errors.append(exc)

    t = threading.Thread(target=call)
    t.start()
    deadline = time.monotonic() + 3
    while not p.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    start = time.monotonic()
    p.close()
    t.join(timeout=5)
    assert not t.is_alive() and time.monotonic() - start < 3
    assert errors and isinstance(errors[0], httpx.TransportError)


@pytest.mark.parametrize("code", [429, 500, 502, 503])
def test_status_without_upstream(proxy: FaultProxy, client: httpx.Client, code: int,
                                 registry_anonymous: Registry) -> None:
    headers = {"Retry-After": "2"} if code == 429 else None
    proxy.set_fault("status", code=code, headers=headers, count=2)
    mark = registry_anonymous.mark()
    r = client.get("/v2/")
    assert r.status_code == code
    if code == 429:
        assert r.headers["Retry-After"] == "2"
        assert r.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    head = client.head("/v2/")  # the connection stays usable, HEAD gets no body
    assert head.status_code == code and head.content == b""
    assert client.get("/v2/").status_code == 200
    assert registry_anonymous.requests(since=mark, agent=AGENT) == [
        ("GET", "/v2/", 200)]  # only the third request reached the registry
    assert proxy.connections == 1
    assert [(r.status_sent, r.fault) for r in proxy.requests] == [
        (code, "status"), (code, "status"), (200, None)]


def test_status_custom_body(proxy: FaultProxy, client: httpx.Client) -> None:
    proxy.set_fault("status", code=503, body="down for maintenance", content_type="text/plain")
    r = client.get("/v2/")
    assert (r.status_code, r.text, r.headers["Content-Type"]) == (
        503, "down for maintenance", "text/plain")


def test_html_login_page(proxy: FaultProxy, client: httpx.Client,
                         image: tuple[str, str, str]) -> None:
    proxy.set_fault("html")
    r = client.get(manifest_path(image))
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert "<form" in r.text and "password" in r.text
    assert "Docker-Content-Digest" not in r.headers
    proxy.clear()
    assert client.get(manifest_path(image)).headers["Content-Type"] == OCI_MANIFEST


def test_truncate(proxy: FaultProxy, client: httpx.Client, image: tuple[str, str, str]) -> None:
    full = client.get(manifest_path(image)).content
    proxy.set_fault("truncate", count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(manifest_path(image))
    proxy.set_fault("truncate", count=1, keep_bytes=10)
    got = b""
    with pytest.raises(httpx.RemoteProtocolError), \
            client.stream("GET", manifest_path(image)) as r:
        assert int(r.headers["Content-Length"]) == len(full)
        for chunk in r.iter_raw():
            got += chunk
    assert got == full[:10]
    assert client.get(manifest_path(image)).content == full


def test_drop_digest(proxy: FaultProxy, client: httpx.Client,
                     image: tuple[str, str, str]) -> None:
    proxy.set_fault("drop_digest", count=2)
    head = client.head(manifest_path(image))
    get = client.get(manifest_path(image))
    assert head.status_code == get.status_code == 200
    assert "Docker-Content-Digest" not in head.headers
    assert "Docker-Content-Digest" not in get.headers
    assert digest_of(get.content) == image[2]  # body untouched
    assert client.head(manifest_path(image)).headers["Docker-Content-Digest"] == image[2]


def test_corrupt(proxy: FaultProxy, client: httpx.Client, image: tuple[str, str, str]) -> None:
    proxy.set_fault("corrupt", count=1)
    r = client.get(manifest_path(image))
    assert r.headers["Docker-Content-Digest"] == image[2]
    assert "sha256:" + hashlib.sha256(r.content).hexdigest() != image[2]
    assert r.json()["mediaType"] == OCI_MANIFEST  # still valid JSON
    proxy.set_fault("corrupt", count=1, keep_json=False)
    r2 = client.get(manifest_path(image))
    good = client.get(manifest_path(image)).content
    assert len(r2.content) == len(good) and r2.content != good
    assert digest_of(good) == image[2]


def test_wrong_type(proxy: FaultProxy, client: httpx.Client,
                    image: tuple[str, str, str]) -> None:
    proxy.set_fault("wrong_type", match=("GET", "/manifests/"))
    r = client.get(manifest_path(image))
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers.get_list("Content-Type") == ["application/octet-stream"]
    assert digest_of(r.content) == image[2]
    # HEAD does not match the (method, path) filter
    assert client.head(manifest_path(image)).headers["Content-Type"] == OCI_MANIFEST


def test_ratelimit_headers_and_extra_headers(proxy: FaultProxy, client: httpx.Client) -> None:
    proxy.set_fault("ratelimit_headers", remaining=7, count=1)
    r = client.get("/v2/")
    assert r.headers["ratelimit-limit"] == "100;w=21600"
    assert r.headers["ratelimit-remaining"] == "7;w=21600"
    assert "ratelimit-remaining" not in client.get("/v2/").headers

    proxy.set_headers({"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "0;w=21600"})
    proxy.set_fault("status", code=429, count=1)
    limited = client.get("/v2/")
    assert limited.status_code == 429
    assert limited.headers["ratelimit-remaining"] == "0;w=21600"
    assert client.get("/v2/").headers["ratelimit-remaining"] == "0;w=21600"
    proxy.set_headers(None)
    assert "ratelimit-remaining" not in client.get("/v2/").headers


# --------------------------------------------------------------------------- rule mechanics


def test_queue_match_and_clear(proxy: FaultProxy, client: httpx.Client,
                               image: tuple[str, str, str]) -> None:
    first = proxy.set_fault("status", code=503, count=2)
    proxy.set_fault("status", code=500, count=1)
    assert [client.get("/v2/").status_code for _ in range(4)] == [503, 503, 500, 200]
    assert first.hits == 2 and not first.active and proxy.faults == []

    def only_heads(req: ProxyRequest) -> bool:
        return req.method == "HEAD"

    proxy.set_fault("status", code=502, match=only_heads)
    assert client.head(manifest_path(image)).status_code == 502
    assert client.get(manifest_path(image)).status_code == 200
    proxy.clear()
    assert client.head(manifest_path(image)).status_code == 200

    rule = proxy.set_fault("status", code=500, match="/manifests/")
    assert client.get("/v2/").status_code == 200
    assert client.get(manifest_path(image)).status_code == 500
    rule.remove()
    assert client.get(manifest_path(image)).status_code == 200

    with pytest.raises(ValueError):
        proxy.set_fault("explode")
    with pytest.raises(TypeError):
        proxy.set_fault("reset", seconds=1)


def test_survives_client_disconnects(proxy: FaultProxy, client: httpx.Client) -> None:
    # a client that times out during a slow answer
    proxy.set_fault("latency", seconds=0.5, count=1)
    with pytest.raises(httpx.ReadTimeout):
        client.get("/v2/", timeout=0.1)
    # a client that sends half a request, one that sends a partial body, one that resets
    with socket.create_connection(("127.0.0.1", proxy.port)) as s:
        s.sendall(b"GET /v2/ HTT")
    with socket.create_connection(("127.0.0.1", proxy.port)) as s:
        s.sendall(b"PUT /v2/x/manifests/y HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
    s = socket.create_connection(("127.0.0.1", proxy.port))
    s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()
    time.sleep(0.7)  # the slow answer goes out to a closed socket meanwhile
    for _ in range(3):
        assert client.get("/v2/").status_code == 200
    # concurrent clients
    results: list[int] = []

    def call() -> None:
        with httpx.Client(timeout=5) as c:
            results.extend(c.get(proxy.url + "/v2/").status_code for _ in range(5))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert results == [200] * 40


def test_json_error_body_shape(proxy: FaultProxy, client: httpx.Client) -> None:
    proxy.set_fault("status", code=500, count=1)
    r = client.get("/v2/")
    assert r.headers["Content-Type"] == "application/json"
    assert json.loads(r.content)["errors"][0]["code"] == "UNKNOWN"
