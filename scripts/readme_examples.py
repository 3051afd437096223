"""README examples, for real: `.venv/bin/python scripts/readme_examples.py [SECTION…]`.

Sections: `first-steps` (what a new user's mistakes print), `newer-filters` (newer versions
with `newer_include`/`newer_exclude`, the tag-list cache and `check --refresh-tags`),
`json-alerts` (a `format = "json"` alert as a json:// webhook receives it). Each
starts what it needs (the distribution registry on loopback, a local webhook), runs the real
`tagwatch` command line and prints `$ command` and what it wrote. Only these are edited in
the output: temporary directories are shown as `/tmp/demo`, the registry's address as
`localhost:5000`, and the directory tagwatch is installed in as `…/`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
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
        text = text.replace(str(self.work), "/tmp/demo").replace(INSTALLED, "…/")
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
            capture_output=True,
            text=True,
            env=full,
            check=False,
        )
        print(self.shown(done.stdout + done.stderr), end="")
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
        database = "{shell.work / "tagwatch.db"}"

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
            database = "{shell.work / "tagwatch.db"}"
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
            database = "{shell.work / "tagwatch.db"}"

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


SECTIONS: dict[str, Callable[[Shell, Pusher], None]] = {
    "first-steps": first_steps,
    "newer-filters": newer_filters,
    "json-alerts": json_alerts,
}


def main(names: list[str]) -> None:
    for name in names or list(SECTIONS):
        if name not in SECTIONS:
            raise SystemExit(f"unknown section {name!r} (sections: {', '.join(SECTIONS)})")
        with tempfile.TemporaryDirectory(prefix="tagwatch-readme-") as tmp:
            work = Path(tmp)
            registry = start_registry(work / "registry", "anonymous")
            try:
                print(f"### {name}\n")
                SECTIONS[name](Shell(work, registry), Pusher(registry))
                print()
            finally:
                registry.close()


if __name__ == "__main__":
    main(sys.argv[1:])
