"""Planning `tagwatch bump`: which pinned references in a file can be rewritten, to which
digest, and the rewritten bytes. Pure: file bytes, the scanner's findings and what the
registry said come in; pins, proposals, new bytes and diffs go out. Reading the files,
asking the registry and writing are the edge's job (tagwatch.bump).

A rewrite changes the digest's characters and nothing else: the file is decoded as strict
UTF-8 (a byte-order mark kept aside), so every other byte - line endings, comments,
spacing, a missing final newline - comes back exactly as it was.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from tagwatch.core.model import Resolved, Stretch
from tagwatch.core.refs import ImageRef
from tagwatch.core.scan import Found

__all__ = [
    "BOM",
    "Edit",
    "Pin",
    "Pinned",
    "Proposal",
    "behind_since",
    "decode",
    "encode",
    "find_pins",
    "pinned_from_history",
    "propose",
    "rewrite",
    "summary",
    "unified_diff",
]

BOM = b"\xef\xbb\xbf"
_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
_LOOKS_PINNED = re.compile(r"@[A-Za-z0-9_+.-]*:[0-9A-Fa-f]{16}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def decode(data: bytes) -> str | None:
    """The text of a file for the scanner, or None when it is not UTF-8. A leading byte-order
    mark is dropped (`encode` puts it back), so offsets in the text round-trip exactly."""
    try:
        return data.removeprefix(BOM).decode("utf-8")
    except UnicodeDecodeError:
        return None


def encode(text: str, bom: bool) -> bytes:
    return (BOM if bom else b"") + text.encode("utf-8")


@dataclass(frozen=True, slots=True)
class Pin:
    """A pinned reference (`tag@digest`) found in a file."""

    file: str
    line: int
    text: str  # the reference as the scanner read it
    ref: ImageRef | None  # None when it could not be read
    context: str  # "FROM", "compose service web", "Deployment/api container api", ...
    at: int | None  # where the digest starts in the text; None: it cannot be rewritten
    problem: str | None = None  # why it is neither checked nor rewritten


def _names(raw: str) -> str:
    names = list(dict.fromkeys(_VARIABLE.findall(raw)))
    return ", ".join(f"${{{n}}}" for n in names) if names else "a substitution"


def find_pins(text: str, found: Sequence[Found]) -> list[Pin]:
    """The pins among one file's findings (the scanner's `Found`s for `text`), each with where
    its digest is written, or why bump leaves it alone: it is built from a variable (an `ARG`,
    `ENV` or Compose `${VAR}`: the value is set elsewhere), split by a line continuation, not
    written literally (a YAML escape), or has no tag to follow. A pin reached twice (a YAML
    merge key) is listed once."""
    pins: list[Pin] = []
    seen: set[int] = set()
    for item in found:
        ref = item.ref
        if ref is None:
            if _LOOKS_PINNED.search(item.text):
                problem = item.problem or "cannot be read"
                if _VARIABLE.search(item.text):
                    problem = f"built from {_names(item.text)} ({problem}): left alone"
                pins.append(Pin(item.file, item.line, item.text, None, item.context, None, problem))
            continue
        if ref.digest is None:
            continue

        def pin(at: int | None, problem: str | None = None, item: Found = item) -> Pin:
            return Pin(item.file, item.line, item.text, item.ref, item.context, at, problem)

        if ref.tag is None:
            pins.append(pin(None, "pinned by digest alone: no tag to follow"))
            continue
        if item.span is None:
            pins.append(
                pin(
                    None,
                    "split by a line continuation: only a reference written on "
                    "one line is rewritten",
                )
            )
            continue
        start, end = item.span
        raw = text[start:end]
        if "$" in raw:
            pins.append(
                pin(
                    None,
                    f"built from {_names(raw)}: only a reference written out in "
                    "full is rewritten (change the value where it is set)",
                )
            )
            continue
        if raw.count(ref.digest) != 1:
            pins.append(
                pin(
                    None,
                    "the digest is not written out literally here (escaped or folded): left alone",
                )
            )
            continue
        at = start + raw.index(ref.digest)
        if at in seen:
            continue
        seen.add(at)
        pins.append(pin(at))
    return pins


@dataclass(frozen=True, slots=True)
class Pinned:
    """What a pinned digest is: the tag's index (or its single image), or one platform's
    image inside an index. `kind` None: not known (`why` says why)."""

    kind: str | None  # "index" | "image" | None
    platform: str | None = None  # for "image", when known
    why: str | None = None


def pinned_from_history(pinned: str, history: Sequence[Stretch]) -> Pinned | None:
    """What the tag's recorded history says the pinned digest was, if it saw it."""
    for stretch in history:
        if stretch.digest == pinned:
            return Pinned("index") if stretch.platforms else Pinned("image")
        for platform, digest in stretch.platforms.items():
            if digest == pinned:
                return Pinned("image", platform)
    return None


@dataclass(frozen=True, slots=True)
class Proposal:
    new: str | None  # the digest to write; None: left alone (reason says why)
    platform: str | None = None
    reason: str | None = None


def propose(seen: Resolved, pinned: Pinned | None) -> Proposal:
    """The digest a pin that is behind should get: the tag's own digest for a pin of the
    index (or of a tag that is a single image now); for a pin of one platform's image, the
    same platform's image in the tag's index now."""
    if not seen.platforms:
        return Proposal(seen.digest)
    if pinned is None or pinned.kind is None:
        why = pinned.why if pinned is not None and pinned.why else "not known"
        return Proposal(
            None,
            reason=f"cannot tell whether it pins the index or one platform's image ({why}): "
            "left alone",
        )
    if pinned.kind == "index":
        return Proposal(seen.digest)
    if pinned.platform is None:
        why = f" ({pinned.why})" if pinned.why else ""
        return Proposal(
            None, reason=f"cannot tell which platform its image is for{why}: left alone"
        )
    new = seen.platforms.get(pinned.platform)
    if new is None:
        return Proposal(
            None,
            pinned.platform,
            f"it pins the {pinned.platform} image, and the tag has none now (it has "
            f"{', '.join(sorted(seen.platforms))}): left alone",
        )
    return Proposal(new, pinned.platform)


def behind_since(pinned: str, history: Sequence[Stretch], now: datetime) -> datetime | None:
    """When the tag moved away from the pinned digest, if its history (newest first) saw it."""
    for i, stretch in enumerate(history):
        if stretch.digest == pinned or pinned in stretch.platforms.values():
            return now if i == 0 else history[i - 1].first_seen
    return None


@dataclass(frozen=True, slots=True)
class Edit:
    at: int  # where `old` starts in the decoded text
    old: str
    new: str


def rewrite(data: bytes, edits: Sequence[Edit]) -> bytes:
    """`data` with each edit's digest replaced. ValueError when the text at an edit is not
    its old digest (the file is not the one that was planned), or edits overlap."""
    text = decode(data)
    if text is None:
        raise ValueError("not UTF-8")
    out: list[str] = []
    position = 0
    for edit in sorted(edits, key=lambda e: e.at):
        if edit.at < position or text[edit.at : edit.at + len(edit.old)] != edit.old:
            raise ValueError(f"no {edit.old} at character {edit.at}")
        out.append(text[position : edit.at])
        out.append(edit.new)
        position = edit.at + len(edit.old)
    out.append(text[position:])
    return encode("".join(out), data.startswith(BOM))


def _lines(text: str) -> list[str]:
    """Lines with their endings; only "\\n" ends a line (as for diff and patch)."""
    return re.findall(r"[^\n]*\n|[^\n]+\Z", text)


def _safe_name(name: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", name)


def unified_diff(name: str, old: bytes, new: bytes, context: int = 3) -> str:
    """A unified diff of one file: `--- a/NAME`, `+++ b/NAME` as `git apply` and `patch -p1`
    take it (an absolute NAME as it is, for `patch -p0`). Line endings are kept as they are
    (a CRLF file's lines end in CR LF), and a last line without a newline is marked
    `\\ No newline at end of file`."""
    a = _lines(decode(old) or "")
    b = _lines(decode(new) or "")
    shown = _safe_name(name)
    old_name, new_name = (shown, shown) if shown.startswith("/") else (f"a/{shown}", f"b/{shown}")
    out: list[str] = []
    for line in difflib.unified_diff(a, b, old_name, new_name, n=context):
        if not line.endswith("\n"):
            line += "\n\\ No newline at end of file\n"
        out.append(line)
    return "".join(out)


def summary(counts: Mapping[str, int], files: int, *, wrote: bool, stale: int | None) -> str:
    """The closing line: `3 pins behind in 2 files; 3 bumped; 4 current, 1 vanished`."""

    def n(count: int, word: str) -> str:
        return f"{count} {word}{'' if count == 1 else 's'}"

    behind = counts.get("behind", 0)
    text = f"{n(behind, 'pin')} behind"
    if behind:
        text += f" in {n(files, 'file')}"
    if stale is not None:
        text += f" ({stale} stale)"
    bumped = counts.get("bumped", 0)
    if behind:
        text += f"; {bumped} bumped" if wrote else f"; {bumped} to bump (--write)"
        left = behind - bumped
        if left:
            text += f", {left} left alone"
    rest = [
        f"{counts[key]} {word}"
        for key, word in (
            ("current", "current"),
            ("vanished", "vanished"),
            ("skipped", "skipped"),
            ("error", "could not be checked"),
        )
        if counts.get(key)
    ]
    if rest:
        text += "; " + ", ".join(rest)
    return text
