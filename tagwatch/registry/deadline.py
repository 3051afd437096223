"""The time budget of the registry request this thread is making.

httpx's and the socket module's timeouts bound each read; a peer that sends one byte per
second never trips them. So a request runs inside `within(timeout)`, and everything that
waits on its behalf — every socket read, write, connect and TLS handshake (through
`transport.py`), the token request and every redirect (they run on the same thread, inside
the same `httpx.Client.send`), and waiting for a lock another thread holds while it fetches a
token — asks `left()` how long it may still wait. Once nothing is left the wait fails as a
timeout, whatever the peer does.

One budget per thread: the client is synchronous, so a request never leaves the thread that
made it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["budget", "left", "within"]

_local = threading.local()


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Run the block as one request that must end within `seconds` (nested budgets keep the
    earlier end)."""
    previous: float | None = getattr(_local, "until", None)
    until = time.monotonic() + seconds
    _local.until = until if previous is None else min(previous, until)
    try:
        yield
    finally:
        _local.until = previous


def left() -> float | None:
    """Seconds left in this thread's budget (0 once spent), or None outside of any."""
    until: float | None = getattr(_local, "until", None)
    if until is None:
        return None
    return max(0.0, until - time.monotonic())


def budget(timeout: float | None) -> float | None:
    """What one wait may take: `timeout`, cut to what is left of the budget."""
    remaining = left()
    if remaining is None:
        return timeout
    return remaining if timeout is None else min(timeout, remaining)
