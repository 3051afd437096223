"""What the daemon's listener answers: the routes, on top of tagwatch.web.server.

* `/metrics`: the Prometheus exposition;
* `/healthz`: 200 or 503 with one line saying why;
* `/`: a small index page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from tagwatch.metrics import Metrics
from tagwatch.web.server import Request, Response

__all__ = ["WebApp"]

log = logging.getLogger("tagwatch.web")

HTML = "text/html; charset=utf-8"
INDEX = (
    b"<html><head><title>tagwatch</title></head><body><h1>tagwatch</h1>"
    b"<p><a href='/metrics'>metrics</a> <a href='/healthz'>healthz</a>"
    b"</p></body></html>\n"
)


class WebApp:
    """The handler the listener calls on a worker thread, one call per request."""

    def __init__(self, metrics: Metrics, health: Callable[[], tuple[bool, str]]) -> None:
        self.metrics = metrics
        self.health = health

    def __call__(self, request: Request) -> Response:
        path = request.path
        if path == "/metrics":
            try:
                body = self.metrics.exposition()
            except Exception as exc:  # noqa: BLE001 - a scrape must get an answer
                log.error("metrics: %s", exc)
                return Response.text(500, "metrics failed")
            return Response(200, body, CONTENT_TYPE_LATEST)
        if path == "/healthz":
            ok, why = self.health()
            return Response.text(200 if ok else 503, why)
        if path == "/":
            return Response(200, INDEX, HTML)
        return Response.text(404, "not found")
