r"""Outside text inside a message format: the step after `core.text.clean`. Pure.

`clean` makes a peer's text (a label, an annotation, an error message, a tag name) one
printable line. Put into an alert, that line is still read by a Markdown or HTML renderer, and
by chat and mail clients that turn anything that looks like a URL into a link. So text from
outside goes into a message through `shown(text, fmt)`:

* ``text``: `clean`, then `defang`: every URL in it is broken (`http://evil.example` becomes
  `http[:]//evil.example`, `www.evil.example` becomes `www[.]evil.example`), so the only links
  in an alert are the ones tagwatch builds itself (a registry's repository page); and every
  `@` becomes `[@]`, so `@everyone`, `@channel` or `<@123>` ping nobody (apprise's Discord
  plugin turns any `@word` in a Markdown body into a mention; Mattermost does the same);
* ``markdown``: the same, then every character that opens or closes inline markup is escaped
  (`**new:**` stays two asterisks, `[x](…)` and `![](…)` stay brackets): with a backslash,
  except `<`, `>` and an `&` that starts an entity, which become entities — apprise hands
  Markdown to Python-Markdown for HTML targets (Telegram), which has no backslash escape for
  `<` and passes `<img …>` through as HTML;
* ``html``: the same, then `html.escape`;
* ``json``: `clean` only: plain data, no markup to escape and nothing rendered from it.

    shown("2.0\n**new:** [x](http://e.example)", "markdown")
    == r"2.0 \*\*new:\*\* \[x\]\(http\[:\]//e.example\)"

`clean_data` applies `clean` to every string inside JSON-like data (what `--json` prints and
what is stored of a move's details).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tagwatch.core.text import DEFAULT_LIMIT, clean

__all__ = ["FORMATS", "clean_data", "defang", "html", "markdown", "shown"]

FORMATS = ("text", "markdown", "html", "json")

# A URL scheme (`http://`, `javascript://`, `hxxps://` alike) and a `www.` host: what chat
# and mail clients turn into a link by themselves.
# Container engine endpoints (`unix:///run/docker.sock`, `tcp://host:2376`) are addresses no
# chat or mail client opens: they stay as written.
_SCHEME = re.compile(r"(?i)\b(?!(?:unix|npipe|tcp|fd):)([a-z][a-z0-9+.-]{0,31}):(?=//)")
_WWW = re.compile(r"(?i)\b(www)\.(?=\S)")
# Characters that open or close inline markup: emphasis (* _ ~), code (`), links and images
# ([ ] ( ) !), table cells (|), headings (#), the escape itself; then raw HTML and autolinks
# (< >) and entity references (&name;). Block markup (> - + 1.) only counts at the start of a
# line, where outside text never is.
_MARKDOWN = re.compile(r"[\\`*_~\[\]()!|#]|[<>]|&(?=#?[0-9A-Za-z]+;)")
_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}


def defang(text: str) -> str:
    """Every URL and mention in `text` made inert: `scheme://` becomes `scheme[:]//` (but for
    engine endpoints: unix, npipe, tcp, fd), `www.` `www[.]`, `@` `[@]`."""
    return _WWW.sub(r"\1[.]", _SCHEME.sub(r"\1[:]", text)).replace("@", "[@]")


def markdown(text: str) -> str:
    """`text` as literal Markdown inline text, in CommonMark and in Python-Markdown alike: no
    emphasis, code, link, image, HTML or entity can come of it."""
    return _MARKDOWN.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    return _ENTITIES.get(char) or "\\" + char


def html(text: str) -> str:
    """`text` as literal HTML text or attribute value."""
    import html as _html  # loaded for an HTML alert only

    return _html.escape(text, quote=True)


def shown(text: object, fmt: str = "text", limit: int = DEFAULT_LIMIT) -> str:
    """Outside text, made one line and inert, for a message in `fmt` (see FORMATS)."""
    line = clean(text, limit)
    if fmt == "json":
        return line
    line = defang(line)
    if fmt == "markdown":
        return markdown(line)
    if fmt == "html":
        return html(line)
    return line


_PLAIN = (type(None), bool, int, float)


def clean_data(value: Any, limit: int = DEFAULT_LIMIT) -> Any:
    """`value` with every string in it (keys included) cleaned; numbers, booleans and None
    as they are; tuples become lists, as JSON has them."""
    if isinstance(value, str):
        return clean(value, limit)
    if type(value) in _PLAIN:  # most values of a status object: nothing to walk
        return value
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            # A plain identifier (every key tagwatch writes) is a clean line already.
            if not (type(key) is str and len(key) <= limit and key.isidentifier()):
                key = clean(str(key), limit)
            out[key] = clean(item, limit) if isinstance(item, str) else clean_data(item, limit)
        return out
    if isinstance(value, list | tuple):
        return [clean_data(v, limit) for v in value]
    return value
