"""Cost against memory: the exact Pareto front of plans, and memory-limited optimization.

A dynamic program over sub-chains, like :mod:`chainorder.core.dp`, but each
sub-chain keeps every non-dominated pair (cost, peak memory) of its sub-plans
rather than the single best. Both the cost (a sum, or a max of the operands on
the critical path) and the peak (:mod:`chainorder.core.subplans`) grow with the
operands' values, so a sub-plan dominated in both can never be part of a
non-dominated plan, and pruning it loses nothing. With a memory limit, sub-plans
whose peak is already over the limit are dropped as they appear.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import numpy as np

from .chain import Chain
from .costs import CostModel
from .memory import MemoryModel, order_for_memory
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
    first."""

    def __init__(self, q: int) -> None:
        self.start = np.zeros((q, q), dtype=np.int64)
        self.size = np.zeros((q, q), dtype=np.int64)
        self.columns: dict[str, list[np.ndarray]] = {name: [] for name in _COLUMNS}
        self.count = 0
        self.cost = self.peak = np.zeros(0)
        self._flat: dict[str, np.ndarray] | None = None

    def add(self, first: int, last: int, columns: dict[str, np.ndarray]) -> None:
        self.start[first, last] = self.count
        self.size[first, last] = len(columns["cost"])
        self.count += len(columns["cost"])
        for name in _COLUMNS:
            self.columns[name].append(columns[name])

    def freeze_level(self) -> None:
        """Make the entries added so far readable through ``cost`` and ``peak``."""
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


def _prune(candidates: dict[str, np.ndarray], budget) -> dict[str, np.ndarray]:
    """The non-dominated candidates, cheapest first (so peaks decrease)."""
    if budget is not None:
        fits = candidates["peak"] <= budget
        candidates = {name: values[fits] for name, values in candidates.items()}
    cost, peak = candidates["cost"], candidates["peak"]
    order = np.lexsort((peak, cost))
    peak = peak[order]
    keep = np.ones(len(peak), dtype=bool)
    if len(peak):
        keep[1:] = peak[1:] < np.minimum.accumulate(peak)[:-1]
    return {name: values[order][keep] for name, values in candidates.items()}


class _ParetoDP:
    def __init__(self, chain: Chain, objective: Objective, matrix_free: bool, tape_limit, budget) -> None:
        self.q = len(chain)
        self.costs = CostModel.exact(chain)
        self.memory = MemoryModel(chain, self.costs)
        self.critical_path = objective is Objective.CRITICAL_PATH
        self.matrix_free = matrix_free
        self.tape_limit = tape_limit
        self.budget = budget
        self.fronts = _Fronts(self.q)

    def _candidates(self, kind: StepKind, first, last, split, later=None, earlier=None) -> dict[str, np.ndarray]:
        fronts = self.fronts
        operands = {}
        for name, entries in (("later", later), ("earlier", earlier)):
            if entries is not None:
                operands[name] = (fronts.cost[entries], fronts.peak[entries])
        cost, peak = sub_plan(
            kind, first, last, split, costs=self.costs, memory=self.memory, critical_path=self.critical_path, **operands
        )
        size = len(np.atleast_1d(cost))
        none = np.full(size, -1, dtype=np.int64)
        return {
            "cost": np.atleast_1d(np.asarray(cost, dtype=self.costs.numbers.dtype)),
            "peak": np.atleast_1d(np.asarray(peak, dtype=self.costs.numbers.dtype)),
            "kind": np.full(size, kind.code, dtype=np.int8),
            "split": np.broadcast_to(np.asarray(-1 if split is None else split, dtype=np.int64), (size,)).copy(),
            "later": none if later is None else later.astype(np.int64),
            "earlier": none if earlier is None else earlier.astype(np.int64),
        }

    def _single_layer(self, layer: int) -> list[dict]:
        parts = [self._candidates(StepKind.TANGENT_PREACCUMULATION, layer, layer, None)]
        if self.tape_limit is None or self.costs.edges(layer, layer) <= self.tape_limit:
            parts.append(self._candidates(StepKind.ADJOINT_PREACCUMULATION, layer, layer, None))
        return parts

    def _products(self, first: int, last: int) -> dict:
        """Every pair of an entry of ``J[last..k+1]`` and one of ``J[k..first]``."""
        fronts, splits = self.fronts, np.arange(first, last)
        later_start, later_size = fronts.start[splits + 1, last], fronts.size[splits + 1, last]
        earlier_start, earlier_size = fronts.start[first, splits], fronts.size[first, splits]
        pairs = later_size * earlier_size
        owner = np.repeat(np.arange(len(splits)), pairs)
        offset = np.arange(int(pairs.sum())) - (np.cumsum(pairs) - pairs)[owner]
        later = later_start[owner] + offset // earlier_size[owner]
        earlier = earlier_start[owner] + offset % earlier_size[owner]
        return self._candidates(StepKind.PRODUCT, first, last, splits[owner], later=later, earlier=earlier)

    def _tangent_steps(self, first: int, last: int) -> dict:
        """An entry of ``J[k..first]`` pushed through layers ``k+1..last``."""
        splits = np.arange(first, last)
        earlier, owner = _ranges(self.fronts.start[first, splits], self.fronts.size[first, splits])
        return self._candidates(StepKind.TANGENT_STEP, first, last, splits[owner], earlier=earlier)

    def _adjoint_steps(self, first: int, last: int) -> dict:
        """An entry of ``J[last..k+1]`` pulled back through layers ``first..k`` (whose tape fits)."""
        splits = np.arange(first, last)
        sizes = self.fronts.size[splits + 1, last]
        if self.tape_limit is not None:
            sizes = np.where(self.costs.edges(first, splits) <= self.tape_limit, sizes, 0)
        later, owner = _ranges(self.fronts.start[splits + 1, last], sizes)
        return self._candidates(StepKind.ADJOINT_STEP, first, last, splits[owner], later=later)

    def _front_of(self, first: int, last: int) -> dict:
        if first == last:
            parts = self._single_layer(first)
        else:
            parts = [self._products(first, last)]
            if self.matrix_free:
                parts += [self._tangent_steps(first, last), self._adjoint_steps(first, last)]
        merged = {name: np.concatenate([part[name] for part in parts]) for name in _COLUMNS}
        return _prune(merged, self.budget)

    def run(self) -> _Fronts:
        for length in range(1, self.q + 1):
            for first in range(self.q - length + 1):
                last = first + length - 1
                self.fronts.add(first, last, self._front_of(first, last))
            self.fronts.freeze_level()
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
    budget = None if memory_limit is None else memory_limit - memory.primal
    if budget is not None and budget < 0:
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
