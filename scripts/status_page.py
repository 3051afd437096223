"""The status page and the read-only API, for real (the README's outputs and screenshots come
from this script): `.venv/bin/python scripts/status_page.py [--shots DIR]`.

Builds tests/support/statusworld.py's daemon on a loopback registry (a moved tag, a stale
pin, a target whose registry answers with markup), prints what the API returns, and loads
the page in Debian's headless Chromium, as tests/test_web_page.py does, saving a desktop and
a phone screenshot to DIR (default docs/: status-page.png, status-page-phone.png).

Only these are edited in the output: the registry's address is shown as localhost:5000, the
hostile one's as localhost:5001, the daemon's as 127.0.0.1:9479.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

from chromium import Chromium  # noqa: E402
from regharness import start_registry  # noqa: E402
from statusworld import StatusWorld  # noqa: E402


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shots", type=Path, default=ROOT / "docs", metavar="DIR")
    args = parser.parse_args(argv)
    args.shots.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tagwatch-web-") as tmp:
        work = Path(tmp)
        registry = start_registry(work / "registry", "anonymous")
        world = StatusWorld(work, registry)
        try:
            world.build()
            daemon = world.start()
            listen = f"127.0.0.1:{world.port}"

            def shown(text: str) -> str:
                return (text.replace(registry.host, "localhost:5000")
                        .replace(world.hostile.host, "localhost:5001")
                        .replace(listen, "127.0.0.1:9479"))

            def curl(path: str) -> None:
                answer = daemon.get(path)
                print(shown(f"$ curl -s http://{listen}{path}"))
                print(shown(answer.text), end="")

            print("==> targets")
            curl("/api/v1/targets")
            print("==> history")
            curl(f"/api/v1/targets/{world.app}/history")
            with Chromium(work) as browser:
                page = browser.open(daemon.url + "/", width=1100, height=600, javascript=False)
                (args.shots / "status-page.png").write_bytes(page.screenshot())
                page = browser.open(daemon.url + "/", width=390, height=844, mobile=True,
                                    scale=2, javascript=False)
                (args.shots / "status-page-phone.png").write_bytes(page.screenshot())
        finally:
            world.close()
            registry.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
