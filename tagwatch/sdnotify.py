"""systemd's notification protocol, without libsystemd: datagrams to `$NOTIFY_SOCKET`.

The protocol is stable (https://systemd.io/PORTABILITY_AND_STABILITY/); this follows
systemd's own self-contained example (`man/notify-selfcontained-example.py`): a path, or an
abstract socket written `@name`. Without `NOTIFY_SOCKET` every call does nothing.

Every send is non-blocking. A datagram socket whose reader is busy holds only
`net.unix.max_dgram_qlen` messages (10 on a host whose init does not raise it); a blocking
send to a full socket would stall whichever thread sent it, and with it the checks and the
handling of SIGTERM. So a STATUS or WATCHDOG message that cannot be queued right now is
dropped (the next one carries the same news) and said once in the log; READY, RELOADING and
STOPPING, which systemd waits for, are tried again for a short, bounded time.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

__all__ = ["SystemdNotifier"]

log = logging.getLogger("tagwatch.systemd")

PERSIST = 2.0  # seconds a state change (READY, RELOADING, STOPPING) keeps trying to queue


class SystemdNotifier:
    """Sends sd_notify(3) messages; safe to call from any thread."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        env = os.environ if env is None else env
        path = env.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if path.startswith("@"):
            self.address = "\0" + path[1:]
        elif path.startswith("/"):
            self.address = path
        elif path:
            log.warning("NOTIFY_SOCKET=%r is neither a path nor an abstract socket; ignored", path)
        self.watchdog_interval: float | None = None  # seconds between WATCHDOG=1, or None
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        if usec and usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_interval = int(usec) / 1e6 / 2  # half, as sd_watchdog_enabled(3) says
        self._sleep = sleep
        self._lock = threading.Lock()
        self._dropping = False  # a message was dropped and not yet followed by a sent one
        self.dropped = 0  # messages that could not be queued (for tests and debugging)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str, persist: float = 0.0) -> bool:
        """Queue one message without blocking. When the socket is full, try again for up
        to `persist` seconds (0: drop it at once). True when it was queued."""
        if self.address is None:
            return False
        message = "\n".join(fields).encode()
        deadline = time.monotonic() + persist
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)
                sock.connect(self.address)
                while True:
                    try:
                        sock.send(message)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            self._dropped(fields[0])
                            return False
                        self._sleep(0.01)
        except BlockingIOError:  # connect() itself can find the queue full
            self._dropped(fields[0])
            return False
        except OSError as exc:
            log.warning("could not notify systemd: %s", exc)
            return False
        with self._lock:
            if self._dropping:
                self._dropping = False
                log.info("systemd's notification socket takes messages again")
        return True

    def _dropped(self, first: str) -> None:
        with self._lock:
            self.dropped += 1
            said, self._dropping = self._dropping, True
        if not said:
            log.warning(
                "systemd's notification socket is full; dropped %s (said once until it "
                "takes messages again)",
                first.split("=", 1)[0],
            )

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}", persist=PERSIST)

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def reloading(self) -> bool:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", persist=PERSIST)

    def stopping(self) -> bool:
        return self.send("STOPPING=1", persist=PERSIST)

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")
