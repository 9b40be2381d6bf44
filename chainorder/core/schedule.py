"""Schedules: a plan's steps on T threads (devices).

A plan's steps form a tree: each step consumes the Jacobians its operands'
steps produced. On ``T`` threads a step runs on one thread, uninterrupted, for
its cost (FMAs); it starts once the steps producing its operands have ended; a
thread runs one step at a time; moving a Jacobian between threads costs nothing
(the model of ``../shared/conformance/README.md``, "Scheduling on T threads").
The *makespan* is when the last step ends.

* :func:`list_schedule`: the reference solver's heuristic. Steps by depth in the
  tree (deepest first), then by cost (largest first), each to the thread where
  it can start earliest.
* :func:`as_soon_as_possible`: with at least as many threads as leaves, every step
  at its earliest start (the critical path).
* :func:`check_schedule`: a schedule validated against the tree.

The optimal schedule of one plan is :func:`chainorder.core.schedulesearch.least_makespan`;
its lower bounds are in :mod:`chainorder.core.schedulebounds`.

A schedule is one ``(thread, start, end)`` triple per step, in the plan's step order.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from .steps import Step

__all__ = ["Slot", "TaskTree", "task_tree", "critical_path", "list_schedule", "as_soon_as_possible", "check_schedule"]


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


def as_soon_as_possible(tree: TaskTree) -> tuple[Slot, ...]:
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
