"""Cost against memory: the exact Pareto front of plans, and memory-limited optimization.

A dynamic program over sub-chains, like :mod:`chainorder.core.dp`, but each
sub-chain keeps every non-dominated pair (cost, peak memory) of its sub-plans
rather than the single best. Every sub-chain of one length is filled at once:
the candidates of all its cells are generated as flat arrays, those that their
cell's cheapest or smallest candidate dominates are dropped, and the rest are
sorted by (cell, cost, peak) and kept where their peak is below every cheaper
candidate's of the same cell. Sub-plans peaking above a cost-optimal plan's peak
are dropped as they appear (complete plans using them are dominated by it).
Both the cost (a sum, or a max of the operands on the critical path) and the
peak (:mod:`chainorder.core.subplans`) grow with the operands' values, so a
sub-plan dominated in both can never be part of a non-dominated plan, and
pruning it loses nothing. With a memory limit, sub-plans
whose peak is already over the limit are dropped as they appear.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import numpy as np

from .chain import Chain
from .costs import CostModel
from .dp import cheapest_steps
from .memory import MemoryModel, order_for_memory, peak_memory
from .steps import Objective, Step, StepKind
from .subplans import sub_plan
from .tree import post_order

__all__ = ["pareto_steps"]

_COLUMNS = ("cost", "peak", "kind", "split", "later", "earlier")


class _Fronts:
    """Every sub-chain's front, stored flat: entry ``e`` has ``cost[e]``,
    ``peak[e]`` (without the primal values), ``kind[e]`` (a code), ``split[e]``
    and the entries of its operands' sub-plans, ``later[e]`` (``J[j..k+1]``) and
    ``earlier[e]`` (``J[k..i]``), -1 where there is none. The entries of
    sub-chain ``i..j`` are ``start[i, j] : start[i, j] + size[i, j]``, cheapest
    first. Sub-chains are added a length at a time."""

    def __init__(self, q: int) -> None:
        self.start = np.zeros((q, q), dtype=np.int64)
        self.size = np.zeros((q, q), dtype=np.int64)
        self.columns: dict[str, list[np.ndarray]] = {name: [] for name in _COLUMNS}
        self.count = 0
        self.cost = self.peak = np.zeros(0)
        self._flat: dict[str, np.ndarray] | None = None

    def add_length(self, length: int, cell: np.ndarray, columns: dict[str, np.ndarray], cells: int) -> None:
        """The fronts of every sub-chain of ``length``: ``columns`` sorted by ``cell`` (first layer)."""
        sizes = np.bincount(cell, minlength=cells)
        first = np.arange(cells)
        self.size[first, first + length - 1] = sizes
        self.start[first, first + length - 1] = self.count + np.cumsum(sizes) - sizes
        self.count += len(cell)
        for name in _COLUMNS:
            self.columns[name].append(columns[name])
        self.cost = np.concatenate(self.columns["cost"])
        self.peak = np.concatenate(self.columns["peak"])
        self.columns["cost"], self.columns["peak"] = [self.cost], [self.peak]

    def entry(self, index: int) -> tuple:
        if self._flat is None:
            self._flat = {name: np.concatenate(values) for name, values in self.columns.items()}
        return tuple(self._flat[name][index] for name in _COLUMNS)


def _ranges(starts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each s, the indices ``starts[s] .. starts[s] + sizes[s] - 1``, concatenated,
    and which s each index came from."""
    owner = np.repeat(np.arange(len(sizes)), sizes)
    offsets = np.cumsum(sizes) - sizes
    return starts[owner] + np.arange(int(sizes.sum())) - offsets[owner], owner


def _prune(cell: np.ndarray, cost: np.ndarray, peak: np.ndarray, budget) -> np.ndarray:
    """The indices of the non-dominated candidates of each cell, sorted by cell, then cheapest
    first (so peaks decrease)."""
    survivors = _outside_corners(cell, cost, peak, budget)
    order = survivors[np.lexsort((peak[survivors], cost[survivors], cell[survivors]))]
    if not len(order):
        return order
    # a running minimum of the peaks that restarts at each cell: the peaks' dense ranks, each
    # cell shifted below every earlier cell, so that no earlier cell's values reach it
    rank = np.unique(peak[order], return_inverse=True)[1].astype(np.int64).ravel()
    shifted = rank - cell[order].astype(np.int64) * (len(order) + 1)
    before = np.minimum.accumulate(np.r_[np.iinfo(np.int64).max, shifted[:-1]])
    return order[shifted < before]


def _outside_corners(cell: np.ndarray, cost: np.ndarray, peak: np.ndarray, budget) -> np.ndarray:
    """The candidates within ``budget`` that neither the cheapest nor the smallest candidate of
    their cell dominates (a cheap first cut before the exact sort; equal pairs stay)."""
    fits = np.ones(len(cell), dtype=bool) if budget is None else peak <= budget
    cells = int(cell.max()) + 1 if len(cell) else 0
    big = np.iinfo(np.int64).max if peak.dtype == np.int64 else None
    if big is None or not fits.any():  # Python integers: the exact sort alone
        return np.flatnonzero(fits)
    corners = []
    for first, second in ((cost, peak), (peak, cost)):
        least = np.full(cells, big, dtype=np.int64)
        np.minimum.at(least, cell[fits], first[fits])
        at_least = fits & (first == least[cell])
        partner = np.full(cells, big, dtype=np.int64)
        np.minimum.at(partner, cell[at_least], second[at_least])
        corners.append((least, partner))
    (cheapest, its_peak), (smallest, its_cost) = corners
    by_cheapest = _beaten(cost, peak, cheapest[cell], its_peak[cell])
    by_smallest = _beaten(cost, peak, its_cost[cell], smallest[cell])
    return np.flatnonzero(fits & ~by_cheapest & ~by_smallest)


def _beaten(cost, peak, corner_cost, corner_peak):
    """Whether (cost, peak) is no better than the corner in both and worse in one."""
    return (cost >= corner_cost) & (peak >= corner_peak) & ((cost > corner_cost) | (peak > corner_peak))


class _ParetoDP:
    """Fills the fronts a sub-chain length at a time, every cell of a length at once."""

    def __init__(self, chain: Chain, objective: Objective, matrix_free: bool, tape_limit, budget) -> None:
        self.q = len(chain)
        self.costs = CostModel.exact(chain)
        self.memory = MemoryModel(chain, self.costs)
        self.critical_path = objective is Objective.CRITICAL_PATH
        self.matrix_free = matrix_free
        self.tape_limit = tape_limit
        self.budget = budget
        self.fronts = _Fronts(self.q)

    def _candidates(self, kind: StepKind, cell, last, split, later=None, earlier=None) -> tuple:
        fronts = self.fronts
        operands = {}
        for name, entries in (("later", later), ("earlier", earlier)):
            if entries is not None:
                operands[name] = (fronts.cost[entries], fronts.peak[entries])
        cost, peak = sub_plan(
            kind, cell, last, split, costs=self.costs, memory=self.memory, critical_path=self.critical_path, **operands
        )
        size = len(cell)
        none = np.full(size, -1, dtype=np.int64)
        dtype = self.costs.numbers.dtype
        return cell, {
            "cost": np.broadcast_to(np.asarray(cost, dtype=dtype), (size,)).copy(),
            "peak": np.broadcast_to(np.asarray(peak, dtype=dtype), (size,)).copy(),
            "kind": np.full(size, kind.code, dtype=np.int8),
            "split": none.copy() if split is None else np.asarray(split, dtype=np.int64),
            "later": none if later is None else later.astype(np.int64),
            "earlier": none if earlier is None else earlier.astype(np.int64),
        }

    def _single_layers(self) -> list[tuple]:
        layers = np.arange(self.q)
        parts = [self._candidates(StepKind.TANGENT_PREACCUMULATION, layers, layers, None)]
        fits = layers if self.tape_limit is None else layers[self.costs.edges(layers, layers) <= self.tape_limit]
        parts.append(self._candidates(StepKind.ADJOINT_PREACCUMULATION, fits, fits, None))
        return parts

    def _splits(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Every (cell, split) of a length, flat."""
        cells = self.q - length + 1
        cell = np.repeat(np.arange(cells), length - 1)
        return cell, cell + np.tile(np.arange(length - 1), cells)

    def _products(self, length: int) -> tuple:
        """Every pair of an entry of ``J[last..k+1]`` and one of ``J[k..first]``."""
        fronts = self.fronts
        cell, split = self._splits(length)
        last = cell + length - 1
        later_start, later_size = fronts.start[split + 1, last], fronts.size[split + 1, last]
        earlier_start, earlier_size = fronts.start[cell, split], fronts.size[cell, split]
        pairs = later_size * earlier_size
        owner = np.repeat(np.arange(len(split)), pairs)
        offset = np.arange(int(pairs.sum())) - (np.cumsum(pairs) - pairs)[owner]
        later = later_start[owner] + offset // earlier_size[owner]
        earlier = earlier_start[owner] + offset % earlier_size[owner]
        return self._candidates(
            StepKind.PRODUCT, cell[owner], last[owner], split[owner], later=later, earlier=earlier
        )

    def _tangent_steps(self, length: int) -> tuple:
        """An entry of ``J[k..first]`` pushed through layers ``k+1..last``."""
        cell, split = self._splits(length)
        earlier, owner = _ranges(self.fronts.start[cell, split], self.fronts.size[cell, split])
        cell, split = cell[owner], split[owner]
        return self._candidates(StepKind.TANGENT_STEP, cell, cell + length - 1, split, earlier=earlier)

    def _adjoint_steps(self, length: int) -> tuple:
        """An entry of ``J[last..k+1]`` pulled back through layers ``first..k`` (whose tape fits)."""
        cell, split = self._splits(length)
        last = cell + length - 1
        sizes = self.fronts.size[split + 1, last]
        if self.tape_limit is not None:
            sizes = np.where(self.costs.edges(cell, split) <= self.tape_limit, sizes, 0)
        later, owner = _ranges(self.fronts.start[split + 1, last], sizes)
        return self._candidates(StepKind.ADJOINT_STEP, cell[owner], last[owner], split[owner], later=later)

    def _fill(self, length: int) -> None:
        if length == 1:
            parts = self._single_layers()
        else:
            parts = [self._products(length)]
            if self.matrix_free:
                parts += [self._tangent_steps(length), self._adjoint_steps(length)]
        cell = np.concatenate([part[0] for part in parts])
        cost, peak = (np.concatenate([part[1][name] for part in parts]) for name in ("cost", "peak"))
        keep = _prune(cell, cost, peak, self.budget)
        kept = {name: np.concatenate([part[1][name] for part in parts])[keep] for name in _COLUMNS}
        self.fronts.add_length(length, cell[keep], kept, self.q - length + 1)

    def run(self) -> _Fronts:
        for length in range(1, self.q + 1):
            self._fill(length)
        return self.fronts

    def steps(self, root: int) -> list[Step]:
        """The steps of front entry ``root`` (of the whole chain), children first."""
        fronts = self.fronts

        def children(node):
            _, _, _, split, later, earlier = fronts.entry(node[2])
            found = []
            if later >= 0:
                found.append((int(split) + 1, node[1], int(later)))
            if earlier >= 0:
                found.append((node[0], int(split), int(earlier)))
            return found

        steps = []
        for first, last, entry in post_order((0, self.q - 1, root), children):
            _, _, code, split, _, _ = fronts.entry(entry)
            kind = StepKind.from_code(code)
            split = None if kind.is_preaccumulation else int(split)
            steps.append(Step(kind, first, last, split, int(self.costs.cost(kind, first, last, split))))
        return steps


def _cost_optimal_peak(chain: Chain, objective, matrix_free: bool, tape_limit, memory: MemoryModel) -> int:
    """The peak of a cost-optimal plan (from the fast DP): a bound for every sub-plan.

    A sub-plan peaking above it is in complete plans that cost at least the optimum and
    peak above this plan's: dominated. The Pareto DP drops such labels as they appear,
    as it does under a memory limit, and its front is unchanged.
    """
    steps = cheapest_steps(chain, Objective(objective), matrix_free=matrix_free, tape_limit=tape_limit)
    return peak_memory(chain, order_for_memory(chain, steps, memory), memory)


def pareto_steps(
    chain: Chain,
    *,
    objective: Objective = Objective.FMA,
    matrix_free: bool = True,
    tape_limit: int | None = None,
    memory_limit: int | None = None,
) -> list[tuple[int, int, list[Step]]]:
    """Every non-dominated ``(cost, peak_memory, steps)``, least memory first.

    With ``memory_limit``, only plans whose peak fits; an empty list when none does.
    """
    memory = MemoryModel(chain)
    ceiling = _cost_optimal_peak(chain, objective, matrix_free, tape_limit, memory)
    limit = ceiling if memory_limit is None else min(memory_limit, ceiling)
    budget = limit - memory.primal
    if budget < 0:
        return []
    dp = _ParetoDP(chain, Objective(objective), matrix_free, tape_limit, budget)
    fronts = dp.run()
    q = len(chain)
    start, size = int(fronts.start[0, q - 1]), int(fronts.size[0, q - 1])
    plans = []
    for entry in range(start + size - 1, start - 1, -1):  # least memory first
        cost, peak = fronts.entry(entry)[:2]
        plans.append((int(cost), int(peak) + memory.primal, order_for_memory(chain, dp.steps(entry), memory)))
    return plans
