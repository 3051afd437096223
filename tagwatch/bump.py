"""`tagwatch bump`: pinned digests that are behind, rewritten to their tag's current digest.

The edge around the pure planning in tagwatch.core.bump:

1. `read_files` reads the files `tagwatch scan` would scan and lists their pins;
2. `check` resolves each tag once (in parallel, through the registry client), and for each
   pin that is behind finds out what the pinned digest was - the tag's index, or one
   platform's image - from the tag's recorded history when a database is given, else from
   the registry (the pinned manifest, and for an image its config's platform);
3. `mark_stale` (for `--only stale`) says which behind pins are past their `max_age`;
4. `prepare` computes each file's new bytes, and `write` replaces the files.

A file is replaced atomically: the new bytes go to a temporary file in the same directory
(`.NAME.tagwatch-bump-XXXXXXXX`), which gets the old file's mode and owner and is fsynced,
then renamed over the old one, and the directory is fsynced. A crash or a kill leaves every
file wholly old or wholly new; at worst a temporary file is left next to it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tagwatch.core.bump import (
    Edit,
    Pin,
    Pinned,
    behind_since,
    decode,
    find_pins,
    pinned_from_history,
    propose,
    rewrite,
)
from tagwatch.core.drift import pin_is_current
from tagwatch.core.durations import format_duration
from tagwatch.core.model import Kind, Resolved, Stretch, Target, TargetView
from tagwatch.core.refs import ImageRef
from tagwatch.core.scan import MAX_FILE_SIZE, scan_file
from tagwatch.errors import NotFound, RegistryError
from tagwatch.registry.client import RegistryClient

__all__ = [
    "FilePlan",
    "Outcome",
    "WriteError",
    "check",
    "mark_stale",
    "notes",
    "pin_lines",
    "prepare",
    "read_files",
    "tally",
    "write",
    "write_atomic",
]

log = logging.getLogger("tagwatch.bump")

TagKey = tuple[str, str, str]
_BINARY_PROBE = 8192
TEMP_MARK = ".tagwatch-bump-"


@dataclass
class Outcome:
    """What became of one pin."""

    pin: Pin
    state: str  # "current" | "behind" | "vanished" | "error" | "skipped" ("pending" inside)
    new: str | None = None  # the digest it gets (behind, and one could be told)
    platform: str | None = None  # the platform whose image it pins, when it pins one
    reason: str | None = None  # why nothing is proposed, or why it was not written
    failed: bool = False  # something could not be checked or written (exit status 1)
    stale: bool | None = None  # with --only stale: past its max_age
    planned: bool = False  # part of the file's new bytes
    written: bool = False

    def as_dict(self, only_stale: bool) -> dict[str, Any]:
        ref = self.pin.ref
        row: dict[str, Any] = {
            "file": self.pin.file,
            "line": self.pin.line,
            "reference": self.pin.text,
            "image": ref.name if ref else None,
            "tag": ref.tag if ref else None,
            "old": ref.digest if ref else None,
            "new": self.new,
            "platform": self.platform,
            "state": self.state,
            "reason": self.reason,
            "context": self.pin.context,
            "written": self.written,
        }
        if only_stale:
            row["stale"] = self.stale
        return row


@dataclass
class FilePlan:
    """One file: what was read, its pins, and what is to be written."""

    name: str
    path: Path
    data: bytes = b""
    outcomes: list[Outcome] = field(default_factory=list)
    error: str | None = None  # could not be read or written
    new_data: bytes | None = None
    written: bool = False


# --- 1. reading -------------------------------------------------------------------------


def _read(path: Path) -> bytes | None:
    """The bytes of a file, or None for one the scanner skips (over 1 MiB, or binary)."""
    with path.open("rb") as handle:
        data = handle.read(MAX_FILE_SIZE + 1)
    if len(data) > MAX_FILE_SIZE or b"\0" in data[:_BINARY_PROBE]:
        return None
    return data


def read_files(files: Sequence[tuple[str, Path]]) -> list[FilePlan]:
    """Read and scan each file (as `core.scan.walk_paths` lists them); files without pins are
    left out. A file that cannot be read is a plan with `error` set."""
    plans: list[FilePlan] = []
    for _, path in files:
        plan = FilePlan(str(path), path)
        try:
            data = _read(path)
        except OSError as exc:
            plan.error = f"cannot read: {exc.strerror or exc}"
            plans.append(plan)
            continue
        if data is None:
            continue
        plan.data = data
        text = decode(data)
        if text is None:
            loose = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="replace")
            pins = [
                Pin(
                    p.file,
                    p.line,
                    p.text,
                    p.ref,
                    p.context,
                    None,
                    "the file is not UTF-8: left alone",
                )
                for p in find_pins(loose, scan_file(path, loose))
            ]
        else:
            pins = find_pins(text, scan_file(path, text))
        # A pin that cannot be rewritten is still checked when it can be read: one built
        # from an ARG is behind all the same, and --check must say so.
        plan.outcomes = [
            Outcome(p, "pending")
            if p.ref is not None and p.ref.tag is not None
            else Outcome(p, "skipped", reason=p.problem)
            for p in pins
        ]
        if plan.outcomes:
            plans.append(plan)
    return plans


# --- 2. asking the registry -------------------------------------------------------------


def _tag_key(ref: ImageRef) -> TagKey:
    assert ref.tag is not None
    return (ref.registry, ref.repository, ref.tag)


def _resolve(client: RegistryClient, ref: ImageRef) -> Resolved | RegistryError | Exception:
    try:
        return client.resolve(ref)
    except RegistryError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - one tag's bug must not end the run
        log.exception("internal error resolving %s", ref)
        return exc


def _vanished(client: RegistryClient, ref: ImageRef, pinned: str) -> str:
    try:
        gone = not client.exists(ref, pinned)
    except RegistryError:
        return "the tag is gone (vanished): nothing to bump to"
    if gone:
        return (
            "the tag is gone (vanished) and so is the pinned digest (pin_missing): "
            "nothing to bump to"
        )
    return "the tag is gone (vanished): nothing to bump to; the pinned digest is still served"


def _from_registry(
    client: RegistryClient, ref: ImageRef, pinned: str, known: Pinned | None
) -> Pinned:
    """What the registry says the pinned digest is; RegistryError when it cannot say."""
    try:
        manifest = client.manifest(ref, pinned)
    except NotFound:
        why = "the registry no longer serves the pinned digest (pin_missing)"
        if known is not None:
            return Pinned(known.kind, known.platform, why)
        return Pinned(None, why=why + (" and no recorded history names it"))
    if manifest.is_index:
        return Pinned("index")
    if manifest.config_digest is None:
        return Pinned("image", why="its manifest names no config")
    platform = client.config_platform(ref, manifest.config_digest)
    return Pinned("image", platform, None if platform else "its config names no platform")


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, RegistryError):
        return str(exc)
    return f"internal error: {type(exc).__name__}: {exc}"


def check(
    plans: Sequence[FilePlan],
    client: RegistryClient,
    *,
    history: Callable[[TagKey], Sequence[Stretch]] | None = None,
    concurrency: int = 8,
) -> None:
    """Resolve every pinned tag once and decide each pending pin: current, behind (with the
    digest it should get, or why none), vanished, or error."""
    pending = [o for plan in plans for o in plan.outcomes if o.state == "pending"]
    refs: dict[TagKey, ImageRef] = {}
    for outcome in pending:
        assert outcome.pin.ref is not None
        refs.setdefault(_tag_key(outcome.pin.ref), outcome.pin.ref.without_digest())
    keys = list(refs)
    workers = max(1, min(concurrency, len(keys) or 1))
    with ThreadPoolExecutor(workers, thread_name_prefix="bump") as pool:
        answers = dict(zip(keys, pool.map(lambda k: _resolve(client, refs[k]), keys), strict=True))

        # What each pinned digest that is behind was: history first (no request), then the
        # registry. Only needed when the tag is an index now.
        wanted: dict[tuple[TagKey, str], Pinned | None] = {}
        vanished: dict[tuple[TagKey, str], str] = {}
        for outcome in pending:
            ref = outcome.pin.ref
            assert ref is not None and ref.digest is not None
            key = (_tag_key(ref), ref.digest)
            seen = answers[key[0]]
            if isinstance(seen, NotFound):
                vanished.setdefault(key, "")
            elif (
                isinstance(seen, Resolved)
                and seen.platforms
                and not pin_is_current(ref.digest, seen)
                and key not in wanted
            ):
                wanted[key] = pinned_from_history(ref.digest, history(key[0])) if history else None
        ask = [
            k
            for k, v in wanted.items()
            if v is None or v.kind is None or (v.kind == "image" and v.platform is None)
        ]

        def lookup(key: tuple[TagKey, str]) -> Pinned | Exception:
            try:
                return _from_registry(client, refs[key[0]], key[1], wanted[key])
            except Exception as exc:  # noqa: BLE001 - reported on the pin
                if not isinstance(exc, RegistryError):
                    log.exception("internal error looking up %s@%s", refs[key[0]], key[1])
                return exc

        found = dict(zip(ask, pool.map(lookup, ask), strict=True))
        missing = dict(
            zip(
                vanished,
                pool.map(lambda k: _vanished(client, refs[k[0]], k[1]), vanished),
                strict=True,
            )
        )

    for outcome in pending:
        ref = outcome.pin.ref
        assert ref is not None and ref.digest is not None
        key = (_tag_key(ref), ref.digest)
        seen = answers[key[0]]
        if isinstance(seen, NotFound):
            outcome.state, outcome.reason = "vanished", missing[key]
            continue
        if not isinstance(seen, Resolved):
            outcome.state, outcome.reason, outcome.failed = "error", _error_text(seen), True
            continue
        if pin_is_current(ref.digest, seen):
            outcome.state = "current"
            continue
        outcome.state = "behind"
        what = found.get(key, wanted.get(key))
        if isinstance(what, BaseException):
            outcome.reason = f"could not look up the pinned digest: {_error_text(what)}"
            outcome.failed = True
            continue
        proposal = propose(seen, what)
        outcome.new, outcome.platform = proposal.new, proposal.platform
        outcome.reason = proposal.reason
        if outcome.pin.at is None and proposal.new is not None:
            outcome.reason = outcome.pin.problem


# --- 3. --only stale --------------------------------------------------------------------


def mark_stale(
    plans: Sequence[FilePlan],
    *,
    now: datetime,
    views: Mapping[str, TargetView],
    history: Callable[[TagKey], Sequence[Stretch]],
    max_age: Callable[[ImageRef], float],
) -> None:
    """Set `stale` on every behind pin: behind for at least its max_age, by the database's
    record of when it fell behind (or the tag's history). A pin not known to be stale is
    left alone, with the reason."""
    for plan in plans:
        for outcome in plan.outcomes:
            if outcome.state != "behind":
                continue
            ref = outcome.pin.ref
            assert ref is not None and ref.digest is not None
            view = views.get(Target(Kind.PIN, ref).key)
            since = view.behind_since if view is not None else None
            if since is None:
                since = behind_since(ref.digest, history(_tag_key(ref)), now)
            limit = max_age(ref)
            if since is None:
                outcome.stale = False
                outcome.reason = outcome.reason or (
                    "not known to be stale: the database has no record of when it fell behind "
                    "(`tagwatch check` records it): left alone"
                )
                continue
            behind = max(0.0, (now - since).total_seconds())
            outcome.stale = behind >= limit
            if not outcome.stale:
                outcome.reason = outcome.reason or (
                    f"behind for {format_duration(behind)}, stale after "
                    f"{format_duration(limit)}: left alone"
                )


# --- 4. planning and writing ------------------------------------------------------------


def prepare(plans: Sequence[FilePlan], *, only_stale: bool = False) -> None:
    """Each file's new bytes: every behind pin with a proposal (and, with `only_stale`,
    stale) gets its new digest."""
    for plan in plans:
        chosen = [
            o
            for o in plan.outcomes
            if o.state == "behind"
            and o.new is not None
            and o.pin.at is not None
            and (o.stale or not only_stale)
        ]
        if not chosen:
            continue
        edits = []
        for o in chosen:
            assert o.pin.ref is not None and o.pin.ref.digest is not None and o.pin.at is not None
            edits.append(Edit(o.pin.at, o.pin.ref.digest, o.new or ""))
        plan.new_data = rewrite(plan.data, edits)
        for o in chosen:
            o.planned = True


class WriteError(Exception):
    """A file could not be replaced; the message is one line."""


def write_atomic(path: Path, old: bytes, new: bytes) -> None:
    """Replace the file's content, `old`, by `new`, atomically (see the module docstring).
    Refuses a file whose permissions say read-only (a rename would otherwise replace it
    regardless), one with other hard links (they would keep the old text), and one that
    changed since it was read. WriteError with a one-line reason."""
    real = Path(os.path.realpath(path))
    try:
        info = real.stat()
        if not info.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(
            real, os.W_OK
        ):
            raise WriteError(f"read-only (mode {stat.S_IMODE(info.st_mode):04o}): left alone")
        if info.st_nlink > 1:
            raise WriteError(
                f"has {info.st_nlink} hard links, which would keep the old text: left alone"
            )
        if real.read_bytes() != old:
            raise WriteError("changed since it was read: left alone (run bump again)")
        fd, temp = tempfile.mkstemp(prefix=f".{real.name}{TEMP_MARK}", dir=real.parent)
    except OSError as exc:
        raise WriteError(f"cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(new)
            handle.flush()
            os.fchmod(handle.fileno(), stat.S_IMODE(info.st_mode))
            with contextlib.suppress(PermissionError):
                os.fchown(handle.fileno(), info.st_uid, info.st_gid)
            os.fsync(handle.fileno())
        os.replace(temp, real)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        if isinstance(exc, OSError):
            raise WriteError(f"cannot write: {exc.strerror or exc}") from None
        raise
    with contextlib.suppress(OSError):
        directory = os.open(real.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def write(plans: Sequence[FilePlan]) -> None:
    """Replace every file that has new bytes, one after another; a file that cannot be
    written is reported on its plan and the others are still written."""
    for plan in plans:
        if plan.new_data is None:
            continue
        try:
            write_atomic(plan.path, plan.data, plan.new_data)
        except WriteError as exc:
            plan.error = str(exc)
            for o in plan.outcomes:
                if o.planned:
                    o.failed = True
                    o.reason = f"not written: {exc}"
            continue
        plan.written = True
        for o in plan.outcomes:
            if o.planned:
                o.written = True


# --- what to print ----------------------------------------------------------------------


def _clean(text: str) -> str:
    """Text from files and registries, safe on one terminal line."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _short(digest: str | None) -> str:
    if not digest:
        return "?"
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}:{hexpart[:12]}"


def _what(outcome: Outcome) -> str:
    ref = outcome.pin.ref
    return f"{ref.name}:{ref.tag}" if ref is not None and ref.tag else outcome.pin.text


def notes(plans: Sequence[FilePlan]) -> list[str]:
    """One line per file that could not be read or written, and per pin left alone or not
    checked, with the reason."""
    lines: list[str] = []
    for plan in plans:
        if plan.error:
            lines.append(_clean(f"{plan.name}: {plan.error}"))
        for o in plan.outcomes:
            if o.state == "current" or o.reason is None or (plan.error and o.planned):
                continue
            lines.append(_clean(f"{o.pin.file}:{o.pin.line}: {_what(o)}: {o.reason}"))
    return lines


def pin_lines(plans: Sequence[FilePlan], *, wrote: bool) -> list[str]:
    """`--write`: a line per pin bumped; `--check`: a line per pin behind."""
    lines: list[str] = []
    for plan in plans:
        for o in plan.outcomes:
            if wrote and not o.written or not wrote and o.state != "behind":
                continue
            old = o.pin.ref.digest if o.pin.ref is not None else None
            line = f"{'bumped' if wrote else 'behind'} {o.pin.file}:{o.pin.line} {_what(o)} "
            line += f"{_short(old)} -> {_short(o.new)}"
            if o.platform:
                line += f" ({o.platform})"
            lines.append(_clean(line))
    return lines


def tally(plans: Sequence[FilePlan], *, wrote: bool) -> tuple[dict[str, int], int]:
    """Counts by state (and `bumped`: written, or planned when not writing), and the number
    of files with a pin behind."""
    counts: dict[str, int] = {}
    files = 0
    for plan in plans:
        if any(o.state == "behind" for o in plan.outcomes):
            files += 1
        for o in plan.outcomes:
            counts[o.state] = counts.get(o.state, 0) + 1
            if o.written if wrote else o.planned:
                counts["bumped"] = counts.get("bumped", 0) + 1
            if o.stale:
                counts["stale"] = counts.get("stale", 0) + 1
    return counts, files
