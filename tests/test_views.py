"""`views.status_objects` reads the database's rows and cleans each distinct string once
(issue 15: at 100,000 watches walking every finished object was most of `status --json`).
Whatever a row holds (a registry's words, an older or damaged database), every string in
the objects is one clean line, and the objects are what the recorded state says."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from tagwatch.config import Config, Settings
from tagwatch.core.markup import clean_data
from tagwatch.core.model import Kind, Outcome, Resolved, State, Target, TargetView
from tagwatch.core.refs import parse_ref
from tagwatch.store import Store
from tagwatch.views import status_objects

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
IDX = "application/vnd.oci.image.index.v1+json"
BAD = "line one\n**new:** sha256:000\x1b]8;;http://evil\x1b\\x\x1b]8;;\x1b\\ \u202eevil" + "z" * 300

WATCH = Target(Kind.WATCH, parse_ref("r.example/team/app:1.2"), newer="minor")
PIN = Target(Kind.PIN, parse_ref(f"r.example/team/app:1.2@{A}"))
NEVER = Target(Kind.WATCH, parse_ref("r.example/team/app:never"))


def _config(tmp_path: Path, *targets: Target) -> Config:
    return Config(
        path=str(tmp_path / "c.toml"),
        settings=Settings(database=str(tmp_path / "t.db")),
        targets=targets,
    )


def _store(tmp_path: Path) -> Store:
    store = Store(str(tmp_path / "t.db"))
    seen = Resolved(B, IDX, {"linux/amd64": A})
    outcomes = [
        Outcome(WATCH, seen, TargetView(), TargetView(state=State.OK, changes=2)),
        Outcome(
            PIN,
            seen,
            TargetView(),
            TargetView(state=State.STALE, behind_since=NOW, behind_evidence="the tag moved"),
        ),
    ]
    store.record(NOW, {WATCH.tag_key: seen}, outcomes)
    return store


def test_objects_say_what_is_recorded(tmp_path: Path) -> None:
    store = _store(tmp_path)
    watch, pin, never = status_objects(_config(tmp_path, WATCH, PIN, NEVER), store, now=NOW)
    assert watch == {
        "image": "r.example/team/app",
        "tag": "1.2",
        "kind": "watch",
        "digest": B,
        "state": "ok",
        "pinned": None,
        "platforms": {"linux/amd64": A},
        "changed_at": "2026-11-29T12:00:00Z",
        "checked_at": "2026-11-29T12:00:00Z",
        "error": None,
        "behind_since": None,
        "source": None,
        "changes": 2,
        "newer": [],
        "undelivered": [],
    }
    assert (pin["kind"], pin["pinned"], pin["state"]) == ("pin", A, "stale")
    assert pin["behind_since"] == "2026-11-29T12:00:00Z" and "behind_evidence" in pin
    assert "newer" not in pin  # no newer policy on the pin
    assert never["state"] is None and never["digest"] is None and "changes" not in never
    # Two objects of one tag share no mutable part: changing one changes nothing else.
    watch["platforms"]["x"] = "y"
    assert "x" not in status_objects(_config(tmp_path, PIN), store, now=NOW)[0]["platforms"]


def test_every_string_a_row_holds_comes_out_one_clean_line(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.db.execute(
        "UPDATE tags SET digest = ?, platforms = ?, error = ?",
        [BAD, json.dumps({BAD: BAD, "linux/arm64": BAD}), BAD],
    )
    store.db.execute(
        "UPDATE targets SET state = 'error', behind_evidence = ?, newer = ?, "
        "behind_since = '2026-11-29T12:00:00+00:00'",
        [BAD, json.dumps([BAD, "1.3"])],
    )
    objects = status_objects(_config(tmp_path, WATCH, PIN), store, now=NOW)
    assert clean_data(objects) == objects  # every string (keys too) is a clean line already
    text = json.dumps(objects)
    assert "\\n" not in text and "\\u001b" not in text and "\\u202e" not in text
    watch, pin = objects
    assert watch["error"] == watch["digest"] == pin["behind_evidence"] == clean_data(BAD)
    assert len(watch["error"]) == 200 and watch["error"].endswith("…")
    assert watch["newer"] == [clean_data(BAD), "1.3"]
    assert sorted(watch["platforms"].values()) == [clean_data(BAD)] * 2
    # A stored time in another spelling is shown in tagwatch's one format.
    assert pin["behind_since"] == "2026-11-29T12:00:00Z"
