"""The newcomer flow, for real, on this machine: `./dev demo`.

Starts the distribution registry on loopback, pushes an image, watches its tag, moves the
tag and shows the alert as a local webhook received it. Nothing leaves the machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

# The test helpers (the registry harness, the webhook sink) live in tests/support/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

from regharness import Pusher, start_registry  # noqa: E402
from sinks import WebhookSink  # noqa: E402


def step(text: str) -> None:
    # Bold only on a terminal (and not with NO_COLOR): piped into a file or a pager, the
    # output stays plain text.
    bold = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    print(f"\n\033[1m==> {text}\033[0m" if bold else f"\n==> {text}", flush=True)


def tagwatch(config: Path, *args: str) -> None:
    """`tagwatch ARGS -c config.toml`, run in the config's directory."""
    print("$ " + " ".join(["tagwatch", *args, "-c", "config.toml"]), flush=True)
    subprocess.run(
        [sys.executable, "-m", "tagwatch", *args, "-c", config.name],
        cwd=config.parent,
        check=False,
    )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tagwatch-demo-") as tmp, WebhookSink() as hook:
        work = Path(tmp)
        step("start a registry on loopback and push demo/app:1.0")
        registry = start_registry(work / "registry", "anonymous")
        try:
            push = Pusher(registry)
            push.push_image("demo/app", "1.0", seed="first build")
            config = work / "config.toml"
            config.write_text(textwrap.dedent(f"""\
                [tagwatch]
                database = "tagwatch.db"

                [[watch]]
                image = "{registry.host}/demo/app:1.0"

                [[notify]]
                url = "{hook.url}"
                """))
            print("$ cat config.toml")
            print(config.read_text(), end="")
            step("first check: the tag is recorded, no alert (first sight is silent)")
            tagwatch(config, "check")
            step("the publisher rebuilds demo/app:1.0 (same tag, new digest)")
            push.push_image("demo/app", "1.0", seed="rebuild", labels={
                "org.opencontainers.image.version": "1.0"})
            step("second check: the tag moved, one alert goes out")
            tagwatch(config, "check")
            hook.wait_for(1)
            step("what the webhook received")
            for message in hook.received:
                print(message["title"])
                print(textwrap.indent(message["message"], "  "))
            step("every digest the tag has had")
            tagwatch(config, "history", f"{registry.host}/demo/app:1.0")
        finally:
            registry.close()


if __name__ == "__main__":
    main()
