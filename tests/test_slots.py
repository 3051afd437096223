"""FairSlots: the global `concurrency` shared so that stuck registries hold only their share."""

from __future__ import annotations

import threading
import time

from tagwatch.registry.slots import FairSlots


class Holder:
    """A thread that takes a slot for `group` and holds it until released."""

    def __init__(self, slots: FairSlots, group: str) -> None:
        self.got = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(slots, group), daemon=True)
        self.thread.start()

    def _run(self, slots: FairSlots, group: str) -> None:
        with slots.group(group):
            self.got.set()
            self.release.wait(10)


def hold(slots: FairSlots, group: str, n: int) -> list[Holder]:
    holders = [Holder(slots, group) for _ in range(n)]
    time.sleep(0.05)
    return holders


def test_a_lone_registry_may_use_every_slot() -> None:
    slots = FairSlots(4, ["a"])
    holders = hold(slots, "a", 4)
    assert all(h.got.wait(1) for h in holders) and slots.held("a") == 4
    for h in holders:
        h.release.set()


def test_stuck_registries_leave_a_slot_for_a_third() -> None:
    """Two registries that never finish want all 8 slots (4 each, their own cap): one is kept
    free for the third, whose check then starts at once."""
    slots = FairSlots(8, ["stuck1", "stuck2", "healthy"])
    stuck = hold(slots, "stuck1", 4) + hold(slots, "stuck2", 4)
    assert slots.held("stuck1") + slots.held("stuck2") == 7
    healthy = Holder(slots, "healthy")
    assert healthy.got.wait(1)
    healthy.release.set()
    for h in stuck:
        h.release.set()


def test_a_waiting_registry_with_fewer_slots_goes_first() -> None:
    slots = FairSlots(4, ["a", "b"])
    a = hold(slots, "a", 4)
    assert slots.held("a") == 3  # one slot is kept for b, which holds none
    b = hold(slots, "b", 2)
    assert slots.held("b") == 1  # b's first at once; its second waits, as does a's fourth
    waiting_a = next(h for h in a if not h.got.is_set())
    waiting_b = next(h for h in b if not h.got.is_set())
    next(h for h in a if h.got.is_set()).release.set()
    assert waiting_b.got.wait(1)  # a holds 2 now, b 1: b's waiter goes first
    assert not waiting_a.got.wait(0.2)
    for h in (*a, *b):
        h.release.set()
    assert waiting_a.got.wait(1)


def test_the_reserve_keeps_a_slot_for_an_idle_registry() -> None:
    slots = FairSlots(2, ["a", "b"])
    a = hold(slots, "a", 2)
    assert slots.held("a") == 1  # half of the slots stay free for b
    b = Holder(slots, "b")
    assert b.got.wait(1)
    for h in (*a, b):
        h.release.set()


def test_reserve_is_at_most_half() -> None:
    """With more registries than slots, a registry still gets half of them."""
    slots = FairSlots(4, [f"r{i}" for i in range(10)])
    holders = hold(slots, "r0", 4)
    assert slots.held("r0") == 2
    for h in holders:
        h.release.set()
