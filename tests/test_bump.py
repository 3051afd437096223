"""`tagwatch bump` end to end against the real distribution registry on loopback.

Each test pushes its own repositories (tests/regharness.py), writes a tree of Dockerfiles,
compose files and Kubernetes manifests pinning them, moves the tags, and runs the real
command line: in-process through `tagwatch.cli.main`, and as a process where it is killed.
Expected file contents are rendered by the test from templates, so "only the digest
changed" is checked byte for byte.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest
from regharness import Pusher, Registry, free_port, unique_repo
from test_check_integration import Run, Setup, tagwatch

pytestmark = pytest.mark.integration


@pytest.fixture
def hub(registry_anonymous: Registry) -> Iterator[tuple[Registry, Pusher]]:
    yield registry_anonymous, Pusher(registry_anonymous)


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


@pytest.fixture(autouse=True)
def no_docker_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials from this machine's ~/.docker/config.json."""
    (tmp_path / "docker-config").mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))


def bump(*argv: str) -> Run:
    return tagwatch("bump", *argv)


def render(template: str, values: Mapping[str, str]) -> bytes:
    text = template
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text.encode()


def rows_by_line(run: Run) -> dict[tuple[str, int], dict[str, object]]:
    return {(Path(str(r["file"])).name, int(str(r["line"]))): r for r in run.json()}


# --- a tree of every kind ---------------------------------------------------------------

DOCKERFILE = (
    "# syntax=docker/dockerfile:1\r\n"
    "# the build image: pinned to the index\r\n"
    "ARG BASE={host}/{base}:3.12@{old_index}\r\n"
    "FROM   {host}/{base}:3.12@{index}   AS build\r\n"
    "COPY --from={host}/{tool}:1@{tool_digest} /bin/tool /bin/tool\r\n"
    "\r\n"
    "FROM --platform=linux/arm64 {host}/{base}:3.12@{arm64}\r\n"
    "FROM {host}/{base}:3.12@{armv7} AS armv7\r\n"
    "FROM ${BASE}"  # built from an ARG; and no newline at the end
)
COMPOSE = (
    "services:\n"
    "  web:\n"
    '    image: "{host}/{base}:3.12@{index}"    # keep this comment\n'
    "    ports: ['8080:80']\n"
    "  legacy:\n"
    "    image:   {host}/{legacy}:2@{legacy_amd64}\n"
    "  steady:\n"
    "    image: {host}/{steady}:5@{steady_digest}\n"
)
MANIFEST = (
    "apiVersion: v1\n"
    "kind: ConfigMap\n"
    "metadata: {name: notes}\n"
    "data:\n"
    "  last-build: {host}/{base}:3.12@{old_index}\n"  # not an image: must not change
    "---\n"
    "apiVersion: apps/v1\n"
    "kind: Deployment\n"
    "metadata:\n"
    "  name: api\n"
    "spec:\n"
    "  template:\n"
    "    spec:\n"
    "      initContainers:\n"
    "        - {name: migrate, image: '{host}/{legacy}:2@{legacy_index}'}\n"
    "      containers:\n"
    "        - name: api\n"
    "          image: {host}/{base}:3.12@{amd64}\n"
)


def test_bump_a_tree_of_every_kind(
    hub: tuple[Registry, Pusher], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, push = hub
    base, tool, legacy, steady = (unique_repo(n) for n in ("base", "tool", "legacy", "steady"))
    platforms = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    old_index, old_p = push.push_index(base, "3.12", platforms, seed="old")
    old_tool = push.push_image(tool, "1", seed="old")
    old_list, old_lp = push.push_docker_list(legacy, "2", ["linux/amd64", "linux/arm64"], seed="o")
    steady_digest = push.push_image(steady, "5", seed="steady")
    new_index, new_p = push.push_index(base, "3.12", platforms, seed="new")
    new_tool = push.push_image(tool, "1", seed="new")
    new_list, new_lp = push.push_docker_list(legacy, "2", ["linux/amd64", "linux/arm64"], seed="n")

    common = {
        "host": registry.host,
        "base": base,
        "tool": tool,
        "legacy": legacy,
        "steady": steady,
        "old_index": old_index,
        "steady_digest": steady_digest,
    }
    before = dict(
        common,
        index=old_index,
        tool_digest=old_tool,
        arm64=old_p["linux/arm64"],
        armv7=old_p["linux/arm/v7"],
        amd64=old_p["linux/amd64"],
        legacy_amd64=old_lp["linux/amd64"],
        legacy_index=old_list,
    )
    after = dict(
        common,
        index=new_index,
        tool_digest=new_tool,
        arm64=new_p["linux/arm64"],
        armv7=new_p["linux/arm/v7"],
        amd64=new_p["linux/amd64"],
        legacy_amd64=new_lp["linux/amd64"],
        legacy_index=new_list,
    )
    tree = tmp_path / "tree"
    files = {
        tree / "svc" / "Dockerfile": DOCKERFILE,
        tree / "compose.yaml": COMPOSE,
        tree / "deploy" / "api.yaml": MANIFEST,
    }
    for path, template in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(render(template, before))
    (tree / "compose.yaml").chmod(0o640)
    monkeypatch.chdir(tmp_path)

    # The default: a diff, nothing written.
    diff = bump("tree")
    assert diff.code == 0, diff.err
    assert all(path.read_bytes() == render(t, before) for path, t in files.items())
    assert diff.out.count("--- a/tree/") == 3
    arm64 = f"FROM --platform=linux/arm64 {registry.host}/{base}:3.12@"
    assert f"\n-{arm64}{old_p['linux/arm64']}\r\n" in diff.out
    assert f"\n+{arm64}{new_p['linux/arm64']}\r\n" in diff.out
    assert "FROM ${BASE}\n\\ No newline at end of file\n" in diff.out
    summary = diff.err.strip().splitlines()[-1]
    assert summary == "9 pins behind in 3 files; 8 to bump (--write), 1 left alone; 1 current"
    assert "tree/svc/Dockerfile:9: " in diff.err and "built from ${BASE}" in diff.err

    # The diff is a real patch: git apply makes exactly the files --write will make.
    applied = tmp_path / "applied"
    shutil.copytree(tree, applied / "tree")
    (applied / "change.diff").write_text(diff.out)
    git = subprocess.run(
        ["git", "apply", "--whitespace=nowarn", "change.diff"],
        cwd=applied,
        capture_output=True,
        text=True,
        check=False,
    )
    assert git.returncode == 0, git.stderr
    for path, template in files.items():
        assert (applied / path.relative_to(tmp_path)).read_bytes() == render(template, after)

    # --json: one object per pin.
    report = bump("tree", "--json")
    assert report.code == 0
    rows = rows_by_line(report)
    assert (rows[("Dockerfile", 4)]["new"], rows[("Dockerfile", 4)]["platform"]) == (
        new_index,
        None,
    )
    assert (rows[("Dockerfile", 7)]["new"], rows[("Dockerfile", 7)]["platform"]) == (
        new_p["linux/arm64"],
        "linux/arm64",
    )
    assert (rows[("Dockerfile", 8)]["new"], rows[("Dockerfile", 8)]["platform"]) == (
        new_p["linux/arm/v7"],
        "linux/arm/v7",
    )
    assert rows[("Dockerfile", 5)]["new"] == new_tool
    assert (rows[("Dockerfile", 9)]["state"], rows[("Dockerfile", 9)]["new"]) == (
        "behind",
        new_index,
    )
    assert rows[("compose.yaml", 6)]["platform"] == "linux/amd64"
    assert rows[("compose.yaml", 8)]["state"] == "current"
    assert rows[("api.yaml", 15)]["new"] == new_list
    assert rows[("api.yaml", 18)]["new"] == new_p["linux/amd64"]
    assert set(rows[("Dockerfile", 4)]) >= {"file", "line", "reference", "old", "new", "platform"}

    # --check before: exit 1 and one line per pin behind.
    check = bump("tree", "--check")
    assert check.code == 1
    assert len([line for line in check.out.splitlines() if line.startswith("behind ")]) == 9

    # --write: byte for byte the rendered "after", except what stays built from ${BASE}.
    write = bump("tree", "--write")
    assert write.code == 0, write.err
    assert write.out.strip().splitlines()[-1] == (
        "9 pins behind in 3 files; 8 bumped, 1 left alone; 1 current"
    )
    for path, template in files.items():
        assert path.read_bytes() == render(template, after), path
    assert stat.S_IMODE((tree / "compose.yaml").stat().st_mode) == 0o640
    assert not [p for p in tree.rglob("*") if ".tagwatch-bump-" in p.name]

    # Only the ARG-built pin is left, and --check still says so.
    again = bump("tree", "--check")
    assert again.code == 1
    assert again.out.strip().splitlines()[-1] == (
        "1 pin behind in 1 file; 0 to bump (--write), 1 left alone; 9 current"
    )
    (tree / "svc" / "Dockerfile").write_bytes(render(DOCKERFILE, dict(after, old_index=new_index)))
    clean = bump("tree", "--check")
    assert clean.code == 0 and clean.out.strip() == "0 pins behind; 10 current", clean.out


# --- what cannot be bumped --------------------------------------------------------------


def test_vanished_tags_and_a_registry_that_is_down(
    hub: tuple[Registry, Pusher], tmp_path: Path
) -> None:
    registry, push = hub
    gone, moved_away, live = unique_repo("gone"), unique_repo("away"), unique_repo("live")
    gone_digest = push.push_image(gone, "1", seed="gone")
    push.delete_manifest(gone, gone_digest)  # the tag and the pinned digest, both gone
    kept = push.push_image(moved_away, "1", seed="kept")
    push.push_image(moved_away, "1", seed="later")
    push.delete_tag(moved_away, "1")  # the tag is gone; the pinned digest is still served
    old = push.push_image(live, "1", seed="old")
    new = push.push_image(live, "1", seed="new")
    down = f"127.0.0.1:{free_port()}"
    host = registry.host
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "Dockerfile").write_text(
        f"FROM {host}/{gone}:1@{gone_digest}\nFROM {host}/{moved_away}:1@{kept}\n"
        f"FROM {down}/nothing/here:1@{old}\n"
    )
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "Dockerfile").write_text(f"FROM {host}/{live}:1@{old}\n")

    run = bump(str(tmp_path), "--write", "--json")
    assert run.code == 1  # one pin could not be checked
    rows = {(Path(str(r["file"])).parent.name, r["line"]): r for r in run.json()}
    assert rows[("a", 1)]["state"] == "vanished"
    assert "vanished" in str(rows[("a", 1)]["reason"])
    assert "pin_missing" in str(rows[("a", 1)]["reason"])
    assert rows[("a", 2)]["state"] == "vanished"
    assert "still served" in str(rows[("a", 2)]["reason"])
    assert rows[("a", 3)]["state"] == "error" and down in str(rows[("a", 3)]["reason"])
    assert rows[("b", 1)]["written"] is True
    assert (tmp_path / "b" / "Dockerfile").read_text() == f"FROM {host}/{live}:1@{new}\n"
    assert f"{old}" in (tmp_path / "a" / "Dockerfile").read_text()
    assert run.err.strip().splitlines()[-1] == (
        "1 pin behind in 1 file; 1 bumped; 2 vanished, 1 could not be checked"
    )
    assert "Traceback" not in run.err


def test_a_read_only_file_is_left_and_the_others_are_written(
    hub: tuple[Registry, Pusher], tmp_path: Path
) -> None:
    registry, push = hub
    repo = unique_repo("ro")
    old = push.push_image(repo, "1", seed="old")
    new = push.push_image(repo, "1", seed="new")
    for name in ("one", "two", "three"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "Dockerfile").write_text(f"FROM {registry.host}/{repo}:1@{old}\n")
    locked = tmp_path / "two" / "Dockerfile"
    locked.chmod(0o444)

    run = bump(str(tmp_path), "--write")
    assert run.code == 1
    errors = [line for line in run.err.splitlines() if line.startswith("tagwatch: bump:")]
    assert errors == [f"tagwatch: bump: {locked}: read-only (mode 0444): left alone"]
    assert locked.read_text() == f"FROM {registry.host}/{repo}:1@{old}\n"
    assert stat.S_IMODE(locked.stat().st_mode) == 0o444
    for name in ("one", "three"):
        written = (tmp_path / name / "Dockerfile").read_text()
        assert written == f"FROM {registry.host}/{repo}:1@{new}\n"
    assert run.out.strip().splitlines()[-1] == "3 pins behind in 3 files; 2 bumped, 1 left alone"


def test_platform_told_by_history_when_the_registry_forgot_the_image(
    hub: tuple[Registry, Pusher], setup: Setup, tmp_path: Path
) -> None:
    registry, push = hub
    repo = unique_repo("forgot")
    image = f"{registry.host}/{repo}"
    _, old_p = push.push_index(repo, "1", ["linux/amd64", "linux/arm64"], seed="old")
    setup.watch(f"{image}:1")
    assert setup("check", "--no-notify").code == 0  # records the index and its platforms
    _, new_p = push.push_index(repo, "1", ["linux/amd64", "linux/arm64"], seed="new")
    push.delete_manifest(repo, old_p["linux/arm64"])
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM {image}:1@{old_p['linux/arm64']}\n")

    blind = bump(str(dockerfile), "--json")
    assert blind.code == 0
    [row] = blind.json()
    assert row["state"] == "behind" and row["new"] is None
    assert "cannot tell whether it pins the index or one platform's image" in str(row["reason"])
    assert "no longer serves" in str(row["reason"])
    assert bump(str(dockerfile), "--check").code == 1

    setup.write()
    told = bump(str(dockerfile), "-c", str(setup.path), "--write")
    assert told.code == 0, told.err
    assert dockerfile.read_text() == f"FROM {image}:1@{new_p['linux/arm64']}\n"
    assert "(linux/arm64)" in told.out


def test_a_platform_the_new_index_dropped_is_left_alone(
    hub: tuple[Registry, Pusher], tmp_path: Path
) -> None:
    registry, push = hub
    repo = unique_repo("dropped")
    _, old_p = push.push_index(repo, "1", ["linux/amd64", "linux/s390x"], seed="old")
    push.push_index(repo, "1", ["linux/amd64"], seed="new")
    compose = tmp_path / "compose.yaml"
    text = f"services:\n  app:\n    image: {registry.host}/{repo}:1@{old_p['linux/s390x']}\n"
    compose.write_text(text)
    run = bump(str(compose), "--write")
    assert run.code == 0
    assert compose.read_text() == text
    assert "it pins the linux/s390x image, and the tag has none now (it has linux/amd64)" in run.err
    assert bump(str(compose), "--check").code == 1


# --- config: credentials, sources, --only stale -----------------------------------------


def test_credentials_and_sources_from_the_config(
    registry_basic: Registry, setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = registry_basic
    push = Pusher(registry)
    repo = unique_repo("private")
    old = push.push_image(repo, "1", seed="old")
    new = push.push_image(repo, "1", seed="new")
    tree = tmp_path / "checkout"
    tree.mkdir()
    (tree / "Dockerfile").write_text(f"FROM {registry.host}/{repo}:1@{old}\n")
    (tree / "skip.Dockerfile").write_text(f"FROM {registry.host}/{repo}:1@{old}\n")
    monkeypatch.setenv("REG_PASSWORD", registry.password or "")
    setup.add(
        f'[[registry]]\nhost = "{registry.host}"\nusername = "{registry.username}"\n'
        'password_env = "REG_PASSWORD"\n'
    ).add(f'[[source]]\npath = "{tree}"\nexclude = ["skip.*"]\n').write()

    anonymous = bump(str(tree / "Dockerfile"))
    assert anonymous.code == 1 and "could not be checked" in anonymous.err
    assert registry.password not in anonymous.out + anonymous.err

    run = bump("-c", str(setup.path), "--write")
    assert run.code == 0, run.err
    assert (tree / "Dockerfile").read_text() == f"FROM {registry.host}/{repo}:1@{new}\n"
    assert (tree / "skip.Dockerfile").read_text() == f"FROM {registry.host}/{repo}:1@{old}\n"
    assert registry.password not in run.out + run.err


def test_only_stale(hub: tuple[Registry, Pusher], setup: Setup, tmp_path: Path) -> None:
    registry, push = hub
    host = registry.host
    fast, slow, unknown = unique_repo("fast"), unique_repo("slow"), unique_repo("unknown")
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    fast_old = push.push_image(fast, "1", seed="fast-old")
    slow_old = push.push_image(slow, "1", seed="slow-old")
    unknown_old = push.push_image(unknown, "1", seed="unknown-old")
    fast_new = push.push_image(fast, "1", seed="fast-new", created=now)
    push.push_image(slow, "1", seed="slow-new", created=now)
    push.push_image(unknown, "1", seed="unknown-new", created=now)
    setup.pin(f"{host}/{fast}:1@{fast_old}", max_age="0s")
    setup.pin(f"{host}/{slow}:1@{slow_old}", max_age="30d")
    assert setup("check", "--no-notify").code == 0  # records when each fell behind
    dockerfile = tmp_path / "Dockerfile"
    text = (
        f"FROM {host}/{fast}:1@{fast_old}\nFROM {host}/{slow}:1@{slow_old}\n"
        f"FROM {host}/{unknown}:1@{unknown_old}\n"
    )
    dockerfile.write_text(text)

    assert bump(str(dockerfile), "--only", "stale").code == 2  # needs the config

    run = bump(str(dockerfile), "-c", str(setup.path), "--only", "stale", "--write")
    assert run.code == 0, run.err
    assert dockerfile.read_text() == text.replace(fast_old, fast_new)
    assert "stale after 30d: left alone" in run.err
    assert "not known to be stale" in run.err
    assert run.out.strip().splitlines()[-1] == (
        "3 pins behind in 1 file (1 stale); 1 bumped, 2 left alone"
    )
    check = bump(str(dockerfile), "-c", str(setup.path), "--only", "stale", "--check")
    assert check.code == 0  # behind, but nothing stale any more
    assert bump(str(dockerfile), "--check").code == 1


def test_usage_errors(tmp_path: Path) -> None:
    nothing = bump()
    assert nothing.code == 2 and "no PATH given" in nothing.err
    missing = bump(str(tmp_path / "nope"))
    assert missing.code == 2 and f"{tmp_path / 'nope'}: no such file or directory" in missing.err
    bad = tmp_path / "bad.toml"
    bad.write_text("[tagwatch]\nintervall = '1m'\n")
    config = bump(str(tmp_path), "-c", str(bad))
    assert config.code == 2 and "intervall" in config.err and "Traceback" not in config.err


# --- a crash while writing --------------------------------------------------------------


def test_a_kill_while_writing_leaves_every_file_old_or_new(
    hub: tuple[Registry, Pusher], tmp_path: Path
) -> None:
    """SIGKILL at random points of `--write` over many files: each file is byte for byte
    the old or the new text, never anything else; and a run afterwards finishes the job."""
    registry, push = hub
    repo = unique_repo("crash")
    old = push.push_image(repo, "1", seed="old")
    new = push.push_image(repo, "1", seed="new")
    tree = tmp_path / "tree"
    padding = "# " + "x" * 1022 + "\n"  # 256 KiB per file: a torn write would show
    old_text = {
        tree / f"svc{i:02d}" / "Dockerfile": (
            padding * 128 + f"FROM {registry.host}/{repo}:1@{old}\n" + padding * 128
        ).encode()
        for i in range(40)
    }
    new_text = {path: data.replace(old.encode(), new.encode()) for path, data in old_text.items()}
    order = sorted(old_text)  # the order bump writes them in

    def reset() -> None:
        for path, data in old_text.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                path.chmod(0o644)
            path.write_bytes(data)

    command = [sys.executable, "-m", "tagwatch", "bump", str(tree), "--write"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def first_written(process: subprocess.Popen[bytes]) -> float:
        deadline = time.monotonic() + 60
        while order[0].read_bytes() != new_text[order[0]]:
            assert process.poll() is None or order[0].read_bytes() == new_text[order[0]]
            assert time.monotonic() < deadline, "bump never wrote the first file"
            time.sleep(0.0005)
        return time.monotonic()

    # One whole run, to learn how long writing takes here.
    reset()
    process = start()
    began = first_written(process)
    assert process.wait(timeout=60) == 0
    writing = max(time.monotonic() - began, 0.005)
    assert all(path.read_bytes() == new_text[path] for path in order)

    rng = random.Random(16)
    partial_runs = 0
    for _ in range(12):
        reset()
        process = start()
        first_written(process)
        time.sleep(rng.uniform(0, writing))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        states = []
        for path in order:
            data = path.read_bytes()
            assert data in (old_text[path], new_text[path]), f"{path} is neither old nor new"
            states.append(data == new_text[path])
        # Files are written in order: new ones first, then old ones.
        assert states == sorted(states, reverse=True)
        if not all(states):
            partial_runs += 1
        assert not any(
            p.suffix in (".yaml", ".yml") or p.name.endswith("Dockerfile")
            for p in tree.rglob("*.tagwatch-bump-*")
        )
    print(f"writing took {writing:.3f}s; {partial_runs} of 12 kills landed mid-write")
    assert partial_runs >= 3, "no kill landed while files were being written"

    finish = bump(str(tree), "--write")
    assert finish.code == 0, finish.err
    assert all(path.read_bytes() == new_text[path] for path in order)


def test_json_output_is_only_json(hub: tuple[Registry, Pusher], tmp_path: Path) -> None:
    registry, push = hub
    repo = unique_repo("json")
    old = push.push_image(repo, "1", seed="old")
    push.push_image(repo, "1", seed="new")
    text = f"FROM {registry.host}/{repo}:1@{old}\nFROM ${{X}}@{old}\n"
    (tmp_path / "Dockerfile").write_text(text)
    run = bump(str(tmp_path), "--json")
    assert run.code == 0
    rows = json.loads(run.out)
    assert [r["state"] for r in rows] == ["behind", "skipped"]
    assert run.err.strip().splitlines()[-1] == (
        "1 pin behind in 1 file; 1 to bump (--write); 1 skipped"
    )
