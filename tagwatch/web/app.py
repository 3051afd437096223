"""What the daemon's listener answers: the routes, on top of tagwatch.web.server.

    GET /metrics                                     the Prometheus exposition
    GET /healthz                                     200 or 503, one line saying why
    GET /                                            the status page (page.py)
    GET /api/v1/targets                              what `status --json` prints
    GET /api/v1/targets/{image}:{tag}/history        what `history --json` prints

Read-only: GET and HEAD only (the server refuses the rest). The JSON is built by
tagwatch.views, as the command line builds it, and printed the same way, byte for byte.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from tagwatch.config import Config
from tagwatch.core.refs import parse_ref
from tagwatch.errors import ReferenceError_
from tagwatch.metrics import Metrics
from tagwatch.store import Store
from tagwatch.views import history_objects, status_objects, to_json
from tagwatch.web.page import CSP, render_status_page
from tagwatch.web.server import Request, Response

__all__ = ["WebApp"]

log = logging.getLogger("tagwatch.web")

HTML = "text/html; charset=utf-8"
JSON = "application/json"
TARGETS = "/api/v1/targets"
HISTORY_SUFFIX = "/history"
# Nothing here is cached or framed, and no answer is ever sniffed into another type.
COMMON = (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"))
PAGE_HEADERS = (
    *COMMON,
    ("Content-Security-Policy", CSP),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
)


def _json(status: int, value: Any) -> Response:
    return Response(status, to_json(value), JSON, COMMON)  # as the command line prints it


class WebApp:
    """The handler the listener calls on a worker thread, one call per request.

    `config` gives the running configuration (it changes on reload); the store is the
    daemon's (shared, serialised by its own lock); `clock` is the daemon's."""

    def __init__(
        self,
        metrics: Metrics,
        health: Callable[[], tuple[bool, str]],
        config: Callable[[], Config],
        store: Store,
        clock: Callable[[], datetime],
    ) -> None:
        self.metrics = metrics
        self.health = health
        self.config = config
        self.store = store
        self.clock = clock

    def __call__(self, request: Request) -> Response:
        path = request.path
        if path == "/metrics":
            return self._metrics(request.gzip)
        if path == "/healthz":
            ok, why = self.health()
            return Response(200 if ok else 503, (why + "\n").encode(), headers=COMMON)
        if path in ("/", "/index.html"):
            now = self.clock()
            objects = status_objects(self.config(), self.store, now=now)
            page = render_status_page(objects, now, self.health())
            return Response(200, page.encode(), HTML, PAGE_HEADERS)
        if path in (TARGETS, TARGETS + "/"):
            return _json(200, status_objects(self.config(), self.store, now=self.clock()))
        if path.startswith(TARGETS + "/") and path.endswith(HISTORY_SUFFIX):
            return self._history(path[len(TARGETS) + 1 : -len(HISTORY_SUFFIX)])
        return Response.text(404, "not found: try / , /metrics, /healthz or /api/v1/targets")

    def _metrics(self, gzip: bool) -> Response:
        try:
            body = self.metrics.exposition(gzip=gzip)
        except Exception as exc:  # noqa: BLE001 - a scrape must get an answer
            log.error("metrics: %s", exc)
            return Response.text(500, "metrics failed")
        headers = [("Vary", "Accept-Encoding")]
        if gzip:
            headers.append(("Content-Encoding", "gzip"))
        return Response(200, body, CONTENT_TYPE_LATEST, headers)

    def _history(self, reference: str) -> Response:
        try:
            ref = parse_ref(reference)
        except ReferenceError_ as exc:
            return _json(400, {"error": str(exc)})
        if ref.digest is not None:
            return _json(400, {"error": "a tag's history takes image:tag, without a digest"})
        objects = history_objects(self.store, (ref.registry, ref.repository, ref.tag or "latest"))
        # Nothing recorded under that name: `history --json` prints [] and exits 1.
        return _json(200 if objects else 404, objects)
