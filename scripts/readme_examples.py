"""README examples, for real: `.venv/bin/python scripts/readme_examples.py [SECTION…]`;
`./dev docs` (scripts/docs.py) puts them into README.md between `<!-- docs:SECTION -->`
markers.

Sections (`SECTIONS` below): `first-steps` (what a new user's mistakes print),
`config-errors` (one-line configuration errors), `newer-filters` (newer versions with
`newer_include`/`newer_exclude`, the tag-list cache and `check --refresh-tags`),
`json-alerts` (a `format = "json"` alert as a json:// webhook receives it), `audit`,
`verbose` (`check -v`), `outbox` (`status` with alerts waiting for delivery), `schedules`
(time zones and cron: the daemon's first lines), `request-log` (`check -vv`: every HTTP
request). Each starts
what it needs (the distribution registry on loopback, a local webhook), runs the real
`tagwatch` command line in a temporary directory and prints `$ command` and what it wrote.
Only these are edited in the output: the temporary directory is shown as `.`, the registry's
address as `localhost:5000`, and the directory tagwatch is installed in as `…/`.

To add an example: a function `(shell, push) -> None` here, its name in `SECTIONS`, and the
markers where it goes in README.md.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

# The test helpers (the registry harness, the webhook sink) live in tests/support/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

from regharness import Pusher, Registry, start_registry  # noqa: E402
from sinks import WebhookSink  # noqa: E402

import tagwatch  # noqa: E402

SHOWN_HOST = "localhost:5000"
INSTALLED = str(Path(tagwatch.__file__).resolve().parent.parent) + "/"


class Shell:
    """Runs `tagwatch …` in `work` and prints it as a shell session would show it."""

    def __init__(self, work: Path, registry: Registry | None = None) -> None:
        self.work = work
        self.registry = registry

    def shown(self, text: str) -> str:
        text = text.replace(str(self.work) + "/", "").replace(str(self.work), ".")
        text = text.replace(INSTALLED, "…/")
        if self.registry is not None:
            text = text.replace(self.registry.host, SHOWN_HOST)
        return text

    def write(self, name: str, text: str) -> Path:
        path = self.work / name
        path.write_text(textwrap.dedent(text))
        return path

    def cat(self, name: str) -> None:
        print(f"$ cat {name}")
        print(self.shown((self.work / name).read_text()), end="")

    def run(self, *args: str, env: dict[str, str] | None = None) -> int:
        print("$ " + self.shown(" ".join(["tagwatch", *args])))
        full = {k: v for k, v in os.environ.items() if k not in ("TAGWATCH_CONFIG", "NO_COLOR")}
        full.update(env or {})
        done = subprocess.run(
            [sys.executable, "-m", "tagwatch", *args],
            cwd=self.work,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # one stream, in the order a terminal shows it
            text=True,
            env=full,
            check=False,
        )
        print(self.shown(done.stdout), end="")
        if done.returncode:
            print(f"(exit status {done.returncode})")
        return done.returncode


def first_steps(shell: Shell, push: Pusher) -> None:
    if os.path.exists("/etc/tagwatch/config.toml"):
        raise SystemExit("this machine has /etc/tagwatch/config.toml: the example needs none")
    shell.run("validate")
    print()
    shell.write(
        "config.toml",
        """\
        [tagwatch]
        interval = "15m"

        [watch]
        image = "python:3.12-slim"
        """,
    )
    shell.cat("config.toml")
    shell.run("validate", "-c", "config.toml")
    print()
    shell.write(
        "config.toml",
        """\
        [[notify]]
        url = "slak://T0AAAAAAA/B0BBBBBBB/XXXXXXXXXXXXXXXXXXXXXXXX"
        """,
    )
    shell.cat("config.toml")
    shell.run("validate", "-c", "config.toml")
    print()
    assert shell.registry is not None
    host = shell.registry.host
    for tag in ("3.12", "3.12-alpine", "3.13-slim"):
        push.push_image("library/python", tag, seed=tag)
    shell.write(
        "config.toml",
        f"""\
        [tagwatch]
        database = "tagwatch.db"

        [[watch]]
        image = "{host}/library/python:3.12"
        [[watch]]
        image = "{host}/library/python:3.12-alpine"
        [[watch]]
        image = "{host}/library/python:3.13-slim"
        """,
    )
    shell.run("check", "-c", "config.toml")
    shell.run("history", f"{host}/library/python:3.12-slim", "-c", "config.toml")


def newer_filters(shell: Shell, push: Pusher) -> None:
    assert shell.registry is not None
    host = shell.registry.host
    digest = push.push_image("library/python", "3.12", seed="3.12")
    for tag in ("3.12.1-slim", "3.13", "3.13-slim", "3.14-rc1-slim", "3.14-slim", "4.0-slim"):
        push.tag("library/python", tag, digest)
    with WebhookSink() as hook:
        shell.write(
            "config.toml",
            f"""\
            [tagwatch]
            database = "tagwatch.db"
            tag_list_ttl = "6h"          # the default

            [[watch]]
            image = "{host}/library/python:3.12"
            newer = "minor"
            newer_include = "-slim$"     # only -slim tags (of two numbers, like 3.12)
            newer_exclude = ["-rc"]      # never a release candidate

            [[notify]]
            url = "{hook.url}"
            """,
        )
        shell.cat("config.toml")
        shell.run("check", "-c", "config.toml")
        push.tag("library/python", "3.15-slim", digest)
        shell.run("check", "-c", "config.toml")
        shell.run("check", "--refresh-tags", "-c", "config.toml")
        print("# what the webhook received:")
        for message in hook.wait_for(2):
            print(shell.shown(message["title"]))
            print(textwrap.indent(shell.shown(message["message"]), "  "))


def json_alerts(shell: Shell, push: Pusher) -> None:
    assert shell.registry is not None
    host = shell.registry.host
    platforms = ["linux/amd64", "linux/arm64"]
    version = "org.opencontainers.image.version"
    push.push_index("library/python", "3.12-slim", platforms, seed="a", labels={version: "3.12.7"})
    with WebhookSink() as hook:
        shell.write(
            "config.toml",
            f"""\
            [tagwatch]
            database = "tagwatch.db"

            [[watch]]
            image = "{host}/library/python:3.12-slim"
            platforms = ["linux/arm64"]

            [[notify]]
            url = "{hook.url}"
            format = "json"
            """,
        )
        shell.cat("config.toml")
        shell.run("check", "-c", "config.toml")
        push.push_index("library/python", "3.12-slim", platforms, seed="b",
                        labels={version: "3.12.8"})
        shell.run("check", "-c", "config.toml")
        [envelope] = hook.wait_for(1)
        print("# what the json:// webhook received: apprise's envelope, the object as its message")
        shown = dict(envelope, message="…")
        print(shell.shown(json.dumps(shown)))
        print("# the message, parsed:")
        obj = json.loads(envelope["message"])
        print(shell.shown(json.dumps(obj, indent=2, ensure_ascii=False)))


def config_errors(shell: Shell, push: Pusher) -> None:
    """One line each, naming file, line and key: a typo is named before what it hides, a
    routing tag no target carries, a secret never shown."""
    examples = {
        "interval.toml": '[tagwatch]\ninterval = "15"\n',
        "pin.toml": '[[pin]]\nimage = "python:3.12"\n',
        "typo.toml": '[[watch]]\nimgae = "python:3.12"\n',
        "routing.toml": '[[watch]]\nimage = "python:3.12"\nnotify = ["opz"]\n\n'
        '[[notify]]\nurl_env = "SLACK_URL"\ntags = ["ops"]\n',
        "listen.toml": '[metrics]\nlisten = "localhost:99999"\n',
        "secret.toml": '[[notify]]\nurl = ["slack://T0AAAAAAA/B0BBBBBBB/XXXXXXXXXXXXXXXX"]\n',
    }
    for name, text in examples.items():
        shell.write(name, text)
        shell.run("validate", "-c", name)


def audit(shell: Shell, push: Pusher) -> None:
    assert shell.registry is not None
    host = shell.registry.host
    labels = {
        "org.opencontainers.image.source": "https://github.com/docker-library/python",
        "org.opencontainers.image.authors": "Docker Community",
    }
    old = push.push_image("library/python", "3.12-slim", seed="py-old", labels=labels,
                          created="2026-09-01T00:00:00Z")
    push.push_image("library/python", "3.12-slim", seed="py-new", labels=labels,
                    created="2026-11-01T00:00:00Z")
    push.push_image("library/python", "3.13-slim", seed="py-313", labels=labels)
    push.push_image("library/nginx", "latest", seed="nginx", created="2026-10-15T00:00:00Z")
    shell.write(
        "config.toml",
        f"""\
        [tagwatch]
        database = "tagwatch.db"

        [[watch]]
        image = "{host}/library/nginx"
        [[watch]]
        image = "{host}/library/python:3.12-slim"
        newer = "minor"
        [[pin]]
        image = "{host}/library/python:3.12-slim@{old}"
        source = "services/api/Dockerfile"
        max_age = "7d"
        """,
    )
    shell.run("check", "-c", "config.toml")
    shell.run("audit", "-c", "config.toml")
    shell.run("audit", "-c", "config.toml", "--fail-on", "stale,latest")


def verbose(shell: Shell, push: Pusher) -> None:
    assert shell.registry is not None
    host = shell.registry.host
    push.push_index("library/python", "3.12", ["linux/amd64", "linux/arm64"], seed="v1")
    shell.write(
        "config.toml",
        f"""\
        [tagwatch]
        database = "tagwatch.db"

        [[watch]]
        image = "{host}/library/python:3.12"
        platforms = ["linux/amd64"]
        """,
    )
    shell.run("check", "-c", "config.toml")
    push.push_index("library/python", "3.12", ["linux/amd64", "linux/arm64"], seed="v2")
    shell.run("check", "-v", "-c", "config.toml")


def request_log(shell: Shell, push: Pusher) -> None:
    assert shell.registry is not None
    host = shell.registry.host
    push.push_image("library/python", "3.12", seed="r1")
    shell.write(
        "config.toml",
        f"""\
        [tagwatch]
        database = "tagwatch.db"

        [[watch]]
        image = "{host}/library/python:3.12"
        """,
    )
    shell.run("check", "-c", "config.toml")
    push.push_image("library/python", "3.12", seed="r2")
    shell.run("check", "-vv", "--log-format", "text", "-c", "config.toml")


def outbox(shell: Shell, push: Pusher) -> None:
    assert shell.registry is not None
    host = shell.registry.host
    push.push_image("library/python", "3.12", seed="o1")
    with WebhookSink() as hook:
        shell.write(
            "config.toml",
            f"""\
            [tagwatch]
            database = "tagwatch.db"

            [[watch]]
            image = "{host}/library/python:3.12"

            [[notify]]
            name = "ops-webhook"
            url = "{hook.url}"
            """,
        )
        shell.run("check", "-c", "config.toml")
        hook.set_failing(True, status=503)
        push.push_image("library/python", "3.12", seed="o2")
        shell.run("check", "-c", "config.toml")
        shell.run("status", "-c", "config.toml")
        hook.set_failing(False)
        shell.run("check", "-c", "config.toml")


def schedules(shell: Shell, push: Pusher) -> None:
    assert shell.registry is not None
    host = shell.registry.host
    push.push_image("library/python", "3.12-slim", seed="a")
    push.push_image("library/nginx", "1.27", seed="b")
    with WebhookSink() as hook:
        shell.write(
            "config.toml",
            f"""\
            [tagwatch]
            database = "tagwatch.db"
            timezone = "Europe/Berlin"        # quiet windows, schedules and cron below

            [metrics]
            listen = ""

            [[watch]]
            image = "{host}/library/python:3.12-slim"
            schedule = "0 9 * * MON-FRI"      # checked at 09:00 Berlin time on weekdays
            quiet = ["22:00-07:00"]           # Berlin nights: recorded, not alerted

            [[watch]]
            image = "{host}/library/nginx:1.27"   # every interval (15m)

            [[notify]]
            url = "{hook.url}"
            mode = "digest"
            schedule = "30 8 * * MON-FRI"     # one message on weekday mornings…
            timezone = "America/New_York"     # …in New York
            """,
        )
        shell.cat("config.toml")
        print("$ tagwatch run -c config.toml     # stopped after its first cycles")
        env = {k: v for k, v in os.environ.items() if k != "TAGWATCH_CONFIG"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "tagwatch", "run", "-c", "config.toml", "--log-format", "text"],
            cwd=shell.work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        print(shell.shown(err), end="")


SECTIONS: dict[str, Callable[[Shell, Pusher], None]] = {
    "first-steps": first_steps,
    "config-errors": config_errors,
    "newer-filters": newer_filters,
    "json-alerts": json_alerts,
    "audit": audit,
    "verbose": verbose,
    "outbox": outbox,
    "schedules": schedules,
    "request-log": request_log,
}


def run_section(name: str) -> None:
    """Run one section in a fresh directory with a fresh registry; it prints its output."""
    if name not in SECTIONS:
        raise SystemExit(f"unknown section {name!r} (sections: {', '.join(SECTIONS)})")
    with tempfile.TemporaryDirectory(prefix="tagwatch-readme-") as tmp:
        work = Path(tmp)
        registry = start_registry(work / "registry", "anonymous")
        try:
            SECTIONS[name](Shell(work, registry), Pusher(registry))
        finally:
            registry.close()


def main(names: list[str]) -> None:
    for name in names or list(SECTIONS):
        print(f"### {name}\n")
        run_section(name)
        print()


if __name__ == "__main__":
    main(sys.argv[1:])
