"""The status page (`GET /`): every watch and pin on one server-rendered HTML page.

For a host without a Grafana, and for a phone: no script, no external asset, one inline
style sheet (allowed by its hash in the Content-Security-Policy, so nothing injected could
style or script the page), a table that becomes one card per target on a narrow screen,
and a refresh every minute. Problems come first, the newest first; then the other targets,
the most recent move first.

Built from the same objects as `status --json` (tagwatch.views). Everything on it that came
from a registry or an image (error messages, digests) or from the configuration is escaped;
nothing secret is in those objects to begin with.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from tagwatch import __version__
from tagwatch.core.durations import format_duration
from tagwatch.core.times import format_time, parse_time

__all__ = ["CSP", "render_status_page"]

REFRESH_SECONDS = 60
PROBLEMS = ("error", "vanished", "stale")

STYLE = """
:root { color-scheme: light dark; --bad: #c62828; --warn: #b26a00; --ok: #2e7d32;
  --muted: #6b6b6b; --line: #d0d0d0; }
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; padding: 1em; max-width: 80em; }
h1 { font-size: 1.4em; margin: 0 0 .3em; }
p { margin: .2em 0; }
.muted { color: var(--muted); }
.health { font-weight: 600; }
.health.ok { color: var(--ok); } .health.bad { color: var(--bad); }
table { border-collapse: collapse; width: 100%; margin-top: 1em; }
th, td { text-align: left; vertical-align: top; padding: .45em .6em;
  border-bottom: 1px solid var(--line); }
th { font-size: .85em; color: var(--muted); font-weight: 600; }
code { font: .9em ui-monospace, monospace; white-space: nowrap; }
.ref { font-weight: 600; overflow-wrap: anywhere; }
td:first-child { min-width: 14em; }
.when { display: block; font-size: .8em; color: var(--muted); white-space: nowrap; }
.state { display: inline-block; padding: 0 .45em; border-radius: .3em; font-weight: 600;
  border: 1px solid currentColor; }
.s-ok { color: var(--ok); } .s-error, .s-vanished, .s-stale { color: var(--bad); }
.s-unchecked, .s-behind { color: var(--warn); }
.note { font-size: .9em; margin-top: .25em; overflow-wrap: anywhere; }
tr.problem td:first-child { border-left: 4px solid var(--bad); }
nav a { margin-right: 1em; }
@media (max-width: 48em) {
  thead { display: none; }
  table, tbody, tr, td { display: block; width: auto; }
  tr { border: 1px solid var(--line); border-radius: .4em; margin: .8em 0; padding: .3em 0; }
  td, td:first-child { border: 0; padding: .2em .7em; min-width: 0; }
  td.empty { display: none; }
  td::before { content: attr(data-label); display: block; font-size: .75em;
    color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
  tr.problem { border-left: 4px solid var(--bad); }
  tr.problem td:first-child { border-left: 0; }
}
"""

_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CSP = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; img-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _e(value: object) -> str:
    """Text for the page: escaped, so that it is shown, never interpreted."""
    return html.escape(str(value), quote=True)


def _short(digest: str | None) -> str:
    if not digest:
        return "—"
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:12]}"


def _digest(digest: str | None) -> str:
    if not digest:
        return ""
    return f'<code title="{_e(digest)}">{_e(_short(digest))}</code>'


def _when(text: str | None, now: datetime) -> str:
    when = parse_time(text)
    if when is None:
        return ""
    ago = (now - when).total_seconds()
    relative = "just now" if ago < 60 else f"{format_duration(ago)} ago"
    stamp = format_time(when)
    shown = when.strftime("%Y-%m-%d %H:%M UTC")
    return (
        f'<time datetime="{_e(stamp)}">{_e(relative)}<span class="when">{_e(shown)}</span></time>'
    )


def _lag(obj: Mapping[str, Any], now: datetime) -> str:
    if obj["kind"] != "pin":
        return ""
    since = parse_time(obj.get("behind_since"))
    if since is None:
        return "current" if obj.get("digest") else ""
    behind = format_duration(max(0.0, (now - since).total_seconds()))
    stale = " (stale)" if obj.get("state") == "stale" else ""
    return f'<span class="s-behind">behind {_e(behind)}{stale}</span>'


def _problem(obj: Mapping[str, Any]) -> bool:
    return obj.get("state") in PROBLEMS or bool(obj.get("pin_missing"))


def _problem_since(obj: Mapping[str, Any]) -> float:
    """When the problem began, as far as the status row tells: a pin's lag since it fell
    behind; an error or a vanish after the last check that worked (never: the newest)."""
    if obj.get("state") == "stale" or obj.get("pin_missing"):
        since = parse_time(obj.get("behind_since"))
    else:
        since = parse_time(obj.get("checked_at"))
    return since.timestamp() if since else float("inf")


def order(objects: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Problems first, the newest first; then the rest, the most recent move first."""

    def key(obj: Mapping[str, Any]) -> tuple[int, float, str]:
        name = f"{obj['image']}:{obj['tag']}"
        if _problem(obj):
            return 0, -_problem_since(obj), name
        moved = parse_time(obj.get("changed_at"))
        return 1, -(moved.timestamp() if moved else float("-inf")), name

    return sorted(objects, key=key)


def _notes(obj: Mapping[str, Any]) -> list[str]:
    notes = []
    if obj.get("error"):
        notes.append(_e(obj["error"]))
    if obj.get("pin_missing"):
        notes.append("the pinned digest no longer exists upstream")
    if obj.get("newer"):
        notes.append("newer: " + ", ".join(_e(v) for v in obj["newer"][:5]))
    waiting = obj.get("undelivered") or []
    if waiting:
        notes.append(f"{len(waiting)} alert(s) waiting for delivery")
    return notes


def _cell(label: str, content: str) -> str:
    """A cell; an empty one shows a dash in the table and is left out of a phone's card."""
    if not content:
        return f'<td data-label="{_e(label)}" class="empty"><span class="muted">—</span></td>'
    return f'<td data-label="{_e(label)}">{content}</td>'


def _row(obj: Mapping[str, Any], now: datetime) -> str:
    state = obj.get("state") or "unchecked"
    history = f"/api/v1/targets/{quote(obj['image'], safe='/')}:{quote(obj['tag'])}/history"
    kind = obj["kind"]
    digest = _digest(obj.get("digest"))
    if kind == "pin":
        digest += f'<div class="note muted">pinned {_digest(obj.get("pinned"))}</div>'
    notes = "".join(f'<div class="note">{n}</div>' for n in _notes(obj))
    # Line breaks are allowed after each "/" of a long repository name, not inside words.
    name = "/<wbr>".join(_e(part) for part in f"{obj['image']}:{obj['tag']}".split("/"))
    css = ' class="problem"' if _problem(obj) else ""
    return (
        f"<tr{css}>"
        + _cell(kind, f'<a class="ref" href="{_e(history)}">{name}</a>')
        + _cell("state", f'<span class="state s-{_e(state)}">{_e(state)}</span>{notes}')
        + _cell("digest", digest)
        + _cell("last move", _when(obj.get("changed_at"), now))
        + _cell("pin lag", _lag(obj, now))
        + _cell("source", _e(obj["source"]) if obj.get("source") else "")
        + "</tr>"
    )


def render_status_page(
    objects: Sequence[Mapping[str, Any]], now: datetime, health: tuple[bool, str]
) -> str:
    rows = order(objects)
    problems = sum(1 for obj in rows if _problem(obj))
    counts: dict[str, int] = {}
    for obj in rows:
        state = obj.get("state") or "unchecked"
        counts[state] = counts.get(state, 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    ok, why = health
    title = "tagwatch"
    if problems:
        title += f": {problems} problem{'s' if problems != 1 else ''}"
    body = "".join(_row(obj, now) for obj in rows) or (
        '<tr><td colspan="6" class="muted">No watches or pins are configured.</td></tr>'
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<title>{_e(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>tagwatch</h1>
<p class="health {"ok" if ok else "bad"}">{_e(why)}</p>
<p>{len(rows)} targets: {_e(summary) if rows else "none"}.</p>
<p class="muted">As of {_e(format_time(now))}, tagwatch {_e(__version__)}.
Refreshes every minute.</p>
<nav><a href="/api/v1/targets">JSON</a><a href="/metrics">metrics</a>\
<a href="/healthz">healthz</a></nav>
</header>
<main>
<table>
<thead><tr><th>target</th><th>state</th><th>digest</th><th>last move</th><th>pin lag</th>\
<th>source</th></tr></thead>
<tbody>
{body}
</tbody>
</table>
</main>
</body>
</html>
"""
