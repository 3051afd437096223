"""`tagwatch healthcheck`: ask the running daemon, through `[metrics] listen`, whether it is
healthy (GET /healthz). For a container's HEALTHCHECK, Kubernetes exec probes and cron.

The answer is one line and an exit status: 0 when /healthz answers 200, 1 otherwise, with
the reason: nothing listens (not running), no answer in time (hung), or the daemon's own
explanation of why it is unhealthy (its 503 body). The whole exchange ends within `timeout`.
Plain http.client, so that a probe every few seconds does not load httpx.
"""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass

from tagwatch.core.listen import parse_listen

__all__ = ["Health", "probe", "probe_address"]

MAX_BODY = 4096  # /healthz answers one line; anything longer is cut


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    message: str


def probe_address(listen: str) -> tuple[str, int]:
    """Where to reach a daemon listening on `listen`: a wildcard address (`:9479`,
    `0.0.0.0:9479`, `[::]:9479`) is reached on loopback."""
    parsed = parse_listen(listen)
    if parsed.any_port:
        raise ValueError(
            f"listen {listen!r} asks for any free port (0): the daemon's port is known only "
            "to its log; set a fixed port for healthcheck"
        )
    host, port = parsed.host, parsed.port
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, port


def _clean(text: str) -> str:
    """The daemon's answer as one printable line."""
    line = " ".join(text.split())
    return "".join(c for c in line if c.isprintable())[:300]


def probe(listen: str, timeout: float = 3.0) -> Health:
    host, port = probe_address(listen)
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    url = f"http://{shown}/healthz"
    deadline = time.monotonic() + timeout
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/healthz", headers={"User-Agent": "tagwatch-healthcheck"})
        if conn.sock is not None:
            conn.sock.settimeout(max(0.01, deadline - time.monotonic()))
        response = conn.getresponse()
        body = response.read(MAX_BODY).decode("utf-8", "replace")
    except ConnectionRefusedError:
        return Health(False, f"not running: nothing listens on {shown} (connection refused)")
    except TimeoutError:
        return Health(False, f"not answering: no answer from {url} within {timeout:g}s")
    except OSError as exc:
        return Health(False, f"not reachable: {url}: {exc.strerror or exc}")
    except http.client.HTTPException as exc:
        return Health(False, f"not tagwatch: {url} answered with a bad response ({exc!r})")
    finally:
        conn.close()
    text = _clean(body)
    if response.status == 200:
        return Health(True, text or "ok")
    if response.status == 503:
        return Health(False, f"unhealthy: {text or 'no reason given'}")
    return Health(
        False,
        f"unhealthy: {url} answered HTTP {response.status} (is another program listening "
        f"on {shown}?)",
    )
