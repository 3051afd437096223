"""core.markup: outside text inside an alert, per format. Pure.

Checked against two real Markdown renderers: markdown-it-py (CommonMark, the dialect apprise
converts for Slack and Discord) and Python-Markdown (what apprise renders Markdown to HTML
with, e.g. for Telegram), on hand-picked attacks and on whatever hypothesis makes up.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import markdown as python_markdown
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from tagwatch.core.markup import clean_data, defang, html, markdown, shown

HOSTILE = (
    "2.0\nnew: sha256:" + "0" * 64 + " **new:** [details](http://evil.example/x) "
    "![](http://evil.example/p.png) \x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\ "
    "\x1b[31mRED\x1b[0m <img src=x onerror=alert(1)> <http://evil.example> www.evil.example "
    "`code` _em_ ~~gone~~ | a | &lt;b&gt; @everyone <@123> &#42;x&#42;"
)
LINK = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://|\bwww\.")


@pytest.mark.parametrize(
    ("fmt", "out"),
    [
        ("json", "1.0 [x](http://e.example) @all"),
        ("text", "1.0 [x](http[:]//e.example) [@]all"),
        ("markdown", r"1.0 \[x\]\(http\[:\]//e.example\) \[@\]all"),
        ("html", "1.0 [x](http[:]//e.example) [@]all"),
    ],
)
def test_shown_per_format(fmt: str, out: str) -> None:
    assert shown("1.0\n[x](http://e.example)\t@all", fmt) == out


def test_the_pieces() -> None:
    assert defang("see https://a.example, WWW.b.example and javascript://x") == (
        "see https[:]//a.example, WWW[.]b.example and javascript[:]//x"
    )
    ours = "sha256:abc 127.0.0.1:5000/app:1 v1.2.3 unix:///run/docker.sock tcp://h:2376"
    assert defang(ours) == ours
    assert markdown("a*b_c`d[e]f(g)h!i|j~k#l\\m") == r"a\*b\_c\`d\[e\]f\(g\)h\!i\|j\~k\#l\\m"
    assert markdown("<b> R&D &amp; &#42;") == r"&lt;b&gt; R&D &amp;amp; &amp;\#42;"
    assert html('<a href="x">') == "&lt;a href=&quot;x&quot;&gt;"
    assert shown("x" * 500, "markdown", limit=10) == "x" * 9 + "…"


def test_clean_data_cleans_every_string() -> None:
    data = {"a\nb": ["x\x1b[31my", 1, None, True, ("t\tu",)], "n": 2.5}
    assert clean_data(data) == {"a b": ["xy", 1, None, True, ["t u"]], "n": 2.5}


# --- rendered by real Markdown renderers ---------------------------------------------------


def commonmark_inline(line: str) -> list[str]:
    """The inline token types markdown-it-py makes of one line, and its rendered text."""
    [_, inline, _] = MarkdownIt("commonmark").enable("strikethrough").enable("table").parse(line)
    assert inline.children is not None
    return [t.type for t in inline.children if t.type != "text" or t.content]


def commonmark_text(line: str) -> str:
    [_, inline, _] = MarkdownIt("commonmark").parse(line)
    assert inline.children is not None
    return "".join(t.content for t in inline.children if t.type == "text")


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.tags.append(tag)

    def handle_startendtag(self, tag: str, attrs: object) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def html_tags(document: str) -> tuple[list[str], str]:
    parser = Tags()
    parser.feed(document)
    return parser.tags, "".join(parser.text)


def assert_literal_in_markdown(raw: str) -> None:
    """Outside text after a label of ours renders as exactly that label in bold plus the
    text, literally: no link, image, emphasis, code, HTML; in both renderers."""
    value = shown(raw, "markdown")
    line = f"**version:** {value}"
    plain = shown(raw, "text")
    # CommonMark: our strong, then text only, reading exactly as the plain-text format.
    tokens = commonmark_inline(line)
    assert tokens[:3] == ["strong_open", "text", "strong_close"], (raw, tokens)
    assert set(tokens[3:]) <= {"text"}, (raw, tokens)
    assert commonmark_text(line) == f"version: {plain}".rstrip()
    # Python-Markdown (apprise's Markdown to HTML): our <strong>, nothing else.
    tags, text = html_tags(python_markdown.markdown(line))
    assert tags == ["p", "strong"], (raw, tags)
    assert not LINK.search(text) and "@" not in text.replace("[@]", "")


def test_hostile_label_renders_as_text() -> None:
    assert_literal_in_markdown(HOSTILE)
    value = shown(HOSTILE, "markdown")
    assert "\x1b" not in value and "\n" not in value and "http://" not in value


@settings(max_examples=400, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(list("ab1 .:/-_*[]()!<>&#;`~|\\@\n\t\x1bwhttp")),
        max_size=60,
    )
)
def test_any_text_renders_as_text(raw: str) -> None:
    assert_literal_in_markdown(raw)


@given(st.text(max_size=80))
def test_any_text_is_one_inert_html_line(raw: str) -> None:
    value = shown(raw, "html")
    tags, text = html_tags(f"<b>label:</b> {value}")
    assert tags == ["b"] and "\n" not in value
    assert not LINK.search(text)
