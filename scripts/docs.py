"""Every example output in README.md, from real runs: `./dev docs [NAME…]`.

README.md marks each output it shows:

    <!-- docs:NAME -->
    ```
    …what the run printed…
    ```
    <!-- /docs:NAME -->

and this script runs the generator of every NAME (or of the names given) and puts what it
printed between the markers. Nothing in these blocks is typed by hand; tests/test_readme.py
fails when an output block has no markers, a marker has no generator, or a block holds a
shell error, a traceback or a path of the machine it was made on.

Generators (each starts what it needs on loopback: the distribution registry, webhooks):

* `demo`: scripts/demo.py (`./dev demo`);
* `gallery`, `gallery-summary`: scripts/alert_gallery.py (`./dev gallery`), every alert as
  the webhook of an `each` target received it, and the first message of a `summary` target;
* `bump`: scripts/bump_example.py;
* `web-targets`, `web-history`: scripts/status_page.py (which also takes the status page's
  screenshots in docs/);
* `engines-*`: scripts/engines_demo.py (Podman's Docker Engine API, a recorded Kubernetes
  API), one block per step;
* every section of scripts/readme_examples.py (`first-steps`, `config-errors`, …).

A temporary directory in what they print shows as `…/`; nothing else is edited. The
performance and scaling tables (`bench`, `scale`) are printed from bench/full-run.json,
which a full `bench/run.py --json bench/full-run.json` run on a quiet machine writes.
`MANUAL` lists the exceptions, blocks this script leaves alone: the container run from
scripts/image_demo.py after an image build, the Kubernetes schema validation.

    ./dev docs              # every block
    ./dev docs audit demo   # these only
    ./dev docs --list       # the names, and where each comes from
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests" / "support"))

#: `<!-- docs:NAME -->`, a fenced block, `<!-- /docs:NAME -->`.
BLOCK = re.compile(
    r"(?P<open><!-- docs:(?P<name>[a-z0-9-]+) -->\n```[a-z]*\n)(?P<body>.*?)"
    r"(?P<close>```\n<!-- /docs:(?P=name) -->)",
    re.S,
)

#: Blocks this script does not make, and what does.
MANUAL = {
    "image-demo": "scripts/image_demo.py, after scripts/build_image.sh builds the image",
    "kubernetes-validate": "the command shown, in deploy/kubernetes",
}

#: The steps of scripts/engines_demo.py (its `==> ` headings, in order), one block each.
ENGINES_STEPS = (
    "engines-start",
    "engines-behind",
    "engines-stale",
    "engines-stopped",
    "engines-kubernetes",
)


def shown(text: str) -> str:
    """The one edit made to what a generator printed: a temporary directory (an engine's
    socket, say) shows as `…/`."""
    return re.sub(r"/tmp/[^/\s]+/", "…/", text)


def _script(name: str) -> str:
    """Run scripts/NAME with this Python; its output, stdout and stderr as one stream."""
    env = {k: v for k, v in os.environ.items() if k not in ("TAGWATCH_CONFIG", "NO_COLOR")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"scripts/{name} exited {done.returncode}:\n{done.stdout}")
    return done.stdout


def _section(name: str) -> Callable[[], str]:
    def run() -> str:
        import readme_examples

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            readme_examples.run_section(name)
        return out.getvalue()

    return run


def _message(message: dict[str, str]) -> str:
    return f"{message['title']}\n{message['message']}\n"


_gallery_cache: dict[str, list[dict[str, str]]] = {}


def _gallery(part: str) -> Callable[[], str]:
    def run() -> str:
        if not _gallery_cache:
            import alert_gallery

            with contextlib.redirect_stdout(io.StringIO()):
                _gallery_cache.update(alert_gallery.gallery())
        if part == "each":
            return "\n".join(_message(m) for m in _gallery_cache["each"])
        return _message(_gallery_cache["summary"][0])

    return run


#: The steps of scripts/status_page.py (its `==> ` headings, in order), one block each; it
#: also writes the status page's screenshots, docs/status-page.png and -phone.png.
WEB_STEPS = ("web-targets", "web-history")

#: What each multi-step script printed, split at its `==> ` headings: it runs once.
_steps_cache: dict[str, list[str]] = {}


def _step(script: str, names: tuple[str, ...], step: int) -> Callable[[], str]:
    """Block `step` of scripts/SCRIPT, which prints one `==> ` step per name in `names`."""

    def run() -> str:
        if script not in _steps_cache:
            steps = re.split(r"^==> .*\n", _script(script), flags=re.M)[1:]
            if len(steps) != len(names):
                raise SystemExit(f"scripts/{script} printed {len(steps)} steps, not {len(names)}")
            _steps_cache[script] = [text.strip("\n") + "\n" for text in steps]
        return _steps_cache[script][step]

    return run


def _full_run() -> dict[str, Any]:
    """The last full benchmark run, as it wrote itself: the run takes a quiet machine and
    half an hour, so it is made apart (`bench/run.py --json bench/full-run.json`) and
    committed, and the README's tables are printed from it."""
    import json

    data: dict[str, Any] = json.loads((ROOT / "bench" / "full-run.json").read_text())
    if data["mode"] != "full":
        raise SystemExit(f"bench/full-run.json is from a {data['mode']} run, not a full one")
    return data


def _bench() -> str:
    """The targets' table, as bench/run.py printed it."""
    sys.path.insert(0, str(ROOT / "bench"))
    import run

    data = _full_run()
    results = run.Results(rows=[run.Row(**row) for row in data["rows"]])
    head = f"{data['machine']}\nmode: {data['mode']}; total {data['seconds']:.0f}s"
    return f"{head}\n{results.table()}\n"


def _scale() -> str:
    """Target 8's growth table from 1,000 to 100,000 watches, as bench/scale.py printed it."""
    return str(_full_run()["data"]["scale"]["table"]).rstrip("\n") + "\n"


def generators() -> dict[str, tuple[str, Callable[[], str]]]:
    """Block name -> (where it comes from, the function that makes it)."""
    import readme_examples

    out: dict[str, tuple[str, Callable[[], str]]] = {
        "demo": ("scripts/demo.py", lambda: _script("demo.py").lstrip("\n")),
        "gallery": ("scripts/alert_gallery.py: the `each` target", _gallery("each")),
        "gallery-summary": ("scripts/alert_gallery.py: the `summary` target", _gallery("summary")),
        "bump": ("scripts/bump_example.py", lambda: _script("bump_example.py").rstrip("\n") + "\n"),
    }
    run = "from `bench/run.py --json bench/full-run.json`"
    out["bench"] = (f"bench/full-run.json, {run}", _bench)
    out["scale"] = (f"bench/full-run.json (target 8), {run}", _scale)
    for name in readme_examples.SECTIONS:
        out[name] = (f"scripts/readme_examples.py {name}", _section(name))
    for script, names in (("engines_demo.py", ENGINES_STEPS), ("status_page.py", WEB_STEPS)):
        for i, name in enumerate(names):
            out[name] = (f"scripts/{script}, step {i + 1}", _step(script, names, i))
    return out


def blocks(text: str) -> list[tuple[str, str]]:
    """(name, body) of every marked block of a README text."""
    return [(m.group("name"), m.group("body")) for m in BLOCK.finditer(text)]


def replace(text: str, made: dict[str, str]) -> str:
    def sub(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in made:
            return match.group(0)
        body = made[name]
        if not body.endswith("\n"):
            body += "\n"
        return match.group("open") + body + match.group("close")

    return BLOCK.sub(sub, text)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="./dev docs", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these blocks")
    parser.add_argument("--list", action="store_true", help="list the blocks and exit")
    args = parser.parse_args(argv)
    known = generators()
    text = README.read_text()
    marked = [name for name, _ in blocks(text)]
    if args.list:
        for name in marked:
            where = known[name][0] if name in known else MANUAL.get(name, "NO GENERATOR")
            print(f"{name:16} {where}")
        return 0
    unknown = [n for n in marked if n not in known and n not in MANUAL]
    if unknown:
        print(f"README.md marks blocks no generator makes: {', '.join(unknown)}", file=sys.stderr)
        return 1
    names = args.names or [n for n in marked if n in known]
    for name in names:
        if name not in known:
            print(f"no generator for {name!r} (./dev docs --list)", file=sys.stderr)
            return 2
    made = {}
    for name in dict.fromkeys(names):
        print(f"docs: {name} ({known[name][0]})", file=sys.stderr, flush=True)
        made[name] = shown(known[name][1]())
    README.write_text(replace(text, made))
    print(f"docs: README.md: {len(made)} blocks written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
