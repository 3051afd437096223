"""Schema migrations, with sqlite-utils' `Migrations` (applied in order, recorded in
`_sqlite_migrations`). Imported only when the store finds a migration it has not applied:
a steady-state `tagwatch check` never loads sqlite-utils.

Add a migration at the end, and its name to `tagwatch.store.MIGRATIONS`; never edit one that
has shipped.
"""

from __future__ import annotations

import sqlite3

from sqlite_utils import Database, Migrations

__all__ = ["apply", "migrations"]

migrations = Migrations("tagwatch")


@migrations()
def m001_initial(db: Database) -> None:
    db.table("tags").create(
        {
            "id": int,
            "registry": str,
            "repository": str,
            "tag": str,
            "digest": str,
            "media_type": str,
            "platforms": str,  # JSON object: platform -> image digest
            "present": int,
            "first_seen": str,
            "changed_at": str,
            "checked_at": str,  # last successful check
            "error": str,
        },
        pk="id",
        not_null={"registry", "repository", "tag", "present"},
    )
    db.table("tags").create_index(["registry", "repository", "tag"], unique=True)
    db.table("stretches").create(
        {
            "id": int,
            "tag_id": int,
            "digest": str,
            "media_type": str,
            "platforms": str,
            "first_seen": str,
            "last_seen": str,  # NULL while current
        },
        pk="id",
        foreign_keys=[("tag_id", "tags", "id")],
        not_null={"tag_id", "digest", "first_seen"},
    )
    db.table("stretches").create_index(["tag_id", "id"])
    db.table("targets").create(
        {
            "key": str,
            "kind": str,
            "tag_id": int,
            "pinned": str,
            "state": str,
            "fail_count": int,
            "error_alerted": int,
            "behind_since": str,
            "behind_evidence": str,
            "stale_alerted_at": str,
            "pin_missing": int,
            "changes": int,
        },
        pk="key",
        foreign_keys=[("tag_id", "tags", "id")],
    )
    db.table("events").create(
        {
            "id": int,
            "at": str,
            "kind": str,
            "target": str,
            "image": str,
            "tag": str,
            "pinned": str,
            "old_digest": str,
            "new_digest": str,
            "platforms_changed": str,  # JSON list
            "details": str,  # JSON object
        },
        pk="id",
    )
    db.table("events").create_index(["target", "id"])
    db.table("deliveries").create(
        {
            "event_id": int,
            "notify_id": str,  # HMAC of the apprise URL: stable, reveals nothing
            "notify_name": str,  # safe to print: the target's name or notify[N]
            "state": str,  # pending | sent | held
            "attempts": int,
            "last_attempt_at": str,
            "sent_at": str,
            "error": str,
        },
        pk=("event_id", "notify_id"),
        foreign_keys=[("event_id", "events", "id")],
    )
    db.table("deliveries").create_index(["state"])
    db.table("meta").create({"key": str, "value": str}, pk="key")


@migrations()
def m002_delivery_due(db: Database) -> None:
    """Deliveries may wait: a grace period before a move is alerted, or a digest schedule."""
    db.table("deliveries").add_column("due_at", str)


@migrations()
def m003_newer_versions(db: Database) -> None:
    """Newer versions: what each target has reported, and repositories' tag lists (cached
    between cycles: Docker Hub's `node` has over 9,000 tags)."""
    db.table("targets").add_column("newer", str)
    db.table("tag_lists").create(
        {"registry": str, "repository": str, "fetched_at": str, "complete": int, "tags": str},
        pk=("registry", "repository"),
    )


@migrations()
def m004_source_readings(db: Database) -> None:
    """The last reading of each engine and Kubernetes [[source]]: while one cannot be read,
    the containers it ran stay targets (in `error`), instead of silently disappearing."""
    db.table("source_readings").create(
        {
            "source": str,  # SourceConfig.label: "engine unix:///var/run/docker.sock"
            "read_at": str,  # last successful reading
            "items": str,  # JSON list of core.running.Running.as_dict()
            "error": str,  # why the last attempt failed; NULL when it succeeded
            "failed_at": str,
        },
        pk="source",
    )


def apply(conn: sqlite3.Connection) -> None:
    migrations.apply(Database(conn))
