"""tagwatch.web.page without a browser: the order of the rows and what each state shows
(the page in Chromium, over a real daemon, is tests/test_web_page.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tagwatch.web.page import order, render_status_page

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def target(name: str, kind: str = "watch", **fields: Any) -> dict[str, Any]:
    image, _, tag = name.rpartition(":")
    return {"image": f"docker.io/{image}", "tag": tag, "kind": kind, "digest": None,
            "state": None, "pinned": None, "platforms": {}, "changed_at": None,
            "checked_at": None, "error": None, "behind_since": None, "source": None,
            **fields}


OBJECTS = [
    target("library/ok-old:1", state="ok", digest="sha256:" + "a" * 64,
           changed_at="2026-11-01T00:00:00Z", checked_at="2026-11-29T11:59:00Z"),
    target("library/ok-new:1", state="ok", digest="sha256:" + "b" * 64,
           changed_at="2026-11-29T11:00:00Z", checked_at="2026-11-29T11:59:00Z"),
    target("library/unchecked:1"),
    target("library/failing-long:1", state="error", error="connection refused",
           checked_at="2026-11-20T00:00:00Z"),
    target("library/failing-new:1", state="error", error="HTTP 503",
           checked_at="2026-11-29T10:00:00Z"),
    target("library/gone:1", state="vanished", checked_at="2026-11-28T00:00:00Z"),
    target("library/base:3", kind="pin", state="stale", digest="sha256:" + "c" * 64,
           pinned="sha256:" + "d" * 64, behind_since="2026-11-22T12:00:00Z",
           source="svc/<b>api</b>/Dockerfile", pin_missing=True),
    target("library/base:4", kind="pin", state="ok", digest="sha256:" + "e" * 64,
           pinned="sha256:" + "f" * 64, behind_since="2026-11-29T09:00:00Z",
           newer=["4.1", "5.0"], undelivered=[{"event": "moved"}]),
]


def test_problems_first_newest_first_then_the_latest_moves() -> None:
    names = [o["image"].split("/")[-1] + ":" + o["tag"] for o in order(OBJECTS)]
    assert names == [
        "failing-new:1",  # an error since the check after 10:00 today: the newest problem
        "gone:1",  # vanished after yesterday's check
        "base:3",  # stale: behind since a week ago
        "failing-long:1",  # an error since the check after 9 days ago
        "ok-new:1",  # then the rest, the latest move first
        "ok-old:1",
        "base:4",  # never moved (no digest history here), then never checked
        "unchecked:1",
    ]


def test_each_state_says_what_it_is() -> None:
    html = render_status_page(OBJECTS, NOW, (False, "no completed cycle within twice the "
                                                     "interval: registry x (last cycle 3h ago)"))
    assert "<title>tagwatch: 4 problems</title>" in html
    assert '<p class="health bad">no completed cycle' in html
    assert "8 targets: 2 error, 3 ok, 1 stale, 1 unchecked, 1 vanished." in html
    assert "behind 7d (stale)" in html  # the pin's lag, from behind_since to now
    assert "behind 3h" in html and "(stale)" not in html.split("base:4")[1].split("</tr>")[0]
    assert "the pinned digest no longer exists upstream" in html
    assert "newer: 4.1, 5.0" in html and "1 alert(s) waiting for delivery" in html
    assert "svc/&lt;b&gt;api&lt;/b&gt;/Dockerfile" in html and "<b>" not in html
    assert '<time datetime="2026-11-29T11:00:00Z">1h ago' in html
    assert html.count("<tr") == 1 + len(OBJECTS)


def test_no_targets() -> None:
    html = render_status_page([], NOW, (True, "ok"))
    assert "No watches or pins are configured." in html and "0 targets: none." in html
