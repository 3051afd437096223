"""The global `concurrency`, shared fairly among registries.

In the daemon every registry's checks run as their own job, and `concurrency` bounds the
requests in flight across all of them. A plain semaphore lets a stuck registry (every request
waiting out its `timeout`) take every slot it can, and the registries it starves keep queueing
behind it. `FairSlots` hands slots out so that a stuck registry holds only its own share:

* among the registries waiting for a slot, the one holding the fewest gets the next (so a
  registry that starts its cycle while others hold every slot gets the first one freed);
* a registry's first slot is never held back while one is free;
* beyond its first, a registry takes a slot only if enough stay free for the registries that
  hold none right now (one each, and never more than half of all slots are kept back this
  way), so a registry whose cycle is due finds a slot free.

A registry's own `concurrency` cap is applied before (`cycle.run_bounded`), not here.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from types import TracebackType

__all__ = ["FairSlots"]


class FairSlots:
    """`total` slots shared by named groups (registries). Thread-safe."""

    def __init__(self, total: int, groups: Iterable[str] = ()) -> None:
        self.total = max(1, total)
        self._groups = set(groups)
        self._held: Counter[str] = Counter()
        self._waiting: Counter[str] = Counter()
        self._free = self.total
        self._cond = threading.Condition()

    def set_groups(self, groups: Iterable[str]) -> None:
        """The registries that may ask (slots are kept free for those holding none)."""
        with self._cond:
            self._groups = set(groups)
            self._cond.notify_all()

    def group(self, name: str) -> _GroupSlots:
        """A context manager holding one slot for `name` while its block runs."""
        return _GroupSlots(self, name)

    def held(self, name: str) -> int:
        with self._cond:
            return self._held[name]

    def acquire(self, name: str) -> None:
        with self._cond:
            self._waiting[name] += 1
            try:
                self._cond.wait_for(lambda: self._may_take(name))
            finally:
                self._waiting[name] -= 1
            self._held[name] += 1
            self._free -= 1

    def try_acquire(self, name: str) -> bool:
        """Take a slot for `name` if it may have one now, without waiting."""
        with self._cond:
            if not self._may_take(name):
                return False
            self._held[name] += 1
            self._free -= 1
            return True

    def release(self, name: str) -> None:
        with self._cond:
            self._held[name] -= 1
            self._free += 1
            self._cond.notify_all()

    def _may_take(self, name: str) -> bool:
        if self._free <= 0:
            return False
        mine = self._held[name]
        if any(n and self._held[g] < mine for g, n in self._waiting.items() if g != name):
            return False  # a waiting registry holding fewer goes first
        if mine == 0:
            return True
        idle = sum(1 for g in self._groups if g != name and not self._held[g])
        return self._free - 1 >= min(idle, self.total // 2)


class _GroupSlots:
    """One registry's view of the slots: a context manager (a thread's request), or taken and
    released one by one (the HEADs multiplexed on one thread, registry/heads.py)."""

    def __init__(self, slots: FairSlots, name: str) -> None:
        self._slots = slots
        self._name = name

    def acquire(self) -> None:
        self._slots.acquire(self._name)

    def try_acquire(self) -> bool:
        return self._slots.try_acquire(self._name)

    def release(self) -> None:
        self._slots.release(self._name)

    def __enter__(self) -> None:
        self._slots.acquire(self._name)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._slots.release(self._name)
