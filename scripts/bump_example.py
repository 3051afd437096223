"""The README's `tagwatch bump` example, for real: `.venv/bin/python scripts/bump_example.py`.

Starts the distribution registry on loopback, pushes multi-platform images, writes a small
checkout (a Dockerfile with CRLF line endings, a compose file, a Kubernetes manifest) that
pins them, rebuilds the images, and runs `tagwatch bump`, `--write` and `--check` over it.
The registry's address is shown as `localhost:5000`; nothing else in the output is edited.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

# The test helpers (the registry harness) live in tests/support/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

from regharness import Pusher, start_registry  # noqa: E402

SHOWN_HOST = "localhost:5000"


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tagwatch-bump-") as tmp:
        work = Path(tmp)
        registry = start_registry(work / "registry", "anonymous")
        try:
            push = Pusher(registry)
            host = registry.host
            platforms = ["linux/amd64", "linux/arm64"]
            python, py = push.push_index("library/python", "3.12-slim", platforms, seed="p1")
            nginx, _ = push.push_index("library/nginx", "1.27", platforms, seed="n1")
            postgres, _ = push.push_index("library/postgres", "17", platforms, seed="g1")
            checkout = work / "checkout"
            (checkout / "services" / "api").mkdir(parents=True)
            (checkout / "deploy").mkdir()
            (checkout / "services" / "api" / "Dockerfile").write_bytes(
                (
                    "# syntax=docker/dockerfile:1\r\n"
                    f"ARG PYTHON={host}/library/python:3.12-slim@{python}\r\n"
                    f"FROM {host}/library/python:3.12-slim@{python} AS build\r\n"
                    "RUN pip wheel --wheel-dir /wheels .\r\n"
                    "\r\n"
                    f"FROM --platform=linux/arm64 {host}/library/python:3.12-slim@"
                    f"{py['linux/arm64']}\r\n"
                    "COPY --from=build /wheels /wheels\r\n"
                    "\r\n"
                    "FROM ${PYTHON} AS test\r\n"
                ).encode()
            )
            (checkout / "compose.yaml").write_text(
                "services:\n"
                "  web:\n"
                f'    image: "{host}/library/nginx:1.27@{nginx}"   # front end\n'
                "  db:\n"
                f"    image: {host}/library/postgres:17@{postgres}\n"
            )
            (checkout / "deploy" / "worker.yaml").write_text(
                "apiVersion: apps/v1\n"
                "kind: Deployment\n"
                "metadata:\n"
                "  name: worker\n"
                "spec:\n"
                "  template:\n"
                "    spec:\n"
                "      containers:\n"
                "        - name: worker\n"
                f"          image: {host}/library/python:3.12-slim@{py['linux/amd64']}\n"
            )
            # The publishers rebuild python and nginx; postgres stays.
            push.push_index("library/python", "3.12-slim", platforms, seed="p2")
            push.push_index("library/nginx", "1.27", platforms, seed="n2")

            for args in ([], ["--write"], ["--check"]):
                print("$ tagwatch bump " + " ".join([".", *args]))
                run = subprocess.run(
                    [sys.executable, "-m", "tagwatch", "bump", ".", *args],
                    cwd=checkout,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    check=False,
                )
                shown = run.stdout.replace(host, SHOWN_HOST)
                print(shown, end="")
                print(f"$ echo $?\n{run.returncode}\n")
        finally:
            registry.close()


if __name__ == "__main__":
    main()
