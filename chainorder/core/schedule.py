"""Schedules: a plan's steps on T threads (devices), and the least makespan of one plan.

A plan's steps form a tree: each step consumes the Jacobians its operands'
steps produced. On ``T`` threads a step runs on one thread, uninterrupted, for
its cost (FMAs); it starts once the steps producing its operands have ended; a
thread runs one step at a time; moving a Jacobian between threads costs nothing
(the model of ``../shared/conformance/README.md``, "Scheduling on T threads").
The *makespan* is when the last step ends.

* :func:`list_schedule`: the reference solver's heuristic. Steps by depth in the
  tree (deepest first), then by cost (largest first), each to the thread where
  it can start earliest.
* :func:`least_makespan`: the optimal schedule of one plan, by branch and bound
  over the order in which steps start. Each step in turn goes to the thread
  free earliest, starting no earlier than the step before it. Every optimal
  schedule is reproduced this way by the order of its start times, so the
  search is exact. Bounds: the longest path still to run from each step's
  earliest start, the remaining work spread over the threads before its tail
  (:func:`tail_bound`), two leaves on one thread (:func:`pair_bound`), and,
  before searching a plan that must beat a makespan, energetic reasoning
  (:func:`energy_infeasible`).

A schedule is one ``(thread, start, end)`` triple per step, in the plan's step order.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from itertools import combinations
from typing import NamedTuple

import numpy as np

from .steps import Step

__all__ = [
    "Slot",
    "TaskTree",
    "task_tree",
    "list_schedule",
    "least_makespan",
    "critical_path",
    "tail_bound",
    "window_bound",
    "pair_bound",
    "energy_infeasible",
    "energy_overloaded",
    "check_schedule",
    "SearchTimeout",
]


class Slot(NamedTuple):
    """Where and when one step runs: its thread (device index) and its start and end (FMAs)."""

    device: int
    start: int
    end: int


class TaskTree(NamedTuple):
    """Steps as tasks: ``durations[i]`` and the tasks ``children[i]`` whose results task ``i`` consumes."""

    durations: tuple[int, ...]
    children: tuple[tuple[int, ...], ...]

    @property
    def parents(self) -> tuple[int, ...]:
        parent = [-1] * len(self.durations)
        for task, below in enumerate(self.children):
            for child in below:
                parent[child] = task
        return tuple(parent)

    def tails(self) -> list[int]:
        """For each task, the durations of the tasks after it up to the root (its own excluded)."""
        parent = self.parents
        tail = [0] * len(self.durations)
        for task in self.topological_order()[::-1]:
            if parent[task] >= 0:
                tail[task] = tail[parent[task]] + self.durations[parent[task]]
        return tail

    def depths(self) -> list[int]:
        parent = self.parents
        depth = [0] * len(self.durations)
        for task in self.topological_order()[::-1]:
            if parent[task] >= 0:
                depth[task] = depth[parent[task]] + 1
        return depth

    def topological_order(self) -> list[int]:
        """Children before parents (the order steps are listed in)."""
        order, seen = [], set()
        for task in range(len(self.durations)):
            self._visit(task, seen, order)
        return order

    def _visit(self, task: int, seen: set[int], order: list[int]) -> None:
        stack = [(task, False)]
        while stack:
            node, ready = stack.pop()
            if node in seen and not ready:
                continue
            if ready:
                order.append(node)
                continue
            seen.add(node)
            stack.append((node, True))
            stack.extend((child, False) for child in self.children[node] if child not in seen)


def task_tree(steps: Sequence[Step]) -> TaskTree:
    """The task tree of steps in execution order (each operand is the latest step that produced it)."""
    producer: dict[tuple[int, int], int] = {}
    children = []
    for index, step in enumerate(steps):
        children.append(tuple(producer.pop(operand) for operand in step.operands))
        producer[step.span] = index
    return TaskTree(tuple(step.cost for step in steps), tuple(children))


def critical_path(steps: Sequence[Step]) -> int:
    """When the last step ends with unlimited threads: the longest chain of dependent steps.

    >>> from chainorder import Chain, optimize
    >>> plan = optimize(Chain.from_dims([784, 256, 32, 256, 784]))
    >>> critical_path(plan.steps) < plan.work
    True
    """
    finish: dict[tuple[int, int], int] = {}
    for step in steps:
        start = max((finish.pop(operand) for operand in step.operands), default=0)
        finish[step.span] = start + step.cost
    return max(finish.values())


def _place(free: list[int], ready: int, duration: int) -> Slot:
    """Put a task on the thread where it starts earliest (of those, the one free latest)."""
    start = max(ready, min(free))
    device = max((d for d in range(len(free)) if free[d] <= start), key=lambda d: (free[d], -d))
    free[device] = start + duration
    return Slot(device, start, start + duration)


def list_schedule(tree: TaskTree, threads: int) -> tuple[Slot, ...]:
    """The reference solver's list scheduling: by depth (deepest first), then cost (largest first).

    >>> tree = TaskTree((3, 4, 5), ((), (), (0, 1)))   # two leaves, then their product
    >>> list_schedule(tree, 2)
    (Slot(device=1, start=0, end=3), Slot(device=0, start=0, end=4), Slot(device=0, start=4, end=9))
    >>> max(slot.end for slot in list_schedule(tree, 1))
    12
    """
    depth = tree.depths()
    order = sorted(range(len(tree.durations)), key=lambda t: (-depth[t], -tree.durations[t], t))
    free = [0] * threads
    slots: list[Slot | None] = [None] * len(order)
    for task in order:
        ready = max((slots[c].end for c in tree.children[task]), default=0)  # type: ignore[union-attr]
        slots[task] = _place(free, ready, tree.durations[task])
    return tuple(slots)  # type: ignore[arg-type]


def tail_bound(items: Sequence[tuple[int, int]], free: Sequence[int]) -> int:
    """A lower bound on the makespan from ``(tail, work)`` items and the threads' free times.

    Each item's work must run after every thread's free time (``free``, sorted
    ascending) and end ``tail`` before the makespan (its tail is the work that
    must follow it). For every threshold ``h``, the items with ``tail >= h`` fit
    between the free times and ``makespan - h``; on the ``m`` earliest-free
    threads that needs ``makespan - h >= (work + their free times) / m``.

    >>> tail_bound([(0, 4), (4, 3), (4, 3)], [0, 0])   # 3 and 3 side by side, then 4
    7
    """
    bound = 0
    total = 0
    prefix = [0]
    for value in free:
        prefix.append(prefix[-1] + value)
    ordered = sorted(items, reverse=True)
    for index, (tail, work) in enumerate(ordered):
        total += work
        if index + 1 < len(ordered) and ordered[index + 1][0] == tail:
            continue
        spread = min(-(-(total + prefix[m]) // m) for m in range(1, len(free) + 1))
        bound = max(bound, tail + spread)
    return bound


def window_bound(items: Sequence[tuple[int, int, int]], free: Sequence[int]) -> int:
    """:func:`tail_bound` with heads: ``(head, tail, work)`` items, each of which cannot start
    before its head. For every head threshold ``r``, the items with ``head >= r`` run
    after ``r`` (and after the threads' free times).

    >>> window_bound([(0, 5, 1), (0, 5, 1), (1, 0, 5)], [0, 0])   # 1 and 1, then 5
    6
    """
    bound = 0
    for head in sorted({item[0] for item in items}):
        later = [(tail, work) for start, tail, work in items if start >= head]
        bound = max(bound, head + tail_bound(later, sorted(max(f - head, 0) for f in free)))
    return bound


def pair_bound(tree: TaskTree, threads: int) -> int:
    """A lower bound from the leaves when there are more of them than threads.

    Of any ``threads + 1`` leaves two share a thread, one after the other: the
    second ends after both durations and the work after it (its tail) follows.
    So the makespan is at least the least, over pairs ``a, b`` of the set, of
    ``d_a + d_b + min(tail_a, tail_b)``; the sets tried are the leaves largest by
    duration plus tail, by duration and by tail.

    >>> pair_bound(TaskTree((5, 5, 5, 1), ((), (), (), (0, 1, 2))), 2)   # two of three leaves in a row
    11
    """
    leaves = [task for task, below in enumerate(tree.children) if not below]
    if len(leaves) <= threads:
        return 0
    tails = tree.tails()
    jobs = [(tree.durations[task], tails[task]) for task in leaves]
    bound = 0
    for key in (lambda job: job[0] + job[1], lambda job: job[0], lambda job: job[1]):
        chosen = sorted(jobs, key=key, reverse=True)[: threads + 1]
        bound = max(bound, min(a[0] + b[0] + min(a[1], b[1]) for a, b in combinations(chosen, 2)))
    return bound


def energy_infeasible(tree: TaskTree, threads: int, deadline: int) -> bool:
    """Whether energetic reasoning (:func:`energy_overloaded`) proves that no schedule of the
    tree ends by ``deadline``. A task cannot start before its operands' paths end, nor
    before the work below it is spread over the threads; it must end ``tail`` before
    the deadline.

    >>> tree = TaskTree((5, 5, 5, 1), ((), (), (), (0, 1, 2)))
    >>> energy_infeasible(tree, 2, 10), energy_infeasible(tree, 2, 11)
    (True, False)
    """
    durations = tree.durations
    tails = tree.tails()
    earliest = [0] * len(durations)
    below = [0] * len(durations)
    for task in tree.topological_order():
        children = tree.children[task]
        below[task] = sum(below[child] + durations[child] for child in children)
        paths = max((earliest[child] + durations[child] for child in children), default=0)
        earliest[task] = max(paths, -(-below[task] // threads))
    windows = [(earliest[t], deadline - tails[t], durations[t]) for t in range(len(durations))]
    return energy_overloaded(windows, threads)


def energy_overloaded(windows: Sequence[tuple[int, int, int]], threads: int) -> bool:
    """Whether some interval must hold more work than ``threads`` can do in it.

    ``windows``: ``(earliest start, latest end, duration)`` of tasks that each run on
    one thread without a break. Over every interval ``[a, b]`` between window ends,
    each task must run inside it at least what it cannot push out of it; the sum
    cannot exceed ``threads * (b - a)`` (the energetic reasoning of Baptiste, Le Pape
    and Nuijten, 2001). Vectorized over all intervals at once.

    >>> energy_overloaded([(0, 10, 5), (0, 10, 5), (0, 10, 5)], 1), energy_overloaded([(0, 10, 5)] * 3, 2)
    (True, False)
    """
    if any(end - start < duration for start, end, duration in windows):
        return True
    table = np.array(windows, dtype=object)
    if max(abs(int(value)) for value in table.flat) * threads * len(windows) < 2**60:
        table = table.astype(np.int64)  # exact in int64 at this size
    start, end, duration = table[:, 0], table[:, 1], table[:, 2]
    a = np.unique(np.concatenate([start, end - duration]))[:, None, None]
    b = np.unique(np.concatenate([end, start + duration]))[None, :, None]
    inside = np.minimum(np.minimum(duration, b - a), np.minimum(start + duration - a, b - end + duration))
    needed = np.where(inside > 0, inside, 0).sum(axis=2)
    capacity = threads * (b - a)[:, :, 0]
    return bool(np.any((needed > capacity) & (capacity > 0)))


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
        self._branch(available, [0] * self.threads, 0, sum(self.durations))

    def _bound(self, free: list[int], last: int, remaining: int) -> int:
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

    def _branch(self, available: list[int], free: list[int], last: int, remaining: int) -> None:
        self.nodes += 1
        if self.deadline is not None and self.nodes % 256 == 0 and time.perf_counter() > self.deadline:
            raise SearchTimeout
        if not available:
            makespan = max(free)
            if makespan < self.best and (self.fits is None or self.fits(tuple(self.slots))):
                self.best, self.best_slots = makespan, list(self.slots)  # type: ignore[arg-type]
            return
        if self._seen(free, last) or self._bound(free, last, remaining) >= self.best:
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
                self._branch(rest, free, start, remaining - self.durations[task])
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
        slots = _as_soon_as_possible(tree)  # the critical path: no schedule ends sooner
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


def _as_soon_as_possible(tree: TaskTree) -> tuple[Slot, ...]:
    """Every step at its earliest start, on a thread of its own lineage (no more threads than leaves)."""
    slots: list[Slot | None] = [None] * len(tree.durations)
    next_device = 0
    for task in tree.topological_order():
        below = tree.children[task]
        if below:
            first = max(below, key=lambda c: slots[c].end)  # type: ignore[union-attr]
            device, start = slots[first].device, slots[first].end  # type: ignore[union-attr]
        else:
            device, start, next_device = next_device, 0, next_device + 1
        slots[task] = Slot(device, start, start + tree.durations[task])
    return tuple(slots)  # type: ignore[arg-type]


def check_schedule(tree: TaskTree, threads: int, slots: Sequence[Slot]) -> None:
    """Raise ValueError unless ``slots`` schedule the tree's tasks validly on ``threads`` threads."""
    if len(slots) != len(tree.durations):
        raise ValueError(f"a schedule needs one (device, start, end) per step: {len(tree.durations)}, got {len(slots)}")
    for index, slot in enumerate(slots):
        device, start, end = slot
        if not (isinstance(device, int) and 0 <= device < threads):
            raise ValueError(f"step {index}: device {device!r} is not one of the {threads} threads")
        if end - start != tree.durations[index] or start < 0:
            raise ValueError(f"step {index}: runs {start}..{end}, but its cost is {tree.durations[index]}")
        for child in tree.children[index]:
            if slots[child][2] > start:
                raise ValueError(f"step {index} starts at {start}, before its operand (step {child}) ends")
    by_device: dict[int, list[tuple[int, int, int]]] = {}
    for index, (device, start, end) in enumerate(slots):
        by_device.setdefault(device, []).append((start, end, index))
    for device, runs in by_device.items():
        runs.sort()
        for (_, end, first), (start, _, second) in zip(runs, runs[1:]):
            if start < end:
                raise ValueError(f"steps {first} and {second} overlap on device {device}")
