"""Alerts through apprise: routing events to notification targets, rendering them, and
delivering the outbox.

Apprise URLs are secrets. They are read only here, identified in the database by a keyed
hash, printed only as `NotifyConfig.where` (the target's name or `notify[N]`) plus apprise's
own masked form, and anything apprise says about a failure is scrubbed of the URL's parts
before it reaches a log line or the database.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import string
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tagwatch.config import NotifyConfig
from tagwatch.core import markup
from tagwatch.core.drift import watched_platform_digests
from tagwatch.core.durations import format_duration
from tagwatch.core.markup import shown
from tagwatch.core.model import DeliveryState, Event, EventKind, Route, Target
from tagwatch.core.payload import batch_object, event_object, severity
from tagwatch.core.schedule import in_windows
from tagwatch.core.text import clean
from tagwatch.core.times import format_time
from tagwatch.errors import ConfigError
from tagwatch.store import Delivery, Store
from tagwatch.timing import next_fire, zone

__all__ = ["Channel", "Notifier", "render"]

log = logging.getLogger("tagwatch.notify")

_SUMMARY = {
    EventKind.FIRST_SEEN: "is watched (first check)",
    EventKind.MOVED: "moved to a new digest",
    EventKind.REWRITTEN: "moved, although it looks like a fixed version",
    EventKind.VANISHED: "no longer exists in the registry",
    EventKind.RETURNED: "exists again",
    EventKind.STALE: "pin is stale",
    EventKind.CURRENT: "pin is current again",
    EventKind.PIN_MISSING: "pinned digest no longer exists upstream",
    EventKind.NEWER: "has a newer version",
    EventKind.ERROR: "checks are failing",
    EventKind.RECOVERED: "checks work again",
    EventKind.TEST: "test alert",
}

_EVIDENCE = {
    "history": "recorded move",
    "image created": "the current image's created time; the move itself was not seen",
    "first check": "first check; the move itself was not seen",
    "observed": "recorded move",
}


_PIN_KINDS = (EventKind.STALE, EventKind.CURRENT, EventKind.PIN_MISSING)


def _s(value: object, limit: int = 200) -> str:
    """A value in an alert: one clean line with every URL broken (`core.markup.shown`, text
    format). Every value the lines below interpolate goes through it: labels, annotations,
    error messages, tag names and platforms come from registries and image publishers."""
    return shown(value, "text", limit)


def _source(value: object) -> str:
    """Where a pin is written: the configuration's `source` (a path, perhaps a URL the
    operator chose to link), or what tagwatch wrote of a file, a container and its engine
    (`container web-1 on unix:///run/docker.sock`). One clean line; its URLs are the
    operator's own, so they are kept as they are."""
    return clean(value)


def render(event: Event) -> tuple[str, str]:
    """Title and body of an alert: plain text, one `label: value` per line, each value one
    inert line (`_s`); `format_body` makes Markdown or HTML of it."""
    if event.registry_wide:
        return _render_registry(event)
    where = f"{_s(event.image)}:{_s(event.tag)}"
    title = f"[tagwatch] {event.kind.value}: {where}{_whose(event)}"
    d: Mapping[str, Any] = event.details
    lines = [f"{where} {_SUMMARY[event.kind]}."]
    if event.kind in _PIN_KINDS:
        lines += _pin_lines(event, d)
    else:
        lines += _change_lines(d)
        lines += _digest_lines(event)
    lines += _detail_lines(event, d)
    lines.append(f"seen: {format_time(event.at)}")
    if d.get("source"):
        lines.append(f"source: {_source(d['source'])}")
    return title, "\n".join(lines)


#: How many held-up watches and pins a registry's `error` alert names before "and N more".
HELD_UP_SHOWN = 10


def _render_registry(event: Event) -> tuple[str, str]:
    """A registry's own alert (core.outage): `error` when it is down, `recovered` when it
    answers again. The title names the registry and how many watches and pins it holds up."""
    d: Mapping[str, Any] = event.details
    host, count = _s(event.image), int(d.get("targets") or 0)
    things = "1 watch or pin" if count == 1 else f"{count} watches and pins"
    if event.kind is EventKind.ERROR:
        title = f"[tagwatch] error: registry {host} is down ({things} held up)"
        held = [_s(h) for h in d.get("held_up") or []]
        names = ", ".join(held[:HELD_UP_SHOWN])
        if len(held) > HELD_UP_SHOWN:
            names += f" and {len(held) - HELD_UP_SHOWN} more"
        lines = [
            f"registry {host} is down: every check of its watches and pins failed.",
            f"error: {_s(d.get('error'))}",
            f"down since: {_s(d.get('down_since'))}",
            f"failed checks in a row: {_s(d.get('failures'))}",
            f"held up: {things}" + (f" ({names})" if names else ""),
            "each watch's and pin's error: tagwatch status",
        ]
    else:
        title = f"[tagwatch] {event.kind.value}: registry {host} answers again ({things})"
        down = format_duration(float(d.get("down_seconds") or 0))
        lines = [
            f"registry {host} answers again.",
            f"down since: {_s(d.get('down_since'))} ({down})",
        ]
    lines.append(f"seen: {format_time(event.at)}")
    return title, "\n".join(lines)


def _whose(event: Event) -> str:
    """Which of several pins on one tag an alert is about: its `source` (two Dockerfiles
    pinning python:3.12-slim get two titles, not one twice)."""
    source = event.details.get("source")
    return f" ({_source(source)})" if source and event.pinned else ""


def _pin_lines(event: Event, d: Mapping[str, Any]) -> list[str]:
    """A pin's digest against the tag's, and how long it has been behind."""
    lines = [f"pinned:  {_s(event.pinned)}", f"tag now: {_s(event.new_digest)}"]
    if "behind_since" in d:
        evidence = _EVIDENCE.get(str(d.get("evidence")), _s(d.get("evidence")))
        behind = format_duration(float(d.get("behind_seconds", 0)))
        lines.append(f"behind since: {_s(d['behind_since'])} ({behind}; from {evidence})")
    if "max_age_seconds" in d and event.kind is EventKind.STALE:
        lines.append(f"max_age: {format_duration(float(d['max_age_seconds']))}")
    if d.get("repeat"):
        lines.append("reminder: the pin is still stale")
    return lines


def _change_lines(d: Mapping[str, Any]) -> list[str]:
    """What changed on a move: the summary, the version and the build date."""
    lines = []
    if d.get("summary"):
        lines.append(f"what changed: {_s(d['summary'], 500)}")
    what = d.get("what_changed") or {}
    version = what.get("version") or {}
    if version.get("old") or version.get("new"):
        old, new = _s(version.get("old") or "?"), _s(version.get("new") or "?")
        lines.append(f"version: {old} → {new}")
    created = what.get("created") or {}
    if created.get("new") and created.get("new") != created.get("old"):
        lines.append(f"created: {_s(created.get('old') or '?')} → {_s(created['new'])}")
    return lines


def _digest_lines(event: Event) -> list[str]:
    """The digests that matter for this kind of event."""
    lines = []
    if event.kind in (EventKind.ERROR, EventKind.VANISHED):
        if event.old_digest:
            lines.append(f"last digest: {_s(event.old_digest)}")
    elif event.kind is EventKind.RECOVERED:
        if event.new_digest:
            lines.append(f"digest: {_s(event.new_digest)}")
    else:
        if event.old_digest:
            lines.append(f"old: {_s(event.old_digest)}")
        if event.new_digest:
            lines.append(f"new: {_s(event.new_digest)}")
    if event.pinned:
        lines.append(f"pinned: {_s(event.pinned)}")
    return lines


def _detail_lines(event: Event, d: Mapping[str, Any]) -> list[str]:
    """Platforms, newer versions, merged moves, a move back, errors, the registry's word."""
    lines = []
    if event.platforms_changed:
        lines.append(f"platforms changed: {', '.join(map(_s, event.platforms_changed))}")
    for platform, change in watched_platform_digests(d).items():
        # the watched platforms' own image digests, in full: what is compared with what runs
        old = _s(change.get("previous") or "(not in the old index)")
        new = _s(change.get("digest") or "(not in the new index)")
        lines.append(f"{_s(platform)} old: {old}")
        lines.append(f"{_s(platform)} new: {new}")
    if event.kind is EventKind.NEWER:
        lines.append(f"newer: {', '.join(map(_s, d.get('newer') or []))}")
        newest, policy = _s(d.get("newest")), _s(d.get("policy"))
        lines.append(f"newest in the track: {newest} (policy: {policy})")
    if d.get("moves"):
        moves, first = _s(d["moves"]), _s(d.get("first_moved"))
        lines.append(f"moves: {moves} within the grace period, the first at {first}")
    if d.get("back_to"):
        lines.append(f"back to a digest first seen {_s(d['back_to'])}")
    if event.kind is EventKind.ERROR:
        lines.append(f"error: {_s(d.get('error'))}")
        lines.append(f"failed checks in a row: {_s(d.get('failures'))}")
    if event.kind is EventKind.VANISHED and d.get("message"):
        lines.append(f"registry: {_s(d['message'])}")
    return lines


# A value that is exactly a digest (tagwatch's own fields) is shown as code; a digest inside
# outside text is not, so that a label cannot dress up as one.
_DIGEST = re.compile(r"sha(?:256|512):[0-9a-f]{16,128}")
# apprise schemes whose services render Markdown; e-mail gets HTML; everything else text.
MARKDOWN_SCHEMES = frozenset(
    {
        "slack",
        "discord",
        "msteams",
        "mmost",
        "mmosts",
        "mattermost",
        "matrix",
        "matrixs",
        "rocket",
        "rockets",
        "zulip",
        "tgram",
        "gchat",
        "ryver",
        "ntfy",
        "ntfys",
        "gotify",
        "gotifys",
    }
)
HTML_SCHEMES = frozenset(
    {
        "mailto",
        "mailtos",
        "email",
        "ses",
        "sendgrid",
        "mailgun",
        "sparkpost",
        "o365",
        "resend",
        "smtp2go",
    }
)


# apprise schemes that deliver the body as it is, with no envelope of their own: a JSON alert
# is the whole payload there (MQTT publishes the body as the message). Everywhere else (json://,
# form://, xml://, ntfy, chat services) the JSON object is the message text of apprise's own
# payload.
RAW_BODY_SCHEMES = frozenset({"mqtt", "mqtts"})


def registry_page(image: str) -> str | None:
    """The web page of a repository on registries that have one."""
    host, _, repository = image.partition("/")
    if host == "docker.io":
        if repository.startswith("library/"):
            return f"https://hub.docker.com/_/{repository.removeprefix('library/')}"
        return f"https://hub.docker.com/r/{repository}"
    if host == "ghcr.io":
        return f"https://ghcr.io/{repository}"  # redirects to the GitHub package page
    if host == "quay.io":
        return f"https://quay.io/repository/{repository}"
    return None


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].strip().lower()


def body_format(url: str) -> str:
    """`markdown`, `html` or `text` for an apprise URL, by its scheme."""
    scheme = _scheme(url)
    if scheme in MARKDOWN_SCHEMES:
        return "markdown"
    if scheme in HTML_SCHEMES:
        return "html"
    return "text"


def format_body(event: Event, text: str, fmt: str) -> str:
    """The plain-text body of `render` as Markdown or HTML, with the registry page linked.

    All of the text is escaped for the format: its values are data (`render` made each one
    inert line), so the only markup is this function's own (a bold label, a digest field as
    code) and the only link the registry page tagwatch builds."""
    if fmt not in ("markdown", "html"):
        return text
    headline, *lines = text.split("\n")
    page = None if event.registry_wide else registry_page(event.image)
    if fmt == "markdown":
        md = markup.markdown
        out = [f"**{md(headline)}**", ""]
        for line in lines:
            label, sep, value = line.partition(": ")
            value = value.strip()
            value = f"`{value}`" if _DIGEST.fullmatch(value) else md(value)
            out.append(f"**{md(label)}:** {value}" if sep else md(line))
        if page:
            out += ["", f"[{md(event.image)}]({page})"]
        return "  \n".join(out)
    esc = markup.html
    parts = [f"<p><b>{esc(headline)}</b></p>", "<p>"]
    rows = []
    for line in lines:
        label, sep, value = line.partition(": ")
        value = value.strip()
        value = f"<code>{esc(value)}</code>" if _DIGEST.fullmatch(value) else esc(value)
        rows.append(f"<b>{esc(label)}:</b> {value}" if sep else esc(line))
    parts.append("<br>\n".join(rows) + "</p>")
    if page:
        parts.append(f'<p><a href="{esc(page)}">{esc(event.image)}</a></p>')
    return "\n".join(parts)


def render_batch(events: Sequence[Event], mode: str) -> tuple[str, str]:
    """One message for several events (`summary`: one cycle; `digest`: since the last)."""
    counts: dict[str, int] = {}
    for event in events:
        counts[event.kind.value] = counts.get(event.kind.value, 0) + 1
    what = ", ".join(f"{kind} ×{n}" if n > 1 else kind for kind, n in counts.items())
    noun = "digest" if mode == "digest" else "summary"
    title = f"[tagwatch] {noun}: {len(events)} event{'s' if len(events) != 1 else ''} ({what})"
    parts = []
    for event in events:
        event_title, body = render(event)
        parts.append(event_title.removeprefix("[tagwatch] ") + "\n" + body)
    return title, "\n\n".join(parts)


def template_fields(event: Event) -> dict[str, str]:
    """Every field a [[notify]] title/body template can use, as text ('' when absent); each
    field from outside one inert line, as in `render`."""
    title, body = render(event)
    d = event.details
    return {
        "kind": event.kind.value,
        "image": _s(event.image),
        "tag": _s(event.tag),
        "ref": _s(event.subject),
        "old_digest": _s(event.old_digest or ""),
        "new_digest": _s(event.new_digest or ""),
        "pinned": _s(event.pinned or ""),
        "at": format_time(event.at) or "",
        "source": _source(d.get("source") or ""),
        "summary": _s(d.get("summary") or ""),
        "change": _s(d.get("change") or ""),
        "platforms_changed": ", ".join(map(_s, event.platforms_changed)),
        "title": title,
        "body": body,
    }


def _secret_parts(url: str) -> list[str]:
    """Pieces of an apprise URL that could be secret, longest first, for scrubbing."""
    parts = {url}
    try:
        parsed = urllib.parse.urlsplit(url)
        if parsed.password:
            parts.add(parsed.password)
            parts.add(urllib.parse.unquote(parsed.password))
        if parsed.username:
            parts.add(parsed.username)
        parts.update(p for p in parsed.path.split("/") if len(p) >= 6)
        for _, value in urllib.parse.parse_qsl(parsed.query):
            if len(value) >= 4:
                parts.add(value)
    except ValueError:
        pass
    return sorted((p for p in parts if p), key=len, reverse=True)


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]{0,31})://")


def unusable_url(url: str) -> str:
    """Why apprise refuses a URL, naming its scheme (never secret) and nothing else of it:
    an unknown scheme (with the nearest known one), a plugin that lacks a package, or a
    known scheme whose URL apprise cannot use."""
    hidden = "the rest of the URL is not shown: it may hold secrets"
    match = _SCHEME.match(url.strip())
    if match is None:
        return (
            "not an apprise URL: it has no scheme (e.g. slack://…, json://…); the URL is not "
            "shown: it may hold secrets"
        )
    scheme = match.group(1).lower()
    plugins = _apprise_plugins()
    plugin = plugins.get(scheme)
    if plugin is None:
        import difflib

        near = difflib.get_close_matches(scheme, plugins, n=1, cutoff=0.6)
        hint = f" (did you mean {near[0]}://?)" if near else ""
        return f"apprise knows no {scheme}:// service{hint}; {hidden}"
    name = getattr(plugin, "service_name", None) or scheme
    if getattr(plugin, "enabled", True) is False:
        needs = (getattr(plugin, "requirements", None) or {}).get("packages_required")
        needs = ", ".join(needs) if isinstance(needs, list | tuple) else needs
        what = f"it needs {needs}, which is not installed" if needs else "it is disabled here"
        return f"apprise's {scheme}:// ({name}) cannot be used: {what}"
    page = getattr(plugin, "setup_url", None)
    where = f"; see {page}" if isinstance(page, str) and page.startswith("https://") else ""
    return (
        f"apprise knows {scheme}:// ({name}) but cannot use this URL: a part is missing or "
        f"malformed{where}; {hidden}"
    )


def _apprise_plugins() -> dict[str, Any]:
    """apprise's scheme -> plugin class (its registry of services); {} if it moved."""
    try:
        from apprise.manager_plugins import NotificationManager

        manager: Any = NotificationManager()  # type: ignore[no-untyped-call]
        return {str(s).lower(): manager[s] for s in manager.schemas()}
    except Exception:  # noqa: BLE001 - an apprise internals change costs only the hint
        return {}


def check_url(config: NotifyConfig) -> None:
    """ConfigError (naming the key and the scheme) unless apprise accepts the target's URL."""
    import apprise

    url = config.url.read()
    if not apprise.Apprise().add(url):
        raise ConfigError(f"{config.url.where}: {unusable_url(url)}")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # A broken log record must never break delivery.
        with contextlib.suppress(Exception):
            self.messages.append(record.getMessage())


@dataclass
class Channel:
    """One notification target, ready to send. `where` and `masked` are safe to print."""

    config: NotifyConfig
    id: str
    masked: str
    _apprise: Any
    _secrets: list[str]
    format: str = "text"
    raw_body: bool = False  # the target sends the body as it is (RAW_BODY_SCHEMES)

    @property
    def where(self) -> str:
        return self.config.where

    def reason(self, text: str) -> str:
        """Why a delivery failed, fit for a log line and the database: without the URL's
        secrets, and one clean line (the words may be the alert service's own)."""
        return self.scrub(clean(self.scrub(text), 300))

    def scrub(self, text: str) -> str:
        for part in self._secrets:
            text = text.replace(part, "****")
        return text

    def template(self, event: Event) -> tuple[str, str]:
        """Title and body: the target's templates (string.Template, `$field`), else the
        standard rendering; with `format = "json"` the body is the event's JSON object."""
        title, body = render(event)
        if self.format == "json":
            if self.config.title is not None:
                title = string.Template(self.config.title).safe_substitute(template_fields(event))
            return title, json.dumps(event_object(event, title))
        if self.config.title is None and self.config.body is None:
            return title, body
        fields = template_fields(event)
        if self.config.title is not None:
            title = string.Template(self.config.title).safe_substitute(fields)
        if self.config.body is not None:
            body = string.Template(self.config.body).safe_substitute(fields)
        return title, body

    def accepts(self, kind: EventKind, target: Target | None) -> bool:
        if (
            kind is not EventKind.TEST
            and self.config.events is not None
            and kind.value not in self.config.events
        ):
            return False
        if target is not None and target.notify:
            return bool(set(target.notify) & set(self.config.tags))
        return True

    def send(
        self, title: str, body: str, kind: EventKind, event: Event | None = None
    ) -> str | None:
        """Send one message (`body` is plain text, turned into this target's format);
        None on success, else a scrubbed one-line reason."""
        import apprise

        fmt = self.format
        if event is not None and fmt != "json":
            body = format_body(event, body, fmt)
        if fmt == "json" and self.raw_body:
            title = ""  # the body is the whole payload: no title line in front of it
        formats = {"markdown": apprise.NotifyFormat.MARKDOWN, "html": apprise.NotifyFormat.HTML}

        capture = _Capture()
        apprise_log = logging.getLogger("apprise")
        apprise_log.addHandler(capture)
        try:
            result = self._apprise.notify(
                title=title,
                body=body,
                notify_type=severity(kind),
                body_format=formats.get(fmt, apprise.NotifyFormat.TEXT)
                if event is not None
                else apprise.NotifyFormat.TEXT,
            )
        except Exception as exc:  # noqa: BLE001 - a plugin failure is a failed delivery
            return self.reason(f"{type(exc).__name__}: {exc}")
        finally:
            apprise_log.removeHandler(capture)
        if result:
            return None
        reason = capture.messages[-1] if capture.messages else "apprise reported a failure"
        return self.reason(reason)


class Notifier:
    """Every configured notification target, with routing and the outbox."""

    def __init__(
        self,
        targets: Sequence[NotifyConfig],
        store: Store,
        env: Mapping[str, str] | None = None,
        timezone: str = "UTC",
    ) -> None:
        """`timezone` ([tagwatch] timezone) is the one watches' and pins' `quiet` windows are
        read in; each target's own `quiet` and `schedule` are read in its `timezone`."""
        import apprise

        # Apprise logs URLs in some DEBUG and INFO lines; keep it to warnings, which we
        # capture and scrub per delivery.
        logging.getLogger("apprise").setLevel(logging.WARNING)
        logging.getLogger("apprise").propagate = False
        self.store = store
        self.timezone = timezone
        self.channels: list[Channel] = []
        for config in targets:
            url = config.url.read(env)
            obj = apprise.Apprise()
            if not obj.add(url):
                raise ConfigError(f"{config.url.where}: {unusable_url(url)}")
            masked = str(obj[0].url(privacy=True))  # type: ignore[no-untyped-call]
            secrets = _secret_parts(url)
            channel = Channel(
                config,
                store.notify_id(url),
                "",
                obj,
                secrets,
                config.format or body_format(url),
                raw_body=_scheme(url) in RAW_BODY_SCHEMES,
            )
            channel.masked = channel.scrub(masked)
            self.channels.append(channel)

    def routes(
        self, event: Event, target: Target | None, now: datetime | None = None
    ) -> list[Route]:
        """Every channel the event goes to: held in the watch's or pin's quiet windows (read
        in [tagwatch] timezone) and in the channel's own (in its timezone), due after the
        target's grace for a move, and at the next scheduled time for a digest channel."""
        now = now or event.at
        quiet = target is not None and in_windows(now.astimezone(zone(self.timezone)), target.quiet)
        grace = (
            target.grace
            if target is not None and event.kind in (EventKind.MOVED, EventKind.REWRITTEN)
            else 0.0
        )
        out = []
        for channel in self.channels:
            if not channel.accepts(event.kind, target):
                continue
            due = now + timedelta(seconds=grace) if grace else None
            if channel.config.mode == "digest":
                due = next_fire(channel.config.schedule, due or now)
            local = now.astimezone(zone(channel.config.timezone))
            held = quiet or in_windows(local, channel.config.quiet)
            state = DeliveryState.HELD if held else DeliveryState.PENDING
            out.append(Route(channel.id, channel.where, state, due))
        return out

    def deliver(self, now: Callable[[], datetime]) -> tuple[int, int]:
        """Send every due delivery to its channel; returns (sent, failed). A failure stays
        pending and is retried on the next call. `summary` and `digest` channels get one
        message for everything due."""
        with self.store.outbox_lock:
            return self._deliver(now)

    def _deliver(self, now: Callable[[], datetime]) -> tuple[int, int]:
        by_id = {c.id: c for c in self.channels}
        sent = failed = 0
        batches: dict[str, list[Delivery]] = {}
        for delivery in self.store.pending(by_id, now()):
            channel = by_id[delivery.notify_id]
            if channel.config.mode != "each":
                batches.setdefault(channel.id, []).append(delivery)
                continue
            title, body = channel.template(delivery.event)
            error = channel.send(title, body, delivery.event.kind, delivery.event)
            ok = self._mark([delivery], channel, error, now())
            sent, failed = sent + ok, failed + (1 - ok)
        for channel_id, deliveries in batches.items():
            channel = by_id[channel_id]
            title, body = render_batch([d.event for d in deliveries], channel.config.mode)
            if channel.format == "json":
                events = [d.event for d in deliveries]
                titles = [channel.template(e)[0] for e in events]
                body = json.dumps(batch_object(events, channel.config.mode, now(), titles))
            error = channel.send(title, body, EventKind.MOVED)
            ok = self._mark(deliveries, channel, error, now())
            sent, failed = sent + ok, failed + (1 - ok)
        return sent, failed

    def _mark(
        self, deliveries: Sequence[Delivery], channel: Channel, error: str | None, now: datetime
    ) -> int:
        what = ", ".join(f"{d.event.kind.value} {d.event.subject}" for d in deliveries[:5]) + (
            f" and {len(deliveries) - 5} more" if len(deliveries) > 5 else ""
        )
        for delivery in deliveries:
            if error is None:
                self.store.delivered(delivery, now)
            else:
                self.store.failed(delivery, now, error)
        if error is None:
            log.info("sent %s to %s", what, channel.where)
            return 1
        log.warning("could not send %s to %s (%s); will retry", what, channel.where, error)
        return 0

    def test(self, now: datetime) -> list[tuple[Channel, str | None]]:
        """Send a test alert to every channel; (channel, error or None) each."""
        event = Event(EventKind.TEST, target="test", image="tagwatch", tag="test", at=now)
        title, _ = render(event)
        body = (
            "This is a test alert from tagwatch notify-test.\n"
            f"sent: {format_time(now)}\n"
            "If you can read this, alerts reach this target."
        )
        results = []
        for channel in self.channels:
            text = json.dumps(event_object(event, title)) if channel.format == "json" else body
            results.append((channel, channel.send(title, text, EventKind.TEST)))
        return results
