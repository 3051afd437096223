"""The whole check in-process: a replayed registry (fakeregistry.FakeRegistry behind
`httpx.MockTransport`), an in-memory store, a local webhook sink and a fake clock. No
registry binary: a phase, or the whole cycle, can be tested in milliseconds.

    world = CheckWorld(tmp_path)
    world.fake.put_image("app", "1.0", seed="a")
    world.configure(f'[[watch]]\\nimage = "{world.host}/app:1.0"\\n')
    report = world.cycle(T0)
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from fakeregistry import FakeRegistry
from sinks import WebhookSink

from tagwatch.check import CycleReport, run_cycle
from tagwatch.config import Config, load_config
from tagwatch.notify import Notifier
from tagwatch.registry.client import RegistryClient
from tagwatch.store import Store

__all__ = ["HOST", "CheckWorld"]

HOST = "registry.example"


class CheckWorld:
    def __init__(self, tmp_path: Path, host: str = HOST) -> None:
        self.tmp_path = tmp_path
        self.host = host
        self.fake = FakeRegistry(host=host, scheme="none")
        self.webhook = WebhookSink()
        self.config: Config | None = None
        self.store = Store(":memory:")
        self.client = RegistryClient(transport=httpx.MockTransport(self.fake), retries=0)
        self.notifier: Notifier | None = None

    def configure(self, text: str, settings: str = "", notify: str = "") -> Config:
        """Load a configuration: `text` holds [[watch]]/[[pin]] tables, `settings` extra
        [tagwatch] keys, `notify` extra keys of the one [[notify]] (the webhook)."""
        path = self.tmp_path / "config.toml"
        path.write_text(
            f'[tagwatch]\ndatabase = ":memory:"\n{settings}\n{text}\n'
            f'[[notify]]\nurl = "{self.webhook.url}"\n{notify}\n'
        )
        self.config = load_config(path, env={})
        self.notifier = Notifier(
            self.config.notify, self.store, timezone=self.config.settings.timezone
        )
        return self.config

    def cycle(self, at: datetime, **kwargs: Any) -> CycleReport:
        assert self.config is not None, "configure() first"
        return run_cycle(
            self.config, self.store, self.client, self.notifier, clock=lambda: at, **kwargs
        )

    # --- reading what the cycle left -------------------------------------------------------

    def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        cursor = self.store.db.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def events(self) -> list[dict[str, Any]]:
        """Every recorded event, oldest first, details decoded."""
        out = self.rows("SELECT * FROM events ORDER BY id")
        for row in out:
            row["details"] = json.loads(row["details"] or "{}")
        return out

    def deliveries(self) -> list[tuple[str, str, str | None]]:
        """(event kind, state, due_at) of every delivery, in event order."""
        return [
            (r["kind"], r["state"], r["due_at"])
            for r in self.rows(
                "SELECT e.kind, d.state, d.due_at FROM deliveries d "
                "JOIN events e ON e.id = d.event_id ORDER BY d.event_id"
            )
        ]

    def titles(self) -> list[str]:
        return [m["title"] for m in self.webhook.received]

    def close(self) -> None:
        self.client.close()
        self.store.close()
        self.webhook.close()
