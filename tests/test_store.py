"""The store: stretches, in-place updates, the outbox, migrations and WAL."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tagwatch.core.model import (
    Event,
    EventKind,
    Failed,
    Kind,
    Missing,
    Observation,
    Outcome,
    PlannedEvent,
    Resolved,
    Route,
    State,
    Target,
    TargetView,
)
from tagwatch.core.refs import parse_ref
from tagwatch.store import Store

T0 = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
KEY = ("docker.io", "library/python", "3.12")
IDX = "application/vnd.oci.image.index.v1+json"


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


WATCH = Target(Kind.WATCH, parse_ref("python:3.12"))
SAME = TargetView(state=State.OK)  # a target whose state does not change is not written


def outcome(
    obs: Observation,
    events: tuple[Event, ...] = (),
    routes: tuple[Route, ...] = (),
    before: TargetView = SAME,
    after: TargetView = SAME,
) -> Outcome:
    return Outcome(WATCH, obs, before, after, tuple(PlannedEvent(e, routes) for e in events))


def record(store, minute, obs, events=(), routes=()):  # type: ignore[no-untyped-def]
    return store.record(at(minute), {KEY: obs}, [outcome(obs, tuple(events), tuple(routes))])


def rows(store: Store, table: str) -> int:
    return store.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_wal_and_migrations(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "t.db"))
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    names = [r[0] for r in store.db.execute("SELECT name FROM _sqlite_migrations")]
    assert names == ["m001_initial", "m002_delivery_due", "m003_newer_versions",
                     "m004_source_readings"]
    store.close()
    # Re-opening applies nothing twice, and does not even load sqlite-utils.
    import sys

    for name in [m for m in sys.modules if m.startswith(("sqlite_utils", "tagwatch.migrations"))]:
        del sys.modules[name]
    again = Store(str(tmp_path / "t.db"))
    assert rows(again, "_sqlite_migrations") == 4
    assert "sqlite_utils" not in sys.modules


def test_a_first_release_database_is_upgraded_in_place(tmp_path: Path) -> None:
    """A database written by 0.1's schema (m001 only) keeps its rows and gains due_at."""
    from sqlite_utils import Database

    from tagwatch.migrations import m001_initial

    path = tmp_path / "old.db"
    old = Database(str(path))
    m001_initial(old)
    old.execute("CREATE TABLE _sqlite_migrations (migration_set TEXT, name TEXT, "
                "applied_at TEXT, PRIMARY KEY (migration_set, name))")
    old.execute("INSERT INTO _sqlite_migrations VALUES ('tagwatch', 'm001_initial', 'x')")
    old.execute("INSERT INTO events(id, at, kind, target, image, tag) "
                "VALUES (1, '2026-01-01T00:00:00Z', 'moved', 'watch:x', 'i', 't')")
    old.execute("INSERT INTO deliveries(event_id, notify_id, notify_name, state, attempts) "
                "VALUES (1, 'n', 'notify[0]', 'pending', 0)")
    old.conn.commit()
    old.close()
    store = Store(str(path))
    assert "due_at" in {r[1] for r in store.db.execute("PRAGMA table_info(deliveries)")}
    [delivery] = store.pending(["n"])
    assert delivery.event.kind is EventKind.MOVED


def test_unchanged_checks_add_no_rows(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "t.db"))
    record(store, 0, Resolved(A, IDX, {"linux/amd64": B}))
    counts = {t: rows(store, t) for t in ("tags", "stretches", "events", "deliveries")}
    for minute in range(1, 50):
        record(store, minute, Resolved(A, IDX, {"linux/amd64": B}))
    assert {t: rows(store, t) for t in counts} == counts
    (stretch,) = store.history(KEY)
    assert stretch.first_seen == at(0) and stretch.last_seen == at(49)
    assert stretch.platforms == {"linux/amd64": B}


def test_a_b_a_is_three_stretches(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "t.db"))
    record(store, 0, Resolved(A, IDX))
    record(store, 5, Resolved(A, IDX))
    record(store, 10, Resolved(B, IDX))
    record(store, 20, Resolved(A, IDX))
    record(store, 25, Resolved(A, IDX))
    history = store.history(KEY)
    assert [s.digest for s in history] == [A, B, A]
    assert [(s.first_seen, s.last_seen) for s in history] == [
        (at(20), at(25)),
        (at(10), at(10)),
        (at(0), at(5)),
    ]


def test_vanish_and_return(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "t.db"))
    record(store, 0, Resolved(A, IDX))
    record(store, 5, Missing())
    view = store.tag_views()[KEY]
    assert view.present is False and view.digest == A
    record(store, 10, Resolved(A, IDX))
    assert store.tag_views()[KEY].present is True
    assert [s.digest for s in store.history(KEY)] == [A, A]


def test_failure_keeps_the_last_successful_check(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "t.db"))
    record(store, 0, Resolved(A, IDX))
    record(store, 5, Failed("boom"))
    (stretch,) = store.history(KEY)
    assert stretch.last_seen == at(0)
    assert store.tag_views()[KEY].digest == A


def test_targets_written_only_when_changed(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "t.db"))
    ok = TargetView(state=State.OK)
    seen = Resolved(A, IDX)
    store.record(at(0), {KEY: seen}, [outcome(seen, before=TargetView(), after=ok)])
    assert store.target_views()[WATCH.key] == ok
    store.db.execute("UPDATE targets SET changes = 41 WHERE key = ?", [WATCH.key])
    # An unchanged view is not rewritten (the manual edit survives).
    store.record(at(1), {KEY: seen}, [outcome(seen, before=ok, after=ok)])
    assert store.target_views()[WATCH.key].changes == 41


def test_outbox(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "t.db"))
    event = Event(
        EventKind.MOVED,
        "watch:x",
        "docker.io/library/python",
        "3.12",
        at(1),
        old_digest=A,
        new_digest=B,
        platforms_changed=("linux/amd64",),
        details={"back_to": "2026-11-01T00:00:00Z"},
    )
    ids = record(store, 1, Resolved(B, IDX), [event], [Route("n1", "ops"), Route("n2", "mail")])
    pending = store.pending(["n1", "n2"])
    assert [(d.event_id, d.notify_id) for d in pending] == [(ids[0], "n1"), (ids[0], "n2")]
    assert pending[0].event == event
    store.failed(pending[0], at(2), "HTTP 500")
    store.delivered(pending[1], at(2))
    assert [(d.notify_id, d.attempts) for d in store.pending(["n1", "n2"])] == [("n1", 1)]
    store.delivered(store.pending(["n1"])[0], at(3))
    assert store.pending(["n1", "n2"]) == []


def test_held_deliveries_are_not_pending(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "t.db"))
    event = Event(EventKind.MOVED, "watch:x", "i", "t", at(1))
    seen = Resolved(B, IDX)
    store.record(at(1), {KEY: seen}, [outcome(seen, (event,), (Route("n1", "ops"),))], hold=True)
    assert store.pending(["n1"]) == []
    assert rows(store, "deliveries") == 1


def test_notify_id_is_stable_and_secret_free(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "t.db"))
    url = "json://user:hunter2@example.com/hook"
    first = store.notify_id(url)
    assert first == store.notify_id(url) != store.notify_id(url + "2")
    store.close()
    assert Store(str(tmp_path / "t.db")).notify_id(url) == first
    dump = "\n".join(sqlite3.connect(tmp_path / "t.db").iterdump())
    assert "hunter2" not in dump


def test_unwritable_location_is_a_store_error(tmp_path: Path) -> None:
    import pytest

    from tagwatch.errors import StoreError

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="database .*file/t.db"):
        Store(str(blocker / "t.db"))
