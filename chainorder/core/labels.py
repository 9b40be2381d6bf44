"""The labels of the Pareto DP (:mod:`chainorder.core.pareto`): how they are stored and pruned.

Every sub-chain keeps its non-dominated sub-plans (labels) as flat arrays
(:class:`Fronts`). Candidates are generated a row at a time (:class:`Group`: one
step kind, one cell, one split, the operands' label ranges) and pruned in three
ways, each written once here: within their cell (:func:`prune`, exact), against
a front of the cell's cheap candidates (:func:`covered`, by lower corners, before
a row is expanded), and against plans of the whole chain already known
(:class:`Known`, with the completion costs of :mod:`chainorder.core.completion`).

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import numpy as np

from .steps import StepKind

__all__ = ["COLUMNS", "Fronts", "Group", "Known", "concatenated", "covered", "within", "front_of", "prune"]

COLUMNS = ("cost", "peak", "kind", "split", "later", "earlier")


class Fronts:
    """Every sub-chain's front, stored flat: entry ``e`` has ``cost[e]``,
    ``peak[e]`` (without the primal values), ``kind[e]`` (a code), ``split[e]``
    and the entries of its operands' sub-plans, ``later[e]`` (``J[j..k+1]``) and
    ``earlier[e]`` (``J[k..i]``), -1 where there is none. The entries of
    sub-chain ``i..j`` are ``start[i, j] : start[i, j] + size[i, j]``, cheapest
    first. Sub-chains are added a length at a time."""

    def __init__(self, q: int) -> None:
        self.start = np.zeros((q, q), dtype=np.int64)
        self.size = np.zeros((q, q), dtype=np.int64)
        self.columns: dict[str, list[np.ndarray]] = {name: [] for name in COLUMNS}
        self.count = 0
        self.cost = self.peak = np.zeros(0)
        self._buffers: dict[str, np.ndarray] = {}
        self._flat: dict[str, np.ndarray] | None = None

    def add_length(self, length: int, cell: np.ndarray, columns: dict[str, np.ndarray], cells: int) -> None:
        """The fronts of every sub-chain of ``length``: ``columns`` sorted by ``cell`` (first layer)."""
        sizes = np.bincount(cell, minlength=cells)
        first = np.arange(cells)
        self.size[first, first + length - 1] = sizes
        self.start[first, first + length - 1] = self.count + np.cumsum(sizes) - sizes
        for name in COLUMNS:
            self.columns[name].append(columns[name])
        self.cost = self._grown("cost", columns["cost"])
        self.peak = self._grown("peak", columns["peak"])
        self.count += len(cell)

    def _grown(self, name: str, values: np.ndarray) -> np.ndarray:
        """The entries' ``name`` so far with ``values`` appended: a view of a buffer that doubles
        when full (copying every entry at every length made the DP quadratic in its labels)."""
        buffer = self._buffers.get(name)
        end = self.count + len(values)
        if buffer is None or not np.can_cast(values.dtype, buffer.dtype) or len(buffer) < end:
            grown = np.empty(max(2 * end, 1024), dtype=np.result_type(values, *([] if buffer is None else [buffer])))
            if buffer is not None:
                grown[: self.count] = buffer[: self.count]
            self._buffers[name] = buffer = grown
        buffer[self.count : end] = values
        return buffer[:end]

    def entry(self, index: int) -> tuple:
        if self._flat is None:
            self._flat = {name: np.concatenate(values) for name, values in self.columns.items()}
        return tuple(self._flat[name][index] for name in COLUMNS)


class Group:
    """Candidate rows of one step kind: ``cell`` (first layer), ``last`` and ``split`` per row, and
    each operand's front range ``(start, size)`` per row (None where the kind has no such operand)."""

    def __init__(self, kind: StepKind, cell, last, split, later, earlier) -> None:
        self.kind, self.cell, self.last, self.split = kind, cell, last, split
        self.later, self.earlier = later, earlier

    def sizes(self, name: str) -> np.ndarray:
        operand = getattr(self, name)
        return np.ones(len(self.cell), dtype=np.int64) if operand is None else operand[1]

    def take(self, rows: np.ndarray) -> Group:
        later, earlier = ((None if o is None else (o[0][rows], o[1][rows])) for o in (self.later, self.earlier))
        return Group(self.kind, self.cell[rows], self.last[rows], self.split[rows], later, earlier)

    def nonempty(self) -> Group:
        """The rows whose operands all have a sub-plan."""
        return self.take(np.flatnonzero((self.sizes("later") > 0) & (self.sizes("earlier") > 0)))

    def by_later_entry(self) -> Group:
        """A row for each entry of each row's later operand (with all of its earlier operand's)."""
        start, size = self.later
        owner = np.repeat(np.arange(len(size)), size)
        entry = start[owner] + np.arange(len(owner)) - (np.cumsum(size) - size)[owner]
        earlier = self.earlier[0][owner], self.earlier[1][owner]
        later = entry, np.ones(len(owner), dtype=np.int64)
        return Group(self.kind, self.cell[owner], self.last[owner], self.split[owner], later, earlier)

    def wide(self) -> str:
        """The operand whose labels a row expands over: the earlier one where the later has at
        most one label per row (a product split :meth:`by_later_entry`, or a tangent step), else
        the later one."""
        single_later = self.later is None or not len(self.cell) or self.later[1].max() <= 1
        return "earlier" if self.earlier is not None and single_later else "later"

    def window(self, offset: int, count: int | None = None) -> Group:
        """The rows with labels of the wide operand past ``offset``, each limited to those at
        ``offset : offset + count`` of its range (all of them past ``offset`` when ``count`` is None)."""
        name = self.wide()
        start, size = getattr(self, name)
        rows = np.flatnonzero(size > offset)
        group = self.take(rows)
        start, size = getattr(group, name)
        size = size - offset if count is None else np.minimum(size - offset, count)
        setattr(group, name, (start + offset, size))
        return group

    def entries(self, end: str) -> dict[str, np.ndarray]:
        """Each operand's ``"first"`` (cheapest) or ``"last"`` (least peak) front entry per row."""
        found = {}
        for name in ("later", "earlier"):
            operand = getattr(self, name)
            if operand is not None:
                found[name] = operand[0] if end == "first" else operand[0] + operand[1] - 1
        return found


def concatenated(parts: list[tuple]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Parts ``(cell, columns)`` as one."""
    cell = np.concatenate([part[0] for part in parts])
    return cell, {name: np.concatenate([part[1][name] for part in parts]) for name in COLUMNS}


def front_of(parts: list[tuple], cells: int, budget) -> tuple[tuple, list[tuple]]:
    """The cells' fronts of some candidates, as ``(start, size, cost, peak)`` (see :func:`covered`),
    and as one part (``(cell, columns)``) holding just those candidates."""
    cell, columns = concatenated(parts)
    keep = prune(cell, columns["cost"], columns["peak"], budget)
    size = np.bincount(cell[keep], minlength=cells)
    kept = {name: values[keep] for name, values in columns.items()}
    return (np.cumsum(size) - size, size, kept["cost"], kept["peak"]), [(cell[keep], kept)]


def prune(cell: np.ndarray, cost: np.ndarray, peak: np.ndarray, budget) -> np.ndarray:
    """The indices of the non-dominated candidates of each cell, sorted by cell, then cheapest
    first (so peaks decrease); one of each (cost, peak) pair."""
    survivors = np.flatnonzero(within(peak, budget))
    if not len(survivors):
        return survivors
    cell, cost, peak = cell[survivors], cost[survivors], peak[survivors]
    order = _by_cell_and_cost(cell, cost, peak)
    cell, cost, peak = cell[order], cost[order], peak[order]
    # a running minimum of the peaks that restarts at each cell: each cell's peaks shifted below
    # every earlier cell's, so that no earlier cell's values reach it
    shifted = _shifted_below(cell, peak)
    before = np.minimum.accumulate(np.r_[np.iinfo(np.int64).max, shifted[:-1]])
    kept = np.flatnonzero(shifted < before)
    # of a cell's kept candidates of equal cost, the last has the least peak
    same = (cell[kept][1:] == cell[kept][:-1]) & (cost[kept][1:] == cost[kept][:-1])
    return survivors[order[kept[np.r_[~same, True]]]]


def _by_cell_and_cost(cell: np.ndarray, cost: np.ndarray, peak: np.ndarray) -> np.ndarray:
    """The order by (cell, cost): one sort of a combined key where it fits in int64, else by
    (cell, cost, peak). The sort need not be stable: among candidates of equal cost in a cell,
    :func:`prune` keeps the least peak whatever their order (numpy's quicksort: 3x faster here)."""
    cells = int(cell.max()) + 1
    if cost.dtype == np.int64 and int(cost.max()) < (1 << 62) // cells:
        return np.argsort(cell.astype(np.int64) * (int(cost.max()) + 1) + cost)
    return np.lexsort((peak, cost, cell))


def _shifted_below(cell: np.ndarray, peak: np.ndarray) -> np.ndarray:
    """Peaks shifted so that every cell's lie below every earlier cell's: by the peaks' span where
    that fits in int64, else their dense ranks."""
    cell = cell.astype(np.int64)
    if peak.dtype == np.int64 and int(peak.max()) + 1 < (1 << 62) // (int(cell.max()) + 1):
        return peak - cell * (int(peak.max()) + 1)
    rank = np.unique(peak, return_inverse=True)[1].astype(np.int64).ravel()
    return rank - cell * (len(peak) + 1)


def within(peak: np.ndarray, budget) -> np.ndarray:
    return np.ones(len(peak), dtype=bool) if budget is None else peak <= budget


def covered(cell, cost, peak, front, budget) -> np.ndarray:
    """Whether lower bounds (cost, peak) are over ``budget`` or no better in both than a point of
    their cell's ``front`` (matching one counts: that point is kept, and it is a candidate).

    ``front`` is ``(start, size, cost, peak)``: each cell's points at ``start : start + size``,
    cheapest first, so peaks decrease; the bound is covered where the last point costing no more
    than it peaks no higher (found by one search over every cell at once).
    """
    start, size, front_cost, front_peak = front
    low = _last_no_dearer(cell, cost, front)
    if low is None:
        low = _last_no_dearer_by_bisection(cell, cost, front)
    found = low > start[cell]
    at = np.maximum(low - 1, 0)
    beaten = found & (front_peak[at] <= peak) if len(front_peak) else np.zeros(len(cell), dtype=bool)
    return beaten | ~within(peak, budget)


def _last_no_dearer(cell, cost, front) -> np.ndarray | None:
    """One past the index of each query's cell's last front point costing no more than it (its
    cell's start where there is none): one ``searchsorted`` on a combined (cell, cost) key, or None
    where that key does not fit in int64."""
    start, size, front_cost, _ = front
    if not len(front_cost) or not len(cell):
        return start[cell]
    if front_cost.dtype != np.int64 or np.asarray(cost).dtype != np.int64:
        return None
    largest = max(int(front_cost.max()), int(cost.max()))
    if min(int(front_cost.min()), int(cost.min())) < 0 or largest >= (1 << 62) // (len(start) + 1):
        return None
    span = largest + 1
    owner = np.repeat(np.arange(len(start), dtype=np.int64), size)
    return np.searchsorted(owner * span + front_cost, cell.astype(np.int64) * span + cost, side="right")


def _last_no_dearer_by_bisection(cell, cost, front) -> np.ndarray:
    """:func:`_last_no_dearer` for any numbers: a binary search in every cell at once."""
    start, size, front_cost, _ = front
    low, high = start[cell], start[cell] + size[cell]  # the answer: the last index < high costing <= cost
    while True:
        searching = low < high
        if not searching.any():
            break
        middle = (low + high) // 2
        middle_cost = front_cost[np.minimum(middle, len(front_cost) - 1)]
        cheaper = searching & (middle_cost <= cost)
        low = np.where(cheaper, middle + 1, low)
        high = np.where(searching & ~cheaper, middle, high)
    return low


class Known:
    """Plans of the whole chain found already (``cost``, ``peak``: a front, cheapest first), whose
    least peak is the least of every plan, and each sub-chain's completion cost
    (:func:`chainorder.core.completion.completion_costs`); ``ceiling``: the cost of a known plan
    that fits, where only the cheapest plan is wanted."""

    def __init__(
        self, completion: np.ndarray, cost: np.ndarray, peak: np.ndarray, ceiling: int | None = None
    ) -> None:
        self.completion, self.cost, self.peak = completion, cost, peak
        self.ceiling = ceiling  # only plans costing at most this are wanted (the cheapest that fits)

    def too_dear(self, cell: np.ndarray, length: int, cost: np.ndarray) -> np.ndarray:
        """Whether every completion of sub-plans costing ``cost`` costs more than the least-peak known
        plan, which then dominates them all (no plan peaks less), or more than the ``ceiling``.
        The part of :meth:`dominates` that needs no peak."""
        bounds = ([self.cost[-1]] if len(self.cost) else []) + ([] if self.ceiling is None else [self.ceiling])
        if not bounds:
            return np.zeros(np.shape(cell), dtype=bool)
        return cost + self.completion[cell, length] > min(bounds)

    def dominates(self, cell: np.ndarray, length: int, cost: np.ndarray, peak: np.ndarray) -> np.ndarray:
        """Whether a known plan beats every completion of sub-plans ``(cost, peak)`` of the sub-chains
        of ``length`` starting at ``cell``: no dearer than the least such completion, no larger, and
        better in one (a completion costs ``cost`` plus the sub-chain's completion cost at least, and
        peaks at ``peak`` and the least peak of any plan at least). Such sub-plans are in no plan of
        the front."""
        if not len(self.cost):
            return np.zeros(np.shape(cell), dtype=bool)
        total = cost + self.completion[cell, length]
        peak = np.maximum(peak, self.peak[-1])
        at = np.searchsorted(self.cost, total, side="right") - 1  # the least-peak known plan costing <= total
        found = at >= 0
        at = np.maximum(at, 0)
        known_cost, known_peak = self.cost[at], self.peak[at]
        return found & ((known_peak < peak) | ((known_peak == peak) & (known_cost < total)))
