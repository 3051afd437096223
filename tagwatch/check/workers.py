"""How a phase runs its HTTP: on worker threads, at most `concurrency` requests in flight and
at most a registry's cap for each registry. Every phase that talks to registries hands its
jobs to `Workers.run`; the database stays on the cycle's own thread.

A job is one target's (or one tag's) work, and its failure is that target's alone: whatever
a job raises — a registry error, `RecursionError` on a hostile document, `MemoryError`, a
bug — becomes the result its phase's `fallback` makes of the exception. Nothing a job
raises reaches the cycle, and the other jobs run on."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from tagwatch.config import Config

__all__ = ["Fallback", "Job", "Workers", "registry_caps", "run_bounded"]

T = TypeVar("T")


class Slots(Protocol):
    """The daemon's share of `concurrency` (registry/slots.py): held around each job, or one
    by one around each of the HEADs multiplexed on one thread."""

    def __enter__(self) -> Any: ...

    def __exit__(self, kind: Any, value: Any, traceback: Any, /) -> Any: ...

    def acquire(self) -> None: ...

    def try_acquire(self) -> bool: ...

    def release(self) -> None: ...


#: One unit of HTTP work: the registry it talks to (its group) and the call.
Job = tuple[str, Callable[[], T]]

#: What a phase makes of a job that raised: the job's index and the exception in, the
#: job's result out (a failed observation, "details unknown", no facts). Must not raise.
Fallback = Callable[[int, BaseException], T]


def registry_caps(config: Config) -> dict[str, int]:
    """Requests in flight per registry: its own `concurrency`, else half the global limit
    when several registries are checked (so one slow registry cannot take every slot from
    the others), else the global limit."""
    limit = config.settings.concurrency
    hosts = {target.ref.registry for target in config.targets}
    default = max(1, (limit + 1) // 2) if len(hosts) > 1 else limit
    caps = dict.fromkeys(hosts, default)
    for host, registry in config.registries.items():
        if registry.concurrency is not None:
            caps[host] = min(registry.concurrency, limit)
    return caps


@dataclass(frozen=True, slots=True)
class Workers:
    """The limits one cycle runs its jobs under. `slots` is shared by cycles running at the
    same time (the daemon's per-registry jobs), so `limit` holds across all of them."""

    limit: int
    caps: Mapping[str, int]
    slots: Slots | None = None

    @classmethod
    def for_config(cls, config: Config, slots: Slots | None = None) -> Workers:
        return cls(config.settings.concurrency, registry_caps(config), slots)

    def run(self, jobs: Sequence[Job[T]], fallback: Fallback[T]) -> list[T]:
        """Run the jobs under the limits; their results in job order, `fallback(index,
        exception)` standing in for each job that raised."""
        return run_bounded(jobs, self.limit, self.caps, slots=self.slots, fallback=fallback)


def _holding(slots: Slots, job: Callable[[], T]) -> T:
    with slots:
        return job()


def run_bounded(
    jobs: Sequence[tuple[str, Callable[[], T]]],
    limit: int,
    caps: Mapping[str, int],
    slots: Slots | None = None,
    *,
    fallback: Fallback[T],
) -> list[T]:
    """Run `(group, job)` pairs with at most `limit` running at once and at most
    `caps[group]` per group; returns results in job order. A group at its cap waits in its
    own queue and never holds a slot that another group could use.

    A job that raises (anything: `RecursionError`, `MemoryError`, a bug) has
    `fallback(index, exception)` as its result; the other jobs go on, and nothing is raised
    to the caller. A fallback that raises in turn is a bug of the phase: its exception is
    raised here once every job has finished.

    `limit` long-lived worker threads pull the next job themselves (round-robin over the
    groups below their cap) instead of a coordinator handing out one future per job: at a
    few thousand tags per cycle, waking a coordinator per completed request cost about a
    fifth of the cycle's CPU."""
    if not jobs:
        return []
    queues: dict[str, deque[int]] = {}
    for index, (group, _) in enumerate(jobs):
        queues.setdefault(group, deque()).append(index)
    running: dict[str, int] = dict.fromkeys(queues, 0)
    order = deque(queues)
    results: list[T | None] = [None] * len(jobs)
    errors: list[BaseException] = []  # fallbacks that raised (bugs), raised at the end
    lock = threading.Condition()

    def take() -> tuple[str, int] | None:
        """The next job whose group is below its cap; None when every job is taken."""
        with lock:
            while True:
                if not queues:
                    return None
                for _ in range(len(order)):
                    group = order[0]
                    order.rotate(-1)
                    if running[group] < caps.get(group, limit):
                        queue = queues[group]
                        index = queue.popleft()
                        if not queue:
                            del queues[group]
                            order.remove(group)
                        running[group] += 1
                        return group, index
                lock.wait()  # every group with work left is at its cap

    def work() -> None:
        while (item := take()) is not None:
            group, index = item
            try:
                job = jobs[index][1]
                results[index] = _holding(slots, job) if slots is not None else job()
            except BaseException as exc:  # noqa: BLE001 - one job's failure is its own
                try:
                    results[index] = fallback(index, exc)
                except BaseException as bug:  # noqa: BLE001 - raised below, after the rest
                    with lock:
                        errors.append(bug)
            finally:
                with lock:
                    running[group] -= 1
                    lock.notify_all()

    workers = [
        threading.Thread(target=work, name=f"check-{n}", daemon=True)
        for n in range(max(1, min(limit, len(jobs))))
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return results  # type: ignore[return-value]
