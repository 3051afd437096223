"""The SQLite store: every digest a tag has had, the state of each watch and pin, and the
events with their deliveries (an outbox: an event is written before it is sent, and marked
sent after).

The database grows with changes, not with checks: a check that changes nothing updates the
tag's `checked_at` in place and adds no row. A stretch (one row of `stretches`) is a span of
time during which the tag pointed at one digest; the open stretch (last_seen NULL) ends at
the tag's `checked_at`.

A registry seen down (core.outage) is a row of `meta`, `outage:HOST`, until it answers.

Use a Store from one thread only (sqlite3's check_same_thread); the cycle does all its
database work on its own thread and only the HTTP on worker threads.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from tagwatch.core.model import (
    DeliveryState,
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
    Stretch,
    TagKey,
    TagView,
    TargetView,
)
from tagwatch.core.times import format_time, parse_time
from tagwatch.errors import StoreError

if TYPE_CHECKING:
    from tagwatch.core.outage import Outage

__all__ = ["Delivery", "SourceReading", "StatusRow", "Store", "Undelivered"]

# Applied migrations (tagwatch.migrations), in order: when the database has all of them,
# opening it needs no sqlite-utils at all.
MIGRATIONS = (
    "m001_initial",
    "m002_delivery_due",
    "m003_newer_versions",
    "m004_source_readings",
)

_OUTAGE = "outage:"  # meta keys of the registries alerted down


class _Connection:
    """The few things the store needs from its connection: statements, and transactions
    that nest (savepoints inside one)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._depth = 0

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    @contextmanager
    def atomic(self) -> Iterator[None]:
        name = f"tw{self._depth}"
        self.conn.execute("BEGIN" if self._depth == 0 else f"SAVEPOINT {name}")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            self.conn.execute("ROLLBACK" if self._depth == 0 else f"ROLLBACK TO {name}")
            if self._depth:
                self.conn.execute(f"RELEASE {name}")
            raise
        self._depth -= 1
        self.conn.execute("COMMIT" if self._depth == 0 else f"RELEASE {name}")

    def close(self) -> None:
        self.conn.close()


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


#: The columns of `Store.status_records`, in order (`g`: the target, `t`: its tag).
STATUS_COLUMNS = (
    "g.key",
    "g.kind",
    "g.pinned",
    "g.state",
    "g.fail_count",
    "g.changes",
    "g.behind_since",
    "g.behind_evidence",
    "g.pin_missing",
    "g.newer",
    "t.registry",
    "t.repository",
    "t.tag",
    "t.digest",
    "t.platforms",
    "t.present",
    "t.first_seen",
    "t.changed_at",
    "t.checked_at",
    "t.error",
)


@dataclass(frozen=True, slots=True)
class StatusRow:
    """One watch or pin as recorded, with its tag: what `status`, `check`, `audit` and the
    metrics show. Read-only; built by `Store.status_rows`."""

    key: str  # Target.key
    kind: Kind
    pinned: str | None
    state: State | None  # None: recorded, but never decided (not written by tagwatch)
    fail_count: int  # failed checks in a row
    changes: int  # moves seen
    behind_since: datetime | None  # pins: since when the tag is elsewhere
    behind_evidence: str | None
    pin_missing: bool
    newer: tuple[str, ...]  # newer versions found (targets with a `newer` policy)
    tag_key: TagKey
    digest: str | None  # the last digest seen, also while the tag is vanished
    platforms: Mapping[str, str]
    present: bool  # False while the tag is vanished
    first_seen: datetime | None
    changed_at: datetime | None  # the last move (None: never moved)
    checked_at: datetime | None  # the last check that reached the registry
    error: str | None  # the last check's error, while checks fail

    @property
    def current_digest(self) -> str | None:
        """The digest the tag points at now (None while vanished)."""
        return self.digest if self.present else None

    @property
    def answered(self) -> bool:
        """Whether the registry ever answered for the tag (resolved it, or said it does not
        exist). A tag whose checks have only ever failed has no presence to tell."""
        return self.digest is not None or self.checked_at is not None

    @property
    def last_changed(self) -> datetime | None:
        """When the tag last moved, else first seen; None if it never resolved."""
        return (self.changed_at or self.first_seen) if self.digest else None


@dataclass(frozen=True, slots=True)
class Undelivered:
    """An alert waiting for delivery to one notification target: due, not yet sent (never
    tried yet, or failed and to be retried). Read by `status` and the metrics."""

    event_id: int
    target: str  # the event's target: Target.key, or `registry:HOST`
    kind: str
    at: datetime | None  # when the event happened
    notify_id: str
    notify_name: str  # the target's name or notify[N]; never its URL
    attempts: int
    error: str | None  # the last attempt's error (scrubbed of the URL's secrets)
    last_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class Delivery:
    event_id: int
    notify_id: str
    notify_name: str
    attempts: int
    event: Event


@dataclass(frozen=True, slots=True)
class SourceReading:
    """The last successful reading of an engine or Kubernetes source, and whether the
    latest attempt failed."""

    read_at: datetime | None
    items: list[dict[str, Any]]
    error: str | None


class Store:
    """The tagwatch database. Opening applies pending migrations."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.RLock()
        # Held while the outbox is being sent, so two cycles never send one delivery twice.
        self.outbox_lock = threading.Lock()
        # Held from reading the registries' outages to recording a cycle (check.outages), so
        # two cycles of one registry never both alert that it went down.
        self.outage_lock = threading.Lock()
        try:
            if path != ":memory:":
                directory = os.path.dirname(os.path.abspath(path))
                os.makedirs(directory, exist_ok=True)
            # One connection shared by the daemon's threads, serialised by self._lock.
            conn = sqlite3.connect(
                path, timeout=10.0, check_same_thread=False, isolation_level=None
            )
            self.db = _Connection(conn)
            self.db.execute("PRAGMA busy_timeout = 10000")
            if path != ":memory:":
                self.db.execute("PRAGMA journal_mode = wal")
                # WAL's file otherwise stays at its high-water mark after a checkpoint.
                self.db.execute("PRAGMA journal_size_limit = 1048576")
            self.db.execute("PRAGMA foreign_keys = ON")
            if self._applied() != MIGRATIONS:
                from tagwatch.migrations import apply

                apply(conn)
        except sqlite3.Error as exc:
            raise StoreError(f"database {path}: {exc}") from None
        except OSError as exc:
            raise StoreError(f"database {path}: {exc.strerror or exc}") from None

    def _applied(self) -> tuple[str, ...]:
        try:
            rows = self.db.execute(
                "SELECT name FROM _sqlite_migrations WHERE migration_set = 'tagwatch' "
                "ORDER BY applied_at, name"
            ).fetchall()
        except sqlite3.OperationalError:  # a new database: no migrations table yet
            return ()
        return tuple(sorted(r[0] for r in rows))

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def version(self) -> tuple[int, int]:
        """A value that changes whenever what the database holds may have: rows this
        connection changed (sqlite3's total_changes) and commits of other connections
        (PRAGMA data_version). For caches of what is read from it (the metrics' text)."""
        with self._errors("reading the version"):
            other = self.db.execute("PRAGMA data_version").fetchone()[0]
            return self.db.conn.total_changes, other

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Hold the store's lock and turn sqlite errors into a one-line StoreError."""
        try:
            with self._lock:
                yield
        except sqlite3.Error as exc:
            raise StoreError(f"database {self.path}: {doing}: {exc}") from None

    # --- reading ---------------------------------------------------------------------------

    def tag_views(self) -> dict[TagKey, TagView]:
        with self._errors("reading tags"):
            rows = self.db.execute(
                "SELECT registry, repository, tag, digest, platforms, present, first_seen FROM tags"
            ).fetchall()
        # Tags recorded alike (one image under many tags, first seen in the same cycle) share
        # one view: views are frozen, and a check recalls thousands of them before its first
        # request.
        views: dict[tuple[Any, ...], TagView] = {}
        out = {}
        for r in rows:
            view = views.get(r[3:])
            if view is None:
                view = views[r[3:]] = TagView(
                    digest=r[3],
                    platforms=json.loads(r[4]) if r[4] and r[4] != "{}" else {},
                    present=bool(r[5]),
                    first_seen=parse_time(r[6]),
                )
            out[r[0], r[1], r[2]] = view
        return out

    def target_views(self) -> dict[str, TargetView]:
        with self._errors("reading targets"):
            rows = self.db.execute(
                "SELECT key, state, fail_count, error_alerted, behind_since, behind_evidence, "
                "stale_alerted_at, pin_missing, changes, newer FROM targets"
            ).fetchall()
        views: dict[tuple[Any, ...], TargetView] = {}  # alike rows share one (frozen) view
        out = {}
        for r in rows:
            view = views.get(r[1:])
            if view is None:
                view = views[r[1:]] = self._target_view(r[1:])
            out[r[0]] = view
        return out

    @staticmethod
    def _target_view(r: Sequence[Any]) -> TargetView:
        return TargetView(
            state=State(r[0]) if r[0] else None,
            fail_count=r[1] or 0,
            error_alerted=bool(r[2]),
            behind_since=parse_time(r[3]),
            behind_evidence=r[4],
            stale_alerted_at=parse_time(r[5]),
            pin_missing=bool(r[6]),
            changes=r[7] or 0,
            newer=tuple(json.loads(r[8])) if r[8] else (),
        )

    def history(self, key: TagKey) -> list[Stretch]:
        """Every stretch of the tag, newest first; the current one ends at its last check."""
        with self._errors("reading history"):
            rows = self.db.execute(
                "SELECT s.digest, s.platforms, s.first_seen, COALESCE(s.last_seen, t.checked_at,"
                " s.first_seen) FROM stretches s JOIN tags t ON t.id = s.tag_id "
                "WHERE t.registry = ? AND t.repository = ? AND t.tag = ? ORDER BY s.id DESC",
                key,
            ).fetchall()
        return [
            Stretch(
                digest=r[0],
                platforms=json.loads(r[1]) if r[1] else {},
                first_seen=parse_time(r[2]) or datetime.min.replace(tzinfo=UTC),
                last_seen=parse_time(r[3]) or datetime.min.replace(tzinfo=UTC),
            )
            for r in rows
        ]

    def status_records(
        self, columns: Sequence[str] = STATUS_COLUMNS, ordered: bool = False
    ) -> list[tuple[Any, ...]]:
        """Every recorded watch and pin with its tag, as the database has them: the
        `columns` (of STATUS_COLUMNS), `ordered` by target key. For views that turn 100,000
        of them into JSON with no use for `status_rows`' objects."""
        if not set(columns) <= set(STATUS_COLUMNS):
            raise ValueError(f"not a status column: {sorted(set(columns) - set(STATUS_COLUMNS))}")
        order = " ORDER BY g.key" if ordered else ""
        with self._errors("reading status"):
            return self.db.execute(
                f"SELECT {', '.join(columns)} FROM targets g "
                f"JOIN tags t ON t.id = g.tag_id{order}"
            ).fetchall()

    def status_rows(self) -> list[StatusRow]:
        """Every recorded watch and pin with its tag, ordered by target key."""
        rows = self.status_records(ordered=True)
        # Most rows share a kind, a state and their platforms: each distinct value is made
        # once (the platforms a read-only view), not once per row of 100,000; times are
        # parse_time's own cache.
        platforms: dict[str | None, Mapping[str, str]] = {}
        kinds = {k.value: k for k in Kind}
        states: dict[str | None, State | None] = {None: None, "": None}

        def mapping(text: str | None) -> Mapping[str, str]:
            view = platforms.get(text)
            if view is None:
                view = platforms[text] = MappingProxyType(json.loads(text) if text else {})
            return view

        def state(value: str | None) -> State | None:
            if value not in states:
                states[value] = State(value) if value else None
            return states[value]

        return [
            StatusRow(
                key=r[0],
                kind=kinds.get(r[1]) or Kind(r[1]),
                pinned=r[2],
                state=state(r[3]),
                fail_count=r[4] or 0,
                changes=r[5] or 0,
                behind_since=parse_time(r[6]),
                behind_evidence=r[7],
                pin_missing=bool(r[8]),
                newer=tuple(json.loads(r[9])) if r[9] else (),
                tag_key=(r[10], r[11], r[12]),
                digest=r[13],
                platforms=mapping(r[14]),
                present=bool(r[15]),
                first_seen=parse_time(r[16]),
                changed_at=parse_time(r[17]),
                checked_at=parse_time(r[18]),
                error=r[19],
            )
            for r in rows
        ]

    # --- recording -------------------------------------------------------------------------

    def record(
        self,
        now: datetime,
        observations: Mapping[TagKey, Observation],
        outcomes: Sequence[Outcome],
        hold: bool = False,
        *,
        registry_events: Sequence[PlannedEvent] = (),
        outages: Mapping[str, Outage | None] | None = None,
    ) -> list[int]:
        """Record one cycle in one transaction; returns the new events' ids, in order.

        Every observed tag is written; a target only when its state changed. Each event's
        routes become its deliveries (`hold`: pending ones are recorded as held, not sent);
        the pending deliveries of the events an outcome supersedes become merged.
        `registry_events` are the registries' own (check.outages), `outages` the registries
        whose outage state changed (None: answering again).
        """
        stamp = format_time(now)
        with self._errors("recording a check"), self.db.atomic():
            tag_ids = self._record_tags(observations, stamp)
            for outcome in outcomes:
                self._record_target(outcome, tag_ids, stamp)
            for host, outage in (outages or {}).items():
                self._record_outage(host, outage)
            ids: list[int] = []
            planned_events = [p for outcome in outcomes for p in outcome.events]
            for planned in [*planned_events, *registry_events]:
                event_id = self._insert_event(planned.event)
                ids.append(event_id)
                for route in planned.routes:
                    self._insert_delivery(event_id, route, hold)
            superseded = [i for outcome in outcomes for i in outcome.superseded]
            if superseded:  # moves within a grace period, now covered by a later event
                marks = ",".join("?" * len(superseded))
                self.db.execute(
                    f"UPDATE deliveries SET state = ? WHERE state = ? AND event_id IN ({marks})",
                    [DeliveryState.MERGED.value, DeliveryState.PENDING.value, *superseded],
                )
        return ids

    def _record_tags(
        self, observations: Mapping[TagKey, Observation], stamp: str | None
    ) -> dict[TagKey, int]:
        tag_ids = self._tag_ids()
        same: list[tuple[str | None, int]] = []
        for key, obs in observations.items():
            tag_id = tag_ids.get(key)
            if tag_id is None:
                tag_id = self._insert_tag(key, stamp)
                tag_ids[key] = tag_id
            if not self._record_observation(tag_id, obs, stamp):
                same.append((stamp, tag_id))
        if same:  # the common case: one in-place update per unchanged tag, no new row
            self.db.conn.executemany("UPDATE tags SET checked_at = ? WHERE id = ?", same)
        return tag_ids

    def _record_target(
        self, outcome: Outcome, tag_ids: dict[TagKey, int], stamp: str | None
    ) -> None:
        if outcome.before == outcome.after and outcome.before.state is not None:
            return
        target = outcome.target
        if target.tag_key not in tag_ids:  # its tag was not checked (its [[source]] is down)
            tag_ids[target.tag_key] = self._insert_tag(target.tag_key, stamp)
        row = {
            "key": target.key,
            "kind": target.kind.value,
            "tag_id": tag_ids[target.tag_key],
            "pinned": target.pinned,
        }
        row.update(self._target_row(outcome.after))
        names = ", ".join(row)
        updates = ", ".join(f"{k} = excluded.{k}" for k in row if k != "key")
        self.db.execute(
            f"INSERT INTO targets({names}) VALUES({', '.join('?' * len(row))}) "
            f"ON CONFLICT(key) DO UPDATE SET {updates}",
            list(row.values()),
        )

    def _record_outage(self, host: str, outage: Outage | None) -> None:
        key = _OUTAGE + host
        if outage is None:
            self.db.execute("DELETE FROM meta WHERE key = ?", [key])
        else:
            self.db.execute(
                "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET "
                "value = excluded.value",
                [key, _json(outage.as_dict())],
            )

    def registry_outages(self) -> dict[str, Outage]:
        """The registries seen down (core.outage), alerted or not yet, by host."""
        with self._errors("reading registry outages"):
            rows = self.db.execute(
                "SELECT key, value FROM meta WHERE key LIKE ?", [_OUTAGE + "%"]
            ).fetchall()
        out = {}
        if rows:
            from tagwatch.core.outage import Outage  # a registry was seen down: rare
        for key, value in rows:
            data = json.loads(value)
            since = parse_time(data.get("since"))
            if since is not None:
                out[key[len(_OUTAGE) :]] = Outage(
                    since,
                    str(data.get("message", "")),
                    int(data.get("targets", 0)),
                    bool(data.get("alerted", True)),
                )
        return out

    def _insert_delivery(self, event_id: int, route: Route, hold: bool) -> None:
        state = route.state
        if hold and state is DeliveryState.PENDING:
            state = DeliveryState.HELD
        self.db.execute(
            "INSERT INTO deliveries(event_id, notify_id, notify_name, state, attempts, due_at) "
            "VALUES(?,?,?,?,0,?)",
            [event_id, route.notify_id, route.notify_name, state.value, format_time(route.due)],
        )

    def _tag_ids(self) -> dict[TagKey, int]:
        rows = self.db.execute("SELECT registry, repository, tag, id FROM tags").fetchall()
        return {(r[0], r[1], r[2]): r[3] for r in rows}

    def _insert_tag(self, key: TagKey, stamp: str | None) -> int:
        cursor = self.db.execute(
            "INSERT INTO tags(registry, repository, tag, present, first_seen) VALUES(?,?,?,0,?)",
            [*key, stamp],
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def _record_observation(self, tag_id: int, obs: Observation, stamp: str | None) -> bool:
        """Write what changed for one tag. False when only checked_at needs updating."""
        row = self.db.execute(
            "SELECT digest, present, checked_at, error, platforms FROM tags WHERE id = ?",
            [tag_id],
        ).fetchone()
        digest, present, checked_at, error, platforms = row
        if isinstance(obs, Failed):
            if error != obs.message:
                self.db.execute("UPDATE tags SET error = ? WHERE id = ?", [obs.message, tag_id])
            return True
        if isinstance(obs, Missing):
            if present:
                self._close_stretch(tag_id, checked_at or stamp)
            if present or error is not None:
                self.db.execute(
                    "UPDATE tags SET present = 0, error = NULL, checked_at = ? WHERE id = ?",
                    [stamp, tag_id],
                )
                return True
            return False
        assert isinstance(obs, Resolved)
        new_platforms = _json(dict(obs.platforms))
        if present and digest == obs.digest:
            if error is not None or platforms != new_platforms:
                self.db.execute(
                    "UPDATE tags SET error = NULL, platforms = ?, checked_at = ? WHERE id = ?",
                    [new_platforms, stamp, tag_id],
                )
                return True
            return False
        if present:
            self._close_stretch(tag_id, checked_at or stamp)
        self.db.execute(
            "INSERT INTO stretches(tag_id, digest, media_type, platforms, first_seen) "
            "VALUES(?,?,?,?,?)",
            [tag_id, obs.digest, obs.media_type, new_platforms, stamp],
        )
        self.db.execute(
            "UPDATE tags SET digest = ?, media_type = ?, platforms = ?, present = 1, "
            "changed_at = ?, checked_at = ?, error = NULL WHERE id = ?",
            [obs.digest, obs.media_type, new_platforms, stamp, stamp, tag_id],
        )
        return True

    def _close_stretch(self, tag_id: int, last_seen: str | None) -> None:
        self.db.execute(
            "UPDATE stretches SET last_seen = ? WHERE tag_id = ? AND last_seen IS NULL",
            [last_seen, tag_id],
        )

    @staticmethod
    def _target_row(view: TargetView) -> dict[str, Any]:
        return {
            "state": view.state.value if view.state else None,
            "fail_count": view.fail_count,
            "error_alerted": int(view.error_alerted),
            "behind_since": format_time(view.behind_since),
            "behind_evidence": view.behind_evidence,
            "stale_alerted_at": format_time(view.stale_alerted_at),
            "pin_missing": int(view.pin_missing),
            "changes": view.changes,
            "newer": _json(list(view.newer)) if view.newer else None,
        }

    def _insert_event(self, event: Event) -> int:
        cursor = self.db.execute(
            "INSERT INTO events(at, kind, target, image, tag, pinned, old_digest, new_digest, "
            "platforms_changed, details) VALUES(?,?,?,?,?,?,?,?,?,?)",
            [
                format_time(event.at),
                event.kind.value,
                event.target,
                event.image,
                event.tag,
                event.pinned,
                event.old_digest,
                event.new_digest,
                _json(list(event.platforms_changed)),
                _json(dict(event.details)),
            ],
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    # --- what engine and Kubernetes sources read --------------------------------------------

    def save_reading(self, source: str, now: datetime, items: Sequence[Mapping[str, Any]]) -> None:
        with self._errors("recording a source's reading"):
            self.db.execute(
                "INSERT INTO source_readings(source, read_at, items, error, failed_at) "
                "VALUES(?,?,?,NULL,NULL) ON CONFLICT(source) DO UPDATE SET "
                "read_at = excluded.read_at, items = excluded.items, error = NULL, "
                "failed_at = NULL",
                [source, format_time(now), _json([dict(i) for i in items])],
            )

    def reading_failed(self, source: str, now: datetime, error: str) -> None:
        """Keep the last good reading; note why this one failed."""
        with self._errors("recording a source's failure"):
            self.db.execute(
                "INSERT INTO source_readings(source, items, error, failed_at) VALUES(?,'[]',?,?) "
                "ON CONFLICT(source) DO UPDATE SET error = excluded.error, "
                "failed_at = excluded.failed_at",
                [source, error, format_time(now)],
            )

    def reading(self, source: str) -> SourceReading | None:
        """The last reading of `source`; None when it was never read successfully."""
        with self._errors("reading a source's last reading"):
            row = self.db.execute(
                "SELECT read_at, items, error FROM source_readings WHERE source = ?", [source]
            ).fetchone()
        if row is None or row[0] is None:
            return None
        try:
            items = json.loads(row[1] or "[]")
        except ValueError:
            items = []
        return SourceReading(
            parse_time(row[0]),
            [i for i in items if isinstance(i, dict)] if isinstance(items, list) else [],
            row[2],
        )

    # --- the outbox ------------------------------------------------------------------------

    def notify_id(self, url: str) -> str:
        """A stable id for an apprise URL that reveals nothing about it (keyed HMAC)."""
        import hashlib  # loaded for alerting only
        import hmac
        import secrets

        with self._errors("reading meta"):
            row = self.db.execute("SELECT value FROM meta WHERE key = 'notify_salt'").fetchone()
            if row is None:
                salt = secrets.token_hex(16)
                with self.db.atomic():
                    self.db.execute(
                        "INSERT OR IGNORE INTO meta(key, value) VALUES('notify_salt', ?)", [salt]
                    )
                row = self.db.execute("SELECT value FROM meta WHERE key = 'notify_salt'").fetchone()
        return hmac.new(row[0].encode(), url.encode(), hashlib.sha256).hexdigest()[:20]

    def pending(self, notify_ids: Iterable[str], now: datetime | None = None) -> list[Delivery]:
        """Deliveries to send now: pending, and due (no due time, or due by `now`)."""
        ids = list(notify_ids)
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        with self._errors("reading deliveries"):
            rows = self.db.execute(
                "SELECT d.event_id, d.notify_id, d.notify_name, d.attempts, e.at, e.kind, "
                "e.target, e.image, e.tag, e.pinned, e.old_digest, e.new_digest, "
                "e.platforms_changed, e.details FROM deliveries d JOIN events e "
                f"ON e.id = d.event_id WHERE d.state = 'pending' AND d.notify_id IN ({marks}) "
                "AND (d.due_at IS NULL OR d.due_at <= ?) ORDER BY d.event_id, d.notify_id",
                [*ids, format_time(now) or "9999"],
            ).fetchall()
        return [Delivery(r[0], r[1], r[2], r[3], self._event(r[4:])) for r in rows]

    @staticmethod
    def _event(r: Sequence[Any]) -> Event:
        return Event(
            kind=EventKind(r[1]),
            target=r[2],
            image=r[3],
            tag=r[4],
            at=parse_time(r[0]) or datetime.min.replace(tzinfo=UTC),
            pinned=r[5],
            old_digest=r[6],
            new_digest=r[7],
            platforms_changed=tuple(json.loads(r[8] or "[]")),
            details=json.loads(r[9] or "{}"),
        )

    def undelivered(self, now: datetime) -> list[Undelivered]:
        """Every alert due for delivery and not sent, oldest first: a failed delivery waits
        here for the next attempt. Not counted: alerts held (quiet windows, `--no-notify`),
        merged, or not due yet (a grace period, a digest's schedule)."""
        with self._errors("reading deliveries"):
            rows = self.db.execute(
                "SELECT d.event_id, e.target, e.kind, e.at, d.notify_id, d.notify_name, "
                "d.attempts, d.error, d.last_attempt_at FROM deliveries d JOIN events e "
                "ON e.id = d.event_id WHERE d.state = 'pending' "
                "AND (d.due_at IS NULL OR d.due_at <= ?) ORDER BY d.event_id, d.notify_name",
                [format_time(now)],
            ).fetchall()
        return [
            Undelivered(
                r[0], r[1], r[2], parse_time(r[3]), r[4], r[5], r[6] or 0, r[7], parse_time(r[8])
            )
            for r in rows
        ]

    def delivered(self, delivery: Delivery, now: datetime) -> None:
        with self._errors("marking a delivery"), self.db.atomic():
            self.db.execute(
                "UPDATE deliveries SET state = 'sent', sent_at = ?, last_attempt_at = ?, "
                "attempts = attempts + 1, error = NULL WHERE event_id = ? AND notify_id = ?",
                [format_time(now), format_time(now), delivery.event_id, delivery.notify_id],
            )

    def failed(self, delivery: Delivery, now: datetime, error: str) -> None:
        with self._errors("marking a delivery"), self.db.atomic():
            self.db.execute(
                "UPDATE deliveries SET last_attempt_at = ?, attempts = attempts + 1, error = ? "
                "WHERE event_id = ? AND notify_id = ?",
                [format_time(now), error, delivery.event_id, delivery.notify_id],
            )

    def events(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._errors("reading events"):
            cursor = self.db.execute(
                "SELECT id, at, kind, target, image, tag, pinned, old_digest, new_digest, "
                "platforms_changed, details FROM events ORDER BY id DESC LIMIT ?",
                [limit],
            )
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def waiting_moves(
        self, target: str, now: datetime
    ) -> list[tuple[int, str | None, str, dict[str, Any]]]:
        """Moves of a target whose alerts still wait for their grace period to end:
        (event id, old digest, at, details), oldest first."""
        with self._errors("reading events"):
            rows = self.db.execute(
                "SELECT e.id, e.old_digest, e.at, e.details FROM events e WHERE e.target = ? "
                "AND e.kind IN ('moved', 'rewritten') AND EXISTS (SELECT 1 FROM deliveries d "
                "WHERE d.event_id = e.id AND d.state = 'pending' AND d.due_at > ?) ORDER BY e.id",
                [target, format_time(now)],
            ).fetchall()
        return [(r[0], r[1], r[2], json.loads(r[3]) if r[3] else {}) for r in rows]

    def tag_list(self, registry: str, repository: str) -> tuple[list[str], datetime] | None:
        """A repository's cached tag list and when it was fetched."""
        with self._errors("reading tag lists"):
            row = self.db.execute(
                "SELECT tags, fetched_at FROM tag_lists WHERE registry = ? AND repository = ?",
                [registry, repository],
            ).fetchone()
        if row is None:
            return None
        when = parse_time(row[1])
        return (json.loads(row[0]), when) if when else None

    def save_tag_list(
        self, registry: str, repository: str, tags: Sequence[str], complete: bool, now: datetime
    ) -> None:
        with self._errors("saving a tag list"), self.db.atomic():
            self.db.execute(
                "INSERT INTO tag_lists(registry, repository, fetched_at, complete, tags) "
                "VALUES(?,?,?,?,?) ON CONFLICT(registry, repository) DO UPDATE SET "
                "fetched_at = excluded.fetched_at, complete = excluded.complete, "
                "tags = excluded.tags",
                [registry, repository, format_time(now), int(complete), _json(list(tags))],
            )

    def move_details(self, image: str, tag: str) -> dict[tuple[str, str], dict[str, Any]]:
        """(new digest, time) -> details of every recorded move of a tag, for `history`."""
        with self._errors("reading events"):
            rows = self.db.execute(
                "SELECT new_digest, at, details FROM events WHERE image = ? AND tag = ? "
                "AND kind IN ('moved', 'rewritten') ORDER BY id",
                [image, tag],
            ).fetchall()
        return {(r[0], r[1]): json.loads(r[2]) if r[2] else {} for r in rows}
