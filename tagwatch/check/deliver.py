"""Phase 9, deliver: every due delivery of the outbox, this cycle's and any that failed or
waited before (a failed one stays pending and is retried next cycle)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tagwatch.notify import Notifier


__all__ = ["deliver"]


def deliver(notifier: Notifier, clock: Callable[[], datetime]) -> tuple[int, int]:
    """(sent, failed) messages. Raises StoreError when the outbox cannot be read or marked."""
    return notifier.deliver(clock)
