"""The daemon's listener on `[metrics] listen`: a bounded HTTP server (server.py) and what
it serves (app.py)."""

from __future__ import annotations

from tagwatch.web.app import WebApp
from tagwatch.web.server import Limits, Request, Response, Server

__all__ = ["Limits", "Request", "Response", "Server", "WebApp"]
