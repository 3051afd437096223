"""Alert rendering, routing and secret masking (no network: unreachable targets only)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tagwatch.config import NotifyConfig, Secret
from tagwatch.core.model import Event, EventKind, Kind, Target
from tagwatch.core.refs import parse_ref
from tagwatch.errors import ConfigError
from tagwatch.notify import Notifier, render
from tagwatch.store import Store

T = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def target(ref: str, kind: Kind = Kind.WATCH, notify: tuple[str, ...] = ()) -> Target:
    return Target(kind, parse_ref(ref), notify=notify)


def test_moved_title_and_full_digests() -> None:
    event = Event(EventKind.MOVED, "watch:x", "docker.io/library/python", "3.12", T,
                  old_digest=A, new_digest=B, platforms_changed=("linux/amd64",))
    title, body = render(event)
    assert title == "[tagwatch] moved: docker.io/library/python:3.12"
    assert f"old: {A}" in body and f"new: {B}" in body
    assert "platforms changed: linux/amd64" in body
    assert "seen: 2026-11-24T12:00:00Z" in body


def test_stale_pin_body_names_source_evidence_and_age() -> None:
    event = Event(EventKind.STALE, "pin:x", "docker.io/library/alpine", "3.20", T, pinned=A,
                  new_digest=B, details={"behind_since": "2026-11-14T12:00:00Z",
                                         "behind_seconds": 10 * 86400, "evidence": "history",
                                         "max_age_seconds": 7 * 86400,
                                         "source": "services/api/Dockerfile"})
    title, body = render(event)
    assert title == "[tagwatch] stale: docker.io/library/alpine:3.20 (services/api/Dockerfile)"
    assert f"pinned:  {A}" in body and f"tag now: {B}" in body
    assert "behind since: 2026-11-14T12:00:00Z (10d;" in body
    assert "max_age: 7d" in body
    assert "source: services/api/Dockerfile" in body


def notifier(tmp_path: Path, *configs: NotifyConfig) -> Notifier:
    return Notifier(list(configs), Store(str(tmp_path / "n.db")))


def url(text: str, **kw: object) -> NotifyConfig:
    return NotifyConfig(where=str(kw.pop("where", "notify[0]")), url=Secret("notify[0].url",
                        value=text), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "secrets"),
    [
        ("json://user:hunter2secret@127.0.0.1:9/hook?token=abcdefsecret",
         ["hunter2secret", "abcdefsecret"]),
        ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general",
         ["TIiajkdnlazkcOXrIdevi7FQ", "A1BRTD4JD"]),
        ("mailto://bob:pa55word99@example.test?smtp=127.0.0.1&port=9&from=bob@example.test"
         "&to=ops@example.test", ["pa55word99"]),
        ("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js", ["JHMHI8qBe7bk2ZwO5U711o3dV_js"]),
    ],
)
def test_urls_are_masked_in_names_and_failures(tmp_path: Path, text: str,
                                               secrets: list[str]) -> None:
    n = notifier(tmp_path, url(text))
    [channel] = n.channels
    error = channel.send("t", "b", EventKind.TEST)
    for secret in secrets:
        assert secret not in channel.masked
        assert error is None or secret not in error


def test_failed_send_reason_is_scrubbed(tmp_path: Path) -> None:
    n = notifier(tmp_path, url("json://user:hunter2secret@127.0.0.1:9/hook"))
    error = n.channels[0].send("t", "b", EventKind.TEST)
    assert error is not None and "hunter2secret" not in error


def test_bad_url_is_a_config_error_without_the_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        notifier(tmp_path, url("nosuchscheme://secret-token-123"))
    assert "secret-token-123" not in str(info.value) and "notify[0]" in str(info.value)


def test_routing_by_tags_and_events(tmp_path: Path) -> None:
    n = notifier(
        tmp_path,
        url("json://127.0.0.1:9/a", where="all"),
        url("json://127.0.0.1:9/b", where="ops-moves", tags=("ops",),
            events=frozenset({"moved"})),
    )
    moved = Event(EventKind.MOVED, "k", "i", "t", T)
    stale = Event(EventKind.STALE, "k", "i", "t", T)
    untagged, ops, dev = target("a"), target("a", notify=("ops",)), target("a", notify=("dev",))
    assert [r.notify_name for r in n.routes(moved, untagged)] == ["all", "ops-moves"]
    assert [r.notify_name for r in n.routes(moved, ops)] == ["ops-moves"]
    assert [r.notify_name for r in n.routes(stale, ops)] == []
    assert [r.notify_name for r in n.routes(moved, dev)] == []


def test_markdown_and_html_bodies_link_the_registry_page() -> None:
    from tagwatch.notify import body_format, format_body, registry_page

    event = Event(EventKind.MOVED, "watch:x", "docker.io/library/python", "3.12", T,
                  old_digest=A, new_digest=B)
    _, text = render(event)
    markdown = format_body(event, text, "markdown")
    assert markdown.startswith("**docker.io/library/python:3.12 moved to a new digest.**")
    assert f"**old:** `{A}`" in markdown
    assert "[docker.io/library/python](https://hub.docker.com/_/python)" in markdown
    page = format_body(event, text, "html")
    assert f"<b>new:</b> <code>{B}</code>" in page
    assert '<a href="https://hub.docker.com/_/python">' in page
    assert format_body(event, text, "text") == text
    assert registry_page("ghcr.io/acme/app") == "https://ghcr.io/acme/app"
    assert registry_page("quay.io/org/tool") == "https://quay.io/repository/org/tool"
    assert registry_page("docker.io/grafana/grafana") == "https://hub.docker.com/r/grafana/grafana"
    assert registry_page("127.0.0.1:5000/app") is None
    assert [body_format(u) for u in ("slack://a/b/c", "mailtos://x@y", "json://h/p")] == [
        "markdown", "html", "text"]
