"""Finding image references in Dockerfiles, Compose files and Kubernetes manifests
(tagwatch.core.scan), against the fixture tree in tests/scan_fixtures/."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagwatch.config import load_config
from tagwatch.core.model import Kind
from tagwatch.core.refs import parse_ref
from tagwatch.core.scan import (
    Found,
    file_kind,
    scan_compose,
    scan_dockerfile,
    scan_file,
    scan_kubernetes,
    scan_paths,
    to_rows,
    to_snippet,
)

FIXTURES = Path(__file__).resolve().parent / "scan_fixtures"
D_PYTHON = "sha256:11a4a60b518bf24989d481468076e5d5982884626aed9faeb35b8576fcd223e1"
D_BUSYBOX = "sha256:9d75f0d7c398df565d7ac04c6819b62d6d8f9560f5eb4672596ecd8f7e96ae91"
D_API = "sha256:14c2529eb4498c5d1ffd6915d05bf58a91bdda796af59f41d480d11c099d0479"
D_DB = "sha256:7bdc25d1694ef984782a16f6f1710c1c6bc83ba7a131b515baf532bea021d011"
D = "sha256:" + "a" * 64

Row = tuple[int, str, str | None, str | None, str]


def rows(found: list[Found]) -> list[Row]:
    """(line, text, canonical ref, problem, context) per Found."""
    return [(f.line, f.text, str(f.ref) if f.ref else None, f.problem, f.context) for f in found]


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def images(text: str) -> list[str | None]:
    """The canonical refs (None for a problem) of a Dockerfile."""
    return [str(f.ref) if f.ref else None for f in scan_dockerfile(text)]


def problems(text: str) -> list[str | None]:
    return [f.problem for f in scan_dockerfile(text)]


# --- the fixture files, exactly ------------------------------------------------------------


def test_dockerfile_fixture() -> None:
    found = scan_dockerfile(fixture("Dockerfile"))
    assert rows(found) == [
        (11, "node:22-bookworm-slim", "docker.io/library/node:22-bookworm-slim", None, "FROM"),
        (19, "ghcr.io/astral-sh/uv:0.5.11", "ghcr.io/astral-sh/uv:0.5.11", None, "FROM"),
        (
            21,
            f"python:3.12-slim-bookworm@{D_PYTHON}",
            f"docker.io/library/python:3.12-slim-bookworm@{D_PYTHON}",
            None,
            "FROM",
        ),
        (
            28,
            "ghcr.io/example/wheels:py3.12",
            "ghcr.io/example/wheels:py3.12",
            None,
            "RUN --mount",
        ),
        (32, "${REGISTRY}/tools/migrate:2.4", None, "unresolved variable ${REGISTRY}", "FROM"),
        (
            38,
            "docker.io/bitnami/kubectl:1.31",
            "docker.io/bitnami/kubectl:1.31",
            None,
            "COPY --from",
        ),
        (
            40,
            f"busybox:1.37-musl@{D_BUSYBOX}",
            f"docker.io/library/busybox:1.37-musl@{D_BUSYBOX}",
            None,
            "COPY --from",
        ),
    ]
    # --platform=$BUILDPLATFORM is the builder's: not a fixed value
    assert [f.platform for f in found] == [None, None, None, None, "linux/amd64", None, None]
    assert all(f.file == "Dockerfile" for f in found)


def test_containerfile_fixture() -> None:
    """`# escape=`` `: backtick continuations, backslashes are literal; scratch is skipped."""
    found = scan_dockerfile(fixture("Containerfile"), "Containerfile")
    assert rows(found) == [
        (
            6,
            "registry.access.redhat.com/ubi9/ubi-minimal:9.5",
            "registry.access.redhat.com/ubi9/ubi-minimal:9.5",
            None,
            "FROM",
        ),
        # FROM `<newline> image: the line of the image itself
        (12, "quay.io/prometheus/busybox:glibc", "quay.io/prometheus/busybox:glibc", None, "FROM"),
    ]


def test_api_dockerfile_fixture() -> None:
    """Lower-case instructions, stage names in any case, a heredoc whose body holds a FROM,
    ARG defaults in COPY --from, a global ARG used in a stage without re-declaring it."""
    found = scan_dockerfile(fixture("services/api/api.Dockerfile"), "api.Dockerfile")
    assert rows(found) == [
        (4, "golang:1.23-alpine", "docker.io/library/golang:1.23-alpine", None, "FROM"),
        (
            19,
            "docker.io/library/golang:1.23-alpine",
            "docker.io/library/golang:1.23-alpine",
            None,
            "FROM",
        ),
        (21, "alpine/helm:3.16.3", "docker.io/alpine/helm:3.16.3", None, "COPY --from"),
        (23, "alpine/git:2.47.1", "docker.io/alpine/git:2.47.1", None, "RUN --mount"),
        (
            25,
            "gcr.io/distroless/static-debian12:nonroot-${TARGETARCH}",
            None,
            "unresolved variable ${TARGETARCH} (set by the builder)",
            "FROM",
        ),
        (
            27,
            "tools:${GO_VERSION}",
            None,
            "unresolved variable ${GO_VERSION} (not declared with ARG in this stage)",
            "COPY --from",
        ),
    ]


def test_compose_fixture() -> None:
    found = scan_compose(fixture("compose.yaml"), "compose.yaml")
    assert rows(found) == [
        # worker merges x-worker: the line is that of the `image:` key in the anchor
        (
            9,
            "ghcr.io/example/shop-worker:1.2",
            "ghcr.io/example/shop-worker:1.2",
            None,
            "compose service worker",
        ),
        (
            15,
            "nginx:1.27-alpine",
            "docker.io/library/nginx:1.27-alpine",
            None,
            "compose service web",
        ),
        (
            24,
            "${REGISTRY}/shop/api:latest",
            None,
            "unresolved variable ${REGISTRY}",
            "compose service api (build)",
        ),
        (
            27,
            f"postgres:17.2@{D_DB}",
            f"docker.io/library/postgres:17.2@{D_DB}",
            None,
            "compose service db",
        ),
        (32, "redis:7.4", "docker.io/library/redis:7.4", None, "compose service cache"),
        # $$ is a literal $: the result is not a valid tag
        (
            40,
            "ghcr.io/example/shop-scheduler:${literal}",
            None,
            "bad image reference 'ghcr.io/example/shop-scheduler:${literal}': bad tag "
            "'${literal}': letters, digits, '_', '.' and '-', at most 128, not starting with "
            "'.' or '-'",
            "compose service scheduler",
        ),
        (
            44,
            "Example/App:1",
            None,
            "bad image reference 'Example/App:1': repository names must be lower case ('App')",
            "compose service broken",
        ),
    ]


def test_kubernetes_fixture() -> None:
    found = scan_kubernetes(fixture("deploy/shop.yaml"), "deploy/shop.yaml")
    assert rows(found) == [
        (
            17,
            "ghcr.io/example/shop-migrate:2.4.0",
            "ghcr.io/example/shop-migrate:2.4.0",
            None,
            "Deployment/api initContainer migrate",
        ),
        (
            21,
            f"ghcr.io/example/shop-api:2.4.0@{D_API}",
            f"ghcr.io/example/shop-api:2.4.0@{D_API}",
            None,
            "Deployment/api container app",
        ),
        (
            24,
            "envoyproxy/envoy:v1.32-latest",
            "docker.io/envoyproxy/envoy:v1.32-latest",
            None,
            "Deployment/api container envoy",
        ),
        # the ConfigMap's `image` key (line 32) is data, not a container
        (
            47,
            "docker.io/library/postgres:17.2",
            "docker.io/library/postgres:17.2",
            None,
            "CronJob/backup container pg-dump",
        ),
        (56, "busybox", "docker.io/library/busybox:latest", None, "Pod/debug container shell"),
        (
            59,
            "nicolaka/netshoot:v0.13",
            "docker.io/nicolaka/netshoot:v0.13",
            None,
            "Pod/debug ephemeralContainer debugger",
        ),
        (
            78,
            "quay.io/prometheus/node-exporter:v1.8.2",
            "quay.io/prometheus/node-exporter:v1.8.2",
            None,
            "DaemonSet/node-exporter container exporter",
        ),
    ]


def test_invalid_yaml_is_one_problem_at_its_line() -> None:
    found = scan_kubernetes(fixture("deploy/broken.yaml"), "deploy/broken.yaml")
    assert rows(found) == [
        (
            11,
            "",
            None,
            "YAML: expected <block end>, but found '<block mapping start>'",
            "Kubernetes manifest",
        )
    ]


def test_scan_paths_walks_the_fixture_tree() -> None:
    found = scan_paths([FIXTURES])
    assert [(f.file, f.line) for f in found] == [
        ("Containerfile", 6),
        ("Containerfile", 12),
        ("Dockerfile", 11),
        ("Dockerfile", 19),
        ("Dockerfile", 21),
        ("Dockerfile", 28),
        ("Dockerfile", 32),
        ("Dockerfile", 38),
        ("Dockerfile", 40),
        ("compose.yaml", 9),
        ("compose.yaml", 15),
        ("compose.yaml", 24),
        ("compose.yaml", 27),
        ("compose.yaml", 32),
        ("compose.yaml", 40),
        ("compose.yaml", 44),
        ("deploy/broken.yaml", 11),
        ("deploy/rollout.yml", 10),
        ("deploy/shop.yaml", 17),
        ("deploy/shop.yaml", 21),
        ("deploy/shop.yaml", 24),
        ("deploy/shop.yaml", 47),
        ("deploy/shop.yaml", 56),
        ("deploy/shop.yaml", 59),
        ("deploy/shop.yaml", 78),
        ("services/api/api.Dockerfile", 4),
        ("services/api/api.Dockerfile", 19),
        ("services/api/api.Dockerfile", 21),
        ("services/api/api.Dockerfile", 23),
        ("services/api/api.Dockerfile", 25),
        ("services/api/api.Dockerfile", 27),
    ]
    # the GitHub Actions workflow (.github/workflows/ci.yml) has `image:` keys, but is
    # neither Kubernetes nor Compose; docs/notes.yml is invalid YAML that looks like neither
    assert not any(f.file.startswith((".github", "docs")) for f in found)
    by_place = {(f.file, f.line): f for f in found}
    assert by_place["deploy/rollout.yml", 10].context == "Rollout/web container web"
    assert by_place["deploy/rollout.yml", 10].problem == "unresolved variable ${IMAGE}"
    assert by_place["deploy/broken.yaml", 11].context == "YAML"


def test_scan_paths_reports_files_as_given_and_dirs_relative() -> None:
    given = os.path.relpath(FIXTURES / "Containerfile")
    found = scan_paths([given, FIXTURES / "deploy"])
    assert sorted({f.file for f in found}) == sorted(
        {given, "broken.yaml", "rollout.yml", "shop.yaml"}
    )
    # a file seen twice (given, and inside a directory given) is scanned once
    twice = scan_paths([FIXTURES / "deploy" / "shop.yaml", FIXTURES / "deploy"])
    assert len(twice) == len(scan_paths([FIXTURES / "deploy"]))


@pytest.mark.parametrize(
    ("include", "exclude", "files"),
    [
        ((), (), None),  # everything: checked above
        (("deploy",), (), {"deploy/broken.yaml", "deploy/rollout.yml", "deploy/shop.yaml"}),
        (("*.yaml",), (), {"compose.yaml", "deploy/broken.yaml", "deploy/shop.yaml"}),
        (("deploy/*.yaml",), (), {"deploy/broken.yaml", "deploy/shop.yaml"}),
        (("**/*Dockerfile",), (), {"Dockerfile", "services/api/api.Dockerfile"}),
        (("**/api/**",), (), {"services/api/api.Dockerfile"}),
        ((), ("deploy/", "*.yaml"), {"Containerfile", "Dockerfile", "services/api/api.Dockerfile"}),
        (("*file",), ("services",), {"Containerfile", "Dockerfile"}),
        (("deploy",), ("broken.*", "[r]ollout.yml"), {"deploy/shop.yaml"}),
        (("/compose.yaml",), (), {"compose.yaml"}),
    ],
)
def test_include_exclude(
    include: tuple[str, ...], exclude: tuple[str, ...], files: set[str] | None
) -> None:
    found = scan_paths([FIXTURES], include=include, exclude=exclude)
    everything = {f.file for f in scan_paths([FIXTURES])}
    assert {f.file for f in found} == (everything if files is None else files)


def test_walk_skips_vendored_and_tool_directories(tmp_path: Path) -> None:
    for skipped in (".git", "node_modules/pkg", ".venv/lib", "vendor/github.com/x"):
        (tmp_path / skipped).mkdir(parents=True)
        (tmp_path / skipped / "Dockerfile").write_text("FROM skipped:1\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM kept:1\n")
    (tmp_path / "link").symlink_to(tmp_path / "app")  # a directory link is not followed
    (tmp_path / "Dockerfile.dev").symlink_to(tmp_path / "app" / "Dockerfile")  # nor a file link
    (tmp_path / "big.Dockerfile").write_text("FROM big:1\n" + "#" * (1024 * 1024))
    (tmp_path / "bin.Dockerfile").write_bytes(b"FROM bin:1\n\0\0\0")
    (tmp_path / "notes.txt").write_text("FROM notes:1\n")
    found = scan_paths([tmp_path])
    assert [(f.file, f.line, f.text) for f in found] == [("app/Dockerfile", 1, "kept:1")]


def test_scan_paths_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        scan_paths([tmp_path / "nope"])


def test_unreadable_file_is_a_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("FROM a:1\n")
    path.chmod(0)
    if os.geteuid() == 0:  # root reads any file: refuse it here instead
        real_open = Path.open

        def refuse(self: Path, *args: object, **kwargs: object) -> object:
            if self == path:
                raise PermissionError(13, "Permission denied", str(self))
            return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

        monkeypatch.setattr(Path, "open", refuse)
    found = scan_paths([tmp_path])
    assert [(f.file, f.line, f.problem) for f in found] == [
        ("Dockerfile", 1, "cannot read file: Permission denied")
    ]


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("Dockerfile", "dockerfile"),
        ("Containerfile", "dockerfile"),
        ("api.Dockerfile", "dockerfile"),
        ("api.dockerfile", "dockerfile"),
        ("Dockerfile.prod", "dockerfile"),
        ("Containerfile.ubi", "dockerfile"),
        ("Dockerfile.dockerignore", None),
        ("api.Dockerfile.dockerignore", None),
        ("compose.yaml", "compose"),
        ("compose.yml", "compose"),
        ("docker-compose.yaml", "compose"),
        ("docker-compose.yml", "compose"),
        ("docker-compose.override.yml", "compose"),
        ("compose.prod.yaml", "compose"),
        ("deployment.yaml", "yaml"),
        ("values.YML", "yaml"),
        ("README.md", None),
        ("dockerfile", None),
    ],
)
def test_file_kind(name: str, kind: str | None) -> None:
    assert file_kind(name) == kind


def test_scan_file_dispatch(tmp_path: Path) -> None:
    compose = "services:\n  web:\n    image: nginx:1\n"
    assert [f.context for f in scan_file(Path("compose.prod.yaml"), compose)] == [
        "compose service web"
    ]
    # a compose-shaped file under another name is found by its content
    assert [f.context for f in scan_file(Path("stack.yml"), compose)] == ["compose service web"]
    # any name: a Dockerfile by content when given explicitly
    other = tmp_path / "build-image"
    other.write_text("# the CI image\nARG V=3\nFROM alpine:${V}\nRUN apk add git\n")
    assert [(f.file, f.line, f.text) for f in scan_file(other)] == [(str(other), 3, "alpine:3")]
    assert scan_paths([other])[0].text == "alpine:3"
    prose = tmp_path / "letter.txt"
    prose.write_text("From: someone\nTo: you\n")
    assert scan_file(prose) == []
    assert scan_file(Path("x.txt"), "FROM a\nthis is not an instruction\n") == []


# --- Dockerfile semantics --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "image", "expected"),
    [
        ("ARG V=1", "a:$V", "a:1"),
        ("ARG V=1", "a:${V}", "a:1"),
        ("ARG V=1", "a:${V}-x", "a:1-x"),
        ("ARG V=1", "a:$V-x", "a:1-x"),
        ("ARG V=1", "a:${V:-2}", "a:1"),
        ("ARG V", "a:${V:-2}", "a:2"),
        ("ARG V=", "a:${V:-2}", "a:2"),
        ("ARG V=", "a:x${V-2}", "a:x"),
        ("ARG V", "a:x${V-2}", "a:x2"),
        ("", "a:${V:-2}", "a:2"),
        ("ARG V=1", "a:x${V:+-y}", "a:x-y"),
        ("ARG V", "a:x${V:+-y}", "a:x"),
        ("ARG V=", "a:x${V:+-y}", "a:x"),
        ("ARG V=", "a:x${V+-y}", "a:x-y"),
        ("ARG V=1 W=${V}.2", "a:${W}", "a:1.2"),
        ("ARG V=1\nARG W=$V.2", "a:$W", "a:1.2"),
        ('ARG V="1.0"', "a:${V}", "a:1.0"),
        ("ARG V", "a:${V:-${W:-3}}", "a:3"),
        ("ARG V=python:3.12-slim", "${V%%:*}:${V#*:}", "python:3.12-slim"),
        ("ARG V=python:3.12-slim", "a:${V##*-}", "a:slim"),
        ("ARG V=python:3.12-slim", "${V%-*}", "python:3.12"),
        ("ARG V=1", "a:\\$V", "a:$V"),  # escaped: not a variable (and not a valid tag)
        ("ARG V=1", "'a:$V'", "a:$V"),
        ("ARG V=1", '"a:$V"', "a:1"),
        ("ARG V=1", "a:$", "a:$"),
    ],
)
def test_substitution(args: str, image: str, expected: str) -> None:
    found = scan_dockerfile(f"{args}\nFROM {image}\n")
    assert [f.text for f in found] == [expected]


@pytest.mark.parametrize(
    ("args", "image", "problem"),
    [
        ("ARG V", "a:$V", "unresolved variable ${V}"),
        ("", "a:${V}", "unresolved variable ${V}"),
        ("ARG V", "a:${V:?required}", "unresolved variable ${V}"),
        ("ARG V", "a:${V%x}", "unresolved variable ${V}"),
        ("ARG R\nARG B=${R}/x", "$B:1", "unresolved variable ${B} (needs ${R})"),
        ("", "a:${TARGETOS:-linux}", "unresolved variable ${TARGETOS} (set by the builder)"),
        ("ARG TARGETOS", "a:$TARGETOS", "unresolved variable ${TARGETOS} (set by the builder)"),
        ("ARG V=1", "a:${V/1/2}", "unsupported substitution ${V/...}"),
        ("ARG V=1", "a:${V", "bad substitution '${V'"),
        ("ARG V=1", "a:${V:-x", "bad substitution '${V:-x': no closing '}'"),
        ("ARG V=1", "a:${-x}", "bad substitution '${-x}'"),
        ("ARG V=1", "a:${V!}", "bad substitution '${V!}'"),
        ("ARG A\nARG B", "$A/x:$B", "unresolved variable ${A}; unresolved variable ${B}"),
        ("ARG V=1", "a:${V:-" * 40 + "1" + "}" * 40, "variable substitution nested too deeply"),
    ],
)
def test_unresolved(args: str, image: str, problem: str) -> None:
    found = scan_dockerfile(f"{args}\nFROM {image}\n")
    assert [(f.text, f.ref, f.problem) for f in found] == [(image, None, problem)]


def test_stage_args_env_and_scopes() -> None:
    text = """\
ARG V=1
ARG G=global
FROM a:$V AS one
ARG V
ARG S=stage-$V
ENV E=env-${S}
COPY --from=b:${S} / /
COPY --from=c:${E} / /
COPY --from=d:${G:-unset-in-stage} / /
FROM one AS two
COPY --from=e:${E} / /
COPY --from=f:${S:-args-are-per-stage} / /
FROM alpine:3 AS three
ENV E 1 2
ARG E=ignored
COPY --from=g:${E%?2} / /
"""
    assert [f.text for f in scan_dockerfile(text)] == [
        "a:1",
        "b:stage-1",
        "c:env-stage-1",
        "d:unset-in-stage",
        "e:env-stage-1",  # ENV is inherited from the parent stage
        "f:args-are-per-stage",
        "alpine:3",
        "g:1",  # ENV wins over ARG
    ]


def test_stages_are_not_images() -> None:
    text = """\
FROM golang:1.23 AS golang
FROM golang AS Build
FROM build
FROM later
COPY --from=BUILD / /
COPY --from=later / /
COPY --from=2 / /
COPY --from=${N:-1} / /
RUN --mount=type=bind,from=build,target=/x true
RUN --mount=from=later true
FROM scratch AS later
FROM SCRATCH
COPY --from=alpine:3 / /
"""
    # FROM golang is the earlier stage, FROM later names a stage defined afterwards: an image
    assert images(text) == [
        "docker.io/library/golang:1.23",
        "docker.io/library/later:latest",
        "docker.io/library/alpine:3",
    ]


def test_from_forms() -> None:
    text = """\
FROM
FROM --platform=linux/arm64
from --PLATFORM=linux/arm/v7 alpine:3 as x
FROM --platform=${P:-linux/amd64} alpine:4
FROM --platform=$BUILDPLATFORM alpine:5
FROM "alpine:6" AS "quoted"
\tFROM alpine:7
"""
    found = scan_dockerfile(text)
    assert [(f.line, f.text, f.problem, f.platform) for f in found] == [
        (1, "", "FROM without an image", None),
        (2, "", "FROM without an image", "linux/arm64"),
        (3, "alpine:3", None, "linux/arm/v7"),
        (4, "alpine:4", None, "linux/amd64"),
        (5, "alpine:5", None, None),
        (6, "alpine:6", None, None),
        (7, "alpine:7", None, None),
    ]


def test_continuations_comments_and_directives() -> None:
    text = """\
# syntax=docker/dockerfile:1
# escape=`
# the directive above still counts; this comment ends the directives
FROM a:1 AS x
RUN echo \\
FROM still-an-instruction:1
COPY `
   # a comment inside a continuation is dropped

   --from=b:1 `
   /src /dst
FROM c:1\\
"""
    found = scan_dockerfile(text)
    assert [(f.line, f.text) for f in found] == [
        (4, "a:1"),
        (6, "still-an-instruction:1"),  # `\` does not continue the line with escape=`
        (10, "b:1"),
        (12, "c:1\\"),
    ]
    assert found[3].problem is not None

    late = "FROM a:1\n# escape=`\nRUN x `\nFROM b:1\n"  # a directive after FROM is a comment
    assert [f.text for f in scan_dockerfile(late)] == ["a:1", "b:1"]
    blank_first = "\n# escape=`\nFROM a:1 \\\n  AS x\n"
    assert [f.text for f in scan_dockerfile(blank_first)] == ["a:1"]


def test_run_mount_forms() -> None:
    text = f"""\
FROM a:1 AS build
RUN --mount=type=bind,from=b:1,target=/b --mount=target=/c,FROM=c:1 \\
    --mount=type=cache,target=/cache \\
    --mount="type=bind,from=d:1" \\
    --network=none make --mount=from=not-a-flag:1
RUN --mount=type=secret,id=x --mount=from=build,source=/out,target=/o true
RUN --mount=type=bind,from=e@{D},target=/e true
ONBUILD COPY --from=onbuild:1 / /
ADD --from=nope:1 / /
"""
    found = scan_dockerfile(text)
    assert [(f.line, f.text, f.context) for f in found] == [
        (1, "a:1", "FROM"),
        (2, "b:1", "RUN --mount"),
        (2, "c:1", "RUN --mount"),
        (4, "d:1", "RUN --mount"),
        (7, f"e@{D}", "RUN --mount"),
    ]
    assert found[-1].ref is not None and found[-1].ref.tag is None


def test_heredocs_are_skipped() -> None:
    text = """\
FROM a:1
RUN <<EOF bash
FROM not-me:1
EOF
COPY <<-"END" /etc/x
\tFROM nor-me:1
\tEND
RUN echo '<<EOF' && echo "<<EOF"
RUN cat <<< "FROM here-string"
FROM b:1
"""
    assert [f.text for f in scan_dockerfile(text)] == ["a:1", "b:1"]


def test_crlf_and_bom() -> None:
    text = "\ufeff# escape=`\r\nFROM a:1 `\r\n  AS x\r\nCOPY --from=b:2 / /\r\n"
    assert [(f.line, f.text) for f in scan_dockerfile(text)] == [(2, "a:1"), (4, "b:2")]


# --- YAML ----------------------------------------------------------------------------------


def test_compose_details() -> None:
    text = """\
x-base: &base
  image: base:${V:-1}
services:
  a:
    <<: [*base]
  b:
    <<: *base
    image: b:${B:?B is required}
  c:
    image:
  d:
    image: [not, a, string]
  e: not-a-mapping
  f:
    image: f:1
  f:
    image: f:2
"""
    found = scan_compose(text, "compose.yaml")
    assert rows(found) == [
        (2, "base:1", "docker.io/library/base:1", None, "compose service a"),
        (8, "b:${B:?B is required}", None, "unresolved variable ${B}", "compose service b"),
        (12, "", None, "image is not a string", "compose service d"),
        (17, "f:2", "docker.io/library/f:2", None, "compose service f"),
    ]


def test_compose_invalid_yaml() -> None:
    text = "services:\n  web:\n    image: nginx:1\n  bad: [\n"
    found = scan_compose(text, "compose.yaml")
    assert [(f.line, f.problem, f.context) for f in found] == [
        (5, "YAML: expected the node content, but found '<stream end>'", "compose file")
    ]


def test_kubernetes_details() -> None:
    text = """\
apiVersion: v1
kind: Pod
metadata:
  generateName: job-
spec:
  containers:
    - image: a:1
    - name: empty
      image: null
    - name: none
---
apiVersion: v1
kind: PodList
items:
  - apiVersion: batch/v1
    kind: Job
    metadata: {name: j}
    spec:
      template:
        spec:
          containers: [{name: c, image: "b:2"}]
---
kind: Deployment
spec: {template: {spec: {containers: [{image: no-api-version:1}]}}}
---
apiVersion: example.com/v1
kind: Widget
spec:
  containers: [{image: not-a-pod-spec:1}]
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: ReplicationController
    metadata: &meta {name: rc}
    spec:
      template:
        spec:
          containers: &cs
            - {name: x, image: "c:3"}
  - apiVersion: v1
    kind: PodTemplate
    metadata: *meta
    template:
      spec:
        containers: *cs
---
just: text
---
- a list
"""
    found = scan_kubernetes(text, "k.yaml")
    assert rows(found) == [
        (7, "a:1", "docker.io/library/a:1", None, "Pod/job- container #0"),
        (21, "b:2", "docker.io/library/b:2", None, "Job/j container c"),
        (41, "c:3", "docker.io/library/c:3", None, "ReplicationController/rc container x"),
        (41, "c:3", "docker.io/library/c:3", None, "PodTemplate/rc container x"),
    ]


def test_yaml_error_after_good_documents_keeps_them() -> None:
    text = "apiVersion: v1\nkind: Pod\nspec:\n  containers: [{image: a:1}]\n---\nkey: [\n"
    found = scan_kubernetes(text, "k.yaml")
    assert [(f.line, f.text, f.problem) for f in found] == [
        (4, "a:1", None),
        (7, "", "YAML: expected the node content, but found '<stream end>'"),
    ]


def test_yaml_pathological_inputs() -> None:
    deep = "[" * 5000 + "]" * 5000
    assert [f.problem for f in scan_kubernetes(f"apiVersion: v1\nkind: List\nitems: {deep}\n", "k")]
    # recursive anchors and merge loops end
    loop = "apiVersion: v1\nkind: Pod\nspec: &s\n  <<: *s\n  containers: [{image: a:1, <<: *s}]\n"
    assert [f.text for f in scan_kubernetes(loop, "k")] in ([], ["a:1"])
    merge = "services: &s\n  <<: *s\n  web: {image: w:1}\n"
    assert [f.text for f in scan_compose(merge, "compose.yaml")] == ["w:1"]
    assert scan_kubernetes("\0", "k")[0].problem is not None
    assert scan_compose("", "compose.yaml") == []
    assert scan_compose("!!python/object:os.system ls\n", "compose.yaml") == []


# --- output --------------------------------------------------------------------------------


def test_to_rows() -> None:
    found = scan_dockerfile(
        f"ARG R\nFROM --platform=linux/amd64 python:3.12@{D}\nFROM $R/x\nFROM alpine\n", "Df"
    )
    assert to_rows(found) == [
        {
            "file": "Df",
            "line": 2,
            "text": f"python:3.12@{D}",
            "image": "docker.io/library/python",
            "tag": "3.12",
            "digest": D,
            "kind": "pin",
            "platform": "linux/amd64",
            "context": "FROM",
            "problem": None,
        },
        {
            "file": "Df",
            "line": 3,
            "text": "$R/x",
            "image": None,
            "tag": None,
            "digest": None,
            "kind": None,
            "platform": None,
            "context": "FROM",
            "problem": "unresolved variable ${R}",
        },
        {
            "file": "Df",
            "line": 4,
            "text": "alpine",
            "image": "docker.io/library/alpine",
            "tag": "latest",
            "digest": None,
            "kind": "watch",
            "platform": None,
            "context": "FROM",
            "problem": None,
        },
    ]


def test_to_snippet_of_the_fixture_tree() -> None:
    found = scan_paths([FIXTURES / "services", FIXTURES / "Dockerfile"])
    found += scan_dockerfile(
        f"FROM python@{D}\nFROM alpine:3\nFROM python:3.12@{D}\n", 'we"ird\\path'
    )
    shown = str(FIXTURES / "Dockerfile")
    expected = f"""\
# api/api.Dockerfile:23
[[watch]]
image = "docker.io/alpine/git:2.47.1"

# api/api.Dockerfile:21
[[watch]]
image = "docker.io/alpine/helm:3.16.3"

# {shown}:38
[[watch]]
image = "docker.io/bitnami/kubectl:1.31"

# we"ird\\path:2
[[watch]]
image = "docker.io/library/alpine:3"

# api/api.Dockerfile:4, api/api.Dockerfile:19
[[watch]]
image = "docker.io/library/golang:1.23-alpine"

# {shown}:11
[[watch]]
image = "docker.io/library/node:22-bookworm-slim"

# {shown}:19
[[watch]]
image = "ghcr.io/astral-sh/uv:0.5.11"

# {shown}:28
[[watch]]
image = "ghcr.io/example/wheels:py3.12"

# {shown}:40
[[pin]]
image = "docker.io/library/busybox:1.37-musl@{D_BUSYBOX}"
source = "{shown}:40"

# {shown}:21
[[pin]]
image = "docker.io/library/python:3.12-slim-bookworm@{D_PYTHON}"
source = "{shown}:21"

# we"ird\\path:3
[[pin]]
image = "docker.io/library/python:3.12@{D}"
source = "we\\"ird\\\\path:3"

# we"ird\\path:1
# not listed: docker.io/library/python@{D} has a digest but no tag; a [[pin]] needs both

# not listed, could not be resolved:
# {shown}:32 ${{REGISTRY}}/tools/migrate:2.4: unresolved variable ${{REGISTRY}}
# api/api.Dockerfile:25 gcr.io/distroless/static-debian12:nonroot-${{TARGETARCH}}: \
unresolved variable ${{TARGETARCH}} (set by the builder)
# api/api.Dockerfile:27 tools:${{GO_VERSION}}: unresolved variable ${{GO_VERSION}} \
(not declared with ARG in this stage)
"""
    assert to_snippet(found) == expected


def test_to_snippet_loads_as_configuration(tmp_path: Path) -> None:
    found = scan_paths([FIXTURES])
    found += scan_dockerfile("FROM a:1\nFROM b:2@" + D + "\n", 'odd "name"\n\\x')
    snippet = to_snippet(found)
    data = tomllib.loads(snippet)
    config_path = tmp_path / "config.toml"
    config_path.write_text(snippet, encoding="utf-8")
    config = load_config(config_path, env={})
    refs = {str(f.ref) for f in found if f.ref is not None and (f.ref.tag is not None)}
    assert {str(t.ref) for t in config.targets} == refs
    assert {t.kind for t in config.targets} == {Kind.WATCH, Kind.PIN}
    pins = {str(t.ref): t.source for t in config.targets if t.kind is Kind.PIN}
    assert pins[f"docker.io/library/b:2@{D}"] == 'odd "name"\n\\x:2'
    assert pins[f"ghcr.io/example/shop-api:2.4.0@{D_API}"] == "deploy/shop.yaml:21"
    assert len(data["watch"]) + len(data["pin"]) == len(refs)
    assert to_snippet([]) == ""


# --- properties ----------------------------------------------------------------------------

_PIECES = st.sampled_from(
    [
        "FROM ",
        "from ",
        "ARG ",
        "ENV ",
        "COPY ",
        "RUN ",
        "ONBUILD ",
        " AS ",
        "--platform=",
        "--from=",
        "--mount=",
        "type=bind,",
        "from=",
        "scratch",
        "alpine:3",
        "ghcr.io/a/b",
        "@" + D,
        "$",
        "${",
        "}",
        ":-",
        ":+",
        ":?",
        "#",
        "##",
        "%",
        "/",
        "=",
        "V",
        "0",
        "\\",
        "`",
        "\\\n",
        "`\n",
        "\n",
        "\r\n",
        " ",
        "\t",
        '"',
        "'",
        ",",
        "<<EOF",
        "<<-'X'",
        "EOF",
        "# escape=`\n",
        "# syntax=x\n",
        "\ufeff",
        "\0",
    ]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_PIECES, st.text(max_size=4)), max_size=60).map("".join))
def test_scan_dockerfile_never_raises(text: str) -> None:
    found = scan_dockerfile(text)
    last = text.count("\n") + 1
    for f in found:
        assert 1 <= f.line <= last
        assert (f.ref is None) != (f.problem is None)
        if f.ref is not None:
            assert parse_ref(f.text) == f.ref
    assert to_rows(found) is not None
    tomllib.loads(to_snippet(found))


_YAML_PIECES = st.sampled_from(
    [
        "apiVersion: v1\n",
        "kind: Pod\n",
        "kind: List\n",
        "items:\n",
        "services:\n",
        "spec:\n",
        "  containers:\n",
        "    - image: a:1\n",
        "  web:\n",
        "    image: ${X:-y}\n",
        "<<: *a\n",
        "&a ",
        "*a",
        "---\n",
        "- ",
        "[",
        "]",
        "{",
        "}",
        ": ",
        "  ",
        "\n",
        "'",
        '"',
        "!!str ",
        "!custom ",
        "\t",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_YAML_PIECES, st.text(max_size=3)), max_size=40).map("".join))
def test_yaml_scanners_never_raise(text: str) -> None:
    for found in (
        scan_compose(text, "compose.yaml"),
        scan_kubernetes(text, "k.yaml"),
        scan_file(Path("x.yaml"), text),
    ):
        for f in found:
            assert f.line >= 1
            assert (f.ref is None) != (f.problem is None)


_REFS = st.sampled_from(
    [
        "python:3.12-slim",
        "ghcr.io/org/app:v1",
        f"busybox@{D}",
        f"localhost:5000/a/b:1@{D}",
        "quay.io/prometheus/node-exporter:v1.8.2",
        "alpine",
    ]
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(_REFS, st.sampled_from(["FROM", "COPY", "RUN", "#"])), max_size=12))
def test_literal_references_are_all_found(lines: list[tuple[str, str]]) -> None:
    text = ""
    expected: list[tuple[int, str]] = []
    for number, (ref, how) in enumerate(lines, start=1):
        if how == "FROM":
            text += f"FROM {ref}\n"
        elif how == "COPY":
            text += f"COPY --chown=1 --from={ref} /a /b\n"
        elif how == "RUN":
            text += f"RUN --mount=type=bind,target=/x,from={ref} true\n"
        else:
            text += f"# FROM {ref}\n"
            continue
        expected.append((number, str(parse_ref(ref))))
    found = scan_dockerfile(text)
    # COPY/RUN before the first FROM are not in a stage: not found
    first_from = next((n for n, (_, how) in enumerate(lines, 1) if how == "FROM"), None)
    expected = [(n, r) for n, r in expected if first_from is not None and n >= first_from]
    assert [(f.line, str(f.ref)) for f in found] == expected


def test_hostile_inputs_end_quickly() -> None:
    doubling = "ARG A0=x\n" + "".join(f"ARG A{i}=$A{i - 1}$A{i - 1}\n" for i in range(1, 64))
    found = scan_dockerfile(doubling + "FROM a:$A63\n")
    assert [f.problem for f in found] == ["unresolved variable ${A63} (needs ${A62})"]
    assert [f.problem for f in scan_dockerfile(doubling + "FROM a:$A15\n")] == [
        "unresolved variable ${A15} (needs ${A14})"
    ]
    assert [f.problem for f in scan_dockerfile(doubling + "FROM a:$A14\n")] == [
        "unresolved variable ${A14} (variable substitution too long)"
    ]
    aliases = ", ".join(["*m"] * 50)
    wide = f"x: &m {{a: 1}}\nservices: &s\n  <<: [{aliases}]\n  web: {{image: w:1}}\n"
    assert [f.text for f in scan_compose(wide, "compose.yaml")] == ["w:1"]
    long_line = "# escape=" + " " * 200_000 + "x\nFROM a:1\n"
    assert [f.text for f in scan_dockerfile(long_line)] == ["a:1"]
    assert scan_file(Path("k.yaml"), "\n" * 200_000 + "apiVersion: v1\nkind: [\n")
