"""Version tracks and newer versions (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tagwatch.core.versions import Version, newer_versions, parse_version

TAGS = [
    "3.12.7",
    "3.12.8",
    "3.12.10",
    "3.13.0",
    "4.0.0",
    "3.12.9-slim",
    "3.13-slim",
    "3.12-slim",
    "3.14-slim",
    "4.0-slim",
    "3.13.0-rc1",
    "latest",
    "3",
    "v3.12.8",
    "20.11.1-alpine3.20",
    "20.12.0-alpine3.20",
    "20.12.0-alpine3.21",
    "22.1.0-alpine3.20",
]


@pytest.mark.parametrize(
    ("tag", "policy", "expected"),
    [
        ("3.12.7", "patch", ["3.12.8", "3.12.10"]),
        ("3.12.7", "minor", ["3.12.8", "3.12.10", "3.13.0"]),
        ("3.12.7", "major", ["3.12.8", "3.12.10", "3.13.0", "4.0.0"]),
        ("3.12-slim", "minor", ["3.13-slim", "3.14-slim"]),
        ("3.12-slim", "major", ["3.13-slim", "3.14-slim", "4.0-slim"]),
        ("3.12-slim", "patch", ["3.13-slim", "3.14-slim"]),  # two numbers: the last moves
        ("20.11.1-alpine3.20", "minor", ["20.12.0-alpine3.20"]),
        ("20.11.1-alpine3.20", "major", ["20.12.0-alpine3.20", "22.1.0-alpine3.20"]),
        ("v3.12.7", "minor", ["v3.12.8"]),
        ("latest", "major", []),
        ("3.14-slim", "major", ["4.0-slim"]),
    ],
)
def test_newer(tag: str, policy: str, expected: list[str]) -> None:
    assert newer_versions(tag, TAGS, policy) == expected


def test_parse() -> None:
    assert parse_version("20.11.1-alpine3.20") == Version((20, 11, 1), "", "-alpine3.20")
    assert parse_version("v1.4") == Version((1, 4), "v", "")
    assert parse_version("3.13.0-rc1") == Version((3, 13, 0), "", "-rc1")
    assert parse_version("latest") is None and parse_version("1.2.3.4.5") is None
    assert parse_version("sha-abc") is None


@given(
    st.text(max_size=20),
    st.lists(st.text(max_size=20), max_size=20),
    st.sampled_from(["patch", "minor", "major", "bogus"]),
)
def test_never_crashes_and_only_same_track(tag: str, tags: list[str], policy: str) -> None:
    found = newer_versions(tag, tags, policy)
    current = parse_version(tag)
    for text in found:
        version = parse_version(text)
        assert current is not None and version is not None
        assert version.track == current.track and version.numbers > current.numbers


@pytest.mark.parametrize(
    ("tag", "policy", "include", "exclude", "expected"),
    [
        # exclude narrows the track
        ("3.12.7", "minor", (), (r"^3\.12\.10$",), ["3.12.8", "3.13.0"]),
        ("3.12.7", "major", (), (r"^4\.", r"\.8$"), ["3.12.10", "3.13.0"]),
        # include chooses the suffix: `3.12` is offered the -slim tags of its form
        ("3.12", "minor", (r"-slim$",), (), ["3.13-slim", "3.14-slim"]),
        ("3.12", "major", (r"-slim$",), (), ["3.13-slim", "3.14-slim", "4.0-slim"]),
        # …across a base-image suffix that changes with each release
        ("20.11.1-alpine3.20", "minor", (r"-alpine3\.\d+$",), (),
         ["20.12.0-alpine3.20", "20.12.0-alpine3.21"]),
        ("20.11.1-alpine3.20", "minor", (r"-alpine3\.\d+$",), (r"alpine3\.20$",),
         ["20.12.0-alpine3.21"]),
        # include also narrows: only the patterns' tags; the form (v, how many numbers) holds
        ("3.12.7", "major", (r"^3\.",), (), ["3.12.8", "3.12.9-slim", "3.12.10", "3.13.0",
                                             "3.13.0-rc1"]),
        ("3.12.7", "major", (r"^3\.",), (r"-rc\d*$",), ["3.12.8", "3.12.9-slim", "3.12.10",
                                                        "3.13.0"]),
        ("3.12.7", "minor", (r"^v",), (), []),  # v3.12.8 is another form
        ("3.12-slim", "major", (r"-none-such$",), (), []),
    ],
)
def test_newer_filters(
    tag: str, policy: str, include: tuple[str, ...], exclude: tuple[str, ...],
    expected: list[str],
) -> None:
    assert newer_versions(tag, TAGS, policy, include, exclude) == expected


def test_filters_never_see_a_tag_longer_than_the_spec_allows() -> None:
    long = "3.13-" + "a" * 124  # 129 characters: no registry may name a tag so
    assert newer_versions("3.12", ["3.13-slim", long], "minor", (r"-",)) == ["3.13-slim"]
    assert newer_versions("3.12", [long[:128]], "minor", (r"-a+$",)) == [long[:128]]
