"""The scheduled Jacobian chain problem: the plan and schedule of least makespan on T threads.

With ``T`` threads the question is which plan *and* which schedule finish first
(see :mod:`chainorder.core.schedule` for the scheduling model). The problem is
NP-complete; for the short chains where it matters it is solved exactly here by
branch and bound over bracketings, with the exact schedule of every plan that
survives the bounds (:func:`chainorder.core.schedulesearch.least_makespan`).

Bounds. For each sub-chain ``s`` two tables, filled by a dynamic program over
sub-chains:

* ``work[s]``: the least total FMAs of any sub-plan of ``s`` (the sequential optimum);
* ``bound[s]``: a lower bound on the makespan of any sub-plan of ``s`` alone on
  ``T`` threads. A step of cost ``c`` whose operands' sub-plans are ``A`` (and
  ``B``) cannot start before both are done: ``c + max(bound[A], bound[B],
  ceil((work[A] + work[B]) / T))``, minimized over the last step.

A partial plan (its last steps fixed, some operands' sub-chains still open) is
bounded by the same rule applied to its fixed steps, with the open sub-chains'
table values, and by the work that must be done before each step's tail
(:func:`chainorder.core.schedulebounds.window_bound`); it is dropped when a bound
reaches the best makespan found. The search starts from the list schedules of
the FMA-optimal plan, the plan of least critical path and the plan the bound
table prefers, visits the cheapest-looking steps first, and stops at
``time_limit`` (the result is then not proven optimal). A tangent step on a
tangent step costs what one tangent step over both costs, but is two tasks:
another step may run between them on that thread, so both plans are searched
(likewise adjoint steps).

With a memory limit per device, steps whose workspace (with the primal values)
cannot fit on any device are not searched, and a schedule counts only if every
device's peak (:func:`chainorder.core.memory.device_peaks`) fits.

This module imports neither jax nor matplotlib.

References
----------
Lieberum, S., Märtens, M., Naumann, U. (2025). Scheduled Jacobian Chaining. ACDA'25.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from .chain import Chain
from .costs import CostModel
from .memory import MemoryModel, device_peaks
from .schedule import Slot, TaskTree, list_schedule, task_tree
from .schedulebounds import leaves_bound, window_bound
from .schedulesearch import SearchTimeout, least_makespan
from .steps import Step, StepKind

__all__ = ["ScheduledSteps", "scheduled_steps", "DEFAULT_TIME_LIMIT"]

#: Seconds :func:`chainorder.optimize` gives the branch and bound by default.
DEFAULT_TIME_LIMIT = 10.0


class ScheduledSteps(NamedTuple):
    """The search's answer: steps in execution order, one slot per step, and whether it is proven optimal."""

    steps: tuple[Step, ...]
    slots: tuple[Slot, ...]
    makespan: int
    proven: bool
    nodes: int


class _Option(NamedTuple):
    kind: StepKind
    split: int | None
    cost: int
    operands: tuple[tuple[int, int], ...]


def _options(
    chain: Chain, model: CostModel, matrix_free: bool, tape_limit: int | None, memory_limit, deadline: float
):
    """Every last step of every sub-chain, with its cost and operand sub-chains (none whose
    workspace, with the primal values, is over ``memory_limit``: its device would hold both).
    Raises :class:`SearchTimeout` past ``deadline`` (long chains have q^3 / 2 of them)."""
    memory = MemoryModel(chain, model)
    q = len(chain)
    table: dict[tuple[int, int], list[_Option]] = {}
    for first in range(q):
        if time.perf_counter() > deadline:
            raise SearchTimeout
        for last in range(first, q):
            kinds = (
                [StepKind.TANGENT_PREACCUMULATION, StepKind.ADJOINT_PREACCUMULATION]
                if first == last
                else ([StepKind.TANGENT_STEP, StepKind.ADJOINT_STEP] if matrix_free else []) + [StepKind.PRODUCT]
            )
            options = []
            for kind in kinds:
                for split in [None] if kind.is_preaccumulation else range(first, last):
                    if tape_limit is not None and model.tape(kind, first, last, split) > tape_limit:
                        continue
                    workspace = memory.workspace(kind, first, last, split)
                    if memory_limit is not None and workspace + memory.primal > memory_limit:
                        continue
                    cost = model.cost(kind, first, last, split)
                    options.append(_Option(kind, split, int(cost), kind.operands(first, last, split)))
            table[first, last] = options
    return table


#: The bound of a sub-chain none of whose plans fits (above every makespan).
_UNREACHABLE = 1 << 200


class _Tables:
    """``work`` and ``bound`` of every sub-chain (module docstring), and each sub-chain's options
    sorted by the bound they lead to."""

    def __init__(self, options, threads: int) -> None:
        self.threads = threads
        self.work: dict[tuple[int, int], int] = {}
        self.bound: dict[tuple[int, int], int] = {}
        self.shortest_leaf: dict[tuple[int, int], int] = {}
        self.options: dict[tuple[int, int], list[_Option]] = {}
        for span in sorted(options, key=lambda s: s[1] - s[0]):
            scored = [(self.after(option.cost, option.operands), option) for option in options[span]]
            scored.sort(key=lambda pair: (pair[0], pair[1].cost))
            self.options[span] = [option for score, option in scored if score < _UNREACHABLE]
            self.bound[span] = min((score for score, _ in scored), default=_UNREACHABLE)
            self.work[span] = min(
                (option.cost + sum(self.work[o] for o in option.operands) for option in options[span]),
                default=_UNREACHABLE,
            )
            first, last = span
            self.shortest_leaf[span] = min(
                min((option.cost for option in options[layer, layer]), default=_UNREACHABLE)
                for layer in range(first, last + 1)
            )

    def after(self, cost: int, operands) -> int:
        """The bound of a step of ``cost`` on open operand sub-chains."""
        if not operands:
            return cost
        longest = max(self.bound[o] for o in operands)
        spread = -(-sum(self.work[o] for o in operands) // self.threads)
        return cost + max(longest, spread)


class _Search:
    """Branch and bound over the plans of the chain (the module docstring), each complete plan
    scheduled exactly against the best makespan so far."""

    def __init__(self, chain: Chain, tables: _Tables, threads: int, deadline: float, memory_limit=None) -> None:
        self.chain, self.tables, self.memory_limit = chain, tables, memory_limit
        self.threads, self.deadline = threads, deadline
        self.best = _UNREACHABLE
        self.best_steps: tuple[Step, ...] = ()
        self.best_slots: tuple[Slot, ...] = ()
        self.nodes = 0
        # the partial plan: node -> span, chosen option (None while open), parent, children
        self.span: list[tuple[int, int]] = []
        self.choice: list[_Option | None] = []
        self.parent: list[int] = []
        self.below: list[list[int]] = []
        self.open: list[int] = []

    # -- incumbents ------------------------------------------------------------------
    def offer(self, steps: list[Step]) -> None:
        """List-schedule a complete plan and keep it if it is the best so far (the search
        schedules it exactly, if it can be better)."""
        tree = task_tree(steps)
        slots = list_schedule(tree, self.threads)
        makespan = max(slot.end for slot in slots)
        if makespan < self.best and self._fits(steps)(slots):
            self.best = makespan
            self.best_steps, self.best_slots = _in_start_order(steps, tree, slots)

    # -- the partial plan -------------------------------------------------------------
    def _new(self, span, parent: int) -> int:
        self.span.append(span)
        self.choice.append(None)
        self.parent.append(parent)
        self.below.append([])
        return len(self.span) - 1

    def _drop_last(self) -> None:
        for table in (self.span, self.choice, self.parent, self.below):
            table.pop()

    def _partial_bound(self) -> int:
        """The bound of the partial plan (module docstring), children before parents."""
        tables = self.tables
        count = len(self.span)
        bound = [0] * count
        work = [0] * count
        head = [0] * count  # the earliest start of a fixed step
        for node in range(count - 1, -1, -1):
            option = self.choice[node]
            if option is None:
                bound[node], work[node] = tables.bound[self.span[node]], tables.work[self.span[node]]
                continue
            below = self.below[node]
            if not below:
                bound[node] = work[node] = option.cost
                continue
            longest = max(bound[child] for child in below)
            total = sum(work[child] for child in below)
            head[node] = max(longest, -(-total // self.threads))
            bound[node] = option.cost + head[node]
            work[node] = option.cost + total
        if bound[0] >= self.best:
            return bound[0]
        items = self._items(work, head)
        window = window_bound(items, [0] * self.threads)
        if window >= self.best:
            return window
        return max(window, leaves_bound(self._leaves(items), self.threads))

    def _leaves(self, items: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
        """``(duration, tail)`` of the fixed preaccumulations, and for each open sub-chain its
        shortest possible leaf (it has at least one, a preaccumulation of one of its layers)."""
        leaves = []
        for node, (_, tail, work) in enumerate(items):
            option = self.choice[node]
            if option is None:
                leaves.append((self.tables.shortest_leaf[self.span[node]], tail))
            elif not option.operands:
                leaves.append((work, tail))
        return leaves

    def _items(self, work: list[int], head: list[int]) -> list[tuple[int, int, int]]:
        """``(head, tail, work)`` of every fixed step and every open sub-chain (parents come first)."""
        tail = [0] * len(self.span)
        items = []
        for node in range(len(self.span)):
            parent = self.parent[node]
            if parent >= 0:
                tail[node] = tail[parent] + self.choice[parent].cost  # type: ignore[union-attr]
            option = self.choice[node]
            if option is None:
                items.append((0, tail[node], work[node]))
            else:
                items.append((head[node], tail[node], option.cost))
        return items

    def run(self, root: tuple[int, int]) -> None:
        self._new(root, -1)
        self.open.append(0)
        self._expand()

    def _expand(self) -> None:
        self.nodes += 1
        if self.nodes % 128 == 0 and time.perf_counter() > self.deadline:
            raise SearchTimeout
        if not self.open:
            self._evaluate()
            return
        node = self.open.pop()
        span = self.span[node]
        for option in self.tables.options[span]:
            self.choice[node] = option
            children = [self._new(operand, node) for operand in option.operands]
            self.below[node] = children
            if self._partial_bound() < self.best:
                self.open.extend(children)
                self._expand()
                del self.open[len(self.open) - len(children) :]
            for _ in children:
                self._drop_last()
            self.below[node] = []
        self.choice[node] = None
        self.open.append(node)

    def _fits(self, steps):
        """Whether a schedule of ``steps`` keeps every device within the memory limit."""
        if self.memory_limit is None:
            return lambda slots: True
        return lambda slots: max(device_peaks(self.chain, steps, slots, self.threads)) <= self.memory_limit

    def _evaluate(self) -> None:
        count = len(self.span)
        tree = TaskTree(
            tuple(self.choice[n].cost for n in range(count)),  # type: ignore[union-attr]
            tuple(tuple(self.below[n]) for n in range(count)),
        )
        steps = []
        for node in range(count):
            option = self.choice[node]
            first, last = self.span[node]
            steps.append(Step(option.kind, first, last, option.split, option.cost))  # type: ignore[union-attr]
        fits = None if self.memory_limit is None else self._fits(steps)
        makespan, slots = least_makespan(tree, self.threads, self.best, self.deadline, fits)
        if slots is None or makespan >= self.best:
            return
        self.best = makespan
        self.best_steps, self.best_slots = _in_start_order(steps, tree, slots)


def _in_start_order(steps, tree: TaskTree, slots) -> tuple[tuple[Step, ...], tuple[Slot, ...]]:
    """Steps (and their slots) by start time, operands first among equal starts: an execution order."""
    position = {task: index for index, task in enumerate(tree.topological_order())}
    order = sorted(range(len(steps)), key=lambda n: (slots[n].start, position[n]))
    return tuple(steps[n] for n in order), tuple(slots[n] for n in order)


def _bound_plan(tables: _Tables, span) -> list[Step]:
    """The plan whose every last step is the one with the least bound (a good first incumbent)."""
    option = tables.options[span][0]
    steps: list[Step] = []
    for operand in option.operands[::-1]:
        steps.extend(_bound_plan(tables, operand))
    steps.append(Step(option.kind, span[0], span[1], option.split, option.cost))
    return steps


def scheduled_steps(
    chain: Chain,
    threads: int,
    *,
    matrix_free: bool = True,
    tape_limit: int | None = None,
    starts: list[list[Step]] = (),  # type: ignore[assignment]
    time_limit: float = DEFAULT_TIME_LIMIT,
    memory_limit: int | None = None,
) -> ScheduledSteps | None:
    """The plan of least makespan on ``threads`` threads, with its schedule.

    Parameters
    ----------
    chain : Chain
    threads : int
        At least 1.
    matrix_free, tape_limit
        As for :func:`chainorder.optimize`.
    starts : list of step lists
        Plans to start from (each is scheduled exactly; the best is the first incumbent).
    time_limit : float
        Seconds; past it the best plan found is returned with ``proven=False``.
    memory_limit : int, optional
        Elements each device may hold at its peak
        (:func:`chainorder.core.memory.device_peaks`).

    Returns
    -------
    ScheduledSteps, or None
        None when no plan and schedule within ``memory_limit`` was found (or, with
        no ``starts``, none before the time limit).

    Examples
    --------
    >>> from chainorder import Chain
    >>> chain = Chain.from_dims([40, 30, 20, 30, 40])
    >>> found = scheduled_steps(chain, 2)
    >>> found.makespan, found.proven, len(found.slots) == len(found.steps)
    (68000, True, True)
    """
    deadline = time.perf_counter() + time_limit
    root = (0, len(chain) - 1)
    search = _Search(chain, None, threads, deadline, memory_limit)
    for steps in starts:
        search.offer(list(steps))
    proven = True
    try:
        options = _options(chain, CostModel(chain), matrix_free, tape_limit, memory_limit, deadline)
        search.tables = tables = _Tables(options, threads)
        if tables.bound[root] >= _UNREACHABLE:
            return None  # every plan has a step that does not fit memory_limit
        search.offer(_bound_plan(tables, root))
        if search.best > tables.bound[root]:
            search.run(root)
    except SearchTimeout:
        proven = False
    if not search.best_steps:  # none within memory_limit, or none before the deadline
        return None
    return ScheduledSteps(search.best_steps, search.best_slots, search.best, proven, search.nodes)
