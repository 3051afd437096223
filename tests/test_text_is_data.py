"""Text from registries and image publishers is data wherever tagwatch shows it (issue 10).

An image pushed to the real distribution registry carries an `org.opencontainers.image.version`
label with a newline and a forged `new: sha256:000…` line, a Markdown link, a Markdown image,
an HTML tag, an OSC 8 hyperlink, ANSI colours and a mention; a second repository answers
through the fault proxy with a registry error whose message holds the same. The real `tagwatch`
command runs against them, and the test reads what a user sees: the alerts a json:// webhook
receives in Markdown, HTML and text, the log lines at -v, and `status` / `history`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from faultproxy import FaultProxy
from markdown_it import MarkdownIt
from regharness import Pusher, Registry
from sinks import WebhookSink

pytestmark = pytest.mark.integration

FAKE = "sha256:" + "0" * 64
HOSTILE = (  # 185 characters once cleaned: under the 200 a label keeps
    f"2.0\nnew: {FAKE}\n**new:** [details](http://evil.example/x) "
    "![](http://evil.example/p.png) \x1b]8;;http://evil.example/\x1b\\click here\x1b]8;;\x1b\\ "
    "\x1b[31mRED\x1b[0m <b>bold</b> @everyone"
)
# In every format: no escape sequence, no live URL, no mention, no forged line; and in those
# that render markup, no link, image or tag of the label's.
EVIL = ("\x1b", "http://evil", "@everyone", "\nnew: sha256:000", "\n**new:** `sha256:000")
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) \S")


def tagwatch(config: Path, *argv: str) -> tuple[int, str, str]:
    env = {**os.environ, "TAGWATCH_CONFIG": str(config)}
    env.pop("NOTIFY_SOCKET", None)
    env.pop("JOURNAL_STREAM", None)
    env.pop("INVOCATION_ID", None)
    proc = subprocess.run(
        [sys.executable, "-m", "tagwatch", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    return proc.returncode, proc.stdout, proc.stderr


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.code: list[str] = []
        self._in_code = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.tags.append(tag)
        self._in_code = tag == "code"

    def handle_endtag(self, tag: str) -> None:
        self._in_code = False

    def handle_data(self, data: str) -> None:
        if self._in_code:
            self.code.append(data)


@pytest.fixture
def world(
    registry_anonymous: Registry, tmp_path: Path, unique_repo: Any
) -> Iterator[dict[str, Any]]:
    registry = registry_anonymous
    labelled, broken = unique_repo("labelled"), unique_repo("broken")
    with Pusher(registry) as pusher, FaultProxy(registry.url) as proxy:
        old = pusher.push_image(labelled, "1", labels={"org.opencontainers.image.version": "1.0"})
        pusher.push_image(broken, "1")
        hooks = {fmt: WebhookSink() for fmt in ("markdown", "html", "text", "json")}
        config = tmp_path / "config.toml"
        config.write_text(
            f'[tagwatch]\ndatabase = "{tmp_path}/tagwatch.db"\ntimeout = "5s"\nerror_after = 1\n'
            f'[[watch]]\nimage = "{proxy.host}/{labelled}:1"\n'
            f'[[watch]]\nimage = "{proxy.host}/{broken}:1"\n'
            + "".join(
                f'[[notify]]\nurl = "{hook.url}"\nformat = "{fmt}"\n' for fmt, hook in hooks.items()
            )
        )
        code, _, err = tagwatch(config, "check")
        assert code == 0, err
        new = pusher.push_image(labelled, "1", labels={"org.opencontainers.image.version": HOSTILE})
        # The broken tag: its HEAD carries no digest, so tagwatch GETs it (the GET fallback),
        # and the GET is refused with a registry error whose message is the hostile text.
        proxy.set_fault("drop_digest", match=("HEAD", f"/v2/{broken}/"))
        proxy.set_fault(
            "status",
            code=403,
            match=("GET", f"/v2/{broken}/"),
            body=json.dumps({"errors": [{"code": "DENIED", "message": HOSTILE}]}).encode(),
        )
        code, out, err = tagwatch(config, "check", "-v")
        yield {
            "config": config,
            "host": proxy.host,
            "labelled": labelled,
            "broken": broken,
            "old": old,
            "new": new,
            "check": (code, out, err),
            "alerts": {fmt: hook.received for fmt, hook in hooks.items()},
            "forbidden": [r for r in proxy.requests if r.status_sent == 403],
        }
        for hook in hooks.values():
            hook.close()


def by_title(received: list[dict[str, Any]], host: str, repo: str, kind: str) -> str:
    title = f"[tagwatch] {kind}: {host}/{repo}:1"
    [message] = [m["message"] for m in received if m["title"] == title]
    assert isinstance(message, str)
    return message


def test_alerts_show_labels_and_errors_as_data(world: dict[str, Any]) -> None:
    host, labelled, broken = world["host"], world["labelled"], world["broken"]
    code, _, err = world["check"]
    assert code == 1, err  # the refused tag is a failed check
    assert world["forbidden"], "the hostile registry error was never served"
    for fmt, received in world["alerts"].items():
        assert len(received) == 2, (fmt, received)
        if fmt == "json":
            continue  # plain data: below
        for m in received:
            markup = {"markdown": ("](http", "![", "<b>bold"), "html": ("<b>bold",)}
            for bad in EVIL + markup.get(fmt, ()):
                assert bad not in m["title"] + m["message"], (fmt, bad, m["message"])

    # Text: one `label: value` per line, the labels tagwatch writes, and one `new:`: the real one.
    moved = by_title(world["alerts"]["text"], host, labelled, "moved").split("\n")
    assert [line.partition(": ")[0] for line in moved[1:]] == [
        "what changed", "version", "old", "new", "seen"
    ]
    assert moved[4] == f"new: {world['new']}" and moved[3] == f"old: {world['old']}"
    assert "[details](http[:]//evil.example/x)" in moved[2] and "[@]everyone" in moved[2]
    assert "click here RED" in moved[2]  # the OSC 8 link's text stays, its URL and colours go
    error = by_title(world["alerts"]["text"], host, broken, "error").split("\n")
    assert [line.partition(": ")[0] for line in error[1:]] == [
        "last digest", "error", "failed checks in a row", "seen"
    ]
    assert "access denied (HTTP 403) (DENIED: 2.0 new: sha256:000" in error[2]

    # Markdown, parsed as CommonMark: bold labels of ours, digests of ours as code, no link,
    # no image, no HTML; the version text reads as it was sent (one line).
    md = by_title(world["alerts"]["markdown"], host, labelled, "moved")
    tokens = [
        t for block in MarkdownIt("commonmark").parse(md) for t in (block.children or [])
    ]
    kinds = {t.type for t in tokens}
    assert not kinds & {"link_open", "image", "html_inline", "em_open"}, kinds
    bold = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "strong_open"]
    assert bold == [
        f"{host}/{labelled}:1 moved to a new digest.",
        "what changed:", "version:", "old:", "new:", "seen:",
    ]
    assert [t.content for t in tokens if t.type == "code_inline"] == [world["old"], world["new"]]
    assert "**new:** `sha256:000" not in md

    # HTML: only tagwatch's tags; the label's <b> arrives as text.
    html = by_title(world["alerts"]["html"], host, labelled, "moved")
    parser = Tags()
    parser.feed(html)
    assert set(parser.tags) == {"p", "b", "br", "code"}
    assert parser.code == [world["old"], world["new"]]
    assert "&lt;b&gt;bold&lt;/b&gt;" in html

    # JSON: plain data, every string one clean line (no markup to escape, nothing defanged).
    [obj] = [
        json.loads(m["message"]) for m in world["alerts"]["json"] if labelled in m["title"]
    ]
    assert obj["digest"] == world["new"] and obj["previous"] == world["old"]
    assert obj["change"]["details"]["version"]["new"] == (
        f"2.0 new: {FAKE} **new:** [details](http://evil.example/x) "
        "![](http://evil.example/p.png) click here RED <b>bold</b> @everyone"
    )
    for m in world["alerts"]["json"]:
        assert "\\u001b" not in m["message"] and "]8;;" not in m["message"]
        assert "\\n" not in m["message"], m["message"]


def test_logs_and_tables_keep_one_line_per_record(world: dict[str, Any]) -> None:
    config, host, labelled, broken = (
        world["config"], world["host"], world["labelled"], world["broken"]
    )
    _, out, err = world["check"]
    # -v: every line is one log record, none carries an escape sequence.
    lines = err.splitlines()
    assert lines and all(LOG_LINE.match(line) for line in lines), err
    assert "\x1b" not in err
    [moved] = [line for line in lines if f" INFO moved {host}/{labelled}:1: " in line]
    assert "1.0 → 2.0 new: sha256:000" in moved  # the forged line is folded into the record

    # `check`'s table, `status` and `history`: a header and one line per row.
    assert len(out.splitlines()) == 1 + 2 + 1 and "\x1b" not in out
    code, status, _ = tagwatch(config, "status")
    assert code == 0 and len(status.splitlines()) == 1 + 2 and "\x1b" not in status
    header, *rows = status.splitlines()
    note = header.index("NOTE")
    [failing] = [row for row in rows if f"/{broken}:1" in row]
    assert failing[note:].startswith(f"{host}: {host}/{broken}:1: access denied (HTTP 403)")
    code, history, _ = tagwatch(config, "history", f"{host}/{labelled}:1")
    assert code == 0 and len(history.splitlines()) == 1 + 1 + 2 and "\x1b" not in history

    code, raw, _ = tagwatch(config, "status", "--json")
    [obj] = [o for o in json.loads(raw) if o["image"].endswith(broken)]
    assert "\n" not in obj["error"] and "\x1b" not in obj["error"]
    code, raw, _ = tagwatch(config, "history", f"{host}/{labelled}:1", "--json")
    latest = json.loads(raw)[0]
    assert latest["what_changed"]["version"]["new"].startswith("2.0 new: sha256:000")
    assert "\x1b" not in raw and "\\u001b" not in raw and "\\n" not in raw


def test_a_log_record_is_one_line_whatever_it_carries(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The log handler every command and the daemon use: a message with a registry's newline
    and escapes, and a record carrying an exception, each stay one line."""
    import logging

    from tagwatch.cli import _setup_logging

    _setup_logging(2)
    log = logging.getLogger("tagwatch.test")
    log.warning("registry says: %s", "denied\nnew: sha256:000 \x1b[2J\x1b]0;title\x07done")
    try:
        json.loads("[" * 100_000)
    except RecursionError:
        log.exception("cycle failed unexpectedly")
    log.info("%s %s", "too few")  # a broken record is one line too, not a logging traceback
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 3, err
    assert lines[0].endswith("WARNING registry says: denied new: sha256:000 done")
    assert "cycle failed unexpectedly | RecursionError: maximum recursion depth" in lines[1]
    assert " at decoder.py:" in lines[1] and "Traceback" not in err
    assert "too few" in lines[2] and "\x1b" not in err
