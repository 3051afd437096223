"""Issue 14 item 4: the status page and the read-only API, on a real daemon over the real
registry (tests/support/statusworld.py: a moved tag, a stale pin, a target whose registry
answers with markup), the page loaded in Debian's headless Chromium."""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from chromium import Chromium
from regharness import Registry, require_binaries
from statusworld import SECRETS, StatusWorld

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(registry_anonymous: Registry,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[StatusWorld]:
    built = StatusWorld(tmp_path_factory.mktemp("web"), registry_anonymous).build()
    built.start()
    yield built
    built.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    require_binaries("chromium")  # fails, never skips, under ./dev test and CI
    with Chromium(tmp_path_factory.mktemp("chromium")) as chromium:
        yield chromium


def _get(world: StatusWorld, path: str) -> httpx.Response:
    assert world.daemon is not None
    return world.daemon.get(path)


def _rows(html: str) -> list[str]:
    """The text of each row of the page's table body, tags stripped, entities as written."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [re.sub(r"<[^>]+>", " ", row) for row in body.split("<tr")[1:]]


# --- the API: what the command line prints, byte for byte -------------------------------------


def test_targets_api_is_status_json(world: StatusWorld) -> None:
    answer = _get(world, "/api/v1/targets")
    cli = world.tagwatch("status", "--json")
    assert answer.status_code == 200 and cli.returncode == 0
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.text == cli.stdout
    states = {(o["image"].split("/", 1)[1], o["kind"]): o["state"] for o in answer.json()}
    assert states == {("web/app", "watch"): "ok", ("web/base", "pin"): "stale",
                      ("evil/app", "watch"): "error"}


def test_history_api_is_history_json(world: StatusWorld) -> None:
    answer = _get(world, f"/api/v1/targets/{world.app}/history")
    cli = world.tagwatch("history", world.app, "--json")
    assert answer.status_code == 200 and cli.returncode == 0
    assert answer.text == cli.stdout
    moves = answer.json()
    assert len(moves) == 2 and moves[0]["digest"] != moves[1]["digest"]  # it moved
    encoded = world.app.replace("/", "%2F").replace(":", "%3A")
    assert _get(world, f"/api/v1/targets/{encoded}/history").text == cli.stdout


def test_history_api_for_nothing_recorded_and_for_nonsense(world: StatusWorld) -> None:
    unknown = f"{world.registry.host}/web/nothing:here"
    answer = _get(world, f"/api/v1/targets/{unknown}/history")
    cli = world.tagwatch("history", unknown, "--json")
    assert (answer.status_code, answer.json()) == (404, [])
    assert (cli.returncode, cli.stdout) == (1, "[]\n")  # the command's exit 1: not found
    bad = _get(world, "/api/v1/targets/app:bad%20tag/history")
    assert bad.status_code == 400
    assert bad.json() == {"error": "bad image reference 'app:bad tag': bad tag 'bad tag': "
                          "letters, digits, '_', '.' and '-', at most 128, not starting with "
                          "'.' or '-'"}
    assert _get(world, "/api/v1/nothing").status_code == 404


def test_the_listener_is_read_only(world: StatusWorld) -> None:
    assert world.daemon is not None
    for method in ("POST", "PUT", "DELETE"):
        answer = httpx.request(method, world.daemon.url + "/api/v1/targets", timeout=5)
        assert answer.status_code == 405 and answer.headers["allow"] == "GET, HEAD"


def test_nothing_served_shows_a_secret(world: StatusWorld) -> None:
    served = [_get(world, p).text for p in (
        "/", "/api/v1/targets", f"/api/v1/targets/{world.evil}/history", "/metrics", "/healthz")]
    for secret in SECRETS:
        assert all(secret not in text for text in served), secret
    assert world.daemon is not None
    assert all(secret not in world.daemon.log_text() for secret in SECRETS)


# --- the page in Chromium --------------------------------------------------------------------


def test_status_page_in_chromium(world: StatusWorld, browser: Chromium) -> None:
    assert world.daemon is not None
    headers = _get(world, "/").headers
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in headers["content-security-policy"]
    page = browser.open(world.daemon.url + "/", width=1280, height=900, javascript=False)
    html = page.outer_html()
    status = {o["image"].split("/", 1)[1]: o for o in _get(world, "/api/v1/targets").json()}

    # Every target, problems first and the newest problem first: the target that never
    # worked, then the pin (behind since its new image was built), then the moved watch.
    rows = _rows(html)
    assert len(rows) == 3
    names = [re.sub(r"\s+", "", row) for row in rows]  # "/" may be followed by <wbr>
    assert "/evil/app:1" in names[0] and "/web/base:3.12" in names[1]
    assert "/web/app:1.0" in names[2]
    evil, base, app = rows
    assert "error" in evil and "access denied (HTTP 403)" in evil
    assert "stale" in base and "behind" in base and "services/api/Dockerfile" in base
    assert status["web/base"]["pinned"][:19] in base  # the pinned digest, short
    assert "ok" in app and status["web/app"]["digest"][:19] in app
    moved = status["web/app"]["changed_at"]
    assert f'datetime="{moved}"' in html  # the last move, as a machine-readable time

    # The registry's markup is text on the page: shown, never a script, an image or a link.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in html
    assert page.evaluate("document.scripts.length") == 0
    assert page.evaluate("document.images.length") == 0
    links = page.evaluate("[...document.links].map(a => a.getAttribute('href'))")
    assert all(href.startswith("/") for href in links), links
    assert "evil.example" not in str(links)
    text = page.evaluate("document.body.innerText")
    assert "<script>alert(1)</script>" in text  # what a reader sees: the text itself
    assert page.evaluate("document.title") == "tagwatch: 2 problems"


def test_status_page_on_a_phone(world: StatusWorld, browser: Chromium,
                                tmp_path: Path) -> None:
    assert world.daemon is not None
    page = browser.open(world.daemon.url + "/", width=390, height=844, mobile=True, scale=2,
                        javascript=False)
    layout = page.layout()
    assert layout["cssLayoutViewport"]["clientWidth"] == 390
    assert layout["cssContentSize"]["width"] <= 390  # nothing to scroll sideways
    assert page.evaluate("getComputedStyle(document.querySelector('tbody tr')).display") == "block"
    assert page.evaluate("getComputedStyle(document.querySelector('thead')).display") == "none"
    assert float(page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")) >= 15
    shot = page.screenshot()
    path = tmp_path / "status-page-phone.png"
    path.write_bytes(shot)
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", shot[16:24])
    assert width == 780 and height > 844  # 390 CSS pixels at 2x, the whole page
