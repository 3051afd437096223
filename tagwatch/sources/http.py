"""GET-and-parse-JSON for the sources that read an API (a container engine, Kubernetes):
every request ends within its time limit as a whole, every body is read up to a cap, and
every failure is one `SourceError` line that says where and what, never a traceback. The
peer may be anything: its text is folded to one printable line before it reaches a log."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from tagwatch.errors import SourceError

__all__ = ["MAX_BODY", "HTTPStatusError", "get_json", "one_line", "reason"]

MAX_BODY = 64 * 1024 * 1024  # a page of 500 Pods is a few MB; ten thousand containers ~20 MB


class HTTPStatusError(SourceError):
    """The peer answered, with an HTTP status other than 200."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def one_line(text: str, limit: int = 300) -> str:
    """A peer's text, safe for a log line or an alert: no control characters, one line."""
    folded = " ".join(text.split())
    folded = "".join(c for c in folded if c.isprintable())
    return folded if len(folded) <= limit else folded[: limit - 1] + "…"


def _peer_message(body: bytes) -> str:
    """The `message` of an API's JSON error (Docker's and Kubernetes' both use it)."""
    try:
        data = json.loads(body[:65536])
    except (ValueError, RecursionError):
        return one_line(body[:300].decode("utf-8", "replace"))
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return one_line(data["message"])
    return ""


def get_json(
    client: httpx.Client,
    path: str,
    *,
    where: str,
    timeout: float,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    hint: dict[int, str] | None = None,
) -> tuple[Any, httpx.Headers]:
    """GET `path` and parse its JSON body; (value, response headers). `where` starts every
    error message ("engine unix:///var/run/docker.sock"); `hint` adds a sentence for an HTTP
    status (401, 403…)."""
    deadline = time.monotonic() + timeout
    shown = path
    try:
        with client.stream(
            "GET", path, params=params, headers=headers, timeout=httpx.Timeout(timeout)
        ) as response:
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_raw():
                size += len(chunk)
                if size > MAX_BODY:
                    raise SourceError(f"{where}: answer to GET {shown} is over {MAX_BODY} bytes")
                if time.monotonic() > deadline:
                    raise SourceError(f"{where}: GET {shown}: no complete answer in {timeout:g}s")
                chunks.append(chunk)
            status = response.status_code
            response_headers = response.headers
    except httpx.TimeoutException:
        raise SourceError(f"{where}: GET {shown}: no answer in {timeout:g}s") from None
    except httpx.ConnectError as exc:
        raise SourceError(f"{where}: cannot connect: {reason(exc)}") from None
    except httpx.HTTPError as exc:
        raise SourceError(f"{where}: GET {shown}: {reason(exc)}") from None
    body = b"".join(chunks)
    encoding = response_headers.get("content-encoding", "identity").lower()
    if encoding not in ("identity", ""):
        raise SourceError(f"{where}: GET {shown}: unexpected content-encoding {encoding!r}")
    if status != 200:
        message = _peer_message(body)
        text = f"{where}: GET {shown}: HTTP {status}" + (f": {message}" if message else "")
        if hint and status in hint:
            text += f" ({hint[status]})"
        raise HTTPStatusError(text, status)
    try:
        return json.loads(body), response_headers
    except (ValueError, RecursionError):
        raise SourceError(f"{where}: GET {shown}: the answer is not JSON") from None


def reason(exc: BaseException) -> str:
    """The innermost OS error of a connection failure, e.g. `[Errno 13] Permission denied`."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            text = seen.strerror
            if seen.errno == 13:
                text += " (tagwatch's user may not use it: e.g. add it to the docker group)"
            return one_line(text)
        seen = seen.__cause__ or seen.__context__
    return one_line(str(exc) or type(exc).__name__)
