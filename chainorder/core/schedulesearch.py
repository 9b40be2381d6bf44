"""The optimal schedule of one plan on T threads: branch and bound over start orders.

Each step in turn goes to the thread free earliest, starting no earlier than the
step before it. Every optimal schedule is reproduced this way by the order of its
start times, so the search is exact (with a memory limit per device, which thread
holds what matters too, and the search branches over threads). Bounds: the longest
path still to run from each step's earliest start, the remaining work spread over
the threads before its tail (:func:`~chainorder.core.schedulebounds.tail_bound`),
energetic reasoning at every node with four or more steps to go, and, before a
plan that must beat a makespan is searched, two leaves on one thread
(:func:`~chainorder.core.schedulebounds.pair_bound`) and energetic reasoning on the
whole tree. States reached twice (the same steps done, the same thread free times
and unconsumed results, clipped at the last start) are searched once.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .schedule import Slot, TaskTree, as_soon_as_possible, list_schedule
from .schedulebounds import energy_infeasible, energy_overloaded, pair_bound, tail_bound

__all__ = ["least_makespan", "SearchTimeout"]


class SearchTimeout(Exception):
    """The branch and bound ran past its deadline."""


class _Search:
    """Branch and bound over start orders of one task tree (see the module docstring)."""

    def __init__(
        self, tree: TaskTree, threads: int, upper: int, deadline: float | None, fits: Callable | None = None
    ) -> None:
        self.durations = tree.durations
        self.children = tree.children
        self.parents = tree.parents
        self.tails = tree.tails()
        self.threads = threads
        self.best = upper
        self.best_slots: list[Slot] | None = None
        self.deadline = deadline
        self.fits = fits
        self.nodes = 0
        count = len(self.durations)
        self.order = tree.topological_order()
        self.waiting = [len(below) for below in self.children]
        self.slots: list[Slot | None] = [None] * count
        self.mask = 0
        self.memo: set = set()

    def run(self) -> None:
        available = [t for t in range(len(self.durations)) if not self.children[t]]
        self._branch(available, [0] * self.threads, 0)

    def _bound(self, free: list[int], last: int) -> int:
        earliest = max(last, min(free))
        bound = 0
        estimate: dict[int, int] = {}
        for task in self.order:
            if self.slots[task] is not None:
                continue
            ready = earliest
            for child in self.children[task]:
                slot = self.slots[child]
                ready = max(ready, slot.end if slot is not None else estimate[child])
            estimate[task] = ready + self.durations[task]
            bound = max(bound, estimate[task] + self.tails[task])
        if bound >= self.best:
            return bound
        items = [(self.tails[task], self.durations[task]) for task in estimate]
        bound = max(bound, tail_bound(items, sorted(max(f, last) for f in free)))
        if bound < self.best and len(estimate) >= 4 and self._overloaded(free, last, estimate):
            return self.best
        return bound

    def _overloaded(self, free: list[int], last: int, estimate: dict[int, int]) -> bool:
        """Energetic reasoning against beating the best makespan from this partial schedule:
        the threads busy past ``last`` are tasks fixed in place, the steps not yet started
        have their earliest starts and latest ends."""
        deadline = self.best - 1
        windows = [(last, free_at, free_at - last) for free_at in free if free_at > last]
        windows += [
            (estimate[task] - self.durations[task], deadline - self.tails[task], self.durations[task])
            for task in estimate
        ]
        return energy_overloaded(windows, self.threads)

    def _branch(self, available: list[int], free: list[int], last: int) -> None:
        self.nodes += 1
        if self.deadline is not None and self.nodes % 256 == 0 and time.perf_counter() > self.deadline:
            raise SearchTimeout
        if not available:
            makespan = max(free)
            if makespan < self.best and (self.fits is None or self.fits(tuple(self.slots))):
                self.best, self.best_slots = makespan, list(self.slots)  # type: ignore[arg-type]
            return
        if self._seen(free, last) or self._bound(free, last) >= self.best:
            return
        for task in sorted(available, key=lambda t: -(self.durations[t] + self.tails[t])):
            ready = max((self.slots[c].end for c in self.children[task]), default=0)  # type: ignore[union-attr]
            for device in self._devices(free):
                start = max(ready, free[device], last)
                saved = free[device]
                free[device] = start + self.durations[task]
                self.slots[task] = Slot(device, start, start + self.durations[task])
                self.mask |= 1 << task
                parent = self.parents[task]
                newly = []
                if parent >= 0:
                    self.waiting[parent] -= 1
                    if self.waiting[parent] == 0:
                        newly.append(parent)
                rest = [t for t in available if t != task] + newly
                self._branch(rest, free, start)
                if parent >= 0:
                    self.waiting[parent] += 1
                self.slots[task] = None
                self.mask &= ~(1 << task)
                free[device] = saved

    def _devices(self, free: list[int]) -> list[int]:
        """Where the next task may go: the thread free earliest (every thread is the same for the
        makespan); with a memory limit, which thread holds what matters, so every thread that ran
        something and the first idle one."""
        if self.fits is None:
            return [min(range(self.threads), key=free.__getitem__)]
        used = {slot.device for slot in self.slots if slot is not None}
        idle = [device for device in range(self.threads) if device not in used]
        return sorted(used) + idle[:1]

    def _seen(self, free: list[int], last: int) -> bool:
        """Whether this state was searched before: the same steps done, and the same thread free
        times and unconsumed results, each clipped at ``last`` (no later step starts before it)."""
        if self.fits is not None:  # a memory limit depends on more than this state: no merging
            return False
        results = tuple(
            (task, max(slot.end, last))
            for task, slot in enumerate(self.slots)
            if slot is not None and self.parents[task] >= 0 and self.slots[self.parents[task]] is None
        )
        key = (self.mask, last, tuple(sorted(max(f, last) for f in free)), results)
        if key in self.memo:
            return True
        self.memo.add(key)
        return False


def least_makespan(
    tree: TaskTree,
    threads: int,
    upper: int | None = None,
    deadline: float | None = None,
    fits: Callable[[tuple[Slot, ...]], bool] | None = None,
) -> tuple[int, tuple[Slot, ...] | None]:
    """The least makespan of the tree on ``threads`` threads, and a schedule reaching it.

    Only schedules shorter than ``upper`` are looked for: when none is, returns
    ``(upper, None)``. Raises :class:`SearchTimeout` past ``deadline``
    (``time.perf_counter()`` seconds). With ``fits``, only schedules for which
    ``fits(slots)`` is true count (a memory limit per device); the search then
    merges no states, so it stays exact.

    >>> tree = TaskTree((3, 3, 2, 2, 4), ((), (), (), (), (0, 1)))
    >>> least_makespan(tree, 2)[0]   # 3+3 on two threads, then 4, with 2 and 2 beside it
    7
    """
    if threads >= sum(1 for below in tree.children if not below):
        slots = as_soon_as_possible(tree)  # the critical path: no schedule ends sooner
        if fits is None or fits(slots):
            return _best_of(slots, upper)
    if upper is not None and (pair_bound(tree, threads) >= upper or energy_infeasible(tree, threads, upper - 1)):
        return (upper, None)
    ceiling = upper if upper is not None else sum(tree.durations) + 1  # above every schedule's makespan
    heuristic = list_schedule(tree, threads)
    makespan = max(slot.end for slot in heuristic)
    search = _Search(tree, threads, ceiling, deadline, fits)
    if makespan < ceiling and (fits is None or fits(heuristic)):
        search.best, search.best_slots = makespan, list(heuristic)
    search.run()
    if search.best_slots is None:
        return (ceiling, None)
    return search.best, tuple(search.best_slots)  # type: ignore[arg-type]


def _best_of(slots: tuple[Slot, ...], upper: int | None) -> tuple[int, tuple[Slot, ...] | None]:
    makespan = max(slot.end for slot in slots)
    if upper is not None and makespan >= upper:
        return upper, None
    return makespan, slots
