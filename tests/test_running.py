"""What runs, pure: Docker Engine API and Kubernetes answers (their documented shapes,
Docker's included where Podman answers differently) turned into pins or into the reason they
are not; and the engine reader's version negotiation and failures, against a fake engine on
a unix socket."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tagwatch.config import load_config
from tagwatch.core.running import Running, from_engine, from_pods
from tagwatch.errors import SourceError
from tagwatch.sources import read_sources
from tagwatch.sources.engine import negotiate

A, B, C = "sha256:" + "a" * 64, "sha256:" + "b" * 64, "sha256:" + "c" * 64
IMG = "sha256:" + "1" * 64
E = "unix:///var/run/docker.sock"


def container(name: str, image: str, image_id: str = IMG, **extra: Any) -> dict[str, Any]:
    return {"Id": "f" * 64, "Names": [f"/{name}"], "Image": image, "ImageID": image_id,
            "State": "running", **extra}


def image(repo_digests: list[str], image_id: str = IMG, **extra: Any) -> dict[str, Any]:
    return {"Id": image_id, "RepoTags": [], "RepoDigests": repo_digests, **extra}


def test_docker_lists_the_image_id_once_the_tag_moved_locally() -> None:
    """After `docker pull python:3.12-slim` fetched a newer image, `docker ps` (and the list
    API) shows the old container's image as its ID; Config.Image still has the reference."""
    found = from_engine(E, [container("api", IMG)], [image([f"python@{A}"])],
                        configured={"f" * 64: "python:3.12-slim"})
    assert found == [Running(f"container api on {E}", "docker.io/library/python:3.12-slim", A)]
    [pin] = found
    assert str(pin.ref()) == f"docker.io/library/python:3.12-slim@{A}"
    # Without Config.Image there is no reference: said so, not guessed.
    [note] = from_engine(E, [container("api", IMG)], [image([f"python@{A}"])])
    assert note.problem == "started from an image ID, not a reference: no tag to follow"


def test_repo_digest_of_the_containers_repository_only() -> None:
    images = [image([f"mirror.example/library/python@{B}", f"docker.io/library/python@{A}"])]
    [pin] = from_engine(E, [container("api", "python:3.12")], images)
    assert (pin.image, pin.digest) == ("docker.io/library/python:3.12", A)
    [note] = from_engine(E, [container("api", "ghcr.io/team/api:1")], images)
    assert note.problem is not None and "no registry digest for ghcr.io/team/api" in note.problem


def test_the_platform_image_when_the_engine_names_it() -> None:
    # Docker >= 28.1 (API 1.48, containerd store): ImageManifestDescriptor is what runs.
    descriptor = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": B,
                  "size": 1234, "platform": {"architecture": "amd64", "os": "linux"}}
    [pin] = from_engine(E, [container("web", "nginx:1.25", ImageManifestDescriptor=descriptor)],
                        [image([f"nginx@{A}"])])
    assert pin.digest == B
    # Podman: both the index's and the platform image's digest, the pulled one as Digest.
    [pin] = from_engine(E, [container("web", "nginx:1.25")],
                        [image([f"nginx@{B}", f"nginx@{A}"], Digest=A)])
    assert pin.digest == B


def test_not_pins_and_why() -> None:
    cases = {
        "localhost/built:dev": "no registry digest for localhost/built",
        f"python@{A}": "pinned by digest alone",
        "Not A Reference!": "not an image reference",
        "": "no image reference",
    }
    for ref, why in cases.items():
        [note] = from_engine(E, [container("x", ref)], [image([f"localhost/built@{A}"])])
        assert note.digest is None and note.problem and why in note.problem, (ref, note)


def test_created_with_tag_and_digest_runs_that_digest() -> None:
    [pin] = from_engine(E, [container("db", f"postgres:16@{C}")], [image([f"postgres@{A}"])])
    assert (pin.image, pin.digest) == ("docker.io/library/postgres:16", C)


def test_hostile_shapes_are_skipped_not_fatal() -> None:
    containers: list[Any] = ["text", None, {"Names": "nope", "Image": 5, "ImageID": []},
                             container("ok", "redis:7")]
    images: list[Any] = [42, {"Id": IMG, "RepoDigests": "redis@" + A}, image([f"redis@{A}"])]
    found = from_engine(E, containers, images)
    assert found[-1] == Running(f"container ok on {E}", "docker.io/library/redis:7", A)
    pods: list[Any] = [None, {"metadata": "x", "spec": [], "status": 3},
                       {"status": {"containerStatuses": [{"name": 1}, "x"]}}]
    assert from_pods(pods) == []


def test_stored_readings_round_trip() -> None:
    item = Running("container a on E", "redis:7", A)
    assert Running.from_dict(item.as_dict()) == item
    assert Running.from_dict({"place": 1, "image": "x"}) is None
    assert Running.from_dict({"place": "p", "image": "x", "digest": 5}) is None


def test_version_negotiation() -> None:
    assert negotiate((1, 41)) == "1.41"  # Podman 4 and 5
    assert negotiate((1, 52)) == "1.48"  # Docker 29: ours is the lower
    assert negotiate(None) == "1.24"
    with pytest.raises(SourceError, match="older than 1.24"):
        negotiate((1, 12))
    with pytest.raises(SourceError, match="requires API 1.50 or newer"):
        negotiate((1, 52), minimum=(1, 50))


# --- the reader against a fake engine -------------------------------------------------------


class _UnixHTTP(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def fake_engine(tmp_path: Path) -> Iterator[tuple[Path, dict[str, Any], list[str]]]:
    answers: dict[str, Any] = {}
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def address_string(self) -> str:
            return "engine"

        def do_GET(self) -> None:  # noqa: N802
            seen.append(self.path)
            path = self.path.split("?")[0]
            status, headers, body = answers.get(path, (404, {}, b'{"message":"page not found"}'))
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    sock = tmp_path / "docker.sock"
    server = _UnixHTTP(str(sock), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield sock, answers, seen
    server.shutdown()
    server.server_close()


def _read(tmp_path: Path, sock: Path) -> Any:
    config = tmp_path / "c.toml"
    config.write_text(f'[[source]]\nengine = "unix://{sock}"\n')
    return read_sources(load_config(config))


def test_old_engine_version_from_version_endpoint(tmp_path: Path, fake_engine: Any) -> None:
    sock, answers, seen = fake_engine
    answers["/_ping"] = (200, {}, b"OK")  # no Api-Version header (Docker < 1.25)
    answers["/version"] = (200, {}, json.dumps({"ApiVersion": "1.24"}).encode())
    answers["/v1.24/containers/json"] = (200, {}, json.dumps(
        [container("api", "redis:7")]).encode())
    answers["/v1.24/images/json"] = (200, {}, json.dumps([image([f"redis@{A}"])]).encode())
    expansion = _read(tmp_path, sock)
    assert expansion.failures == []
    assert [str(t.ref) for t in expansion.config.targets] == [f"docker.io/library/redis:7@{A}"]
    assert seen == ["/_ping", "/version", "/v1.24/containers/json", "/v1.24/images/json"]


def test_engine_errors_are_one_line(tmp_path: Path, fake_engine: Any) -> None:
    sock, answers, _ = fake_engine
    where = f"source[0]: engine unix://{sock}"
    answers["/_ping"] = (200, {"Api-Version": "1.45"}, b"OK")
    answers["/v1.45/containers/json"] = (500, {}, b'{"message": "boom\\n\\u001b[31mred"}')
    assert _read(tmp_path, sock).failures == [
        f"{where}: GET /v1.45/containers/json: HTTP 500: boom [31mred"]  # ESC dropped, one line
    answers["/v1.45/containers/json"] = (200, {}, b"[" * 100000)
    assert _read(tmp_path, sock).failures == [
        f"{where}: GET /v1.45/containers/json: the answer is not JSON"]
    answers["/_ping"] = (404, {}, b"")
    assert _read(tmp_path, sock).failures == [
        f"{where}: GET /_ping: HTTP 404 (is this a Docker Engine API?)"]
    answers["/_ping"] = (200, {"Api-Version": "1.12"}, b"OK")
    assert _read(tmp_path, sock).failures == [f"{where}: API version 1.12 is older than 1.24"]


def test_engine_config_errors(tmp_path: Path) -> None:
    from tagwatch.errors import ConfigError

    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "cert.pem").write_text("x")
    cases = {
        'engine = "tcp://10.0.0.5:2375"': "without TLS: the engine's API would travel in clear",
        'engine = "ssh://me@host"': "ssh:// is not supported",
        'engine = "unix://relative.sock"': "use unix:///absolute/path.sock",
        'engine = "npipe:////./pipe/docker_engine"': "use unix:///path/to/docker.sock",
        f'engine = "tcp://10.0.0.5:2376"\ncert_path = "{certs}"': "ca.pem does not exist",
        f'engine = "tcp://10.0.0.5:2376"\ncert_path = "{certs}"\ntls_verify = false':
            "key.pem does not exist",
        'engine = "unix:///run/docker.sock"\ninclude = ["*"]': "applies to path sources only",
        'engine = "unix:///run/docker.sock"\nnamespaces = ["a"]':
            "applies to kubernetes sources only",
        "stopped = true": "give one of path (files), engine (a Docker Engine API) or kubernetes",
    }
    for text, message in cases.items():
        config = tmp_path / "c.toml"
        config.write_text(f"[[source]]\n{text}\n")
        with pytest.raises(ConfigError) as caught:
            load_config(config)
        assert message in str(caught.value), (text, str(caught.value))
    ok = tmp_path / "ok.toml"
    ok.write_text('[[source]]\nengine = "tcp://127.0.0.1:2375"\n[[source]]\nengine = "env"\n')
    config = load_config(ok, env={"DOCKER_HOST": "tcp://10.1.2.3:2376",
                                  "DOCKER_TLS": "1", "DOCKER_CERT_PATH": str(tmp_path)})
    first, second = config.sources
    assert first.engine is not None and not first.engine.tls
    assert second.engine is not None and second.engine.tls and not second.engine.verify
    assert second.label == "engine tcp://10.1.2.3:2376"
