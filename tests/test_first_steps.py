"""What a new user meets first, through the real commands: each mistake gets one line that
says what is wrong and what to do, never a dict dump, a bare "No such file" or a secret."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
from regharness import Pusher, Registry, unique_repo
from sinks import WebhookSink

import tagwatch.config as config_module
from tagwatch.cli import main

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    code: int
    out: str
    err: str


def tagwatch(*argv: str) -> Run:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return Run(code, out.getvalue(), err.getvalue())


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


# --- no configuration yet -----------------------------------------------------------------


def test_no_config_says_how_to_give_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "etc" / "config.toml"  # the host's /etc/tagwatch is not ours to read
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG", str(missing))
    monkeypatch.delenv("TAGWATCH_CONFIG", raising=False)
    for command in ("validate", "status", "check"):
        run = tagwatch(command)
        assert run.code == 2
        line = one_line(run.err)
        assert f"no configuration at {missing} (the default)" in line
        assert "-c FILE" in line and "TAGWATCH_CONFIG" in line
        example = line.split("an example to start from: ")[1].split(" ")[0]
        assert Path(example).name == "config.example.toml" and Path(example).is_file()

    monkeypatch.setenv("TAGWATCH_CONFIG", str(tmp_path / "typo.toml"))
    line = one_line(tagwatch("validate").err)
    assert line.endswith("typo.toml: no such file (named by TAGWATCH_CONFIG): fix the variable "
                         "or pass -c FILE")


# --- [watch] for [[watch]] ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[tagwatch]\ninterval = "5m"\n\n[watch]\nimage = "python:3.12"\n',
         ":4: [watch] is a single table: write [[watch]] (double brackets), one [[watch]] per "
         "entry"),
        ('[pin]\nimage = "python:3.12@sha256:' + "a" * 64 + '"\n',
         ":1: [pin] is a single table: write [[pin]]"),
        ('[[tagwatch]]\ninterval = "5m"\n',
         ":1: [[tagwatch]] is a list of tables: write [tagwatch] (single brackets), once"),
        ('[tagwatch]\nconcurrency = { n = 4 }\n',
         ":2: tagwatch.concurrency: must be a whole number, not a table"),
    ],
)
def test_table_shape_mistakes_name_the_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    run = tagwatch("validate", "-c", str(path))
    assert run.code == 2
    line = one_line(run.err)
    assert f"{path}{expected}" in line
    assert "{" not in line  # no dict repr


# --- an apprise URL it cannot use ------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("slak://T0AAA/B0BBB/sEcReTtOkEn", "apprise knows no slak:// service (did you mean "
                                            "slack://?)"),
        ("slack://", "apprise knows slack:// (Slack) but cannot use this URL"),
        ("hooks.slack.com/services/T0AAA/B0BBB/sEcReTtOkEn", "not an apprise URL: it has no "
                                                             "scheme"),
        ("zzzq://user:sEcReTtOkEn@example.test/x", "apprise knows no zzzq:// service;"),
    ],
)
def test_unusable_apprise_url_names_the_scheme_only(tmp_path: Path, url: str,
                                                    expected: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'[tagwatch]\ndatabase = "{tmp_path / "db"}"\n\n[[notify]]\nurl = "{url}"\n')
    for command in ("validate", "check", "notify-test"):
        run = tagwatch(command, "-c", str(path))
        assert run.code == 2, (command, run)
        line = one_line(run.err)
        assert f"{path}:5: notify[0].url: {expected}" in line
        assert "sEcReTtOkEn" not in run.out + run.err
        assert "T0AAA" not in line and "example.test" not in line


def test_a_plugin_missing_its_package_says_which(tmp_path: Path) -> None:
    try:
        import gntp  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        pass
    else:  # pragma: no cover - depends on what is installed
        pytest.fail("gntp is installed here: this test needs a plugin whose package is not")
    path = tmp_path / "config.toml"
    path.write_text('[[notify]]\nurl = "growl://sEcReT@growl.test/"\n')
    line = one_line(tagwatch("validate", "-c", str(path)).err)
    assert "notify[0].url: apprise's growl:// (Growl) cannot be used: it needs gntp, which " \
           "is not installed" in line
    assert "sEcReT" not in line and "growl.test" not in line


# --- resolve needs no config ---------------------------------------------------------------


def test_resolve_help_says_the_config_is_optional() -> None:
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as exited:
        main(["resolve", "--help"])
    assert exited.value.code == 0
    text = " ".join(out.getvalue().split())
    assert "no configuration needed" in text
    assert "optional configuration file: registry credentials and settings (not read unless " \
           "given)" in text
    assert "default: $TAGWATCH_CONFIG" not in text
    # as for bump (optional -c, said so) and scan (no -c at all)
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit):
        main(["bump", "--help"])
    assert "optional configuration file" in " ".join(out.getvalue().split())
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit):
        main(["scan", "--help"])
    assert "--config FILE" not in out.getvalue() and "-c FILE" not in out.getvalue()


# --- history of a name nothing was recorded under ----------------------------------------------


@pytest.mark.integration
def test_history_suggests_recorded_names(registry_anonymous: Registry, tmp_path: Path) -> None:
    push = Pusher(registry_anonymous)
    name = unique_repo("python")
    repo = f"library/{name}"
    image = f"{registry_anonymous.host}/{repo}"
    for tag in ("3.12", "3.12-alpine", "3.13-slim"):
        push.push_image(repo, tag, seed=tag)
    other = f"acme/{name}"  # the same last path part: also a likely meant name
    push.push_image(other, "3.12-slim", seed="other")
    unrelated = unique_repo("nginx")
    push.push_image(unrelated, "1", seed="nginx")
    config = tmp_path / "config.toml"
    config.write_text(
        f'[tagwatch]\ndatabase = "{tmp_path / "db"}"\n'
        + "".join(f'[[watch]]\nimage = "{image}:{t}"\n' for t in ("3.12", "3.12-alpine",
                                                                 "3.13-slim"))
        + f'[[watch]]\nimage = "{registry_anonymous.host}/{other}:3.12-slim"\n'
        + f'[[watch]]\nimage = "{registry_anonymous.host}/{unrelated}:1"\n'
        + f'[[watch]]\nimage = "{image}:never-pushed"\n'
    )
    assert tagwatch("check", "-c", str(config)).code == 0  # never-pushed: vanished, a finding
    run = tagwatch("history", f"{image}:3.12-slim", "-c", str(config))
    assert run.code == 1 and run.out == ""
    line = one_line(run.err)
    assert line.startswith(f"tagwatch: error: no history for {image}:3.12-slim; recorded for "
                           f"that repository: ")
    named = line.split("recorded for that repository: ")[1].split(", ")
    # the same repository first, the closest tags first; then the same name elsewhere
    assert named == [f"{image}:3.13-slim", f"{image}:3.12-alpine", f"{image}:3.12",
                     f"{registry_anonymous.host}/{other}:3.12-slim"]
    assert not any(unrelated in n for n in named)

    as_json = tagwatch("history", f"{image}:3.12-slim", "--json", "-c", str(config))
    assert as_json.code == 1 and as_json.out.strip() == "[]" and "recorded for" in as_json.err

    nothing = tagwatch("history", "example.test/none/such:1", "-c", str(config))
    assert nothing.code == 1
    assert "nothing is recorded under that name or repository (5 tags are recorded: " \
           "tagwatch status lists them)" in one_line(nothing.err)

    configured = tagwatch("history", f"{image}:never-pushed", "-c", str(config))
    assert configured.code == 1
    assert "it is configured, but no check has resolved it" in one_line(configured.err)

    found = tagwatch("history", f"{image}:3.12", "-c", str(config))
    assert found.code == 0 and found.out.startswith(f"{image}:3.12\n")


# --- two pins on one tag ---------------------------------------------------------------------


@pytest.mark.integration
def test_two_pins_on_one_tag_get_titles_naming_their_source(
    registry_anonymous: Registry, tmp_path: Path, webhook: WebhookSink
) -> None:
    push = Pusher(registry_anonymous)
    repo = unique_repo("base")
    image = f"{registry_anonymous.host}/{repo}"
    api = push.push_image(repo, "3.12-slim", seed="built for api")
    worker = push.push_image(repo, "3.12-slim", seed="built for worker")
    push.push_image(repo, "3.12-slim", seed="now")
    config = tmp_path / "config.toml"
    config.write_text(
        f'[tagwatch]\ndatabase = "{tmp_path / "db"}"\n'
        f'[[pin]]\nimage = "{image}:3.12-slim@{api}"\nmax_age = "0s"\n'
        f'source = "services/api/Dockerfile"\n'
        f'[[pin]]\nimage = "{image}:3.12-slim@{worker}"\nmax_age = "0s"\n'
        f'source = "services/worker/Dockerfile"\n'
        f'[[notify]]\nurl = "{webhook.url}"\n'
    )
    assert tagwatch("check", "-c", str(config)).code == 0
    titles = sorted(m["title"] for m in webhook.wait_for(2))
    assert titles == [f"[tagwatch] stale: {image}:3.12-slim (services/api/Dockerfile)",
                      f"[tagwatch] stale: {image}:3.12-slim (services/worker/Dockerfile)"]


# --- ./dev demo into a pipe ------------------------------------------------------------------


@pytest.mark.integration
def test_demo_output_is_plain_text_when_piped() -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py")],
                          capture_output=True, text=True, timeout=120, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout + done.stderr
    assert "\n==> first check: the tag is recorded" in done.stdout
    assert "[tagwatch] moved: " in done.stdout
