"""WWW-Authenticate parsing and Docker credential lookup."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tagwatch.core.challenge import parse_www_authenticate
from tagwatch.registry.dockercreds import Credentials, docker_credentials


def test_bearer_challenge() -> None:
    [c] = parse_www_authenticate(
        [
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
            'scope="repository:library/python:pull"'
        ]
    )
    assert c.scheme == "bearer"
    assert c.params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/python:pull",
    }


def test_several_challenges_spaces_case_and_escapes() -> None:
    got = parse_www_authenticate(
        [
            'Basic realm="Registry Realm", BEARER Realm = "https://x/t" , Service=reg',
            'Bearer realm="a\\"b",error="insufficient_scope"',
        ]
    )
    assert [c.scheme for c in got] == ["basic", "bearer", "bearer"]
    assert got[0].params == {"realm": "Registry Realm"}
    assert got[1].params == {"realm": "https://x/t", "service": "reg"}
    assert got[2].params["realm"] == 'a"b'
    assert got[2].params["error"] == "insufficient_scope"


@given(st.lists(st.text(max_size=60), max_size=3))
def test_never_raises(headers: list[str]) -> None:
    for challenge in parse_www_authenticate(headers):
        assert challenge.scheme == challenge.scheme.lower()


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return path


def test_auths_base64_and_hub_key(tmp_path: Path) -> None:
    auth = base64.b64encode(b"me:s3cret").decode()
    path = write(
        tmp_path,
        {
            "auths": {
                "https://index.docker.io/v1/": {"auth": auth},
                "ghcr.io": {"username": "bot", "password": "p"},
            }
        },
    )
    hub = docker_credentials("docker.io", path)
    assert hub is not None and (hub.username, hub.password) == ("me", "s3cret")
    assert "s3cret" not in repr(hub)
    ghcr = docker_credentials("ghcr.io", path)
    assert ghcr is not None and (ghcr.username, ghcr.password) == ("bot", "p")
    assert docker_credentials("quay.io", path) is None


def test_identity_and_registry_tokens(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"auths": {"a.io": {"identitytoken": "refresh"}, "b.io": {"registrytoken": "bearer"}}},
    )
    a = docker_credentials("a.io", path)
    b = docker_credentials("b.io", path)
    assert a == Credentials("<token>", identity_token="refresh", source=a.source if a else "")
    assert b is not None and b.registry_token == "bearer"


def test_cred_helpers_then_store(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"credHelpers": {"gcr.io": "gcloud"}, "credsStore": "desktop", "auths": {"ghcr.io": {}}},
    )
    calls: list[tuple[list[str], str]] = []

    def runner(argv: list[str], stdin: str) -> str:
        calls.append((argv, stdin))
        if argv[0] == "docker-credential-gcloud":
            return json.dumps(
                {"ServerURL": stdin, "Username": "oauth2accesstoken", "Secret": "ya29"}
            )
        if stdin == "ghcr.io":
            return json.dumps({"ServerURL": stdin, "Username": "<token>", "Secret": "idt"})
        raise LookupError("credentials not found in native keychain")

    gcr = docker_credentials("gcr.io", path, runner=runner)
    assert gcr is not None and (gcr.username, gcr.password) == ("oauth2accesstoken", "ya29")
    assert gcr.source == "docker-credential-gcloud"
    ghcr = docker_credentials("ghcr.io", path, runner=runner)
    assert ghcr is not None and ghcr.identity_token == "idt"
    assert docker_credentials("quay.io", path, runner=runner) is None
    assert [c[0][0] for c in calls] == [
        "docker-credential-gcloud",
        "docker-credential-desktop",
        "docker-credential-desktop",
    ]


def test_missing_helper_and_broken_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, {"credsStore": "nonexistent-helper-xyz"})
    assert docker_credentials("ghcr.io", path) is None
    assert "not installed" in caplog.text
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert docker_credentials("ghcr.io", broken) is None
    assert docker_credentials("ghcr.io", tmp_path / "absent.json") is None


def test_docker_config_env(tmp_path: Path) -> None:
    write(tmp_path, {"auths": {"ghcr.io": {"username": "u", "password": "p"}}})
    found = docker_credentials("ghcr.io", env={"DOCKER_CONFIG": str(tmp_path)})
    assert found is not None and found.username == "u"
