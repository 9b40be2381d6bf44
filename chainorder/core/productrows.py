"""The Pareto DP's product rows, bounded on a cells x splits array a length at a time.

A product row of the Pareto DP (:class:`chainorder.core.paretodp.ParetoDP`) is a
sub-chain ``i..j`` and a split ``k``: it pairs the labels of ``J[j..k+1]`` with
those of ``J[k..i]``. There are ``O(q^3)`` of them and most add nothing, so
before any is gathered, :class:`ProductRows` bounds them all from their
operands' end labels. Each sub-chain's cheapest and least-peak labels are held
in tables by first layer and length and by last layer and length, so that the
operands of every split of every cell of a length are slices; the rule
(:func:`chainorder.core.subplans.sub_plan`) then gives, on the ``cells x
splits`` array, every row's two corners (the cheapest labels paired, and the
least-peak ones) and its lower corner (the first's cost, the second's peak:
below every candidate of the row, since both rules grow with their operands).

Each cell has two reference corners: the cheapest corner (the least peak of
those) and the least-peak corner (the cheapest of those). What each run keeps:

- the least-peak run (``rough="least_peak"``, one label per sub-chain): each
  cell's row of least peak, the cheapest of those;
- the corners run (``rough="corners"``): the corners that neither reference
  matches or beats in both cost and peak, and the references;
- the exact run: the rows whose lower corner neither reference matches or beats,
  that fit the budget and that no known plan dominates
  (:meth:`chainorder.core.labels.Known.dominates`), and the references' rows, so
  that every candidate of a dropped row is matched or beaten by a corner the
  cell generates. The Pareto DP bounds and expands those as before.

The corners and exact runs first drop the rows whose cheapest candidate
completes into plans dearer than the known plans allow
(:meth:`chainorder.core.labels.Known.too_dear`).

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import numpy as np

from .costs import CostModel
from .labels import Fronts, Group, Known, within
from .memory import MemoryModel
from .steps import StepKind
from .subplans import sub_plan

__all__ = ["ProductRows", "BLOCK"]

#: rows (cells x splits) bounded at once: a block's arrays stay in the cache
BLOCK = 1 << 14

#: each sub-chain's front range and its two end labels (0 where the front is empty): which end, which value
_ENDS = {
    "cheapest_cost": ("cheapest", "cost"),
    "cheapest_peak": ("cheapest", "peak"),
    "least_peak_cost": ("least_peak", "cost"),
    "least_peak": ("least_peak", "peak"),
}
_FIELDS = ("start", "size", *_ENDS)


class ProductRows:
    """Each sub-chain's front range and end labels by first layer and length
    (``by_first[name][i, length]``) and by last layer and length (``by_last[name][j, length]``),
    and each length's product rows worth gathering (see the module's docstring)."""

    def __init__(self, costs: CostModel, memory: MemoryModel, critical_path: bool) -> None:
        self.costs, self.memory, self.critical_path = costs, memory, critical_path
        q = self.q = len(costs)
        dtype = {name: np.int64 if name in ("start", "size") else costs.numbers.dtype for name in _FIELDS}
        self.by_first = {name: np.zeros((q, q + 1), dtype=dtype[name]) for name in _FIELDS}
        self.by_last = {name: np.zeros((q, q + 1), dtype=dtype[name]) for name in _FIELDS}

    def add_length(self, length: int, fronts: Fronts) -> None:
        """Read the fronts of every sub-chain of ``length``, just added to ``fronts``."""
        cells = self.q - length + 1
        first = np.arange(cells)
        start, size = fronts.start[first, first + length - 1], fronts.size[first, first + length - 1]
        values = {"start": start, "size": size}
        ends = {"cheapest": start, "least_peak": start + np.maximum(size - 1, 0)}
        for name, (end, value) in _ENDS.items():
            entry = np.minimum(ends[end], max(fronts.count - 1, 0))
            column = fronts.cost if value == "cost" else fronts.peak
            values[name] = np.where(size > 0, column[entry], 0) if fronts.count else np.zeros(cells, dtype=np.int64)
        for name, value in values.items():
            self.by_first[name][:cells, length] = value
            self.by_last[name][length - 1 :, length] = value

    def least_peak(self, length: int) -> Group:
        """Each cell's row of least peak from its operands' least-peak labels (the cheapest of
        those), among the splits whose operands both have a label; none for a cell without one."""
        found = []
        for cells in self._blocks(length):
            later, earlier = self._operands(length, cells)
            cost, peak = self._corner(length, later, earlier, ("least_peak_cost", "least_peak"), cells)
            valid = (later["size"] > 0) & (earlier["size"] > 0)
            found.append(self._rows(length, later, earlier, cells, *self._best_per_cell(valid, peak, cost)))
        return _joined(found)

    def corners(self, length: int, known: Known | None) -> list[tuple]:
        """The corners worth pruning, as ``(cell, cost, peak, split, later, earlier)`` (the operands'
        front entries): from the cheapest labels, then from the least-peak ones."""
        found = []
        for cells in self._blocks(length):
            later, earlier, columns, valid = self._bounded(length, known, cells)
            bounds, references = self._references(valid, columns)
            for column, (cost, peak) in enumerate(columns):
                keep = valid & ~_matched(cost, peak, bounds)
                keep[references[column]] = True
                row, offset = np.nonzero(keep)
                cell, last, split, *ranges = self._rows(length, later, earlier, cells, row, offset)
                entries = [start + column * (size - 1) for start, size in ranges]  # the cheapest or least-peak
                found.append((cell, cost[row, offset], peak[row, offset], split, *entries))
        return found

    def worth_expanding(self, length: int, known: Known | None, budget) -> Group:
        """The rows whose lower corner neither reference corner matches or beats, that fit ``budget``
        and that no known plan dominates, and the references' rows."""
        found = []
        for cells in self._blocks(length):
            later, earlier, columns, valid = self._bounded(length, known, cells)
            bounds, references = self._references(valid, columns)
            lower_cost, lower_peak = columns[0][0], columns[1][1]
            hidden = _matched(lower_cost, lower_peak, bounds) | ~within(lower_peak, budget)
            if known is not None:
                hidden |= known.dominates(cells[:, None], length, lower_cost, lower_peak)
            keep = valid & ~hidden
            for reference in references:
                keep[reference] = True
            found.append(self._rows(length, later, earlier, cells, *np.nonzero(keep)))
        return _joined(found)

    def _blocks(self, length: int):
        """The cells of ``length`` in blocks of about :data:`BLOCK` rows (cells x splits): each
        block's arrays stay in the cache."""
        cells, width = self.q - length + 1, length - 1
        step = max(1, BLOCK // width)
        for first in range(0, cells, step):
            yield np.arange(first, min(first + step, cells))

    def _operands(self, length: int, cells: np.ndarray) -> tuple[dict, dict]:
        """``J[i+length-1..i+t+1]`` and ``J[i+t..i]`` for every cell ``i`` of ``cells`` (a range)
        and split ``i+t``."""
        first, end = int(cells[0]), int(cells[-1]) + 1
        rows, columns = slice(length - 1 + first, length - 1 + end), slice(length - 1, 0, -1)
        later = {name: table[rows, columns] for name, table in self.by_last.items()}
        earlier = {name: table[first:end, 1:length] for name, table in self.by_first.items()}
        return later, earlier

    def _corner(self, length: int, later: dict, earlier: dict, end: tuple[str, str], cells: np.ndarray) -> tuple:
        """``(cost, peak)`` of every row's candidate from its operands' ``end`` labels."""
        first, width = cells[:, None], length - 1
        return sub_plan(
            StepKind.PRODUCT, first, first + width, first + np.arange(width)[None, :], costs=self.costs,
            memory=self.memory, critical_path=self.critical_path, later=tuple(later[name] for name in end),
            earlier=tuple(earlier[name] for name in end),
        )  # fmt: skip

    def _bounded(self, length: int, known: Known | None, cells: np.ndarray) -> tuple:
        """The operands, both corners of every row, and which rows have both operands and a cheapest
        candidate the known plans let through."""
        later, earlier = self._operands(length, cells)
        ends = (tuple(_ENDS)[:2], tuple(_ENDS)[2:])
        columns = [self._corner(length, later, earlier, end, cells) for end in ends]
        valid = (later["size"] > 0) & (earlier["size"] > 0)
        if known is not None:
            valid &= ~known.too_dear(cells[:, None], length, columns[0][0])
        return later, earlier, columns, valid

    def _references(self, valid: np.ndarray, columns: list[tuple]) -> tuple[list[tuple], list[tuple]]:
        """Each cell's two reference corners as bounds ``(cost, peak)`` (``cells x 1``, infeasible for
        a cell without a valid row), and where they are: the cheapest corner (the least peak of those)
        and the least-peak corner (the cheapest of those)."""
        (cheap_cost, cheap_peak), (small_cost, small_peak) = columns
        references = [self._best_per_cell(valid, cheap_cost, cheap_peak)]
        references.append(self._best_per_cell(valid, small_peak, small_cost))
        bounds = []
        for (cell, offset), (cost, peak) in zip(references, columns):
            bound = np.full((2, len(valid), 1), self.costs.numbers.infeasible, dtype=cost.dtype)
            bound[0, cell, 0], bound[1, cell, 0] = cost[cell, offset], peak[cell, offset]
            bounds.append((bound[0], bound[1]))
        return bounds, references

    def _best_per_cell(self, valid: np.ndarray, key: np.ndarray, tie: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The cells with a valid split, and each one's valid split of least ``key`` (the least ``tie``
        of those)."""
        infeasible = self.costs.numbers.infeasible
        key = np.where(valid, key, infeasible)
        tie = np.where(valid & (key == key.min(axis=1, keepdims=True)), tie, infeasible)
        cell = np.flatnonzero(valid.any(axis=1))
        return cell, np.argmin(tie[cell], axis=1)

    @staticmethod
    def _rows(length: int, later: dict, earlier: dict, cells: np.ndarray, row, offset) -> tuple:
        """``(cell, last, split, later, earlier)`` of the rows at ``(row, offset)`` of a block."""
        ranges = [(side["start"][row, offset], side["size"][row, offset]) for side in (later, earlier)]
        cell = cells[row]
        return cell, cell + length - 1, cell + offset, *ranges


def _joined(blocks: list[tuple]) -> Group:
    """The product rows of every block, as one group."""
    cell, last, split = (np.concatenate([block[index] for block in blocks]) for index in range(3))
    later, earlier = (
        tuple(np.concatenate([block[index][part] for block in blocks]) for part in (0, 1)) for index in (3, 4)
    )
    return Group(StepKind.PRODUCT, cell, last, split, later, earlier)


def _matched(cost: np.ndarray, peak: np.ndarray, bounds: list[tuple]) -> np.ndarray:
    """Whether one of the bounds is no more than ``(cost, peak)`` in both."""
    matched = np.zeros(np.shape(cost), dtype=bool)
    for bound_cost, bound_peak in bounds:
        matched |= (cost >= bound_cost) & (peak >= bound_peak)
    return matched
