"""The distribution reference grammar, platforms and durations (pure functions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tagwatch.core.durations import format_duration, parse_duration
from tagwatch.core.refs import ImageRef, is_loopback, parse_platform, parse_ref
from tagwatch.errors import ReferenceError_

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("python", "docker.io", "library/python", "latest", None),
        ("python:3.12-slim", "docker.io", "library/python", "3.12-slim", None),
        ("docker.io/python", "docker.io", "library/python", "latest", None),
        ("index.docker.io/library/python:3", "docker.io", "library/python", "3", None),
        ("registry-1.docker.io/grafana/grafana", "docker.io", "grafana/grafana", "latest", None),
        ("registry.hub.docker.com/python", "docker.io", "library/python", "latest", None),
        ("grafana/grafana:11.3.0", "docker.io", "grafana/grafana", "11.3.0", None),
        ("ghcr.io/org/team/app:v1", "ghcr.io", "org/team/app", "v1", None),
        ("localhost/app", "localhost", "app", "latest", None),
        ("localhost:5000/app:1", "localhost:5000", "app", "1", None),
        ("127.0.0.1:5000/a/b/c:x_y", "127.0.0.1:5000", "a/b/c", "x_y", None),
        ("[::1]:5000/app", "[::1]:5000", "app", "latest", None),
        (f"python:3.12@{D}", "docker.io", "library/python", "3.12", D),
        (f"python@{D}", "docker.io", "library/python", None, D),
        ("Example.COM/app", "example.com", "app", "latest", None),
        ("a.b/x__y.z-1---2:T.a-g", "a.b", "x__y.z-1---2", "T.a-g", None),
    ],
)
def test_parse(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_ref(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry,
        repository,
        tag,
        digest,
    )


def test_canonical_name_and_api_host() -> None:
    ref = parse_ref("python:3.12")
    assert ref.name == "docker.io/library/python"
    assert ref.api_host == "registry-1.docker.io"
    assert str(ref) == "docker.io/library/python:3.12"
    assert parse_ref("ghcr.io/o/a").api_host == "ghcr.io"
    pinned = parse_ref(f"python:3@{D}")
    assert str(pinned.without_digest()) == "docker.io/library/python:3"
    assert pinned.with_tag("4").tag == "4"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("Python:3.12", "lower case"),
        ("ghcr.io/Org/app", "lower case"),
        ("example.com//x", "empty path component"),
        ("example.com/x/", "empty path component"),
        ("python:", "empty tag"),
        ("python:-bad", "bad tag"),
        ("python:" + "a" * 129, "bad tag"),
        ("python@sha256:abc", "64 lower-case hex"),
        ("python@sha256:" + "A" * 64, "64 lower-case hex"),
        ("python@md5:" + "a" * 32, "unsupported algorithm"),
        ("python@", "bad digest"),
        ("a_/b", "bad path component"),
        ("-a.com/b", "bad registry host"),
        ("example.com:99999/x", "bad port"),
        (" python", "white space"),
        ("x/" + "a" * 260, "longer than 255"),
    ],
)
def test_refused(text: str, why: str) -> None:
    with pytest.raises(ReferenceError_) as info:
        parse_ref(text)
    assert why in str(info.value)
    if text.strip():
        assert repr(text)[:30].rstrip("'") in str(info.value) or "empty" in str(info.value)


_component = st.from_regex(r"[a-z0-9]{1,5}([._-][a-z0-9]{1,5}){0,2}", fullmatch=True)
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_host = st.sampled_from(
    ["ghcr.io", "localhost:5000", "example.com", "127.0.0.1:443", "my-reg.example.com:8443"]
)


@given(
    _host,
    st.lists(_component, min_size=1, max_size=4),
    _tag,
    st.none() | st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
)
def test_round_trip(host: str, path: list[str], tag: str, hex_: str | None) -> None:
    text = f"{host}/{'/'.join(path)}:{tag}" + (f"@sha256:{hex_}" if hex_ else "")
    ref = parse_ref(text)
    assert str(ref) == text
    assert parse_ref(str(ref)) == ref


@given(st.text(max_size=80))
def test_never_crashes(text: str) -> None:
    try:
        ref = parse_ref(text)
    except ReferenceError_ as exc:
        assert "\n" not in str(exc).replace(repr(text), "")
    else:
        assert isinstance(ref, ImageRef)
        assert parse_ref(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("linux/amd64", "linux/amd64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/aarch64", "linux/arm64"),
        ("linux/x86_64", "linux/amd64"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/arm/v6", "linux/arm/v6"),
        ("Windows/AMD64", "windows/amd64"),
    ],
)
def test_platforms(text: str, key: str) -> None:
    assert parse_platform(text) == key


@pytest.mark.parametrize("text", ["linux", "linux/", "/amd64", "a/b/c/d", "linux/am d64"])
def test_bad_platforms(text: str) -> None:
    with pytest.raises(ValueError, match="bad platform"):
        parse_platform(text)


@pytest.mark.parametrize(
    ("host", "loop"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.3.2.1", True),
        ("[::1]:5000", True),
        ("ghcr.io", False),
        ("10.0.0.1:5000", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15m", 900),
        ("6h", 21600),
        ("7d", 604800),
        ("1w", 604800),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("1.5h", 5400),
        ("250ms", 0.25),
        ("0s", 0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "15", "15x", "m", "1h-", "-5m", "5 minutes", "1e3s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match=r"bad duration .*e\.g\. 30s, 15m, 6h, 7d"):
        parse_duration(text)


@given(st.text(max_size=20))
def test_duration_fuzz(text: str) -> None:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        assert str(exc).startswith("bad duration")
    else:
        assert value >= 0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.2, "200ms"),
        (59, "59s"),
        (3600 * 26 + 60, "1d 2h"),
        (5400, "1h 30m"),
        (-90, "-1m 30s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
