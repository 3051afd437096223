"""Per-registry pacing: what keeps tagwatch from earning a ban.

One `Gate` per registry host, shared by the threads of a cycle and, in the daemon, kept
across cycles:

* **Rate cap** (`[[registry]] rate = "10/s"`): request starts are spaced evenly.
* **Backoff after HTTP 429**: the registry is closed for `Retry-After` seconds (or, without
  the header, 30 s doubling per 429 in a row, at most an hour). While it is closed, checks of
  that registry fail at once as rate-limited, without a request; other registries go on.
* **Quota**: where a registry reports `ratelimit-remaining` (Docker Hub counts manifest GETs;
  HEADs are free), GETs are spread over the rest of the window once fewer than a tenth of the
  quota is left, instead of being spent in one burst. A GET that would come too early is not
  sent: the check is reported rate-limited and tried again next cycle.

The clock and sleep are injectable for tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tagwatch.errors import RateLimited

__all__ = ["Gate", "parse_ratelimit_header"]

FIRST_BACKOFF = 30.0
MAX_BACKOFF = 3600.0
QUOTA_RESERVE = 0.1  # pace GETs once less than this share of the quota is left
MAX_PACING_SLEEP = 30.0  # a rate cap may delay a request this long; longer is "not now"


def parse_ratelimit_header(value: str | None) -> tuple[float, float | None] | None:
    """`76;w=21600` -> (76, 21600); `76` -> (76, None); None if absent or unreadable."""
    if not value:
        return None
    first = value.split(",", 1)[0]
    head, _, params = first.partition(";")
    try:
        count = float(head.strip())
    except ValueError:
        return None
    window = None
    for param in params.split(";"):
        key, _, val = param.partition("=")
        if key.strip() == "w":
            try:
                window = float(val.strip())
            except ValueError:
                window = None
    return count, window


class Gate:
    def __init__(
        self,
        host: str,
        rate: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.host = host
        self.spacing = 1.0 / rate if rate else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_start = 0.0
        self._blocked_until = 0.0
        self._strikes = 0
        self._get_spacing = 0.0
        self._next_get = 0.0
        self.remaining: float | None = None
        self.limit: float | None = None

    # --- before a request -------------------------------------------------------------------

    def may_start_now(self) -> bool:
        """Whether a HEAD may start at once, without `wait`: no rate cap to space it and not
        backing off after a 429 (the multiplexed HEADs of registry/heads.py cannot sleep)."""
        with self._lock:
            return not self.spacing and self._blocked_until <= self._clock()

    def wait(self, method: str) -> None:
        """Return when a request may start; raise RateLimited when it may not start soon."""
        with self._lock:
            now = self._clock()
            if self._blocked_until > now:
                left = self._blocked_until - now
                raise RateLimited(
                    f"{self.host}: backing off after HTTP 429, {left:.0f}s left",
                    retry_after=left,
                )
            if method == "GET" and self._get_spacing:
                if self._next_get > now:
                    raise RateLimited(
                        f"{self.host}: rate-limit quota nearly spent ({self.remaining:.0f} of "
                        f"{self.limit:.0f} left); GETs are spread over the window, next in "
                        f"{self._next_get - now:.0f}s",
                        retry_after=self._next_get - now,
                    )
                self._next_get = now + self._get_spacing
            start = max(now, self._next_start)
            if start - now > MAX_PACING_SLEEP:
                raise RateLimited(
                    f"{self.host}: rate cap reached; next request slot in {start - now:.0f}s",
                    retry_after=start - now,
                )
            self._next_start = start + self.spacing
        if start > now:
            self._sleep(start - now)

    # --- after a response -------------------------------------------------------------------

    def rate_limited(self, retry_after: float | None) -> float:
        """A 429: close the registry for a while; returns for how long."""
        with self._lock:
            self._strikes += 1
            if retry_after is None:
                retry_after = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (self._strikes - 1))
            retry_after = min(max(retry_after, 1.0), MAX_BACKOFF)
            self._blocked_until = max(self._blocked_until, self._clock() + retry_after)
            return retry_after

    def answered(self, remaining: str | None, limit: str | None) -> None:
        """Any other answer: the 429 streak ends; read the quota headers if present."""
        quota = parse_ratelimit_header(remaining)
        total = parse_ratelimit_header(limit)
        with self._lock:
            self._strikes = 0
            if quota is None:
                return
            self.remaining = quota[0]
            window = quota[1] or (total[1] if total else None) or 21600.0
            self.limit = total[0] if total else None
            reserve = (self.limit or 100.0) * QUOTA_RESERVE
            if self.remaining <= reserve:
                self._get_spacing = window / max(self.remaining, 1.0)
            else:
                self._get_spacing = 0.0
