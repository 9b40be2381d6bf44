"""Lower bounds on the makespan of a task tree on T threads (see :mod:`chainorder.core.schedule`).

Used by the exact schedule search (:mod:`chainorder.core.schedulesearch`) and the
search over plans (:mod:`chainorder.core.makespan`):

* :func:`tail_bound`: the work that must run before each task's tail, spread over the threads;
* :func:`window_bound`: the same with heads (tasks that cannot start early);
* :func:`pair_bound`: of ``T + 1`` leaves two share a thread;
* :func:`energy_infeasible` / :func:`energy_overloaded`: energetic reasoning over intervals.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np

from .schedule import TaskTree

__all__ = ["tail_bound", "window_bound", "pair_bound", "leaves_bound", "energy_infeasible", "energy_overloaded"]


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
    return leaves_bound([(tree.durations[task], tails[task]) for task in leaves], threads)


def leaves_bound(jobs: Sequence[tuple[int, int]], threads: int) -> int:
    """:func:`pair_bound` from ``(duration, tail)`` of tasks that need nothing before them
    (leaves, or lower bounds on one leaf each); 0 with no more of them than threads.

    >>> leaves_bound([(5, 1), (5, 1), (5, 1)], 2)
    11
    """
    if len(jobs) <= threads:
        return 0
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
