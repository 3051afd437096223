"""Text from outside is data: one step that makes it safe to show on one line. Pure.

Registries, token services and image publishers choose the strings tagwatch shows: error
messages, labels, annotations, tag names. Shown as they came, a newline forges a line in a
log or an alert (`new: sha256:000…`), an escape sequence rewrites the operator's terminal or
plants a hyperlink (OSC 8), a bidi override reverses what is read. So every such string goes
through `clean` before it is put into a message, a log line, a table or an alert:

    clean("v1\\n**new:** sha256:000\\x1b]8;;http://evil\\x1b\\\\x\\x1b]8;;\\x1b\\\\")
    -> "v1 **new:** sha256:000x"

`clean` only makes the text one printable line. Escaping for a target format (Markdown, HTML)
is the renderer's job, after `clean`.
"""

from __future__ import annotations

import re

__all__ = ["DEFAULT_LIMIT", "clean"]

DEFAULT_LIMIT = 200  # characters; enough for any honest error message or label value

# Terminal escape sequences, dropped whole (their parameters and payloads too): CSI
# (colours, cursor moves), OSC (titles, OSC 8 hyperlinks: the URL goes, the text stays), DCS,
# SOS, PM and APC strings, and two-character escapes; each in its 7-bit (ESC …) and 8-bit
# (C1) spelling. An unterminated string runs to the end of the text.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"  # CSI
    r"|(?:\x1b[\]PX^_]|[\x9d\x90\x98\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # strings
    r"|\x1b[ -/]*[0-~]?"  # other ESC sequences (and a lone ESC)
)
_SPACE = re.compile(r"\s+")  # every Unicode space and line break, \u2028 and \x85 included
_ELLIPSIS = "…"


def clean(text: object, limit: int = DEFAULT_LIMIT) -> str:
    """`text` as one safe, printable line of at most `limit` characters.

    * bytes are decoded as UTF-8 (invalid bytes become U+FFFD); anything else goes through str();
    * terminal escape sequences are removed whole;
    * line breaks, tabs and every other kind of space become one plain space (runs fold to
      one), and the ends are trimmed;
    * what is left that is not printable — control characters, format characters such as
      bidi overrides and zero-width spaces, surrogates, private-use and unassigned code
      points — is dropped;
    * a longer result is cut to `limit` characters, the last being "…".

    Never raises; idempotent (clean(clean(x)) == clean(x)).
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    elif not isinstance(text, str):
        text = str(text)
    limit = max(1, limit)
    if len(text) <= limit and text.isprintable() and text.strip() == text and "  " not in text:
        return text  # the common case: nothing to do
    # Bound the work for a hostile megabyte: nothing past this can survive the cut anyway,
    # unless escape sequences hide more than 7/8 of it (then the result is just shorter).
    text = text[: limit * 8 + 64]
    text = _ESCAPES.sub("", text)
    text = _SPACE.sub(" ", text)
    if not text.isprintable():
        text = "".join(char for char in text if char.isprintable())
        text = _SPACE.sub(" ", text)  # dropping a character may have joined two spaces
    text = text.strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + _ELLIPSIS
    return text
